import Tensors

extension OperatorRegistry {
    /// The records of what newer exporters emit: Attention, RMSNormalization, RotaryEmbedding, the remaining elementwise and signal operators.
    static func registerNewerOperators(_ r: inout OperatorRegistry) {
        let f32: [DataType] = [.float32]

        // Transformer blocks. Attention's K and V are computed, so a batch is not split through it;
        // RotaryEmbedding's position ids and caches are per batch row.
        r.add(OperatorRecord("Attention", types: f32, shape: .fromInputShapes, rows: .mixes) {
            try AttentionKernel(context: $0)
        })
        // PyTorch's flex_attention (ai.onnx.preview): modifier subgraphs around the softmax.
        r.add(
            OperatorRecord("FlexAttention", domain: "ai.onnx.preview", domainOpsets: 1...1, types: [.float32, .float64], shape: .fromInputShapes, rows: .mixes) {
                try FlexAttentionKernel(context: $0)
            })
        r.add(OperatorRecord("RMSNormalization", types: f32, shape: .fromInputShapes, rows: .axisNotZero) {
            try RMSNormalizationKernel(context: $0)
        })
        r.add(OperatorRecord("RotaryEmbedding", types: f32, shape: .fromInputShapes, rows: .mixes) {
            try RotaryEmbeddingKernel(context: $0)
        })
        // Swish (x * sigmoid(alpha * x), SiLU at alpha 1) fuses into the MatMul/Gemm/Conv before it.
        r.add(
            OperatorRecord(
                "Swish", types: UnaryKernel.types(.swish), shape: .fromInputShapes, rows: .rowwise, fusion: .activation,
                epilogue: { Epilogue.equivalent(to: $0) }
            ) { try UnaryKernel(context: $0, op: .swish) })

        // The inverse trigonometric and the hyperbolic functions.
        for op in [UnaryKernel.Op.asin, .acos, .atan, .sinh, .cosh, .asinh, .acosh, .atanh] {
            r.add(OperatorRecord(op.rawValue, types: UnaryKernel.types(op), shape: .fromInputShapes, rows: .rowwise) {
                try UnaryKernel(context: $0, op: op)
            })
        }
        // Integer bit operations, on every integer type.
        for op in [BitwiseKernel.Op.and, .or, .xor, .shift] {
            r.add(OperatorRecord(op.rawValue, types: BitwiseKernel.types, shape: .fromInputShapes, rows: .broadcasting) {
                try BitwiseKernel(context: $0, op: op)
            })
        }
        r.add(OperatorRecord("BitwiseNot", types: BitwiseKernel.types, shape: .fromInputShapes, rows: .rowwise) {
            try BitwiseKernel(context: $0, op: .not)
        })
        // A 2-D input has one determinant for all its rows.
        r.add(OperatorRecord("Det", types: f32, shape: .fromInputShapes, rows: .mixes) { try DeterminantKernel(context: $0) })

        // Signal processing. DFT's axis may be 0 and its length is a value; windows and the mel
        // matrix are made from values.
        r.add(OperatorRecord("DFT", types: f32, shape: .fromFirstShapeAndValues, rows: .mixes) { try DFTKernel(context: $0) })
        r.add(OperatorRecord("STFT", types: f32, shape: .fromFirstShapeAndValues, rows: .rowwise) {
            try STFTKernel(context: $0)
        })
        for shape in [WindowKernel.Shape.hann, .hamming, .blackman] {
            r.add(OperatorRecord(shape.rawValue, types: [.int64, .int32], shape: .fromValues, rows: .mixes) {
                try WindowKernel(context: $0, shape: shape)
            })
        }
        r.add(OperatorRecord("MelWeightMatrix", types: [.int64, .int32], shape: .fromValues, rows: .mixes) {
            try MelWeightMatrixKernel(context: $0)
        })
    }
}
