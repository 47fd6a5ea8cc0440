import Glibc

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
    /// The budget `byteCount` was charged to, credited back on deinit (`MemoryLedger`).
    private let ledger: MemoryLedger?

    /// Allocates `byteCount` zeroed bytes.
    public init(zeroedByteCount byteCount: Int) {
        precondition(byteCount >= 0, "negative byte count")
        let p = UnsafeMutableRawPointer.allocate(byteCount: max(byteCount, 1), alignment: 64)
        p.initializeMemory(as: UInt8.self, repeating: 0, count: max(byteCount, 1))
        self.bytes = p
        self.byteCount = byteCount
        self.owner = nil
        self.ownsBytes = true
        self.ledger = nil
    }

    /// Allocates `byteCount` bytes (zeroed when `zeroed`) charged to the current memory budget
    /// (`MemoryLedger.current`, else the process's): throws `MemoryLimitError` when the budget or
    /// the system refuses, where the other initializers trap. Every allocation whose size comes
    /// from a request or a model file goes through here (`Tensor(allocating:shape:)`).
    public init(checkedByteCount byteCount: Int, zeroed: Bool = false) throws(MemoryLimitError) {
        let ledger = try MemoryLedger.chargeCurrent(max(byteCount, 0))
        var pointer: UnsafeMutableRawPointer?
        guard byteCount >= 0, posix_memalign(&pointer, 64, max(byteCount, 1)) == 0, let pointer else {
            ledger.credit(max(byteCount, 0))
            throw MemoryLimitError(
                requested: byteCount, held: ledger.bytesHeld, limit: ledger.limit,
                purpose: ledger.purpose, setting: "the system refused the allocation")
        }
        if zeroed { pointer.initializeMemory(as: UInt8.self, repeating: 0, count: max(byteCount, 1)) }
        self.bytes = pointer
        self.byteCount = byteCount
        self.owner = nil
        self.ownsBytes = true
        self.ledger = ledger
        self.freeWithC = true
    }

    /// Allocates `byteCount` bytes whose contents the caller must fully write before sharing.
    public init(uninitializedByteCount byteCount: Int) {
        precondition(byteCount >= 0, "negative byte count")
        self.bytes = UnsafeMutableRawPointer.allocate(byteCount: max(byteCount, 1), alignment: 64)
        self.byteCount = byteCount
        self.owner = nil
        self.ownsBytes = true
        self.ledger = nil
    }

    /// Borrows `byteCount` bytes at `bytes`, kept valid by `owner` for as long as this storage lives.
    public init(borrowing bytes: UnsafeRawPointer, byteCount: Int, owner: AnyObject) {
        self.bytes = UnsafeMutableRawPointer(mutating: bytes)
        self.byteCount = byteCount
        self.owner = owner
        self.ownsBytes = false
        self.ledger = nil
    }

    /// Set when `bytes` came from `posix_memalign` (freed with `free`).
    private var freeWithC = false

    deinit {
        if ownsBytes {
            if freeWithC { free(bytes) } else { bytes.deallocate() }
        }
        ledger?.credit(byteCount)
    }

    /// Drops the whole pages inside `byteCount` bytes at `byteOffset` from the resident set when
    /// the bytes are borrowed from an owner that can do that (`PageReleasing`: a read-only file
    /// mapping, whose pages come back from the file if read again); does nothing otherwise. The
    /// contents never change, so this is only ever a question of memory against a later page fault.
    public func releaseResidentPages(byteOffset: Int, byteCount: Int) {
        guard let owner = owner as? PageReleasing, byteCount > 0 else { return }
        owner.releaseResidentPages(UnsafeRawPointer(bytes + byteOffset), byteCount: byteCount)
    }

    /// Bytes of this storage that a memory account should add for its holder, measured now:
    /// for bytes charged to a ledger, 0 (the ledger counts them); for other owned bytes, all of
    /// them; for bytes borrowed from a `PageReleasing` owner (a mapped file), the resident pages;
    /// for other borrowed bytes, 0 (their owner accounts for them).
    public var uncountedResidentBytes: Int {
        if ledger != nil { return 0 }
        if ownsBytes { return byteCount }
        guard let owner = owner as? PageReleasing, byteCount > 0 else { return 0 }
        return owner.residentByteCount(UnsafeRawPointer(bytes), byteCount: byteCount)
    }
}

/// An owner of borrowed tensor bytes that can drop them from memory without changing them (see
/// `TensorStorage.releaseResidentPages`).
public protocol PageReleasing: AnyObject {
    func releaseResidentPages(_ start: UnsafeRawPointer, byteCount: Int)
    /// How many of the bytes in the range are resident in memory now (whole pages, measured).
    func residentByteCount(_ start: UnsafeRawPointer, byteCount: Int) -> Int
}
