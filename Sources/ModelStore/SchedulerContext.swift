import Batching
import Engine

/// What a scheduler factory gets for one model version.
public struct SchedulerContext: Sendable {
    public let model: String
    public let version: Int
    public let session: InferenceSession
    public let batching: BatchingOptions

    public init(model: String, version: Int, session: InferenceSession, batching: BatchingOptions) {
        self.model = model
        self.version = version
        self.session = session
        self.batching = batching
    }

    /// A dynamic batcher with the version's options, reporting to `observer`.
    public func makeDefaultScheduler(observer: any SchedulerObserver = NoSchedulerObserver()) -> any InferenceScheduler {
        let session = self.session
        return DynamicBatcher(options: batching, observer: observer) { try session.run($0) }
    }

    /// Checks that batching fits the model: with max_batch_size > 0 every input's first
    /// dimension must be free (symbolic or unknown), since requests of any row count are merged.
    public static func validate(_ batching: BatchingOptions, for session: InferenceSession) throws {
        guard batching.batches else { return }
        for input in session.inputs {
            guard let first = input.shape?.first else {
                throw EngineError.invalidModel(
                    "max_batch_size is \(batching.maxBatchSize) but input '\(input.name)' has no declared first dimension; "
                        + "set max_batch_size to 0 in config.json, or export the model with a dynamic batch dimension")
            }
            if case .fixed(let n) = first {
                throw EngineError.invalidModel(
                    "max_batch_size is \(batching.maxBatchSize) but input '\(input.name)' has a fixed first dimension of \(n); "
                        + "set max_batch_size to 0 in config.json, or export the model with a dynamic batch dimension")
            }
        }
    }
}
