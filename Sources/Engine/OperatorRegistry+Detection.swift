import Tensors

extension OperatorRegistry {
    /// The records of detection and indexing: NonMaxSuppression, RoiAlign, GridSample, Unique, Compress, ....
    static func registerDetectionOperators(_ r: inout OperatorRegistry) {
        // Detection: the selected boxes' count depends on the values.
        r.add(OperatorRecord("NonMaxSuppression", types: [.float32], shape: .fromValues, rows: .mixes) {
            try NonMaxSuppressionKernel(context: $0)
        })
        r.add(OperatorRecord("RoiAlign", types: [.float32], shape: .fromInputShapes, rows: .mixes) {
            try RoiAlignKernel(context: $0)
        })
    }
}
