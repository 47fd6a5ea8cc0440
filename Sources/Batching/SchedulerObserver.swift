/// Receives what a scheduler sees, for metrics. The API layer implements it per model version;
/// schedulers call it from their worker threads, so implementations are thread-safe and cheap.
public protocol SchedulerObserver: Sendable {
    /// A job waited `seconds` in the queue before it ran (or was rejected for its deadline).
    func jobDequeued(waitedSeconds: Double)
    /// A batch of `rows` rows (several jobs merged, or one job's rows) ran in `computeSeconds`.
    func batchExecuted(rows: Int, computeSeconds: Double)
}

/// An observer that ignores everything (tests, tools).
public struct NoSchedulerObserver: SchedulerObserver {
    public init() {}
    public func jobDequeued(waitedSeconds: Double) {}
    public func batchExecuted(rows: Int, computeSeconds: Double) {}
}
