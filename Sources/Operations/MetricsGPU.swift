/// One GPU's memory and utilisation at one scrape, as the daemon's GPU source reports it (NVML,
/// `Sources/CUDA/NVML.swift`). A value; the API module knows nothing of how it was read.
public struct GPUSample: Sendable, Equatable {
    /// The GPU's index, the `gpu` label.
    public var gpu: Int
    public var memoryUsedBytes: UInt64
    public var memoryTotalBytes: UInt64
    /// 0...1; nil when the GPU does not report it (that series is then left out).
    public var utilization: Double?

    public init(gpu: Int, memoryUsedBytes: UInt64, memoryTotalBytes: UInt64, utilization: Double?) {
        self.gpu = gpu
        self.memoryUsedBytes = memoryUsedBytes
        self.memoryTotalBytes = memoryTotalBytes
        self.utilization = utilization
    }
}

/// The `swerve_gpu_*` gauges, rendered from the samples read at each scrape (like the `process_*`
/// metrics, they are not kept in the registry). Nothing is written when there are no samples.
///
/// Stateless; safe from any thread.
enum GPUMetrics {
    static func render(_ samples: [GPUSample], into out: inout [UInt8]) {
        guard !samples.isEmpty else { return }
        func family(_ name: String, _ help: String, _ value: (GPUSample) -> Double?) {
            out.append(contentsOf: "# HELP \(name) \(help)\n# TYPE \(name) gauge\n".utf8)
            for s in samples {
                if let v = value(s) { out.append(contentsOf: "\(name){gpu=\"\(s.gpu)\"} \(ProcessMetrics.format(v))\n".utf8) }
            }
        }
        family("swerve_gpu_memory_used_bytes", "GPU memory in use (all processes), from NVML.") { Double($0.memoryUsedBytes) }
        family("swerve_gpu_memory_total_bytes", "GPU memory in total, from NVML.") { Double($0.memoryTotalBytes) }
        if samples.contains(where: { $0.utilization != nil }) {
            family("swerve_gpu_utilization_ratio", "Fraction of the last sample period a kernel ran on the GPU, from NVML.") {
                $0.utilization
            }
        }
    }
}
