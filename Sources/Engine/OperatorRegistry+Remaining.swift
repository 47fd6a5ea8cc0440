import Tensors

extension OperatorRegistry {
    /// The records of DeformConv, TfIdfVectorizer and SwiGLU.
    static func registerRemainingOperators(_ r: inout OperatorRegistry) {
        let f32: [DataType] = [.float32]
        // Row i of the output reads row i of X, of the offsets and of the mask, which are usually
        // computed from X: no batch row class says so (`.rowwise` wants the other inputs constant,
        // and a constant offset would have the whole batch's rows), so a batch is not split here.
        r.add(OperatorRecord("DeformConv", types: f32, shape: .fromInputShapes, rows: .mixes) {
            try DeformConvKernel(context: $0)
        })
        // Token ids only: the engine holds no string tensors. A 1-D input is one row whose n-grams
        // run along axis 0, so its rows are not kept apart.
        r.add(OperatorRecord("TfIdfVectorizer", types: [.int64, .int32], shape: .fromInputShapes, rows: .mixes) {
            try TfIdfVectorizerKernel(context: $0)
        })
        // Elementwise over two operands of one shape, both carrying the batch's rows.
        r.add(OperatorRecord("SwiGLU", types: f32, shape: .fromInputShapes, rows: .broadcasting) {
            try SwiGLUKernel(context: $0)
        })
    }
}
