import Glibc

/// What a directory's files look like at one instant: name, size, mtime and inode of each regular
/// file. Two equal stamps taken a poll apart mean nobody is writing the files (the stability
/// check of hot swap); a FAILED version is retried only when its stamp changes.
///
/// A value; computed on the store manager's thread.
public struct FileStamp: Sendable, Equatable {
    public struct Entry: Sendable, Equatable {
        var name: String
        var size: Int64
        var mtimeSeconds: Int
        var mtimeNanoseconds: Int
        var inode: UInt64
    }

    public var entries: [Entry]

    /// The stamp of the regular files directly in `directory` (not recursive), or of the single
    /// file when `directory` is a file. Empty when nothing can be read.
    public static func of(_ path: String) -> FileStamp {
        if isRegularFile(path) {
            return FileStamp(entries: entry(path, name: "").map { [$0] } ?? [])
        }
        let names = ((try? listDirectory(path)) ?? []).sorted()
        return FileStamp(entries: names.compactMap { entry("\(path)/\($0)", name: $0) })
    }

    private static func entry(_ path: String, name: String) -> Entry? {
        var st = stat()
        guard stat(path, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else { return nil }
        return Entry(
            name: name, size: Int64(st.st_size), mtimeSeconds: st.st_mtim.tv_sec, mtimeNanoseconds: st.st_mtim.tv_nsec,
            inode: UInt64(st.st_ino))
    }
}
