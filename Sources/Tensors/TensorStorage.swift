/// The bytes behind one or more tensors.
///
/// Either owned (allocated here, 64-byte aligned, freed on deinit) or borrowed from memory that
/// another object keeps alive (`owner`: a memory-mapped model file, say), which is how weights stay
/// zero-copy. A storage is written only by the code that created it, before it is shared; after that
/// it is read-only, which is what makes it safe to share between threads (hence `@unchecked Sendable`).
public final class TensorStorage: @unchecked Sendable {
    /// Start of the bytes. Never nil: empty storages point at a private one-byte allocation.
    public let bytes: UnsafeMutableRawPointer
    public let byteCount: Int
    private let owner: AnyObject?
    private let ownsBytes: Bool

    /// Allocates `byteCount` zeroed bytes.
    public init(zeroedByteCount byteCount: Int) {
        precondition(byteCount >= 0, "negative byte count")
        let p = UnsafeMutableRawPointer.allocate(byteCount: max(byteCount, 1), alignment: 64)
        p.initializeMemory(as: UInt8.self, repeating: 0, count: max(byteCount, 1))
        self.bytes = p
        self.byteCount = byteCount
        self.owner = nil
        self.ownsBytes = true
    }

    /// Allocates `byteCount` bytes whose contents the caller must fully write before sharing.
    public init(uninitializedByteCount byteCount: Int) {
        precondition(byteCount >= 0, "negative byte count")
        self.bytes = UnsafeMutableRawPointer.allocate(byteCount: max(byteCount, 1), alignment: 64)
        self.byteCount = byteCount
        self.owner = nil
        self.ownsBytes = true
    }

    /// Borrows `byteCount` bytes at `bytes`, kept valid by `owner` for as long as this storage lives.
    public init(borrowing bytes: UnsafeRawPointer, byteCount: Int, owner: AnyObject) {
        self.bytes = UnsafeMutableRawPointer(mutating: bytes)
        self.byteCount = byteCount
        self.owner = owner
        self.ownsBytes = false
    }

    deinit {
        if ownsBytes { bytes.deallocate() }
    }

    /// Drops the whole pages inside `byteCount` bytes at `byteOffset` from the resident set when
    /// the bytes are borrowed from an owner that can do that (`PageReleasing`: a read-only file
    /// mapping, whose pages come back from the file if read again); does nothing otherwise. The
    /// contents never change, so this is only ever a question of memory against a later page fault.
    public func releaseResidentPages(byteOffset: Int, byteCount: Int) {
        guard let owner = owner as? PageReleasing, byteCount > 0 else { return }
        owner.releaseResidentPages(UnsafeRawPointer(bytes + byteOffset), byteCount: byteCount)
    }
}

/// An owner of borrowed tensor bytes that can drop them from memory without changing them (see
/// `TensorStorage.releaseResidentPages`).
public protocol PageReleasing: AnyObject {
    func releaseResidentPages(_ start: UnsafeRawPointer, byteCount: Int)
}
