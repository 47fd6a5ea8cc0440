import Glibc

/// Why CUDA cannot be used: which library or call failed. `description` is the whole user-facing
/// sentence, `CUDA not available: <reason>`.
public struct CUDAUnavailable: Error, Sendable, Equatable, CustomStringConvertible {
    /// What failed, e.g. `libcuda.so.1 not found in: ...` or `cuInit returned 100 (CUDA_ERROR_NO_DEVICE ...)`.
    public let reason: String

    public init(_ reason: String) { self.reason = reason }

    public var description: String { "CUDA not available: \(reason)" }
}

/// A library opened by `LibraryLoader`: where it came from and its handle. Immutable; safe anywhere.
public struct LoadedLibrary: Sendable {
    public let library: CUDALibrary
    /// The file opened, or the soname when the dynamic linker found it.
    public let location: String
    let handle: LibraryHandle
    let linker: any DynamicLinker

    /// The address of a symbol the caller needs; throws naming the library and the symbol.
    public func require(_ name: String) throws(CUDAUnavailable) -> UnsafeMutableRawPointer {
        guard let address = linker.symbol(name, in: handle) else {
            throw CUDAUnavailable("\(location) has no symbol \(name) (too old a version?); install a newer \(library.sonames[0])")
        }
        return address
    }

    /// The address of a symbol that may be absent.
    public func optional(_ name: String) -> UnsafeMutableRawPointer? { linker.symbol(name, in: handle) }
}

/// Opens an NVIDIA library by trying the candidates of a `LibrarySearch` in order; the first that
/// opens wins. Stateless apart from its inputs; safe from any thread.
public struct LibraryLoader: Sendable {
    public let search: LibrarySearch
    public let fileSystem: any FileSystemView
    public let linker: any DynamicLinker

    public init(environment: [String: String], fileSystem: any FileSystemView, linker: any DynamicLinker) {
        self.search = LibrarySearch(environment: environment, fileSystem: fileSystem)
        self.fileSystem = fileSystem
        self.linker = linker
    }

    /// The real one: this process's environment, file system and dynamic linker.
    public static func system() -> LibraryLoader {
        LibraryLoader(environment: processEnvironment(), fileSystem: LocalFileSystem(), linker: SystemLinker())
    }

    /// Opens `library`, or throws a message naming it, the directories searched and the linker's reason.
    public func load(_ library: CUDALibrary) throws(CUDAUnavailable) -> LoadedLibrary {
        var failures: [String] = []
        var linkerReason = ""
        for candidate in search.candidates(for: library, fileSystem: fileSystem) {
            switch candidate {
            case .file(let path, _):
                switch linker.open(path) {
                case .success(let handle): return LoadedLibrary(library: library, location: path, handle: handle, linker: linker)
                case .failure(let error): failures.append("found \(path) but could not load it (\(error.message))")
                }
            case .soname(let name):
                switch linker.open(name) {
                case .success(let handle): return LoadedLibrary(library: library, location: name, handle: handle, linker: linker)
                case .failure(let error): if linkerReason.isEmpty { linkerReason = error.message }
                }
            }
        }
        throw CUDAUnavailable(notFoundMessage(library, failures: failures, linkerReason: linkerReason))
    }

    func notFoundMessage(_ library: CUDALibrary, failures: [String], linkerReason: String) -> String {
        let searched = search.directories.map(\.path)
        var text = "\(library) not found in: "
        text += searched.isEmpty ? "(no candidate directory exists)" : searched.joined(separator: ", ")
        text += ", nor by the dynamic linker (\(linkerReason.isEmpty ? "not found" : linkerReason))"
        if !search.missing.isEmpty { text += "; absent: " + search.missing.joined(separator: ", ") }
        if !failures.isEmpty { text += "; " + failures.joined(separator: "; ") }
        text += "; set \(LibrarySearch.pathVariable) to the directory that holds it"
        return text
    }
}

/// This process's environment as a dictionary (`environ`).
func processEnvironment() -> [String: String] {
    var out: [String: String] = [:]
    var p = environ
    while let entry = p.pointee {
        let text = String(cString: entry)
        if let eq = text.firstIndex(of: "=") {
            out[String(text[..<eq])] = String(text[text.index(after: eq)...])
        }
        p += 1
    }
    return out
}
