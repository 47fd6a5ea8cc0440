import Tensors

extension OperatorRegistry {
    /// The records of ConvTranspose, pooling with indices, the normalisations beyond Batch/Instance/Layer.
    static func registerVisionOperators(_ r: inout OperatorRegistry) {
        let f32: [DataType] = [.float32]
        r.add(OperatorRecord("ConvTranspose", types: f32, shape: .fromInputShapes, rows: .rowwise) {
            try ConvTransposeKernel(context: $0)
        })
        r.add(OperatorRecord("GroupNormalization", types: [.float32, .float64], shape: .fromInputShapes, rows: .rowwise) {
            try GroupNormalizationKernel(context: $0)
        })
        r.add(OperatorRecord("LpNormalization", types: f32, shape: .fromInputShapes, rows: .axisNotZero) {
            try LpNormalizationKernel(context: $0)
        })
        r.add(OperatorRecord("MeanVarianceNormalization", types: f32, shape: .fromInputShapes, rows: .reduce) {
            try MeanVarianceNormalizationKernel(context: $0)
        })
        r.add(OperatorRecord("LpPool", types: [.float32, .float64], shape: .fromInputShapes, rows: .rowwise) {
            try PoolKernel(context: $0, lpPool: ())
        })
        r.add(OperatorRecord("MaxUnpool", types: f32, shape: .fromFirstShapeAndValues, rows: .mixes) {
            try MaxUnpoolKernel(context: $0)
        })
        r.add(OperatorRecord("Col2Im", types: f32, shape: .fromFirstShapeAndValues, rows: .rowwise) {
            try Col2ImKernel(context: $0)
        })
        r.add(OperatorRecord("CenterCropPad", types: DataType.allNumeric, shape: .fromFirstShapeAndValues, rows: .mixes) {
            try CenterCropPadKernel(context: $0)
        })
    }
}
