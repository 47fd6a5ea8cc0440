import Synchronization
import Tensors

/// The plan of one input-shape signature, built from a `Plan` by running it once on the first request
/// of that signature (`ShapePlan.build`) and recording every value's type and shape:
/// - shape folding: `Shape`/`Size` of a value whose shape follows from the signature, and everything
///   computed only from constants and such shapes (the Shape -> Gather -> Unsqueeze -> Concat ->
///   Reshape chains of PyTorch exports), become constants of this plan;
/// - a static memory arena: every output of a `BufferedKernel` whose shape follows from the signature
///   gets a fixed offset in one buffer (greedy first-fit over last-use liveness), so those kernels
///   write into arena slices and the request path allocates only the arena (taken from a small pool,
///   one per concurrent run) and the graph outputs; Conv's im2col scratch is one region at the end
///   of the arena, shared by the steps (they run one at a time).
///
/// Immutable after construction except for the arena pool, which is locked; `run` may be called from
/// many threads at once.
final class ShapePlan: Sendable {
    struct Step: Sendable {
        let base: Plan.Step
        /// The kernel as a buffered kernel when its output lives in the arena.
        let buffered: (any BufferedKernel)?
        let outputType: DataType
        let outputShape: [Int]
        /// Byte offset of the output in the arena; -1 when the kernel allocates it.
        let offset: Int
        /// Slots whose last use (reader, or reader of a value that may alias it) is this step.
        let release: [Int]
        /// The kernel as a scratch kernel when it takes its scratch from the arena.
        let scratch: (any ScratchKernel)?
    }

    /// One arena allocation: slot, byte range, and the steps (indices into `steps`) it is alive over.
    struct Allocation: Sendable {
        let slot: Int
        let offset: Int
        let size: Int
        let first: Int
        let last: Int
    }

    let steps: [Step]
    let initialSlots: [Tensor?]
    let inputSlots: [(name: String, slot: Int)]
    let outputSlots: [(name: String, slot: Int)]
    let slotNames: [String]
    let allocations: [Allocation]
    let arenaBytes: Int
    /// Where the shared scratch region starts in the arena (it runs to `arenaBytes`).
    let scratchOffset: Int
    /// Steps of the source plan that this plan folded into constants.
    let foldedSteps: Int
    /// Set when this signature's batch runs in slices (through the slices' own shape plans) rather
    /// than through this plan's steps.
    let split: BatchSplit?
    private let pool: Mutex<[TensorStorage]>
    private static let pooledArenas = 2
    /// Arenas of this plan alive now (pooled or in a run), for the version's memory account.
    private let liveArenas = Atomic<Int>(0)

    /// Bytes of this plan's arenas alive now (pooled, or lent to runs in progress).
    var arenaBytesHeld: Int { liveArenas.load(ordering: .relaxed) * arenaBytes }

    init(
        steps: [Step], initialSlots: [Tensor?], source: Plan, allocations: [Allocation], arenaBytes: Int,
        scratchOffset: Int, foldedSteps: Int, split: BatchSplit? = nil
    ) {
        self.split = split
        self.scratchOffset = scratchOffset
        self.steps = steps
        self.initialSlots = initialSlots
        self.inputSlots = source.inputBindings.map { ($0.info.name, $0.slot) }
        self.outputSlots = source.outputBindings
        self.slotNames = source.slotNames
        self.allocations = allocations
        self.arenaBytes = arenaBytes
        self.foldedSteps = foldedSteps
        self.pool = Mutex([])
    }

    private func takeArena() throws -> TensorStorage {
        if let pooled = pool.withLock({ $0.popLast() }) { return pooled }
        let arena = try TensorStorage(checkedByteCount: arenaBytes)
        liveArenas.add(1, ordering: .relaxed)
        return arena
    }

    private func giveBack(_ arena: TensorStorage) {
        let kept = pool.withLock { pool in
            guard pool.count < Self.pooledArenas else { return false }
            pool.append(arena)
            return true
        }
        if !kept { liveArenas.subtract(1, ordering: .relaxed) }
    }

    /// Runs on feeds already validated against the plan's signature.
    func run(_ feeds: [String: Tensor], profile: StepProfile? = nil) throws -> [String: Tensor] {
        var slots = initialSlots
        for (name, slot) in inputSlots { slots[slot] = feeds[name] }
        let arena = try takeArena()
        defer { giveBack(arena) }
        var args: [Tensor?] = []
        args.reserveCapacity(4)
        let clock = ContinuousClock()
        for step in steps {
            let base = step.base
            let start = profile == nil ? nil : clock.now
            defer { if let profile, let start { profile.add(base, clock.now - start) } }
            args.removeAll(keepingCapacity: true)
            for s in base.inputs { args.append(s < 0 ? nil : slots[s]) }
            let results: [Tensor]
            do {
                if let buffered = step.buffered {
                    let buffer = Tensor(
                        dataType: step.outputType, shape: step.outputShape, storage: arena, byteOffset: step.offset)
                    if let scratch = step.scratch {
                        let region = (arena.bytes + scratchOffset).assumingMemoryBound(to: Float.self)
                        results = try scratch.run(args, into: buffer, scratch: region)
                    } else {
                        results = try buffered.run(args, into: buffer)
                    }
                } else {
                    results = try base.kernel.run(args)
                }
            } catch let error as KernelError {
                throw Plan.engineError(error, step: base)
            } catch let error as MemoryLimitError {
                throw EngineError.memoryLimit(error)
            } catch let error as EngineError {
                throw error
            } catch {
                throw EngineError.executionFailed(node: base.node, message: "\(base.opType): \(error)")
            }
            for (i, s) in base.outputs.enumerated() where s >= 0 {
                guard i < results.count else {
                    throw EngineError.executionFailed(
                        node: base.node, message: "\(base.opType) did not produce its output \(i) ('\(slotNames[s])')")
                }
                slots[s] = results[i]
            }
            for s in step.release { slots[s] = nil }
        }
        var out: [String: Tensor] = [:]
        out.reserveCapacity(outputSlots.count)
        for (name, slot) in outputSlots {
            guard let t = slots[slot] else {
                throw EngineError.executionFailed(node: name, message: "graph output '\(name)' was not computed")
            }
            // A graph output must not point into the arena, which the next run reuses (nor may the
            // elements of a sequence: a Loop body's list keeps each iteration's tensors).
            out[name] = try Self.detached(t, from: arena)
        }
        return out
    }

    /// `t`, or a copy of it (of its elements, for a sequence) where it points into `arena`.
    static func detached(_ t: Tensor, from arena: TensorStorage) throws -> Tensor {
        if let elements = t.sequenceElements, elements.contains(where: { $0.storage === arena }) {
            return Tensor(sequence: try elements.map { $0.storage === arena ? try copy($0) : $0 }, elementType: t.dataType)
        }
        return t.storage === arena ? try copy(t) : t
    }

    static func copy(_ t: Tensor) throws -> Tensor {
        let c = try Tensor(allocating: t.dataType, shape: t.shape)
        c.mutableBytes.copyMemory(from: t.rawBytes)
        return c
    }
}

/// The bounded cache of `ShapePlan`s of one `Plan`, keyed by the input-shape signature. When full,
/// the oldest signature is dropped. Locked; shared by all runs of the plan.
final class ShapePlanCache: Sendable {
    let capacity: Int
    private let state = Mutex<(plans: [[Int]: ShapePlan], order: [[Int]])>(([:], []))

    init(capacity: Int) { self.capacity = capacity }

    func plan(for key: [Int]) -> ShapePlan? { state.withLock { $0.plans[key] } }

    func insert(_ plan: ShapePlan, for key: [Int]) {
        state.withLock { s in
            if s.plans.updateValue(plan, forKey: key) != nil { return }
            s.order.append(key)
            while s.order.count > capacity { s.plans[s.order.removeFirst()] = nil }
        }
    }

    var count: Int { state.withLock { $0.plans.count } }
    /// Bytes of the cached plans' arenas alive now.
    var arenaBytesHeld: Int { state.withLock { $0.plans.values.reduce(0) { $0 + $1.arenaBytesHeld } } }
    var keys: [[Int]] { state.withLock { $0.order } }
}
