/// A CUDA device the driver reported.
public struct CUDADeviceInfo: Sendable, Equatable, CustomStringConvertible {
    /// The ordinal, as in `--device cuda:N`.
    public let index: Int
    public let name: String
    public let totalMemoryBytes: Int

    public init(index: Int, name: String, totalMemoryBytes: Int) {
        self.index = index
        self.name = name
        self.totalMemoryBytes = totalMemoryBytes
    }

    public var description: String { "CUDA device \(index) (\(name))" }
}

/// What the probe found about one optional library: where it was loaded from and its version, or why not.
public struct LibraryStatus: Sendable, Equatable {
    public let library: CUDALibrary
    /// The file (or soname) opened; nil when it could not be loaded.
    public let location: String?
    /// `major.minor` where the library tells it without a device.
    public let version: String?
    /// Why it could not be loaded (the loader's message); nil when loaded.
    public let failure: String?
}

/// Everything the probe learned on a machine with a working driver. A value; safe anywhere.
public struct CUDAReport: Sendable, Equatable {
    /// Where `libcuda.so.1` was loaded from.
    public let driverLocation: String
    /// `cuDriverGetVersion`, e.g. 12080 for CUDA 12.8.
    public let driverVersion: Int
    public let devices: [CUDADeviceInfo]
    /// cuBLAS, NVRTC, cuDNN and NVML, in that order.
    public let libraries: [LibraryStatus]

    public func status(of library: CUDALibrary) -> LibraryStatus? { libraries.first { $0.library == library } }

    /// `12.8` from 12080.
    public var driverVersionText: String { "\(driverVersion / 1000).\(driverVersion % 1000 / 10)" }
}

/// Finds out whether CUDA can be used here: loads the driver with `LibraryLoader`, calls `cuInit`,
/// lists the devices, and tries cuBLAS, NVRTC, cuDNN and NVML. Calls only functions that need no
/// context, so it is cheap (well under a second) and leaves no GPU memory behind.
///
/// Stateless; `run` may be called from any thread.
public struct CUDAProbe: Sendable {
    public let loader: LibraryLoader

    public init(loader: LibraryLoader) { self.loader = loader }

    /// The report, or what failed: a missing `libcuda.so.1`, a missing symbol, a `cuInit` error, no device.
    public func run() -> Result<CUDAReport, CUDAUnavailable> {
        Result { () throws(CUDAUnavailable) in try probeDriver() }
    }

    func probeDriver() throws(CUDAUnavailable) -> CUDAReport {
        let api = try DriverAPI(try loader.load(.driver))
        try api.check(api.cuInit(0), "cuInit")
        var version: Int32 = 0
        try api.check(api.cuDriverGetVersion(&version), "cuDriverGetVersion")
        var count: Int32 = 0
        try api.check(api.cuDeviceGetCount(&count), "cuDeviceGetCount")
        guard count > 0 else { throw CUDAUnavailable("the driver (\(api.library.location)) sees no CUDA device (cuDeviceGetCount = 0)") }
        var devices: [CUDADeviceInfo] = []
        for ordinal in 0..<count {
            var device: Int32 = 0
            try api.check(api.cuDeviceGet(&device, ordinal), "cuDeviceGet(\(ordinal))")
            var name = [CChar](repeating: 0, count: 256)
            try api.check(api.cuDeviceGetName(&name, Int32(name.count - 1), device), "cuDeviceGetName(\(ordinal))")
            var bytes = 0
            try api.check(api.cuDeviceTotalMem(&bytes, device), "cuDeviceTotalMem_v2(\(ordinal))")
            let text = name.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
            devices.append(CUDADeviceInfo(index: Int(ordinal), name: text, totalMemoryBytes: bytes))
        }
        let libraries = [CUDALibrary.cublas, .nvrtc, .cudnn, .nvml].map(probeLibrary)
        return CUDAReport(
            driverLocation: api.library.location, driverVersion: Int(version), devices: devices, libraries: libraries)
    }

    /// Loads one library and checks the symbols the engine will need; reads its version where that
    /// needs no device.
    func probeLibrary(_ library: CUDALibrary) -> LibraryStatus {
        do throws(CUDAUnavailable) {
            let loaded = try loader.load(library)
            var version: String?
            switch library {
            case .cublas:
                _ = try loaded.require("cublasCreate_v2")
                _ = try loaded.require("cublasSgemm_v2")
                _ = try loaded.require("cublasSgemmStridedBatched")
            case .nvrtc:
                typealias Version = @convention(c) (UnsafeMutablePointer<Int32>?, UnsafeMutablePointer<Int32>?) -> Int32
                let f = unsafeBitCast(try loaded.require("nvrtcVersion"), to: Version.self)
                var major: Int32 = 0, minor: Int32 = 0
                if f(&major, &minor) == 0 { version = "\(major).\(minor)" }
                _ = try loaded.require("nvrtcCreateProgram")
                _ = try loaded.require("nvrtcGetPTX")
            case .cudnn:
                typealias Version = @convention(c) () -> Int
                let v = unsafeBitCast(try loaded.require("cudnnGetVersion"), to: Version.self)()
                version = v >= 90000 ? "\(v / 10000).\(v % 10000 / 100)" : "\(v / 1000).\(v % 1000 / 100)"
            case .nvml:
                _ = try NVMLAPI(loaded)
            case .driver:
                break
            }
            return LibraryStatus(library: library, location: loaded.location, version: version, failure: nil)
        } catch {
            return LibraryStatus(library: library, location: nil, version: nil, failure: error.reason)
        }
    }
}
