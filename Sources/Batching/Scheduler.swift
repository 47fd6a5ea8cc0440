import Tensors

/// What a scheduler runs: named input tensors in, named output tensors out.
public typealias InferenceFunction = @Sendable ([String: Tensor]) throws -> [String: Tensor]

/// Receives inference jobs for one model version and runs them, now or batched with others.
///
/// The job's completion is called exactly once, on whichever thread ran (or refused) it.
/// Implementations are thread-safe.
public protocol InferenceScheduler: Sendable {
    func submit(_ job: InferenceJob)
    /// Stops taking work; jobs already accepted are run (or answered) before it returns.
    func stop()
}

extension InferenceScheduler {
    /// Submits inputs with the model's default deadline.
    public func submit(
        _ inputs: [String: Tensor], completion: @escaping @Sendable (Result<[String: Tensor], any Error>) -> Void
    ) {
        submit(InferenceJob(inputs: inputs, completion: completion))
    }
}

/// Runs each job at once on the submitting thread, with no queue: for in-process callers and tests
/// where queueing adds nothing. The daemon uses `DynamicBatcher` for every version.
public struct PassThroughScheduler: InferenceScheduler {
    let run: InferenceFunction
    let observer: any SchedulerObserver

    public init(observer: any SchedulerObserver = NoSchedulerObserver(), _ run: @escaping InferenceFunction) {
        self.run = run
        self.observer = observer
    }

    public func submit(_ job: InferenceJob) {
        let clock = ContinuousClock()
        let start = clock.now
        let result = Result { try run(job.inputs) }
        let elapsed = start.duration(to: clock.now)
        observer.jobDequeued(waitedSeconds: 0)
        observer.batchExecuted(rows: rowCount(job.inputs), computeSeconds: seconds(elapsed))
        job.completion(result)
    }

    public func stop() {}
}

/// Rows in a job: the first dimension of its inputs (1 for scalars).
public func rowCount(_ inputs: [String: Tensor]) -> Int {
    inputs.values.first.map { $0.rank > 0 ? $0.shape[0] : 1 } ?? 0
}

func seconds(_ d: Duration) -> Double {
    let (s, attoseconds) = d.components
    return Double(s) + Double(attoseconds) / 1e18
}
