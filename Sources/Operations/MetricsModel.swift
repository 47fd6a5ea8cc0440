import Batching
import Prometheus
import Synchronization

/// How an inference request ended, as `swerve_requests_total{outcome}` counts it.
public enum RequestOutcome: String, Sendable, CaseIterable {
    case success
    case badInput = "bad_input"
    case notFound = "not_found"
    case overloaded
    case timeout
    case `internal`

    /// The outcome of an answer with `status`. `reachedVersion`: a model version was resolved
    /// (a 503 then means the version refused the work: overloaded; before that, the model is not
    /// available: not found).
    public init(status: Int, reachedVersion: Bool) {
        switch status {
        case 200..<300: self = .success
        case 404: self = .notFound
        case 429: self = .overloaded
        case 503: self = reachedVersion ? .overloaded : .notFound
        case 408, 504: self = .timeout
        case 400..<500: self = .badInput
        default: self = .internal
        }
    }
}

/// The API protocol an inference request came in by (`protocol` label).
public enum InferenceProtocol: String, Sendable, CaseIterable {
    case v2, v1
}

/// The metrics of one model version (or of requests that reached none: model and version "").
/// It is the version's `SchedulerObserver`: schedulers report queue waits and executed batches.
///
/// Created once per version by `ServerMetrics` and shared; thread-safe (Prometheus collectors are
/// atomic or locked; the Triton totals are atomics; the recent window has its own lock).
public final class ModelMetrics: SchedulerObserver, Sendable {
    public let model: String
    public let version: String
    /// `requests[protocol][outcome]`.
    private let requests: [[Counter]]
    private let rowsTotal: Counter
    private let batchesTotal: Counter
    private let requestDuration: ValueHistogram
    private let queueDuration: ValueHistogram
    private let computeDuration: ValueHistogram
    private let batchSize: ValueHistogram
    private let pending: Gauge

    // Triton `/stats` totals (nanoseconds).
    let successCount = Atomic<Int>(0), successNanos = Atomic<Int>(0)
    let failureCount = Atomic<Int>(0), failureNanos = Atomic<Int>(0)
    let queueCount = Atomic<Int>(0), queueNanos = Atomic<Int>(0)
    let computeNanos = Atomic<Int>(0)
    let rowCount = Atomic<Int>(0), batchCount = Atomic<Int>(0)
    /// Wall-clock milliseconds of the last finished request (Triton's `last_inference`).
    let lastInferenceMillis = Atomic<Int>(0)
    let pendingCount = Atomic<Int>(0)

    public let window = Mutex(RecentWindow())

    /// Cumulative figures, read at one moment (Triton's `/stats`, the status page).
    public struct Totals: Sendable {
        public var successCount = 0, successNanos = 0, failureCount = 0, failureNanos = 0
        public var queueCount = 0, queueNanos = 0, computeNanos = 0, rows = 0, batches = 0
        public var lastInferenceMillis = 0, pending = 0

        /// All zero by default (a version without metrics).
        public init(
            successCount: Int = 0, successNanos: Int = 0, failureCount: Int = 0, failureNanos: Int = 0,
            queueCount: Int = 0, queueNanos: Int = 0, computeNanos: Int = 0, rows: Int = 0, batches: Int = 0,
            lastInferenceMillis: Int = 0, pending: Int = 0
        ) {
            self.successCount = successCount
            self.successNanos = successNanos
            self.failureCount = failureCount
            self.failureNanos = failureNanos
            self.queueCount = queueCount
            self.queueNanos = queueNanos
            self.computeNanos = computeNanos
            self.rows = rows
            self.batches = batches
            self.lastInferenceMillis = lastInferenceMillis
            self.pending = pending
        }
    }

    public var totals: Totals {
        Totals(
            successCount: successCount.load(ordering: .relaxed), successNanos: successNanos.load(ordering: .relaxed),
            failureCount: failureCount.load(ordering: .relaxed), failureNanos: failureNanos.load(ordering: .relaxed),
            queueCount: queueCount.load(ordering: .relaxed), queueNanos: queueNanos.load(ordering: .relaxed),
            computeNanos: computeNanos.load(ordering: .relaxed), rows: rowCount.load(ordering: .relaxed),
            batches: batchCount.load(ordering: .relaxed), lastInferenceMillis: lastInferenceMillis.load(ordering: .relaxed),
            pending: pendingCount.load(ordering: .relaxed))
    }

    init(model: String, version: String, families: MetricFamilies) {
        self.model = model
        self.version = version
        let labels = [("model", model), ("version", version)]
        requests = InferenceProtocol.allCases.map { p in
            RequestOutcome.allCases.map { o in
                families.registry.makeCounter(
                    descriptor: families.requests, labels: labels + [("protocol", p.rawValue), ("outcome", o.rawValue)])
            }
        }
        let r = families.registry
        rowsTotal = r.makeCounter(descriptor: families.rows, labels: labels)
        batchesTotal = r.makeCounter(descriptor: families.batches, labels: labels)
        requestDuration = r.makeValueHistogram(
            descriptor: families.requestDuration, labels: labels, buckets: MetricFamilies.latencyBuckets)
        queueDuration = r.makeValueHistogram(
            descriptor: families.queueDuration, labels: labels, buckets: MetricFamilies.latencyBuckets)
        computeDuration = r.makeValueHistogram(
            descriptor: families.computeDuration, labels: labels, buckets: MetricFamilies.latencyBuckets)
        batchSize = r.makeValueHistogram(
            descriptor: families.batchSize, labels: labels, buckets: MetricFamilies.batchSizeBuckets)
        pending = r.makeGauge(descriptor: families.pending, labels: labels)
    }

    /// Removes this version's series from `registry` (`ServerMetrics.forget`).
    func unregister(from registry: PrometheusCollectorRegistry) {
        for counter in requests.joined() { registry.unregisterCounter(counter) }
        registry.unregisterCounter(rowsTotal)
        registry.unregisterCounter(batchesTotal)
        for histogram in [requestDuration, queueDuration, computeDuration, batchSize] {
            registry.unregisterValueHistogram(histogram)
        }
        registry.unregisterGauge(pending)
    }

    /// A request was accepted for this version (pending + 1).
    public func requestStarted() {
        pendingCount.add(1, ordering: .relaxed)
        pending.increment()
    }

    /// A request accepted with `requestStarted` was answered (pending - 1).
    public func requestEnded() {
        pendingCount.subtract(1, ordering: .relaxed)
        pending.decrement()
    }

    /// An inference request was answered after `seconds` (parse to response).
    public func requestFinished(protocol p: InferenceProtocol, outcome: RequestOutcome, seconds: Double) {
        requests[p == .v2 ? 0 : 1][RequestOutcome.allCases.firstIndex(of: outcome)!].increment()
        requestDuration.record(seconds)
        let nanos = Int(seconds * 1e9)
        if outcome == .success {
            successCount.add(1, ordering: .relaxed)
            successNanos.add(nanos, ordering: .relaxed)
        } else {
            failureCount.add(1, ordering: .relaxed)
            failureNanos.add(nanos, ordering: .relaxed)
        }
        lastInferenceMillis.store(Int(wallClockNow() * 1000), ordering: .relaxed)
        let second = Int(monotonicNow())
        window.withLock { $0.request(second: second, seconds: seconds, failed: outcome != .success) }
    }

    /// A job waited `seconds` in the batcher's queue (the contract's `queueWait`).
    public func queueWait(seconds: Double) {
        queueDuration.record(seconds)
        queueCount.add(1, ordering: .relaxed)
        queueNanos.add(Int(seconds * 1e9), ordering: .relaxed)
        let second = Int(monotonicNow())
        window.withLock { $0.queueWait(second: second, seconds: seconds) }
    }

    public func jobDequeued(waitedSeconds: Double) { queueWait(seconds: waitedSeconds) }

    public func batchExecuted(rows: Int, computeSeconds: Double) {
        rowsTotal.increment(by: Int64(rows))
        batchesTotal.increment()
        computeDuration.record(computeSeconds)
        batchSize.record(Double(rows))
        rowCount.add(rows, ordering: .relaxed)
        batchCount.add(1, ordering: .relaxed)
        computeNanos.add(Int(computeSeconds * 1e9), ordering: .relaxed)
        let second = Int(monotonicNow())
        window.withLock { $0.batch(second: second, rows: rows) }
    }
}

/// The metric families (names, help texts, buckets) of `docs/operations.md`, and the registry
/// they live in. Immutable (descriptors hold only strings, but are not marked Sendable upstream).
struct MetricFamilies: @unchecked Sendable {
    /// 100 us to 10 s.
    static let latencyBuckets: [Double] = [
        0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
    ]
    /// 1 to 1024, powers of two.
    static let batchSizeBuckets: [Double] = (0...10).map { Double(1 << $0) }
    static let loadBuckets: [Double] = [0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120]

    let registry: PrometheusCollectorRegistry
    let requests = d("requests", "total", "Inference requests by model, version, protocol and outcome")
    let rows = d("inference_rows", "total", "Rows (batch entries) inferred")
    let batches = d("batches", "total", "Batches executed by the engine")
    let requestDuration = d("request_duration", "seconds", "Inference request time, body parse to response")
    let queueDuration = d("queue_duration", "seconds", "Time a request waited in the batcher's queue")
    let computeDuration = d("compute_duration", "seconds", "Engine time of one executed batch")
    let batchSize = d("batch", "size", "Rows per executed batch")
    let pending = d("pending", "requests", "Inference requests accepted and not yet answered")
    let loads = d("model_loads", "total", "Model version loads by outcome")
    let loadDuration = d("model_load_duration", "seconds", "Time to load one model version (parse, plan, warm-up)")
    let versions = d("model_versions", "", "Model versions by state")
    let memory = d("model_memory", "bytes", "Measured resident bytes of a loaded model version (weights, packed copies, arenas)")
    let evictions = d("model_evictions", "total", "Model versions unloaded to make room under the memory budget (reason memory) or for idling (reason idle)")
    let loadWait = d("model_load_wait", "seconds", "Time a request waited for an on-demand load, by outcome")
    let budget = d("memory_budget", "bytes", "The model store's memory budget (--memory-budget)")
    let resident = d("models_memory", "bytes", "Measured resident bytes of every loaded model version together")
    let http = d("http_requests", "total", "HTTP requests on the inference port by route pattern, method and status")
    let cpuLevel = d("cpu_level", "info", "Instruction-set level of the engine's CPU kernels: 1 for the level in use")

    private static func d(_ name: String, _ unit: String, _ help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(namespace: "swerve", metricName: name, unitName: unit, helpText: help)
    }
}
