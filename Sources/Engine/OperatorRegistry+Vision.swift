import Tensors

extension OperatorRegistry {
    /// The records of ConvTranspose, pooling with indices, the normalisations beyond Batch/Instance/Layer.
    static func registerVisionOperators(_ r: inout OperatorRegistry) {
        let f32: [DataType] = [.float32]
        r.add(OperatorRecord("ConvTranspose", types: f32, shape: .fromInputShapes, rows: .rowwise) {
            try ConvTransposeKernel(context: $0)
        })
        r.add(OperatorRecord("GroupNormalization", types: f32, shape: .fromInputShapes, rows: .rowwise) {
            try GroupNormalizationKernel(context: $0)
        })
        r.add(OperatorRecord("LpNormalization", types: f32, shape: .fromInputShapes, rows: .axisNotZero) {
            try LpNormalizationKernel(context: $0)
        })
        r.add(OperatorRecord("MeanVarianceNormalization", types: f32, shape: .fromInputShapes, rows: .reduce) {
            try MeanVarianceNormalizationKernel(context: $0)
        })
    }
}
