import Synchronization
import Tensors

/// Running a large batch as slices of a few images: when a shape plan's values for the whole batch
/// are larger than the caches (mobilenet_v2 at batch 32: 250 MB of arena, where one image's
/// values fit in L3), every layer streams its input and output from memory, and each extra pass
/// (bias fill, activation, padded copies) costs a trip to DRAM. Running the plan image by image
/// keeps each layer's values in cache (mobilenet_v2 costs 1.4x per image at batch 32 what it
/// does at batch 1). With a thread budget above one, the slices run side by side, one thread each,
/// instead of splitting each layer between the threads.
///
/// Only for graphs where the batch can be cut: the shape plan's analysis (`batchRows`) proves,
/// step by step, that row i of every output depends only on row i of the inputs (convolutions,
/// pooling, normalisation, reductions over other axes, elementwise ops with constants broadcast
/// along other axes, Gemm/MatMul
/// on constant weights, reshapes that keep axis 0, transposes and concatenations that leave it
/// alone). Anything else (an unknown operator, a reduction over the batch, a constant shaped by
/// the batch size) runs the batch whole, as before. Immutable; built with the shape plan.
struct BatchSplit: Sendable {
    /// Rows of the whole batch.
    let batch: Int
    /// Most rows per slice.
    let rows: Int
    /// Each graph output's type and shape for the whole batch.
    let outputs: [(name: String, type: DataType, shape: [Int])]

    /// A batch whose arena is above this runs in slices: about half this VM's 32 MiB L3, so that
    /// one slice's values and the weights stay in it. A constant rather than
    /// `sysconf(_SC_LEVEL3_CACHE_SIZE)`: on AMD EPYC that reports the whole socket's L3 (320 MB on
    /// this VM) while a core shares only its CCD's 32 MB, and the split would never happen.
    static let splitAboveBytes = 16 << 20
    /// A slice's arena aimed at: a layer's input and output of one slice then fit in L2 and L3.
    static let sliceBytes = 4 << 20

    /// The split of a batch of `batch` rows whose shape plan has an arena of `arenaBytes`, or nil
    /// when the batch runs whole.
    static func plan(
        batch: Int, arenaBytes: Int, outputs: [(name: String, type: DataType, shape: [Int])]
    ) -> BatchSplit? {
        guard batch > 1, arenaBytes > splitAboveBytes else { return nil }
        let perRow = max(1, arenaBytes / batch)
        let rows = max(1, min(batch / 2, sliceBytes / perRow))
        return BatchSplit(batch: batch, rows: rows, outputs: outputs)
    }

    /// Number of slices for a thread budget of `threads`: enough for `rows`, rounded up to a
    /// multiple of the budget so every thread gets as many (at most one per row).
    func count(threads: Int) -> Int {
        let least = (batch + rows - 1) / rows
        let t = max(1, threads)
        return min(batch, (least + t - 1) / t * t)
    }

    /// Rows of slice `i` of `count` (sizes differ by at most one row).
    func range(_ i: Int, of count: Int) -> Range<Int> { (batch * i / count)..<(batch * (i + 1) / count) }
}

extension Plan {
    /// Runs `feeds` (validated; every input has `split.batch` rows) as slices of rows through the
    /// shape plans of the slices' signatures, each slice on one thread, the slices spread over the
    /// thread budget, and gathers the outputs.
    func run(_ feeds: [String: Tensor], split: BatchSplit, profile: StepProfile? = nil) throws -> [String: Tensor] {
        var outputs: [String: Tensor] = [:]
        for o in split.outputs { outputs[o.name] = try Tensor(allocating: o.type, shape: o.shape) }
        let failure = Mutex<(any Error)?>(nil)
        let results = outputs
        let count = split.count(threads: BLAS.threads)
        Parallel.forEach(count, costPerItem: 1 << 30) { slices in
            BLAS.withThreads(1) {
                for i in slices {
                    if failure.withLock({ $0 != nil }) { return }
                    do {
                        try runSlice(
                            feeds, rows: split.range(i, of: count), batch: split.batch, into: results, profile: profile)
                    } catch {
                        failure.withLock { $0 = $0 ?? error }
                        return
                    }
                }
            }
        }
        if let error = failure.withLock({ $0 }) { throw error }
        return outputs
    }

    /// Runs rows `rows` of every input (views, no copy) and copies the outputs into `outputs`.
    private func runSlice(
        _ feeds: [String: Tensor], rows: Range<Int>, batch: Int, into outputs: [String: Tensor], profile: StepProfile?
    ) throws {
        var slice: [String: Tensor] = [:]
        for (name, t) in feeds { slice[name] = Self.rows(t, rows, of: batch) }
        let key = signature(slice)
        let results: [String: Tensor]
        if let plan = shapePlans.plan(for: key) {
            results = try plan.run(slice, profile: profile)
        } else {
            let (plan, first) = try ShapePlan.build(self, feeds: slice, mayFormSplit: false)
            shapePlans.insert(plan, for: key)
            results = first
        }
        for (name, whole) in outputs {
            let part = results[name]!
            let expected = Self.rows(whole, rows, of: batch)
            guard part.dataType == whole.dataType, part.shape == expected.shape else {
                throw EngineError.executionFailed(
                    node: name,
                    message: "a slice of the batch computed \(part.dataType.v2Name) \(part.shape) for output '\(name)' "
                        + "where \(expected.shape) was expected; this is an engine bug, please report it")
            }
            UnsafeMutableRawBufferPointer(mutating: expected.rawBytes).copyMemory(from: part.rawBytes)
        }
    }

    /// Rows `rows` of `t` (whose axis 0 has `batch` rows), as a view of its storage.
    static func rows(_ t: Tensor, _ rows: Range<Int>, of batch: Int) -> Tensor {
        let rowBytes = t.byteCount / batch
        return Tensor(
            dataType: t.dataType, shape: [rows.count] + t.shape.dropFirst(), storage: t.storage,
            byteOffset: t.byteOffset + rows.lowerBound * rowBytes)
    }
}

extension ShapePlan {
    /// The batch size when this signature's steps keep the rows of axis 0 apart (row i of every
    /// output depends only on row i of every input), else nil. `constant` marks values fixed for
    /// the signature, `batchSized` those of them computed from a shape that includes the batch
    /// (allowed only as a Reshape's target shape: a slice's plan computes its own).
    static func batchRows(
        _ plan: Plan, feeds: [String: Tensor], steps: [Plan.Step], shapes: [[Int]], constant: [Bool],
        batchSized: [Bool], values: [Tensor?]
    ) -> Int? {
        guard let first = plan.inputBindings.first, let batch = feeds[first.info.name]?.shape.first, batch > 1 else {
            return nil
        }
        for binding in plan.inputBindings {
            // A declared fixed batch dimension (or none) cannot be cut.
            guard let shape = feeds[binding.info.name]?.shape, shape.first == batch,
                let declared = binding.info.shape?.first, declared.value == nil
            else { return nil }
        }
        var rows = [Bool](repeating: false, count: shapes.count)
        for binding in plan.inputBindings { rows[binding.slot] = true }
        // A constant that does not meet the batch axis: fixed for any batch, and of lower rank than
        // `rank` or of size 1 along axis 0 (broadcast along the other axes only).
        func broadcastConstant(_ s: Int, rank: Int) -> Bool {
            constant[s] && !batchSized[s] && (shapes[s].count < rank || shapes[s].first == 1)
        }
        func fixedConstant(_ s: Int) -> Bool { s < 0 || (constant[s] && !batchSized[s]) }
        for step in steps {
            let ins = step.inputs
            let x = ins.first ?? -1
            guard x >= 0 || step.batchRows == .broadcasting else { return nil }
            let xRows = x >= 0 && rows[x]
            let outs = step.outputs.filter { $0 >= 0 }
            guard !outs.isEmpty, outs.allSatisfy({ shapes[$0].first == batch }) else { return nil }
            let rank = shapes[outs[0]].count
            let ok: Bool
            switch step.batchRows {
            case .rowwise:
                // MaxPool's Indices count from the start of the whole batch: a slice's would not; a
                // training-mode BatchNormalization takes its statistics from the whole batch.
                ok = xRows && ins.dropFirst().allSatisfy(fixedConstant) && (step.kernel as? PoolKernel)?.indices != true
                    && (step.kernel as? BatchNormalizationKernel)?.training != true
            case .broadcasting:
                // Legacy axis-aligned broadcasting (opsets 1-6) may index B by row: kept whole.
                ok = (step.kernel as? BinaryKernel)?.legacyAxis == nil && ins.allSatisfy { s in
                    s >= 0 && (rows[s] ? shapes[s].count == rank : broadcastConstant(s, rank: rank))
                } && ins.contains { $0 >= 0 && rows[$0] }
            case .reshaping:
                ok = xRows && ins.dropFirst().allSatisfy { $0 < 0 || constant[$0] }
            case .gemm:
                ok = xRows && (step.kernel as? GemmKernel)?.transA == false
                    && ins.dropFirst().allSatisfy { s in s < 0 || broadcastConstant(s, rank: 2) }
            case .matMul:
                let w = ins.count > 1 ? ins[1] : -1
                let aRank = x >= 0 ? shapes[x].count : 0
                if w < 0 {
                    ok = xRows  // absorbed: constant 2-D weights
                } else if rows[w] {
                    ok = xRows && aRank >= 3 && shapes[w].count == aRank
                } else {
                    ok = xRows && aRank >= 2 && constant[w] && !batchSized[w]
                        && (shapes[w].count <= 2 || shapes[w].count < aRank || shapes[w].first == 1)
                }
            case .reduce:
                let axes = (step.kernel as? ReduceKernel).flatMap { kernel in
                    try? kernel.axes(ins.map { $0 < 0 ? nil : values[$0] }, rank: shapes[x].count)
                }
                ok = xRows && ins.dropFirst().allSatisfy(fixedConstant) && axes?.contains(0) == false
            case .transpose:
                ok = xRows && (step.kernel as? TransposeKernel)?.perm?.first == 0
            case .concat:
                let axis = (step.kernel as? ConcatKernel)?.axis ?? 0
                ok = (axis < 0 ? axis + rank : axis) != 0 && ins.allSatisfy { $0 >= 0 && rows[$0] }
            case .axisNotZero:
                if let softmax = step.kernel as? SoftmaxKernel {
                    ok = xRows && (softmax.axis < 0 ? softmax.axis + rank : softmax.axis) != 0
                } else if let norm = step.kernel as? LayerNormalizationKernel {
                    ok = xRows && (norm.axis < 0 ? norm.axis + rank : norm.axis) != 0
                        && ins.dropFirst().allSatisfy(fixedConstant)
                } else {
                    ok = false  // a kernel this rule does not know: keep the batch whole
                }
            case .mixes:
                ok = false
            }
            guard ok else { return nil }
            for s in outs { rows[s] = true }
        }
        guard plan.outputBindings.allSatisfy({ rows[$0.slot] }) else { return nil }
        return batch
    }
}
