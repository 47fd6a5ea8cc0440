import Batching

/// `dynamic_batching` in `config.json`. Triton's field names are accepted as synonyms.
struct DynamicBatchingField: StrictFields {
    static let fieldNames = [
        "max_queue_delay_us", "max_queue_delay_microseconds", "adaptive", "preferred_batch_sizes",
        "preferred_batch_size", "max_queue_size", "default_timeout_us", "default_timeout_microseconds",
    ]
    var max_queue_delay_us: Int?
    var max_queue_delay_microseconds: Int?
    var adaptive: Bool?
    var preferred_batch_sizes: [Int]?
    var preferred_batch_size: [Int]?
    var max_queue_size: Int?
    var default_timeout_us: Int?
    var default_timeout_microseconds: Int?
}

/// One entry of `instance_group`: `{"kind": "cpu" | "gpu" | "auto", "count": N, "gpus": [0]}`.
struct InstanceGroupField: StrictFields {
    static let fieldNames = ["kind", "count", "gpus"]
    var kind: String?
    var count: Int?
    var gpus: [Int]?
}

extension ConfigFile {
    /// Largest `max_batch_size`.
    static let maxBatchSizeLimit = 1 << 20
    /// Largest queue delay and default timeout: one hour in microseconds.
    static let maxMicroseconds = 3_600_000_000
    /// Largest `max_queue_size`.
    static let maxQueueSizeLimit = 1 << 20
    /// Most execution instances (each a worker thread) of one version, all groups together.
    static let maxInstances = 256

    /// The batching options the file asks for, validated.
    func batchingOptions() throws -> BatchingOptions {
        var options = BatchingOptions()
        if let max = max_batch_size {
            guard (0...Self.maxBatchSizeLimit).contains(max) else {
                throw ConfigFieldError(
                    message: "max_batch_size \(max) is out of range: use 0 (no batching) up to \(Self.maxBatchSizeLimit)")
            }
            options.maxBatchSize = max
        }
        if let d = dynamic_batching {
            guard options.maxBatchSize > 0 else {
                throw ConfigFieldError(message: "dynamic_batching needs max_batch_size > 0 (dimension 0 of every input is then the batch)")
            }
            if let delay = d.max_queue_delay_us ?? d.max_queue_delay_microseconds {
                guard (0...Self.maxMicroseconds).contains(delay) else {
                    throw ConfigFieldError(
                        message: "dynamic_batching.max_queue_delay_us \(delay) is out of range: use 0 to \(Self.maxMicroseconds) (one hour)")
                }
                options.maxQueueDelayMicros = delay
            }
            options.adaptive = d.adaptive ?? false
            if let preferred = d.preferred_batch_sizes ?? d.preferred_batch_size {
                guard preferred.allSatisfy({ $0 > 0 && $0 <= options.maxBatchSize }) else {
                    throw ConfigFieldError(
                        message: "dynamic_batching.preferred_batch_sizes must lie between 1 and max_batch_size (\(options.maxBatchSize))")
                }
                options.preferredBatchSizes = preferred.sorted()
            }
            if let size = d.max_queue_size {
                guard (1...Self.maxQueueSizeLimit).contains(size) else {
                    throw ConfigFieldError(
                        message: "dynamic_batching.max_queue_size \(size) is out of range: use 1 to \(Self.maxQueueSizeLimit) (the queue is always bounded)")
                }
                options.maxQueueSize = size
            }
            if let timeout = d.default_timeout_us ?? d.default_timeout_microseconds {
                guard (0...Self.maxMicroseconds).contains(timeout) else {
                    throw ConfigFieldError(
                        message: "dynamic_batching.default_timeout_us \(timeout) is out of range: use 0 (no deadline) to \(Self.maxMicroseconds) (one hour)")
                }
                options.defaultTimeoutMicros = timeout
            }
        }
        if let groups = instance_group {
            var count = 0
            for (i, group) in groups.enumerated() {
                if let kind = group.kind, !["cpu", "gpu", "auto", "KIND_CPU", "KIND_GPU", "KIND_AUTO"].contains(kind) {
                    throw ConfigFieldError(message: "instance_group[\(i)].kind '\(kind)' is not one of cpu, gpu, auto")
                }
                let n = group.count ?? 1
                guard (1...Self.maxInstances).contains(n) else {
                    throw ConfigFieldError(message: "instance_group[\(i)].count \(n) is out of range: use 1 to \(Self.maxInstances)")
                }
                if let gpus = group.gpus, gpus.count > Self.maxInstances || gpus.contains(where: { !(0...1023).contains($0) }) {
                    throw ConfigFieldError(
                        message: "instance_group[\(i)].gpus must list at most \(Self.maxInstances) device numbers between 0 and 1023")
                }
                count += n * max(1, group.gpus?.count ?? 1)
                guard count <= Self.maxInstances else {
                    throw ConfigFieldError(
                        message: "instance_group asks for \(count) or more instances in all; at most \(Self.maxInstances) are allowed")
                }
            }
            if count > 0 { options.instanceCount = count }
        }
        return options
    }
}
