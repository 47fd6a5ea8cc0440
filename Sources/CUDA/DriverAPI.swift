/// The entry points of the CUDA driver API (`libcuda.so.1`) that the probe calls, resolved with
/// `dlsym`. Immutable C function pointers; safe from any thread (the driver API is thread-safe).
///
/// Made by `CUDAProbe`; the execution engine (not built yet, `docs/gpu.md`) will add `cuCtx*`,
/// `cuMemAlloc_v2`, `cuModuleLoadData`, `cuLaunchKernel`, `cuStream*` and `cuGraph*` here.
struct DriverAPI: @unchecked Sendable {
    typealias Init = @convention(c) (UInt32) -> Int32
    typealias GetCount = @convention(c) (UnsafeMutablePointer<Int32>?) -> Int32
    typealias DeviceGet = @convention(c) (UnsafeMutablePointer<Int32>?, Int32) -> Int32
    typealias GetName = @convention(c) (UnsafeMutablePointer<CChar>?, Int32, Int32) -> Int32
    typealias TotalMem = @convention(c) (UnsafeMutablePointer<Int>?, Int32) -> Int32
    typealias DriverVersion = @convention(c) (UnsafeMutablePointer<Int32>?) -> Int32
    typealias ErrorText = @convention(c) (Int32, UnsafeMutablePointer<UnsafePointer<CChar>?>?) -> Int32

    let library: LoadedLibrary
    let cuInit: Init
    let cuDeviceGetCount: GetCount
    let cuDeviceGet: DeviceGet
    let cuDeviceGetName: GetName
    let cuDeviceTotalMem: TotalMem
    let cuDriverGetVersion: DriverVersion
    let cuGetErrorName: ErrorText?
    let cuGetErrorString: ErrorText?

    init(_ library: LoadedLibrary) throws(CUDAUnavailable) {
        self.library = library
        cuInit = unsafeBitCast(try library.require("cuInit"), to: Init.self)
        cuDeviceGetCount = unsafeBitCast(try library.require("cuDeviceGetCount"), to: GetCount.self)
        cuDeviceGet = unsafeBitCast(try library.require("cuDeviceGet"), to: DeviceGet.self)
        cuDeviceGetName = unsafeBitCast(try library.require("cuDeviceGetName"), to: GetName.self)
        cuDeviceTotalMem = unsafeBitCast(try library.require("cuDeviceTotalMem_v2"), to: TotalMem.self)
        cuDriverGetVersion = unsafeBitCast(try library.require("cuDriverGetVersion"), to: DriverVersion.self)
        cuGetErrorName = library.optional("cuGetErrorName").map { unsafeBitCast($0, to: ErrorText.self) }
        cuGetErrorString = library.optional("cuGetErrorString").map { unsafeBitCast($0, to: ErrorText.self) }
    }

    /// Throws `<call> returned <code> (<NAME>: <text>)` unless `code` is CUDA_SUCCESS.
    func check(_ code: Int32, _ call: String) throws(CUDAUnavailable) {
        guard code != 0 else { return }
        throw CUDAUnavailable("\(call) returned \(code) (\(explain(code)))")
    }

    /// The driver's name and text for a result code, or the few that matter without a driver.
    func explain(_ code: Int32) -> String {
        func text(_ f: ErrorText?) -> String? {
            var p: UnsafePointer<CChar>?
            guard let f, f(code, &p) == 0, let p else { return nil }
            return String(cString: p)
        }
        if let name = text(cuGetErrorName) {
            return text(cuGetErrorString).map { "\(name): \($0)" } ?? name
        }
        return Self.knownResults[code] ?? "unknown CUDA error"
    }

    /// Result codes a probe meets, for drivers whose `cuGetErrorName` is missing.
    static let knownResults: [Int32: String] = [
        3: "CUDA_ERROR_NOT_INITIALIZED", 34: "CUDA_ERROR_STUB_LIBRARY: the stub libcuda.so of the toolkit was loaded, not the driver's",
        35: "CUDA_ERROR_INSUFFICIENT_DRIVER: the driver is older than this CUDA version",
        100: "CUDA_ERROR_NO_DEVICE: no CUDA-capable device is detected", 101: "CUDA_ERROR_INVALID_DEVICE",
        304: "CUDA_ERROR_OPERATING_SYSTEM", 999: "CUDA_ERROR_UNKNOWN",
    ]
}
