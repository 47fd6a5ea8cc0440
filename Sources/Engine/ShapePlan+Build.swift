import Tensors

extension ShapePlan {
    /// Runs `plan` on `feeds` (validated), recording types and shapes, and returns the shape plan of
    /// this signature together with the run's outputs. `mayFormSplit`: whether the plan may run its
    /// batch in slices (`BatchSplit`; false for the plans of the slices themselves).
    static func build(
        _ plan: Plan, feeds: [String: Tensor], mayFormSplit: Bool = true
    ) throws -> (ShapePlan, [String: Tensor]) {
        let count = plan.slotNames.count
        var slots = plan.initialSlots
        var constant = slots.map { $0 != nil }
        var shapeKnown = constant
        // Constants of this signature computed from the shape of a run-time value (so from the batch size).
        var batchSized = [Bool](repeating: false, count: count)
        for binding in plan.inputBindings {
            slots[binding.slot] = feeds[binding.info.name]
            shapeKnown[binding.slot] = true
        }
        var types = [DataType?](repeating: nil, count: count)
        var shapes = [[Int]](repeating: [], count: count)
        var kept: [Plan.Step] = []
        var scratchCounts: [Int] = []  // per kept step
        var args: [Tensor?] = []
        for step in plan.steps {
            args = step.inputs.map { $0 < 0 ? nil : slots[$0] }
            let results: [Tensor]
            do {
                results = try step.kernel.run(args)
            } catch let error as KernelError {
                throw Plan.engineError(error, step: step)
            } catch let error as MemoryLimitError {
                throw EngineError.memoryLimit(error)
            }
            for (i, s) in step.outputs.enumerated() where s >= 0 && i < results.count {
                slots[s] = results[i]
                types[s] = results[i].dataType
                shapes[s] = results[i].shape
            }
            let reads = step.inputs.filter { $0 >= 0 }
            let fold =
                !step.random && reads.allSatisfy { constant[$0] }
                || ((step.opType == "Shape" || step.opType == "Size") && reads.first.map { shapeKnown[$0] } == true)
            if fold {
                let sized = reads.contains { batchSized[$0] } || reads.contains { !constant[$0] }
                for s in step.outputs where s >= 0 {
                    constant[s] = true
                    shapeKnown[s] = true
                    batchSized[s] = sized
                }
            } else {
                kept.append(step)
                scratchCounts.append((step.kernel as? any ScratchKernel)?.scratchCount(args) ?? 0)
                let known: Bool
                switch step.outputShape {
                case .fromInputShapes:
                    known = reads.allSatisfy { shapeKnown[$0] }
                case .fromFirstShapeAndValues:
                    known = reads.first.map { shapeKnown[$0] } == true && reads.dropFirst().allSatisfy { constant[$0] }
                case .fromValues:
                    known = false  // unless all its inputs are constants, and then it folded above
                }
                for s in step.outputs where s >= 0 { shapeKnown[s] = known }
            }
            for s in step.release where !constant[s] { slots[s] = nil }
        }
        var outputs: [String: Tensor] = [:]
        for (name, slot) in plan.outputBindings {
            guard let t = slots[slot] else {
                throw EngineError.executionFailed(node: name, message: "graph output '\(name)' was not computed")
            }
            outputs[name] = t
        }

        // Constants of this plan: the source's plus what folded, where a kept step or an output reads it.
        var read = [Bool](repeating: false, count: count)
        for step in kept { for s in step.inputs where s >= 0 { read[s] = true } }
        for (_, s) in plan.outputBindings { read[s] = true }
        var initial = [Tensor?](repeating: nil, count: count)
        for s in 0..<count where constant[s] && read[s] { initial[s] = slots[s] }

        let graphOutputs = Set(plan.outputBindings.map(\.slot))
        let layout = ArenaLayout(
            steps: kept, types: types, shapes: shapes, shapeKnown: shapeKnown, constant: constant,
            keep: graphOutputs)
        // Scratch (im2col) after the values, shared by the steps that use it (they run one at a time).
        let scratchOffset = layout.totalBytes
        let steps = kept.enumerated().map { k, step in
            let out = layout.arenaOutput[k]
            let s = out ?? -1
            return Step(
                base: step, buffered: out == nil ? nil : step.kernel as? any BufferedKernel,
                outputType: s >= 0 ? types[s] ?? .float32 : .float32, outputShape: s >= 0 ? shapes[s] : [],
                offset: s >= 0 ? layout.offset[s] : -1, release: layout.release[k],
                scratch: out != nil && scratchCounts[k] > 0 ? step.kernel as? any ScratchKernel : nil)
        }
        let scratchBytes = steps.indices.filter { steps[$0].scratch != nil }.map { scratchCounts[$0] * 4 }.max() ?? 0
        let arenaBytes = layout.totalBytes + scratchBytes
        var split: BatchSplit? = nil
        if mayFormSplit, arenaBytes > BatchSplit.splitAboveBytes,
            let batch = batchRows(
                plan, feeds: feeds, steps: kept, shapes: shapes, constant: constant, batchSized: batchSized,
                values: slots)
        {
            split = BatchSplit.plan(
                batch: batch, arenaBytes: arenaBytes,
                outputs: plan.outputBindings.map { ($0.name, types[$0.slot] ?? .float32, shapes[$0.slot]) })
        }
        let shapePlan = ShapePlan(
            steps: steps, initialSlots: initial, source: plan, allocations: layout.allocations,
            arenaBytes: arenaBytes, scratchOffset: scratchOffset,
            foldedSteps: plan.steps.count - kept.count, split: split)
        return (shapePlan, outputs)
    }
}

/// Offsets of arena values: liveness over the kept steps, then greedy first-fit.
struct ArenaLayout {
    static let alignment = 64
    /// Per step: the slot of its output when that output lives in the arena.
    var arenaOutput: [Int?]
    var offset: [Int]
    var release: [[Int]]
    var allocations: [ShapePlan.Allocation] = []
    var totalBytes = 0

    init(steps: [Plan.Step], types: [DataType?], shapes: [[Int]], shapeKnown: [Bool], constant: [Bool], keep: Set<Int>) {
        let count = types.count
        arenaOutput = steps.map { step in
            guard step.kernel is any BufferedKernel, let s = step.outputs.first, s >= 0,
                step.outputs.dropFirst().allSatisfy({ $0 < 0 }), shapeKnown[s], types[s] != nil, !keep.contains(s)
            else { return nil }
            return s
        }
        // Last use of each slot, extended through steps that may return a view of their input (any
        // kernel that does not write into the arena: Reshape, Flatten, Squeeze, ...).
        var defined = [Int](repeating: -1, count: count)
        var lastUse = [Int](repeating: -1, count: count)
        for (k, step) in steps.enumerated() {
            for s in step.outputs where s >= 0 {
                defined[s] = k
                lastUse[s] = max(lastUse[s], k)
            }
            for s in step.inputs where s >= 0 { lastUse[s] = max(lastUse[s], k) }
        }
        for k in stride(from: steps.count - 1, through: 0, by: -1) where arenaOutput[k] == nil {
            let end = steps[k].outputs.filter { $0 >= 0 }.map { keep.contains($0) ? Int.max : lastUse[$0] }.max() ?? -1
            for s in steps[k].inputs where s >= 0 { lastUse[s] = max(lastUse[s], end) }
        }
        release = [[Int]](repeating: [], count: steps.count)
        for s in 0..<count where lastUse[s] >= 0 && lastUse[s] < steps.count && !keep.contains(s) && !constant[s] {
            release[lastUse[s]].append(s)
        }
        offset = [Int](repeating: -1, count: count)
        var live: [ShapePlan.Allocation] = []  // sorted by offset
        for (k, slot) in arenaOutput.enumerated() {
            guard let slot else { continue }
            live.removeAll { $0.last < k }
            let bytes = Tensor.elementCount(shapes[slot]) * types[slot]!.byteSize
            let size = max(Self.alignment, (bytes + Self.alignment - 1) / Self.alignment * Self.alignment)
            var cursor = 0
            for a in live {
                if a.offset - cursor >= size { break }
                cursor = max(cursor, a.offset + a.size)
            }
            let allocation = ShapePlan.Allocation(
                slot: slot, offset: cursor, size: size, first: defined[slot], last: max(lastUse[slot], k))
            live.insert(allocation, at: live.firstIndex { $0.offset > cursor } ?? live.endIndex)
            allocations.append(allocation)
            offset[slot] = cursor
            totalBytes = max(totalBytes, cursor + size)
        }
    }
}
