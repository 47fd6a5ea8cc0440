import Glibc

/// An open shared library: the `dlopen` handle. Libraries are never closed (the CUDA libraries do not
/// support being unloaded while a context lives), so a handle stays valid for the whole process.
public struct LibraryHandle: @unchecked Sendable, Equatable {
    /// The opaque handle; only the `DynamicLinker` that made it may interpret it.
    public let raw: UnsafeMutableRawPointer

    public init(_ raw: UnsafeMutableRawPointer) { self.raw = raw }
}

/// Opens shared libraries and finds their symbols: `dlopen`/`dlsym` in the daemon, a fake in tests.
/// Implementations must be safe to call from any thread.
public protocol DynamicLinker: Sendable {
    /// Opens a library by path (or by soname, searched by the dynamic linker). On failure returns the
    /// linker's reason (`dlerror`).
    func open(_ pathOrSoname: String) -> Result<LibraryHandle, DynamicLinkerError>
    /// The address of `name` in `library`, or nil when it has no such symbol.
    func symbol(_ name: String, in library: LibraryHandle) -> UnsafeMutableRawPointer?
}

/// Why `dlopen` failed, as the dynamic linker said it.
public struct DynamicLinkerError: Error, Sendable, Equatable, CustomStringConvertible {
    public let message: String

    public init(_ message: String) { self.message = message }

    public var description: String { message }
}

/// The process's dynamic linker: `dlopen(RTLD_NOW | RTLD_LOCAL)` and `dlsym`. Stateless; safe from
/// any thread (glibc serialises `dlopen`; the `dlerror` text is per thread).
public struct SystemLinker: DynamicLinker {
    public init() {}

    public func open(_ pathOrSoname: String) -> Result<LibraryHandle, DynamicLinkerError> {
        if let handle = dlopen(pathOrSoname, RTLD_NOW | RTLD_LOCAL) { return .success(LibraryHandle(handle)) }
        return .failure(DynamicLinkerError(dlerror().map { String(cString: $0) } ?? "dlopen failed for \(pathOrSoname)"))
    }

    public func symbol(_ name: String, in library: LibraryHandle) -> UnsafeMutableRawPointer? {
        dlsym(library.raw, name)
    }
}
