import Tensors

extension OperatorRegistry {
    /// The records of the quantized operators: ONNX's QuantizeLinear / DequantizeLinear family and
    /// integer products, and the com.microsoft operators onnxruntime's quantizer emits (QOperator
    /// format, dynamic quantization, 4-bit weights). Integer products run on `QuantizedGemm`.
    static func registerQuantizedOperators(_ r: inout OperatorRegistry) {
        let q8: [DataType] = [.uint8, .int8]
        let ms = "com.microsoft"

        // Per-axis and blocked parameters index axis 0 too, so a batch is not split through them.
        r.add(OperatorRecord("QuantizeLinear", types: [.float32], shape: .fromInputShapes, rows: .mixes) {
            try QuantizeLinearKernel(context: $0)
        })
        r.add(OperatorRecord("DequantizeLinear", types: Quantized.linearTypes, shape: .fromInputShapes, rows: .mixes) {
            try DequantizeLinearKernel(context: $0)
        })
        // Its scale and zero point come from the whole tensor.
        r.add(OperatorRecord("DynamicQuantizeLinear", types: [.float32], shape: .fromInputShapes, rows: .mixes) {
            try DynamicQuantizeLinearKernel(context: $0)
        })
        // A's zero point may be per row.
        r.add(OperatorRecord("MatMulInteger", types: q8, shape: .fromInputShapes, rows: .mixes) {
            try MatMulIntegerKernel(context: $0)
        })
        r.add(OperatorRecord("QLinearMatMul", types: q8, shape: .fromInputShapes, rows: .mixes) {
            try QLinearMatMulKernel(context: $0)
        })
        r.add(OperatorRecord("ConvInteger", types: q8, shape: .fromInputShapes, rows: .rowwise) {
            try ConvIntegerKernel(context: $0)
        })
        r.add(OperatorRecord("QLinearConv", types: q8, shape: .fromInputShapes, rows: .rowwise) {
            try QLinearConvKernel(context: $0)
        })

        // com.microsoft, opset 1 of that domain.
        for op in [QLinearBinaryKernel.Op.add, .mul] {
            r.add(OperatorRecord(op.rawValue, domain: ms, domainOpsets: 1...1, types: q8, shape: .fromInputShapes, rows: .broadcasting) {
                try QLinearBinaryKernel(context: $0, op: op)
            })
        }
        for op in [QLinearUnaryKernel.Op.sigmoid, .leakyRelu] {
            r.add(OperatorRecord(op.rawValue, domain: ms, domainOpsets: 1...1, types: q8, shape: .fromInputShapes, rows: .rowwise) {
                try QLinearUnaryKernel(context: $0, op: op)
            })
        }
        r.add(OperatorRecord("QLinearGlobalAveragePool", domain: ms, domainOpsets: 1...1, types: q8, shape: .fromInputShapes, rows: .rowwise) {
            try QLinearGlobalAveragePoolKernel(context: $0)
        })
        r.add(OperatorRecord("QLinearConcat", domain: ms, domainOpsets: 1...1, types: [.float32], shape: .fromInputShapes, rows: .mixes) {
            try QLinearConcatKernel(context: $0)
        })
        r.add(OperatorRecord("MatMulIntegerToFloat", domain: ms, domainOpsets: 1...1, types: q8, shape: .fromInputShapes, rows: .mixes) {
            try MatMulIntegerToFloatKernel(context: $0)
        })
        r.add(OperatorRecord("DynamicQuantizeMatMul", domain: ms, domainOpsets: 1...1, types: [.float32], shape: .fromInputShapes, rows: .mixes) {
            try DynamicQuantizeMatMulKernel(context: $0)
        })
        r.add(OperatorRecord("QGemm", domain: ms, domainOpsets: 1...1, types: q8, shape: .fromInputShapes, rows: .mixes) {
            try QGemmKernel(context: $0)
        })
        r.add(OperatorRecord("MatMulNBits", domain: ms, domainOpsets: 1...1, types: [.float32], shape: .fromInputShapes, rows: .mixes) {
            try MatMulNBitsKernel(context: $0)
        })
    }
}
