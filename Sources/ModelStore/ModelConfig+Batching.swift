import Batching

/// `dynamic_batching` in `config.json`. Triton's field names are accepted as synonyms.
struct DynamicBatchingField: Decodable {
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
struct InstanceGroupField: Decodable {
    var kind: String?
    var count: Int?
    var gpus: [Int]?
}

extension ConfigFile {
    /// The most execution instances (worker threads) `instance_group` may ask for, over all groups.
    static let maxInstances = 256

    /// The batching options the file asks for, validated.
    func batchingOptions() throws -> BatchingOptions {
        var options = BatchingOptions()
        if let max = max_batch_size {
            guard max >= 0 else { throw ConfigFieldError(message: "max_batch_size must be 0 (no batching) or positive") }
            options.maxBatchSize = max
        }
        if let d = dynamic_batching {
            guard options.maxBatchSize > 0 else {
                throw ConfigFieldError(message: "dynamic_batching needs max_batch_size > 0 (dimension 0 of every input is then the batch)")
            }
            if let delay = d.max_queue_delay_us ?? d.max_queue_delay_microseconds {
                guard delay >= 0 else { throw ConfigFieldError(message: "dynamic_batching.max_queue_delay_us must be >= 0") }
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
                guard size > 0 else { throw ConfigFieldError(message: "dynamic_batching.max_queue_size must be positive (the queue is always bounded)") }
                options.maxQueueSize = size
            }
            if let timeout = d.default_timeout_us ?? d.default_timeout_microseconds {
                guard timeout >= 0 else { throw ConfigFieldError(message: "dynamic_batching.default_timeout_us must be >= 0 (0 = no deadline)") }
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
                guard n >= 1 else { throw ConfigFieldError(message: "instance_group[\(i)].count must be at least 1") }
                // Each instance is a worker thread: bound the total (checked, the counts are the file's).
                let (instances, o1) = n.multipliedReportingOverflow(by: max(1, group.gpus?.count ?? 1))
                let (total, o2) = count.addingReportingOverflow(instances)
                guard !o1, !o2, total <= ConfigFile.maxInstances else {
                    throw ConfigFieldError(
                        message: "instance_group asks for more than \(ConfigFile.maxInstances) execution instances; "
                            + "use a count per group of about the number of cores")
                }
                count = total
            }
            if count > 0 { options.instanceCount = count }
        }
        return options
    }
}
