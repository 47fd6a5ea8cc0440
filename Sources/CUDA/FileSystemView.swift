import Glibc

/// The little the library search needs to know about the file system: which directories and files
/// exist, and what a directory holds. `LibrarySearch` takes one so that its order is a pure function
/// of (environment, file system), tested with a fake.
public protocol FileSystemView: Sendable {
    /// True when `path` is a directory (symbolic links followed).
    func isDirectory(_ path: String) -> Bool
    /// True when `path` is a regular file (symbolic links followed).
    func isFile(_ path: String) -> Bool
    /// Names in a directory, without `.` and `..`; empty when it cannot be read.
    func entries(of directory: String) -> [String]
}

/// The real file system, through `stat` and `opendir`. Stateless; safe from any thread.
public struct LocalFileSystem: FileSystemView {
    public init() {}

    public func isDirectory(_ path: String) -> Bool { mode(path).map { $0 & S_IFMT == S_IFDIR } ?? false }

    public func isFile(_ path: String) -> Bool { mode(path).map { $0 & S_IFMT == S_IFREG } ?? false }

    public func entries(of directory: String) -> [String] {
        guard let dir = opendir(directory) else { return [] }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }

    private func mode(_ path: String) -> mode_t? {
        var info = stat()
        return stat(path, &info) == 0 ? info.st_mode : nil
    }
}
