import Tensors

/// What a scheduler runs: named input tensors in, named output tensors out.
public typealias InferenceFunction = @Sendable ([String: Tensor]) throws -> [String: Tensor]

/// Receives inference jobs for one model version and runs them, now or batched with others.
///
/// `completion` is called exactly once, on whichever thread ran the job. Implementations are
/// thread-safe.
public protocol InferenceScheduler: Sendable {
    func submit(_ inputs: [String: Tensor], completion: @escaping @Sendable (Result<[String: Tensor], any Error>) -> Void)
}

/// Runs each job at once on the submitting thread. The starting point until the dynamic batcher
/// lands; it keeps the request path shaped for asynchronous completion.
public struct PassThroughScheduler: InferenceScheduler {
    let run: InferenceFunction

    public init(_ run: @escaping InferenceFunction) { self.run = run }

    public func submit(
        _ inputs: [String: Tensor], completion: @escaping @Sendable (Result<[String: Tensor], any Error>) -> Void
    ) {
        completion(Result { try run(inputs) })
    }
}
