import Tensors

/// The memory one loaded model holds, measured (not estimated from the file): what the model
/// store accounts against `--memory-budget` and reports per version.
public struct MemoryFootprint: Sendable, Equatable {
    /// Weights the plan reads in place: the resident pages of the file mapping (measured with
    /// `mincore`) and owned copies not charged to a ledger.
    public var weights: Int
    /// What the load allocated and the plan keeps: kernels' packed weight copies, folded
    /// constants (the load's `MemoryLedger`).
    public var packed: Int
    /// Activation arenas of the shape plans, pooled or lent to runs in progress.
    public var arenas: Int

    public init(weights: Int = 0, packed: Int = 0, arenas: Int = 0) {
        self.weights = weights
        self.packed = packed
        self.arenas = arenas
    }

    /// Everything: weights + packed + arenas.
    public var total: Int { weights + packed + arenas }
}

extension InferenceSession {
    /// Measures what this session holds now. Cost: one `mincore` per mapped weight (about a
    /// microsecond per 100 pages) and a lock per cache; any thread.
    public func memoryFootprint() -> MemoryFootprint {
        var seen = Set<ObjectIdentifier>()
        var weights = 0
        for case let tensor? in plan.initialSlots {
            let storage = tensor.storage
            guard seen.insert(ObjectIdentifier(storage)).inserted else { continue }
            weights += storage.uncountedResidentBytes
        }
        return MemoryFootprint(weights: weights, packed: loadLedger.bytesHeld, arenas: plan.shapePlans.arenaBytesHeld)
    }
}
