import Synchronization
import Tensors

/// Attention (opsets 23-25): scaled dot-product attention of Q with K and V, float32.
///
/// - Q, K, V are 4-D `(batch, heads, sequence, head size)` or 3-D `(batch, sequence, heads * head size)`
///   with the `q_num_heads` / `kv_num_heads` attributes; more query heads than key/value heads is
///   grouped-query (or multi-query) attention, query head h reading key/value head h / (Hq / Hkv).
/// - `attn_mask` (bool: true attends; float32: added to the scores) broadcasts right-aligned to
///   `(batch, q heads, q length, total length)`; a shorter last axis is padded with masked keys.
/// - `is_causal` is bottom-right aligned: query i attends key j iff j <= i + offset, where offset is
///   the past length (`past_key`), or `nonpad_kv_seqlen[b] - q length` (opset 24's external cache),
///   else 0. Opset 25's `left_window_size` / `right_window_size` bound j - (i + offset) the same way.
/// - `past_key` / `past_value` are prepended to K and V; `present_key` / `present_value` return them.
/// - `softcap` > 0 maps the scores to softcap * tanh(score / softcap) before the mask.
/// - The optional 4th output is the scores raw (`qk_matmul_output_mode` 0), after softcap (1), after
///   the mask (2) or after softmax (3).
/// - A query row that no key may attend gives zero probabilities and a zero output row.
/// - `softmax_precision` is accepted for every type the spec allows; the softmax runs in float32.
///
/// Per (batch, head) and block of query rows: the scores Q·K^T and the product P·V are BLAS GEMMs
/// over the columns that some row of the block may attend (causal, window and `nonpad_kv_seqlen`
/// limits skip the rest), the items split over the thread budget.
struct AttentionKernel: BufferedKernel {
    let qHeadsAttribute: Int?
    let kvHeadsAttribute: Int?
    let scale: Float?
    let isCausal: Bool
    let softcap: Float
    let qkMode: Int
    let leftWindow: Int
    let rightWindow: Int
    let wantsPresent: Bool
    let wantsScores: Bool
    /// The most query rows per work item (`rowBlock`); tests lower it to cross blocks on small shapes.
    let maxRowBlock: Int

    /// Query rows per work item: up to `maxRowBlock` (K and V are packed by each GEMM call, so
    /// fewer, larger blocks pack them fewer times), fewer when the keys are many, so that a block's
    /// scores stay within 1M floats (4 MiB), and at least 16 (or `maxRowBlock` if smaller).
    func rowBlock(_ g: AttentionGeometry) -> Int {
        max(min(16, maxRowBlock), min(maxRowBlock, g.qLength, (1 << 20) / max(g.total, 1)))
    }

    init(context: NodeContext, maxRowBlock: Int = 256) throws {
        self.maxRowBlock = max(1, maxRowBlock)
        try context.requireInputs(3, context.opset >= 24 ? 7 : 6)
        qHeadsAttribute = try context.int("q_num_heads")
        kvHeadsAttribute = try context.int("kv_num_heads")
        for (name, value) in [("q_num_heads", qHeadsAttribute), ("kv_num_heads", kvHeadsAttribute)] {
            if let value, value <= 0 { throw context.invalid("has \(name) \(value); it must be positive") }
        }
        scale = try context.float("scale")
        isCausal = try context.int("is_causal", default: 0) != 0
        softcap = try context.float("softcap", default: 0)
        qkMode = try context.int("qk_matmul_output_mode", default: 0)
        guard (0...3).contains(qkMode) else {
            throw context.invalid("has qk_matmul_output_mode \(qkMode); it must be 0, 1, 2 or 3")
        }
        if let precision = try context.int("softmax_precision"), ![1, 10, 11, 16].contains(precision) {
            throw context.invalid(
                "has softmax_precision \(precision); it must be 1 (FLOAT), 10 (FLOAT16), 11 (DOUBLE) or 16 (BFLOAT16)")
        }
        if context.opset < 25, context.has("left_window_size") || context.has("right_window_size") {
            throw context.invalid("has window attributes, which Attention has from opset 25 (the model's is \(context.opset))")
        }
        leftWindow = try context.int("left_window_size", default: -1)
        rightWindow = try context.int("right_window_size", default: -1)
        guard leftWindow >= -1, rightWindow >= -1 else {
            throw context.invalid("has a window size below -1 (left \(leftWindow), right \(rightWindow))")
        }
        if context.hasInput(4) != context.hasInput(5) {
            throw context.invalid("has only one of past_key and past_value; they go together")
        }
        if context.hasInput(6) && context.hasInput(4) {
            throw context.invalid("has both nonpad_kv_seqlen and a past key/value cache; they cannot be combined")
        }
        wantsPresent = context.hasOutput(1) || context.hasOutput(2)
        wantsScores = context.hasOutput(3)
    }

    func run(_ inputs: [Tensor?], into output: Tensor?) throws -> [Tensor] {
        let q = try Check.input(inputs, 0, "Q")
        let k = try Check.input(inputs, 1, "K")
        let v = try Check.input(inputs, 2, "V")
        for (t, name) in [(q, "Q"), (k, "K"), (v, "V")] { try Check.dataType(t, [.float32], name) }
        let pastKey = inputs.count > 4 ? inputs[4] : nil
        let pastValue = inputs.count > 5 ? inputs[5] : nil
        let nonpad = inputs.count > 6 ? inputs[6] : nil
        let g = try AttentionGeometry(
            q: q, k: k, v: v, pastKey: pastKey, pastValue: pastValue, qHeads: qHeadsAttribute,
            kvHeads: kvHeadsAttribute)
        let mask = try AttentionMask(inputs.count > 3 ? inputs[3] : nil, g)
        let lengths = try nonpad.map { try Self.nonpadLengths($0, g) }

        let y = try Output.tensor(output, .float32, g.outputShape)
        // K and V as read by the products: the inputs, or past + new when there is a cache.
        let keys = try g.present(past: pastKey, new: k, headSize: g.headSize, build: pastKey != nil || (wantsPresent && g.threeD))
        let values = try g.present(past: pastValue, new: v, headSize: g.vHeadSize, build: pastKey != nil || (wantsPresent && g.threeD))
        let scores = wantsScores ? try Tensor(allocating: .float32, shape: [g.batch, g.qHeads, g.qLength, g.total]) : nil

        var rowBlock = self.rowBlock(g)
        // Fewer (batch, head) pairs than threads (one long prompt on few heads): smaller row
        // blocks, so that every thread has one.
        let pairs = g.batch * g.qHeads
        if pairs > 0, pairs < BLAS.threads {
            let perPair = (BLAS.threads + pairs - 1) / pairs
            rowBlock = max(min(16, maxRowBlock), min(rowBlock, (g.qLength + perPair - 1) / perPair))
        }
        let blocks = (g.qLength + rowBlock - 1) / rowBlock
        let items = g.batch * g.qHeads * blocks
        if items > 0 {
            let slots = max(1, min(BLAS.threads, items))
            // Per slot: a block's scores and its rows' normalising factors.
            let slotSize = rowBlock * (max(g.total, 1) + 1)
            let scratch = try Tensor(allocating: .float32, shape: [slots, slotSize])
            let context = AttentionRows(
                g: g, mask: mask, lengths: lengths, scale: scale ?? 1 / Float(g.headSize).squareRoot(),
                isCausal: isCausal, softcap: softcap, qkMode: qkMode, leftWindow: leftWindow,
                rightWindow: rightWindow)
            let pq = q.elements(as: Float.self).baseAddress!
            let pk = keys.source.elements(as: Float.self).baseAddress
            let pv = values.source.elements(as: Float.self).baseAddress
            let py = y.mutableElements(as: Float.self).baseAddress!
            let ps = scores?.mutableElements(as: Float.self).baseAddress
            let pScratch = scratch.mutableElements(as: Float.self).baseAddress!
            let nextSlot = Atomic<Int>(0)
            let cost = 2 * min(rowBlock, g.qLength) * g.total * (g.headSize + g.vHeadSize) + 1
            Parallel.forEach(items, costPerItem: cost) { range in
                let slot = nextSlot.wrappingAdd(1, ordering: .relaxed).oldValue
                let buffer = pScratch + slot * slotSize
                for item in range {
                    let block = item % blocks
                    let head = (item / blocks) % g.qHeads
                    let batch = item / (blocks * g.qHeads)
                    context.run(
                        batch: batch, head: head, rows: (block * rowBlock)..<min(g.qLength, (block + 1) * rowBlock),
                        q: pq, k: pk, keyLayout: keys.layout, v: pv, valueLayout: values.layout, y: py,
                        scores: ps, scratch: buffer)
                }
            }
        }
        var results = [y]
        if wantsPresent || wantsScores {
            // Unrequested positions before the scores hold an empty placeholder.
            let none = Tensor(zeros: .float32, shape: [0])
            results.append(wantsPresent ? keys.source.reshaped(g.presentShape(g.headSize)) : none)
            results.append(wantsPresent ? values.source.reshaped(g.presentShape(g.vHeadSize)) : none)
        }
        if let scores { results.append(scores) }
        return results
    }

    /// `nonpad_kv_seqlen` as one length per batch row, clamped to 0...total (a larger value masks nothing
    /// more, a negative one everything; the causal offset uses the value as given).
    private static func nonpadLengths(_ t: Tensor, _ g: AttentionGeometry) throws -> [Int] {
        try Check.dataType(t, [.int64], "nonpad_kv_seqlen")
        guard t.count == g.batch, t.rank == 1 else {
            throw KernelError.shape("nonpad_kv_seqlen has shape \(t.shape); it must be [\(g.batch)] (one length per batch row)")
        }
        return t.elements(as: Int64.self).map { Int(max(-(1 << 40), min(1 << 40, $0))) }
    }
}

/// The sizes and memory layout of one Attention call, from the shapes of Q, K, V and the cache.
struct AttentionGeometry: Sendable {
    /// Element strides of a (batch, head, row) position in a tensor, the row's values contiguous.
    struct Layout: Sendable {
        let batch: Int
        let head: Int
        let row: Int
        func offset(_ b: Int, _ h: Int, _ i: Int) -> Int { b * batch + h * head + i * row }
    }

    let threeD: Bool
    let batch: Int
    let qHeads: Int
    let kvHeads: Int
    let qLength: Int
    let kvLength: Int
    let pastLength: Int
    let total: Int
    let headSize: Int
    let vHeadSize: Int
    let query: Layout
    let output: Layout
    let outputShape: [Int]

    init(q: Tensor, k: Tensor, v: Tensor, pastKey: Tensor?, pastValue: Tensor?, qHeads qAttribute: Int?, kvHeads kvAttribute: Int?) throws {
        guard q.rank == k.rank, q.rank == v.rank, q.rank == 3 || q.rank == 4 else {
            throw KernelError.shape("Attention needs Q, K, V all 3-D or all 4-D, got \(q.shape), \(k.shape), \(v.shape)")
        }
        threeD = q.rank == 3
        batch = q.shape[0]
        guard k.shape[0] == batch, v.shape[0] == batch else {
            throw KernelError.shape("Attention's Q \(q.shape), K \(k.shape) and V \(v.shape) differ in batch size")
        }
        if threeD {
            guard let qHeads = qAttribute, let kvHeads = kvAttribute else {
                throw KernelError.shape("Attention with 3-D Q, K, V needs the q_num_heads and kv_num_heads attributes")
            }
            guard q.shape[2] % qHeads == 0, k.shape[2] % kvHeads == 0, v.shape[2] % kvHeads == 0 else {
                throw KernelError.shape(
                    "Attention's hidden sizes (Q \(q.shape[2]), K \(k.shape[2]), V \(v.shape[2])) are not multiples of "
                        + "q_num_heads \(qHeads) and kv_num_heads \(kvHeads)")
            }
            self.qHeads = qHeads
            self.kvHeads = kvHeads
            qLength = q.shape[1]
            kvLength = k.shape[1]
            headSize = q.shape[2] / qHeads
            guard k.shape[2] / kvHeads == headSize else {
                throw KernelError.shape("Attention's K head size \(k.shape[2] / kvHeads) differs from Q's \(headSize)")
            }
            vHeadSize = v.shape[2] / kvHeads
            guard v.shape[1] == kvLength else {
                throw KernelError.shape("Attention's K \(k.shape) and V \(v.shape) differ in sequence length")
            }
        } else {
            self.qHeads = q.shape[1]
            self.kvHeads = k.shape[1]
            if let qHeads = qAttribute, qHeads != self.qHeads {
                throw KernelError.shape("Attention's q_num_heads \(qHeads) does not match Q \(q.shape)")
            }
            if let kvHeads = kvAttribute, kvHeads != self.kvHeads {
                throw KernelError.shape("Attention's kv_num_heads \(kvHeads) does not match K \(k.shape)")
            }
            qLength = q.shape[2]
            kvLength = k.shape[2]
            headSize = q.shape[3]
            vHeadSize = v.shape[3]
            guard k.shape[3] == headSize, v.shape[1] == kvHeads, v.shape[2] == kvLength else {
                throw KernelError.shape("Attention's Q \(q.shape), K \(k.shape) and V \(v.shape) do not fit together")
            }
        }
        guard kvHeads > 0, qHeads % kvHeads == 0 else {
            throw KernelError.shape("Attention's \(qHeads) query heads are not a multiple of its \(kvHeads) key/value heads")
        }
        if let pastKey, let pastValue {
            for t in [pastKey, pastValue] { try Check.dataType(t, [.float32], "past_key/past_value") }
            pastLength = pastKey.rank == 4 ? pastKey.shape[2] : -1
            guard pastKey.shape == [batch, kvHeads, pastLength, headSize],
                pastValue.shape == [batch, kvHeads, pastLength, vHeadSize]
            else {
                throw KernelError.shape(
                    "Attention's past_key \(pastKey.shape) and past_value \(pastValue.shape) do not fit "
                        + "[\(batch), \(kvHeads), past length, \(headSize) / \(vHeadSize)]")
            }
        } else {
            pastLength = 0
        }
        total = pastLength + kvLength
        if threeD {
            query = Layout(batch: qLength * qHeads * headSize, head: headSize, row: qHeads * headSize)
            output = Layout(batch: qLength * qHeads * vHeadSize, head: vHeadSize, row: qHeads * vHeadSize)
            outputShape = [batch, qLength, qHeads * vHeadSize]
        } else {
            query = Layout(batch: qHeads * qLength * headSize, head: qLength * headSize, row: headSize)
            output = Layout(batch: qHeads * qLength * vHeadSize, head: qLength * vHeadSize, row: vHeadSize)
            outputShape = [batch, qHeads, qLength, vHeadSize]
        }
        guard Tensor.checkedElementCount([batch, qHeads, qLength, max(total, vHeadSize)]) != nil else {
            throw KernelError.shape("Attention's sizes overflow")
        }
    }

    func presentShape(_ size: Int) -> [Int] { [batch, kvHeads, total, size] }

    /// K or V as the products read it: the input itself (its layout), or when `build` a new
    /// `(batch, kv heads, total, size)` tensor of the past rows followed by the new ones.
    func present(past: Tensor?, new: Tensor, headSize size: Int, build: Bool) throws -> (source: Tensor, layout: Layout) {
        let newLayout =
            threeD
            ? Layout(batch: kvLength * kvHeads * size, head: size, row: kvHeads * size)
            : Layout(batch: kvHeads * kvLength * size, head: kvLength * size, row: size)
        guard build else { return (new, newLayout) }
        let out = try Tensor(allocating: .float32, shape: presentShape(size))
        let layout = Layout(batch: kvHeads * total * size, head: total * size, row: size)
        guard out.count > 0 else { return (out, layout) }
        let d = out.mutableElements(as: Float.self).baseAddress!
        let s = new.elements(as: Float.self).baseAddress
        let p = past?.elements(as: Float.self).baseAddress
        for b in 0..<batch {
            for h in 0..<kvHeads {
                let target = d + layout.offset(b, h, 0)
                if let p, pastLength > 0 {
                    target.update(from: p + (b * kvHeads + h) * pastLength * size, count: pastLength * size)
                }
                guard let s else { continue }
                for i in 0..<kvLength {
                    (target + (pastLength + i) * size).update(from: s + newLayout.offset(b, h, i), count: size)
                }
            }
        }
        return (out, layout)
    }
}
