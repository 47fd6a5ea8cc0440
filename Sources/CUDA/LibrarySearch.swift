/// Where the NVIDIA libraries are looked for, in order. A pure function of the environment and a
/// `FileSystemView`, so the order is unit-tested on a machine without CUDA:
///
/// 1. `SWERVE_CUDA_LIBRARY_PATH`, colon-separated directories, in the order given;
/// 2. the libraries of Python wheels (`nvidia-cublas-cu12`, ...): `nvidia/*/lib` under the
///    site-packages of `$VIRTUAL_ENV`, `$CONDA_PREFIX`, `~/.local`, `/usr/local/lib/python3*/{dist,site}-packages`
///    and `/usr/lib/python3/dist-packages`;
/// 3. a CUDA install: `/usr/local/cuda/lib64`, `/usr/local/cuda-*/lib64` (newest first), and the
///    distribution's library directory (`/usr/lib/x86_64-linux-gnu`, where the driver's `libcuda.so.1` lives);
/// 4. the plain soname, left to the dynamic linker (`LD_LIBRARY_PATH`, `ld.so.cache`).
///
/// Directories that do not exist are skipped (and reported, for the error message). A value type;
/// safe anywhere.
public struct LibrarySearch: Sendable, Equatable {
    /// Which rule put a directory on the list.
    public enum Origin: String, Sendable {
        case environment = "SWERVE_CUDA_LIBRARY_PATH"
        case pythonWheel = "Python wheel"
        case cudaInstall = "CUDA install"
    }

    /// A directory that exists, and why it is searched.
    public struct Directory: Sendable, Equatable {
        public let path: String
        public let origin: Origin
    }

    /// One attempt of the loader: a file found in a directory, or the soname alone.
    public enum Candidate: Sendable, Equatable {
        case file(path: String, origin: Origin)
        case soname(String)
    }

    /// Existing directories, in search order, without duplicates.
    public let directories: [Directory]
    /// Directories (or patterns that matched nothing) that were considered but do not exist.
    public let missing: [String]

    /// The environment variable that comes first in the order.
    public static let pathVariable = "SWERVE_CUDA_LIBRARY_PATH"

    /// Builds the order for this environment and file system.
    public init(environment: [String: String], fileSystem: some FileSystemView) {
        var found: [Directory] = []
        var missing: [String] = []
        func add(_ pattern: String, _ origin: Origin, newestFirst: Bool = false) {
            let matches = Self.expand(pattern, fileSystem, newestFirst: newestFirst)
            if matches.isEmpty { missing.append(pattern) }
            for path in matches where !found.contains(where: { $0.path == path }) {
                found.append(Directory(path: path, origin: origin))
            }
        }
        for dir in (environment[Self.pathVariable] ?? "").split(separator: ":") where !dir.isEmpty {
            add(Self.trimmed(String(dir)), .environment)
        }
        var prefixes: [String] = []
        for name in ["VIRTUAL_ENV", "CONDA_PREFIX"] {
            if let p = environment[name], !p.isEmpty { prefixes.append(Self.trimmed(p) + "/lib/python3*/site-packages") }
        }
        if let home = environment["HOME"], !home.isEmpty {
            prefixes.append(Self.trimmed(home) + "/.local/lib/python3*/site-packages")
        }
        prefixes += [
            "/usr/local/lib/python3*/dist-packages", "/usr/local/lib/python3*/site-packages", "/usr/lib/python3/dist-packages",
        ]
        for prefix in prefixes { add(prefix + "/nvidia/*/lib", .pythonWheel) }
        add("/usr/local/cuda/lib64", .cudaInstall)
        add("/usr/local/cuda-*/lib64", .cudaInstall, newestFirst: true)
        add(Self.systemLibraryDirectory, .cudaInstall)
        directories = found
        self.missing = missing
    }

    /// The attempts for `library`: each directory's files named by its sonames (newest first), then
    /// the sonames alone for the dynamic linker.
    public func candidates(for library: CUDALibrary, fileSystem: some FileSystemView) -> [Candidate] {
        var out: [Candidate] = []
        for dir in directories {
            for name in library.sonames where fileSystem.isFile(dir.path + "/" + name) {
                out.append(.file(path: dir.path + "/" + name, origin: dir.origin))
            }
        }
        return out + library.sonames.map { .soname($0) }
    }

    /// The multiarch library directory of this machine's distribution.
    static var systemLibraryDirectory: String {
        #if arch(arm64)
            return "/usr/lib/aarch64-linux-gnu"
        #else
            return "/usr/lib/x86_64-linux-gnu"
        #endif
    }

    static func trimmed(_ path: String) -> String {
        var p = path
        while p.count > 1 && p.hasSuffix("/") { p.removeLast() }
        return p
    }

    /// Expands a path whose components may hold one `*` each into the existing directories it names.
    static func expand(_ pattern: String, _ fs: some FileSystemView, newestFirst: Bool) -> [String] {
        var current = [pattern.hasPrefix("/") ? "" : "."]
        for component in pattern.split(separator: "/") {
            let part = String(component)
            var next: [String] = []
            for base in current {
                if let star = part.firstIndex(of: "*") {
                    let head = part[..<star], tail = part[part.index(after: star)...]
                    var names = fs.entries(of: base.isEmpty ? "/" : base).filter {
                        $0.count >= head.count + tail.count && $0.hasPrefix(head) && $0.hasSuffix(tail)
                    }
                    names.sort { naturalOrder($0, $1) != newestFirst }
                    next += names.map { base + "/" + $0 }.filter { fs.isDirectory($0) }
                } else if fs.isDirectory(base + "/" + part) {
                    next.append(base + "/" + part)
                }
            }
            current = next
            if current.isEmpty { return [] }
        }
        return current.map { $0.hasPrefix("./") ? String($0.dropFirst(2)) : $0 }
    }

    /// True when `a` sorts before `b` with runs of digits compared as numbers (`cuda-9.2` < `cuda-12.1`).
    static func naturalOrder(_ a: String, _ b: String) -> Bool {
        func chunks(_ s: String) -> [(isNumber: Bool, text: String)] {
            var out: [(Bool, String)] = []
            for c in s {
                let digit = c.isASCII && c.isNumber
                if let last = out.last, last.0 == digit { out[out.count - 1].1.append(c) } else { out.append((digit, String(c))) }
            }
            return out
        }
        let x = chunks(a), y = chunks(b)
        for (l, r) in zip(x, y) where l.text != r.text {
            if l.isNumber && r.isNumber, let m = Int(l.text), let n = Int(r.text), m != n { return m < n }
            return l.text < r.text
        }
        return x.count < y.count
    }
}
