import Tensors

extension OperatorRegistry {
    /// The records of ConvTranspose, pooling with indices, the normalisations beyond Batch/Instance/Layer.
    static func registerVisionOperators(_ r: inout OperatorRegistry) {
    }
}
