import Tensors

extension OperatorRegistry {
    /// The records of SwiGLU.
    static func registerRemainingOperators(_ r: inout OperatorRegistry) {
        let f32: [DataType] = [.float32]
        // Elementwise over two operands of one shape, both carrying the batch's rows.
        r.add(OperatorRecord("SwiGLU", types: f32, shape: .fromInputShapes, rows: .broadcasting) {
            try SwiGLUKernel(context: $0)
        })
    }
}
