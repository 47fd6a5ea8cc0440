import Glibc
import Synchronization

/// A memory budget that tensor allocations are charged to: one per inference run (the request's
/// limit, `--max-request-memory`), one per model load (folded constants, packed weights), both
/// charging through to the process's ledger, whose limit is the share of the machine's memory
/// the engine may use at all. An allocation that would pass any limit on the chain fails with
/// `MemoryLimitError` before anything is allocated, instead of trapping in the allocator.
///
/// Which ledger an allocation is charged to travels with the work: `MemoryLedger.withCurrent`
/// binds one to the calling thread (a task-local, so it also follows async code) for the
/// duration of a run or a load; `TensorStorage` remembers the ledger it charged and credits it
/// back when freed, on whatever thread that happens. Lock-free (atomics); any thread may charge
/// or credit any ledger.
public final class MemoryLedger: Sendable {
    /// Bytes this ledger (and everything charged to it) may hold at once.
    public let limit: Int
    /// What the budget is for, in messages: "this request", "loading model 'resnet' version 3".
    public let purpose: String
    /// The flag or setting that sets `limit`, named in messages (`--max-request-memory`).
    public let setting: String
    public let parent: MemoryLedger?
    private let held = Atomic<Int>(0)
    private let highWater = Atomic<Int>(0)

    public init(limit: Int, purpose: String, setting: String, parent: MemoryLedger? = MemoryLedger.process) {
        self.limit = max(0, limit)
        self.purpose = purpose
        self.setting = setting
        self.parent = parent
    }

    /// Bytes held now.
    public var bytesHeld: Int { held.load(ordering: .relaxed) }
    /// The most bytes held at once since this ledger was made.
    public var peakBytes: Int { highWater.load(ordering: .relaxed) }

    /// Charges `bytes` to this ledger and its parents, or throws (charging nothing) when that would
    /// pass a limit on the chain.
    public func charge(_ bytes: Int) throws(MemoryLimitError) {
        guard bytes > 0 else { return }
        let after = held.wrappingAdd(bytes, ordering: .relaxed).newValue
        if after > limit || after < 0 {
            held.wrappingSubtract(bytes, ordering: .relaxed)
            throw MemoryLimitError(requested: bytes, held: after - bytes, limit: limit, purpose: purpose, setting: setting)
        }
        if let parent {
            do {
                try parent.charge(bytes)
            } catch {
                held.wrappingSubtract(bytes, ordering: .relaxed)
                throw error
            }
        }
        var peak = highWater.load(ordering: .relaxed)
        while after > peak {
            let (exchanged, original) = highWater.compareExchange(expected: peak, desired: after, ordering: .relaxed)
            if exchanged { break }
            peak = original
        }
    }

    /// Charges `bytes` here and on the parents without checking any limit, for memory that is
    /// already allocated by code that cannot fail (a kernel's packed weights): the account stays
    /// true, and the next checked charge sees it.
    public func chargeUnchecked(_ bytes: Int) {
        guard bytes > 0 else { return }
        let after = held.wrappingAdd(bytes, ordering: .relaxed).newValue
        parent?.chargeUnchecked(bytes)
        var peak = highWater.load(ordering: .relaxed)
        while after > peak {
            let (exchanged, original) = highWater.compareExchange(expected: peak, desired: after, ordering: .relaxed)
            if exchanged { break }
            peak = original
        }
    }

    /// `chargeUnchecked` on the current ledger (or the process's); returns the ledger to credit.
    public static func chargeCurrentUnchecked(_ bytes: Int) -> MemoryLedger {
        let ledger = current ?? process
        ledger.chargeUnchecked(bytes)
        return ledger
    }

    /// Gives back bytes charged earlier, here and on the parents.
    public func credit(_ bytes: Int) {
        guard bytes > 0 else { return }
        held.wrappingSubtract(bytes, ordering: .relaxed)
        parent?.credit(bytes)
    }

    /// The ledger allocations on this thread (or task) are charged to; nil outside any run or
    /// load, where allocations are charged to `process` only.
    @TaskLocal public static var current: MemoryLedger?

    /// `purpose` of the ledger of one inference run.
    public static let requestPurpose = "this request"
    /// `purpose` of the ledger of one model load.
    public static let loadPurpose = "loading this model"

    /// Runs `body` with `ledger` as the current ledger.
    public static func withCurrent<R>(_ ledger: MemoryLedger, _ body: () throws -> R) rethrows -> R {
        try $current.withValue(ledger) { try body() }
    }

    /// Charges `bytes` to the current ledger (or the process's).
    public static func chargeCurrent(_ bytes: Int) throws(MemoryLimitError) -> MemoryLedger {
        let ledger = current ?? process
        try ledger.charge(bytes)
        return ledger
    }

    /// The whole engine's budget: `MemoryLimits.defaultProcessBytes` (90 % of the memory the
    /// process may use). Every request and load ledger charges through to it.
    public static let process = MemoryLedger(
        limit: MemoryLimits.defaultProcessBytes, purpose: "the engine as a whole", setting: "90% of the memory available",
        parent: nil)
}

/// An allocation that a memory budget refused: how much was asked for, how much was held, the limit.
public struct MemoryLimitError: Error, Sendable, Equatable, CustomStringConvertible {
    public let requested: Int
    public let held: Int
    public let limit: Int
    public let purpose: String
    public let setting: String

    public init(requested: Int, held: Int, limit: Int, purpose: String, setting: String) {
        self.requested = requested
        self.held = held
        self.limit = limit
        self.purpose = purpose
        self.setting = setting
    }

    /// Bytes the work would have needed at this point.
    public var needed: Int { requested > Int.max - held ? Int.max : held + requested }

    public var description: String {
        "\(purpose) would need at least \(MemoryLimits.describe(needed)) of working memory "
            + "(an allocation of \(MemoryLimits.describe(requested)) on top of \(MemoryLimits.describe(held)) held), "
            + "more than the limit of \(MemoryLimits.describe(limit)) (\(setting))"
    }
}

/// Byte counts of the machine, and the defaults derived from them.
public enum MemoryLimits {
    /// The memory this process may use: the cgroup's limit (v2 `memory.max`, v1
    /// `memory.limit_in_bytes`) when there is one below the machine's, else the machine's total.
    public static let availableBytes: Int = {
        let physical = Int(sysconf(Int32(_SC_PHYS_PAGES))) &* Int(sysconf(Int32(_SC_PAGESIZE)))
        var best = physical > 0 ? physical : 1 << 34
        for path in ["/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"] {
            if let text = readSmallFile(path), let value = Int(text.trimmingWhitespace()), value > 0, value < best {
                best = value
            }
        }
        return best
    }()

    /// The engine as a whole: 90 % of `availableBytes`.
    public static var defaultProcessBytes: Int { availableBytes / 10 * 9 }
    /// One inference run: a quarter of `availableBytes`.
    public static var defaultRequestBytes: Int { availableBytes / 4 }
    /// One model load: three quarters of `availableBytes`.
    public static var defaultLoadBytes: Int { availableBytes / 4 * 3 }

    /// A byte count from the command line: digits, optionally followed by K, M, G or T (powers of
    /// 1024; `KiB`, `MB`, `G` and the like are read the same). Nil when malformed or out of range.
    public static func parse(_ text: String) -> Int? {
        let trimmed = text.trimmingWhitespace()
        let digits = trimmed.prefix { $0.isASCII && $0.isNumber }
        guard !digits.isEmpty, let value = Int(digits) else { return nil }
        var unit = trimmed.dropFirst(digits.count).uppercased()
        for tail in ["IB", "B"] where unit.hasSuffix(tail) && unit.count > tail.count {
            unit.removeLast(tail.count)
            break
        }
        if unit == "B" { unit = "" }
        let shifts: [String: Int] = ["": 0, "K": 10, "M": 20, "G": 30, "T": 40]
        guard let shift = shifts[unit] else { return nil }
        let (bytes, overflow) = value.multipliedReportingOverflow(by: 1 << shift)
        return overflow ? nil : bytes
    }

    /// `1.5 GiB`, `512 MiB`, `200 bytes`.
    public static func describe(_ bytes: Int) -> String {
        let units: [(Int, String)] = [(1 << 40, "TiB"), (1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")]
        for (size, name) in units where bytes >= size {
            let value = Double(bytes) / Double(size)
            return value >= 100 ? "\(Int(value.rounded())) \(name)" : "\((value * 10).rounded() / 10) \(name)"
        }
        return "\(bytes) bytes"
    }

    static func readSmallFile(_ path: String) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 64)
        let n = read(fd, &buffer, 64)
        guard n > 0 else { return nil }
        return String(decoding: buffer[0..<n], as: UTF8.self)
    }
}

extension String {
    fileprivate func trimmingWhitespace() -> String {
        var s = Substring(self)
        while let c = s.first, c.isWhitespace { s.removeFirst() }
        while let c = s.last, c.isWhitespace { s.removeLast() }
        return String(s)
    }
}
