import Tensors

/// One request handed to a scheduler: its inputs, its deadline, and where the answer goes.
public struct InferenceJob: Sendable {
    public var inputs: [String: Tensor]
    /// Per-request deadline override (the V2 `timeout` parameter); nil = the model's default.
    public var timeoutMicros: Int?
    /// Called exactly once with the outputs or the error, on a scheduler thread or the caller's.
    public var completion: @Sendable (Result<[String: Tensor], any Error>) -> Void

    public init(
        inputs: [String: Tensor], timeoutMicros: Int? = nil,
        completion: @escaping @Sendable (Result<[String: Tensor], any Error>) -> Void
    ) {
        self.inputs = inputs
        self.timeoutMicros = timeoutMicros
        self.completion = completion
    }
}
