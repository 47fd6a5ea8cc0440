/// The NVML entry points (`libnvidia-ml.so.1`) behind the `swerve_gpu_*` metrics, resolved with
/// `dlsym`. Immutable C function pointers; NVML is thread-safe, so calls may come from any thread.
struct NVMLAPI: @unchecked Sendable {
    typealias Init = @convention(c) () -> Int32
    typealias GetCount = @convention(c) (UnsafeMutablePointer<UInt32>?) -> Int32
    typealias HandleByIndex = @convention(c) (UInt32, UnsafeMutablePointer<OpaquePointer?>?) -> Int32
    /// `nvmlMemory_t` is `{unsigned long long total, free, used}`: three UInt64.
    typealias MemoryInfo = @convention(c) (OpaquePointer?, UnsafeMutableRawPointer?) -> Int32
    /// `nvmlUtilization_t` is `{unsigned int gpu, memory}` in percent.
    typealias Utilization = @convention(c) (OpaquePointer?, UnsafeMutableRawPointer?) -> Int32

    let library: LoadedLibrary
    let nvmlInit: Init
    let getCount: GetCount
    let handleByIndex: HandleByIndex
    let memoryInfo: MemoryInfo
    let utilization: Utilization

    init(_ library: LoadedLibrary) throws(CUDAUnavailable) {
        self.library = library
        nvmlInit = unsafeBitCast(try library.require("nvmlInit_v2"), to: Init.self)
        getCount = unsafeBitCast(try library.require("nvmlDeviceGetCount_v2"), to: GetCount.self)
        handleByIndex = unsafeBitCast(try library.require("nvmlDeviceGetHandleByIndex_v2"), to: HandleByIndex.self)
        memoryInfo = unsafeBitCast(try library.require("nvmlDeviceGetMemoryInfo"), to: MemoryInfo.self)
        utilization = unsafeBitCast(try library.require("nvmlDeviceGetUtilizationRates"), to: Utilization.self)
    }
}

/// One GPU's memory and utilisation at one moment, as NVML reports it.
public struct GPUReading: Sendable, Equatable {
    /// NVML's device index (the same order as CUDA's unless `CUDA_VISIBLE_DEVICES` reorders them).
    public let index: Int
    public let memoryUsedBytes: UInt64
    public let memoryTotalBytes: UInt64
    /// Fraction of the last sample period a kernel ran (0...1); nil when the GPU does not report it.
    public let utilization: Double?

    public init(index: Int, memoryUsedBytes: UInt64, memoryTotalBytes: UInt64, utilization: Double?) {
        self.index = index
        self.memoryUsedBytes = memoryUsedBytes
        self.memoryTotalBytes = memoryTotalBytes
        self.utilization = utilization
    }
}

/// Reads GPU memory and utilisation through NVML for the metrics. Made once by the daemon with
/// `open`; nil there means "no NVML" and no `swerve_gpu_*` metric is exported. Immutable after
/// `nvmlInit_v2`; `readings()` is safe from any thread (scrapes may overlap).
public final class NVMLMonitor: Sendable {
    let api: NVMLAPI

    init(api: NVMLAPI) { self.api = api }

    /// Loads NVML and initialises it, or says why it cannot (missing library or symbol, `nvmlInit_v2` failing).
    public static func open(loader: LibraryLoader) -> Result<NVMLMonitor, CUDAUnavailable> {
        Result { () throws(CUDAUnavailable) in
            let api = try NVMLAPI(try loader.load(.nvml))
            let code = api.nvmlInit()
            guard code == 0 else {
                throw CUDAUnavailable("nvmlInit_v2 in \(api.library.location) returned \(code) (no NVIDIA driver running?)")
            }
            return NVMLMonitor(api: api)
        }
    }

    /// Where NVML was loaded from.
    public var location: String { api.library.location }

    /// One reading per GPU; a GPU whose queries fail is left out (so is everything when the count fails).
    public func readings() -> [GPUReading] {
        var count: UInt32 = 0
        guard api.getCount(&count) == 0 else { return [] }
        var out: [GPUReading] = []
        for i in 0..<count {
            var handle: OpaquePointer?
            guard api.handleByIndex(i, &handle) == 0 else { continue }
            var memory: (total: UInt64, free: UInt64, used: UInt64) = (0, 0, 0)
            let memoryOK = withUnsafeMutableBytes(of: &memory) { api.memoryInfo(handle, $0.baseAddress) == 0 }
            guard memoryOK else { continue }
            var rates: (gpu: UInt32, memory: UInt32) = (0, 0)
            let ratesOK = withUnsafeMutableBytes(of: &rates) { api.utilization(handle, $0.baseAddress) == 0 }
            out.append(
                GPUReading(
                    index: Int(i), memoryUsedBytes: memory.used, memoryTotalBytes: memory.total,
                    utilization: ratesOK ? Double(rates.gpu) / 100 : nil))
        }
        return out
    }
}
