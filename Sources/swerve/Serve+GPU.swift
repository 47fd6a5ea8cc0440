import API
import CUDA
import Logging
import Operations

extension Serve {
    /// The source of the `swerve_gpu_*` metrics: NVML's readings when `libnvidia-ml.so.1` loads and
    /// initialises, else nil (no GPU metric is exported; the reason is logged at debug level).
    func gpuSampler(_ logger: Logger) -> (@Sendable () -> [GPUSample])? {
        switch NVMLMonitor.open(loader: .system()) {
        case .failure(let error):
            logger.debug("no GPU metrics", metadata: ["event": "gpu_metrics_off", "reason": "\(error.reason)"])
            return nil
        case .success(let monitor):
            logger.info("GPU metrics through NVML", metadata: ["event": "gpu_metrics", "nvml": "\(monitor.location)"])
            return {
                monitor.readings().map {
                    GPUSample(
                        gpu: $0.index, memoryUsedBytes: $0.memoryUsedBytes, memoryTotalBytes: $0.memoryTotalBytes,
                        utilization: $0.utilization)
                }
            }
        }
    }
}
