import Tensors

extension OperatorRegistry {
    /// The records of detection and indexing: NonMaxSuppression, RoiAlign, GridSample, Unique, Compress, ....
    static func registerDetectionOperators(_ r: inout OperatorRegistry) {
    }
}
