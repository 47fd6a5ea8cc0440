import Tensors

/// FlexAttention (ai.onnx.preview, opset 1): scaled dot-product attention over rank-4 Q [B, Hq, L, E],
/// K [B, Hkv, S, E] and V [B, Hkv, S, Ev] with two optional modifier subgraphs, as PyTorch's
/// flex_attention: scores = Q K^T * scale (default 1 / sqrt(E)), then `score_mod(scores)`, Softmax
/// over S, then `prob_mod(probs)`, then probs V. Query head h reads K/V head h / (Hq / Hkv) (GQA).
/// Each modifier runs once per call on the whole [B, Hq, L, S] tensor, with the outer-scope values
/// it reads. float32 and float64; computes in the inputs' type (`softmax_precision` FLOAT, DOUBLE or
/// absent: a float32 call asking for DOUBLE still computes in float32).
struct FlexAttentionKernel: Kernel {
    let scale: Float?
    let scoreMod: Plan?
    let probMod: Plan?
    let outer: [String]
    let formal: Int

    init(context: NodeContext) throws {
        formal = ControlFlow.formalInputs(context.node)
        guard formal == 3 else { throw context.invalid("takes exactly the inputs Q, K and V, got \(formal)") }
        scale = try context.float("scale")
        if let precision = try context.int("softmax_precision"),
            ![DataType.float32, .float64].contains(where: { Int($0.rawValue) == precision })
        {
            throw context.unsupported()
        }
        outer = ControlFlow.outerNames(context.node)
        func modifier(_ name: String) throws -> Plan? {
            guard case .graph(let graph)? = context.node.attributes[name] else { return nil }
            guard graph.inputs.count == 1, graph.outputs.count == 1 else {
                throw context.invalid("\(name) must have exactly one input and one output")
            }
            return try ControlFlow.plan(of: graph, context: context)
        }
        scoreMod = try modifier("score_mod")
        probMod = try modifier("prob_mod")
    }

    func run(_ inputs: [Tensor?]) throws -> [Tensor] {
        let q = try Check.input(inputs, 0, "Q")
        let k = try Check.input(inputs, 1, "K")
        let v = try Check.input(inputs, 2, "V")
        for (t, name) in [(q, "Q"), (k, "K"), (v, "V")] {
            try Check.dataType(t, [q.dataType == .float64 ? .float64 : .float32], name)
            guard t.rank == 4 else { throw KernelError.shape("FlexAttention needs rank-4 \(name), got \(t.shape)") }
        }
        return q.dataType == .float64 ? try run(q, k, v, inputs, Double.self) : try run(q, k, v, inputs, Float.self)
    }

    private func run<T: BLASElement>(_ q: Tensor, _ k: Tensor, _ v: Tensor, _ inputs: [Tensor?], _: T.Type) throws -> [Tensor] {
        let (batch, qHeads, l, e) = (q.shape[0], q.shape[1], q.shape[2], q.shape[3])
        let (kvHeads, s, ev) = (k.shape[1], k.shape[2], v.shape[3])
        guard k.shape[0] == batch, v.shape[0] == batch, k.shape[3] == e, v.shape[1] == kvHeads, v.shape[2] == s,
            kvHeads > 0, qHeads % kvHeads == 0
        else {
            throw KernelError.shape(
                "FlexAttention: Q \(q.shape), K \(k.shape) and V \(v.shape) do not fit [B, Hq, L, E], [B, Hkv, S, E], "
                    + "[B, Hkv, S, Ev] with Hq a multiple of Hkv")
        }
        let group = qHeads / kvHeads
        let alpha = scale.map { T($0) } ?? 1 / T(e).squareRoot()
        var scores = try Tensor(allocating: T.dataType, shape: [batch, qHeads, l, s])
        let qp = q.elements(as: T.self).baseAddress
        let kp = k.elements(as: T.self).baseAddress
        if let qp, let kp, scores.count > 0 {
            let sp = scores.mutableElements(as: T.self).baseAddress!
            for b in 0..<batch {
                for h in 0..<qHeads {
                    let kv = b * kvHeads + h / group
                    T.gemm(
                        transA: false, transB: true, m: l, n: s, k: e, a: qp + (b * qHeads + h) * l * e,
                        lda: e, b: kp + kv * s * e, ldb: e, c: sp + (b * qHeads + h) * l * s, ldc: s)
                }
            }
            for i in 0..<scores.count { sp[i] *= alpha }
        }
        if let scoreMod { scores = try modify(scores, with: scoreMod, "score_mod", inputs) }
        var probs = try Tensor(allocating: T.dataType, shape: scores.shape)
        if scores.count > 0 {
            let src = scores.elements(as: T.self).baseAddress!
            let dst = probs.mutableElements(as: T.self).baseAddress!
            for row in 0..<(batch * qHeads * l) {
                Self.softmaxRow(src + row * s, dst + row * s, s)
            }
        }
        if let probMod { probs = try modify(probs, with: probMod, "prob_mod", inputs) }
        let y = try Tensor(allocating: T.dataType, shape: [batch, qHeads, l, ev])
        if y.count > 0, let vp = v.elements(as: T.self).baseAddress {
            let pp = probs.elements(as: T.self).baseAddress!
            let yp = y.mutableElements(as: T.self).baseAddress!
            for b in 0..<batch {
                for h in 0..<qHeads {
                    let kv = b * kvHeads + h / group
                    T.gemm(
                        transA: false, transB: false, m: l, n: ev, k: s, a: pp + (b * qHeads + h) * l * s,
                        lda: s, b: vp + kv * s * ev, ldb: ev, c: yp + (b * qHeads + h) * l * ev, ldc: ev)
                }
            }
        }
        return [y]
    }

    /// Softmax of one row of `n`: the vector loops for float32, the same steps in scalar for float64.
    private static func softmaxRow<T: BLASElement>(_ src: UnsafePointer<T>, _ dst: UnsafeMutablePointer<T>, _ n: Int) {
        if T.self == Float.self {
            let (s, d) = (UnsafeRawPointer(src).assumingMemoryBound(to: Float.self), UnsafeMutableRawPointer(dst).assumingMemoryBound(to: Float.self))
            SoftmaxKernel.softmaxRow(s, d, n, max: SoftmaxKernel.rowMax(s, n))
            return
        }
        var m = -T.infinity
        for i in 0..<n where src[i] > m { m = src[i] }
        var sum: T = 0
        for i in 0..<n {
            dst[i] = (src[i] - m).exponential()
            sum += dst[i]
        }
        for i in 0..<n { dst[i] /= sum }
    }

    /// `x` through a modifier subgraph, which must keep its type and shape.
    private func modify(_ x: Tensor, with plan: Plan, _ name: String, _ inputs: [Tensor?]) throws -> Tensor {
        let feeds = try ControlFlow.feeds(plan, formal: [x], outerNames: outer, outerValues: inputs[formal...])
        let out = try ControlFlow.ordered(try plan.run(feeds), plan)[0]
        guard out.dataType == x.dataType, out.shape == x.shape else {
            throw KernelError.shape(
                "FlexAttention's \(name) returned \(out.dataType.v2Name) \(out.shape); it must keep \(x.dataType.v2Name) \(x.shape)")
        }
        return out
    }
}
