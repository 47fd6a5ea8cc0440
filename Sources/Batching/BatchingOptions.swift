/// How a model version's requests are scheduled: batching, queue bounds, deadlines, workers.
/// From the model's `config.json` (`max_batch_size`, `dynamic_batching`, `instance_group`), with
/// command-line overrides applied on top.
public struct BatchingOptions: Sendable, Equatable {
    /// Largest number of rows in one batch; 0 = no batching (each request runs on its own, and
    /// dimension 0 means nothing special). With > 0, dimension 0 of every input is the batch.
    public var maxBatchSize: Int = 0
    /// How long the oldest request may wait for more to join its batch. 0 = take what is queued.
    public var maxQueueDelayMicros: Int = 0
    /// Choose the wait from observed compute time and arrival rate (see `AdaptiveWindow`);
    /// `maxQueueDelayMicros`, when set, caps it.
    public var adaptive: Bool = false
    /// Batch sizes to prefer: a batch that reaches one of them runs without waiting further.
    public var preferredBatchSizes: [Int] = []
    /// Most requests waiting; beyond it new requests are refused with 503 (never an unbounded queue).
    public var maxQueueSize: Int = 1024
    /// A request still queued after this long is answered 504 and not run. 0 = no deadline.
    public var defaultTimeoutMicros: Int = 0
    /// Execution workers running batches in parallel.
    public var instanceCount: Int = 1

    public init() {}

    /// Whether requests may be merged.
    public var batches: Bool { maxBatchSize > 0 }
}

/// Why a scheduler refused or dropped a request. The API maps these to HTTP statuses.
public enum SchedulerError: Error, Sendable, CustomStringConvertible, Equatable {
    /// The queue holds `maxQueueSize` requests already (503).
    case queueFull(limit: Int)
    /// The request waited past its deadline and was not run (504).
    case timedOut(waitedMicros: Int)
    /// The request has more rows than one batch may hold (400).
    case tooManyRows(rows: Int, maxBatchSize: Int)
    /// With batching on, an input has no batch dimension (400).
    case missingBatchDimension(input: String)
    /// With batching on, the inputs disagree on the number of rows (400).
    case inconsistentRows(String)
    /// An output of a merged batch is not batched along dimension 0 (500: a config problem).
    case unbatchableOutput(String)
    /// The scheduler is stopping and takes no new work (503).
    case stopped

    public var description: String {
        switch self {
        case .queueFull(let limit):
            return "the model's queue is full (\(limit) requests waiting); retry later, or raise max_queue_size "
                + "or instance_group.count in the model's config.json"
        case .timedOut(let waited):
            return "the request waited \(waited / 1000) ms in the queue, past its deadline, and was not run; "
                + "retry, or allow more time with the request's \"timeout\" parameter (microseconds)"
        case .tooManyRows(let rows, let max):
            return "the request has \(rows) rows but the model's max_batch_size is \(max); split it into smaller requests"
        case .missingBatchDimension(let input):
            return "input '\(input)' has no batch dimension; with max_batch_size > 0 every input's first dimension is the batch"
        case .inconsistentRows(let m), .unbatchableOutput(let m):
            return m
        case .stopped:
            return "the server is shutting down and takes no new requests; retry on another replica"
        }
    }
}

/// Command-line settings that override every model's `config.json` batching fields.
public struct BatchingOverrides: Sendable, Equatable {
    public var maxBatchSize: Int?
    public var maxQueueDelayMicros: Int?
    public var adaptive: Bool?
    public var maxQueueSize: Int?
    public var defaultTimeoutMicros: Int?
    public var instanceCount: Int?

    public init() {}

    /// `options` with every set override applied.
    public func apply(to options: BatchingOptions) -> BatchingOptions {
        var o = options
        if let v = maxBatchSize { o.maxBatchSize = v }
        if let v = maxQueueDelayMicros { o.maxQueueDelayMicros = v }
        if let v = adaptive { o.adaptive = v }
        if let v = maxQueueSize { o.maxQueueSize = v }
        if let v = defaultTimeoutMicros { o.defaultTimeoutMicros = v }
        if let v = instanceCount { o.instanceCount = v }
        o.preferredBatchSizes = o.preferredBatchSizes.filter { $0 <= o.maxBatchSize }
        return o
    }
}
