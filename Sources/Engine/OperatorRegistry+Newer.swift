import Tensors

extension OperatorRegistry {
    /// The records of what newer exporters emit: Attention, RMSNormalization, RotaryEmbedding, the remaining elementwise and signal operators.
    static func registerNewerOperators(_ r: inout OperatorRegistry) {
        // Scaled dot-product attention (K and V are computed, so a batch is not split through it).
        r.add(OperatorRecord("Attention", types: [.float32], shape: .fromInputShapes, rows: .mixes) {
            try AttentionKernel(context: $0)
        })
    }
}
