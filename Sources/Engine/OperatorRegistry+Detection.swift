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

        // Sampling grids (spatial transformers, flow warping, deformable attention).
        r.add(OperatorRecord("GridSample", types: [.float32], shape: .fromInputShapes, rows: .mixes) {
            try GridSampleKernel(context: $0)
        })
        r.add(OperatorRecord("AffineGrid", types: [.float32], shape: .fromFirstShapeAndValues, rows: .mixes) {
            try AffineGridKernel(context: $0)
        })
    }
}
