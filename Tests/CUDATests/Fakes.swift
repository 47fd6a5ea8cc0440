import CUDA

/// A file system made of a list of files; every parent of a file is a directory.
struct FakeFileSystem: FileSystemView {
    let files: Set<String>
    let directories: Set<String>

    init(_ files: [String], emptyDirectories: [String] = []) {
        self.files = Set(files)
        var dirs: Set<String> = ["/"]
        for path in files + emptyDirectories.map({ $0 + "/." }) {
            var parts = path.split(separator: "/").dropLast()
            while !parts.isEmpty {
                dirs.insert("/" + parts.joined(separator: "/"))
                parts = parts.dropLast()
            }
        }
        directories = dirs
    }

    func isDirectory(_ path: String) -> Bool { directories.contains(path) }
    func isFile(_ path: String) -> Bool { files.contains(path) }
    func entries(of directory: String) -> [String] {
        let prefix = directory == "/" ? "/" : directory + "/"
        let all = files.union(directories).filter { $0.hasPrefix(prefix) && $0 != directory }
        return Array(Set(all.map { String($0.dropFirst(prefix.count).split(separator: "/")[0]) }))
    }
}

/// A symbol table of fake C functions.
struct FakeSymbols: @unchecked Sendable {
    var table: [String: UnsafeMutableRawPointer] = [:]

    mutating func add<F>(_ name: String, _ function: F) { table[name] = unsafeBitCast(function, to: UnsafeMutableRawPointer.self) }
}

/// A dynamic linker over fake libraries: path (or soname) -> symbols; anything else fails like dlopen.
struct FakeLinker: DynamicLinker {
    let libraries: [(String, FakeSymbols)]

    init(_ libraries: [String: FakeSymbols]) { self.libraries = libraries.sorted { $0.key < $1.key }.map { ($0.key, $0.value) } }

    func open(_ path: String) -> Result<LibraryHandle, DynamicLinkerError> {
        guard let i = libraries.firstIndex(where: { $0.0 == path }) else {
            return .failure(DynamicLinkerError("\(path): cannot open shared object file: No such file or directory"))
        }
        return .success(LibraryHandle(UnsafeMutableRawPointer(bitPattern: i + 1)!))
    }

    func symbol(_ name: String, in library: LibraryHandle) -> UnsafeMutableRawPointer? {
        libraries[Int(bitPattern: library.raw) - 1].1.table[name]
    }
}

// Fake driver entry points (global functions: C function pointers must not capture).
func fakeCuInitOK(_ flags: UInt32) -> Int32 { 0 }
func fakeCuInitNoDevice(_ flags: UInt32) -> Int32 { 100 }
func fakeCuDriverGetVersion(_ v: UnsafeMutablePointer<Int32>?) -> Int32 { v?.pointee = 12080; return 0 }
func fakeCuDeviceGetCount2(_ n: UnsafeMutablePointer<Int32>?) -> Int32 { n?.pointee = 2; return 0 }
func fakeCuDeviceGet(_ d: UnsafeMutablePointer<Int32>?, _ ordinal: Int32) -> Int32 { d?.pointee = ordinal; return 0 }
func fakeCuDeviceGetName(_ buffer: UnsafeMutablePointer<CChar>?, _ length: Int32, _ device: Int32) -> Int32 {
    let name = Array("Fake H200 #\(device)".utf8CString)
    for (i, c) in name.prefix(Int(length)).enumerated() { buffer![i] = c }
    return 0
}
func fakeCuDeviceTotalMem(_ bytes: UnsafeMutablePointer<Int>?, _ device: Int32) -> Int32 { bytes?.pointee = (141 << 30) + Int(device); return 0 }
func fakeCuGetErrorName(_ code: Int32, _ out: UnsafeMutablePointer<UnsafePointer<CChar>?>?) -> Int32 {
    out?.pointee = UnsafePointer(fakeErrorName)
    return 0
}
nonisolated(unsafe) let fakeErrorName: UnsafeMutablePointer<CChar> = strdupStatic("CUDA_ERROR_FAKE_NAME")

func strdupStatic(_ s: String) -> UnsafeMutablePointer<CChar> {
    let bytes = Array(s.utf8CString)
    let p = UnsafeMutablePointer<CChar>.allocate(capacity: bytes.count)
    p.initialize(from: bytes, count: bytes.count)
    return p
}

func fakeNvrtcVersion(_ major: UnsafeMutablePointer<Int32>?, _ minor: UnsafeMutablePointer<Int32>?) -> Int32 {
    major?.pointee = 12
    minor?.pointee = 8
    return 0
}
func fakeAnything() -> Int32 { 0 }

// Fake NVML.
func fakeNvmlInitOK() -> Int32 { 0 }
func fakeNvmlInitFails() -> Int32 { 9 }
func fakeNvmlCount(_ n: UnsafeMutablePointer<UInt32>?) -> Int32 { n?.pointee = 2; return 0 }
func fakeNvmlHandle(_ i: UInt32, _ h: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
    h?.pointee = OpaquePointer(bitPattern: Int(i) + 16)
    return 0
}
func fakeNvmlMemory(_ h: OpaquePointer?, _ out: UnsafeMutableRawPointer?) -> Int32 {
    let i = UInt64(Int(bitPattern: UnsafeRawPointer(h)) - 16)
    let m = out!.assumingMemoryBound(to: UInt64.self)
    m[0] = 100 << 30  // total
    m[1] = 60 << 30  // free
    m[2] = (40 << 30) + i  // used
    return 0
}
func fakeNvmlUtilization(_ h: OpaquePointer?, _ out: UnsafeMutableRawPointer?) -> Int32 {
    let i = UInt32(Int(bitPattern: UnsafeRawPointer(h)) - 16)
    guard i == 0 else { return 3 }  // GPU 1 does not report utilisation
    let u = out!.assumingMemoryBound(to: UInt32.self)
    u[0] = 75
    u[1] = 20
    return 0
}

enum Fakes {
    /// A complete fake driver with two devices; `noDevice` makes cuInit return 100.
    static func driver(noDevice: Bool = false, errorNames: Bool = false, dropping: String? = nil) -> FakeSymbols {
        var s = FakeSymbols()
        s.add("cuInit", noDevice ? fakeCuInitNoDevice as @convention(c) (UInt32) -> Int32 : fakeCuInitOK)
        s.add("cuDriverGetVersion", fakeCuDriverGetVersion as @convention(c) (UnsafeMutablePointer<Int32>?) -> Int32)
        s.add("cuDeviceGetCount", fakeCuDeviceGetCount2 as @convention(c) (UnsafeMutablePointer<Int32>?) -> Int32)
        s.add("cuDeviceGet", fakeCuDeviceGet as @convention(c) (UnsafeMutablePointer<Int32>?, Int32) -> Int32)
        s.add(
            "cuDeviceGetName", fakeCuDeviceGetName as @convention(c) (UnsafeMutablePointer<CChar>?, Int32, Int32) -> Int32)
        s.add("cuDeviceTotalMem_v2", fakeCuDeviceTotalMem as @convention(c) (UnsafeMutablePointer<Int>?, Int32) -> Int32)
        if errorNames {
            s.add(
                "cuGetErrorName",
                fakeCuGetErrorName as @convention(c) (Int32, UnsafeMutablePointer<UnsafePointer<CChar>?>?) -> Int32)
        }
        if let dropping { s.table[dropping] = nil }
        return s
    }

    static func cublas() -> FakeSymbols {
        var s = FakeSymbols()
        for name in ["cublasCreate_v2", "cublasSgemm_v2", "cublasSgemmStridedBatched"] {
            s.add(name, fakeAnything as @convention(c) () -> Int32)
        }
        return s
    }

    static func nvrtc() -> FakeSymbols {
        var s = FakeSymbols()
        s.add("nvrtcVersion", fakeNvrtcVersion as @convention(c) (UnsafeMutablePointer<Int32>?, UnsafeMutablePointer<Int32>?) -> Int32)
        for name in ["nvrtcCreateProgram", "nvrtcGetPTX"] { s.add(name, fakeAnything as @convention(c) () -> Int32) }
        return s
    }

    static func nvml(initFails: Bool = false) -> FakeSymbols {
        var s = FakeSymbols()
        s.add("nvmlInit_v2", initFails ? fakeNvmlInitFails as @convention(c) () -> Int32 : fakeNvmlInitOK)
        s.add("nvmlDeviceGetCount_v2", fakeNvmlCount as @convention(c) (UnsafeMutablePointer<UInt32>?) -> Int32)
        s.add(
            "nvmlDeviceGetHandleByIndex_v2",
            fakeNvmlHandle as @convention(c) (UInt32, UnsafeMutablePointer<OpaquePointer?>?) -> Int32)
        s.add("nvmlDeviceGetMemoryInfo", fakeNvmlMemory as @convention(c) (OpaquePointer?, UnsafeMutableRawPointer?) -> Int32)
        s.add(
            "nvmlDeviceGetUtilizationRates",
            fakeNvmlUtilization as @convention(c) (OpaquePointer?, UnsafeMutableRawPointer?) -> Int32)
        return s
    }
}
