import Tensors

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A whole file mapped read-only into memory (or, for tests, a private copy of some bytes).
///
/// Owns the mapping and unmaps it in `deinit`. Tensors decoded from the file borrow its bytes and
/// keep it alive as their storage's owner, which is how weights stay zero-copy. Immutable after
/// init, so safe to share between threads.
public final class MappedFile: PageReleasing, @unchecked Sendable {
    /// The path it was opened from (or the name given to copied bytes).
    public let path: String
    /// Start of the bytes; nil only when `count` is 0.
    public let base: UnsafeRawPointer?
    /// Size of the file in bytes.
    public let count: Int
    private let isMapped: Bool

    /// Maps the regular file at `path`. Throws `MappedFile.Failure` with the OS's reason.
    public init(path: String) throws(MappedFile.Failure) {
        self.path = path
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)  // O_NONBLOCK: a FIFO must not hang us
        if fd < 0 { throw Failure(reason: "cannot open: \(MappedFile.errnoText())") }
        defer { close(fd) }
        var st = stat()
        if fstat(fd, &st) != 0 { throw Failure(reason: "cannot stat: \(MappedFile.errnoText())") }
        if (st.st_mode & S_IFMT) == S_IFDIR { throw Failure(reason: "cannot open: is a directory") }
        if (st.st_mode & S_IFMT) != S_IFREG { throw Failure(reason: "cannot open: not a regular file") }
        let size = Int(st.st_size)
        self.count = size
        self.isMapped = size > 0
        if size == 0 {
            self.base = nil
            return
        }
        let p = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0)
        if p == MAP_FAILED || p == nil {
            throw Failure(reason: "cannot map \(size) bytes: \(MappedFile.errnoText())")
        }
        self.base = UnsafeRawPointer(p!)
    }

    /// A private, 64-byte aligned copy of `bytes`, named `path` in messages (tests, in-memory models).
    public init(copying bytes: some Collection<UInt8>, path: String) {
        self.path = path
        self.count = bytes.count
        self.isMapped = false
        if bytes.isEmpty {
            self.base = nil
            return
        }
        let p = UnsafeMutableRawPointer.allocate(byteCount: bytes.count, alignment: 64)
        let buffer = UnsafeMutableRawBufferPointer(start: p, count: bytes.count)
        _ = buffer.initializeMemory(as: UInt8.self, from: bytes)
        self.base = UnsafeRawPointer(p)
    }

    deinit {
        guard let base else { return }
        if isMapped {
            munmap(UnsafeMutableRawPointer(mutating: base), count)
        } else {
            UnsafeMutableRawPointer(mutating: base).deallocate()
        }
    }

    /// Drops the whole pages inside the range from this process's resident set when the file is
    /// mapped (`MADV_DONTNEED` on a private read-only mapping: the pages were never written, so a
    /// later read faults them back in from the file, unchanged). A copy in memory keeps its bytes.
    public func releaseResidentPages(_ start: UnsafeRawPointer, byteCount: Int) {
        guard isMapped, let base, start >= base, start + byteCount <= base + count else { return }
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let lo = (Int(bitPattern: start) + page - 1) / page * page
        let hi = (Int(bitPattern: start) + byteCount) / page * page
        guard hi > lo, let p = UnsafeMutableRawPointer(bitPattern: lo) else { return }
        _ = madvise(p, hi - lo, Int32(MADV_DONTNEED))
    }

    /// Resident bytes of the range, measured with `mincore` (whole pages; a copy in memory is all
    /// resident).
    public func residentByteCount(_ start: UnsafeRawPointer, byteCount: Int) -> Int {
        guard byteCount > 0 else { return 0 }
        guard isMapped, let base, start >= base, start + byteCount <= base + count else { return byteCount }
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let lo = Int(bitPattern: start) / page * page
        let hi = (Int(bitPattern: start) + byteCount + page - 1) / page * page
        var vector = [UInt8](repeating: 0, count: (hi - lo) / page)
        guard let p = UnsafeMutableRawPointer(bitPattern: lo),
            vector.withUnsafeMutableBufferPointer({ mincore(p, hi - lo, $0.baseAddress) }) == 0
        else { return byteCount }
        return vector.reduce(0) { $0 + Int($1 & 1) } * page
    }

    /// The bytes as a buffer (empty when the file is).
    public var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base, count: count) }

    /// Why a file could not be mapped: the OS's reason, in words.
    public struct Failure: Error, Sendable, CustomStringConvertible {
        public let reason: String
        public var description: String { reason }
    }

    private static func errnoText() -> String {
        let code = errno
        guard let s = strerror(code) else { return "errno \(code)" }
        return String(cString: s)
    }
}
