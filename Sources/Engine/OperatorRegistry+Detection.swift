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

        // Indexing: selections whose sizes depend on the values, reversals, products, scatters.
        r.add(OperatorRecord("Unique", types: UniqueKernel.types, shape: .fromValues, rows: .mixes) {
            try UniqueKernel(context: $0)
        })
        r.add(OperatorRecord("Compress", types: DataType.allNumeric, shape: .fromFirstShapeAndValues, rows: .mixes) {
            try CompressKernel(context: $0)
        })
        r.add(OperatorRecord("ReverseSequence", types: DataType.allNumeric, shape: .fromInputShapes, rows: .mixes) {
            try ReverseSequenceKernel(context: $0)
        })
        r.add(OperatorRecord("CumProd", types: DataType.realNumbers, shape: .fromInputShapes, rows: .mixes) {
            try CumSumKernel(context: $0, product: true)
        })
        // Opset 9's Scatter is ScatterElements without a reduction (deprecated in opset 11).
        r.add(OperatorRecord("Scatter", types: DataType.allNumeric, shape: .fromInputShapes, rows: .mixes) {
            try ScatterElementsKernel(context: $0)
        })
        r.add(OperatorRecord("TensorScatter", types: DataType.allNumeric, shape: .fromInputShapes, rows: .mixes) {
            try TensorScatterKernel(context: $0)
        })
    }
}
