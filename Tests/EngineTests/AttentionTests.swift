import Foundation
@testable import Engine
import Tensors
import Testing

/// Attention against a direct definition of the spec (every score, the whole bias, the softmax in
/// double precision) on shapes the conformance cases do not reach: several blocks of query rows,
/// grouped heads with a cache, windows and per-row padding that skip columns, and both thread
/// budgets.
@Suite struct AttentionTests {
    struct Case {
        var q: [Int]  // (batch, q heads, q length, head size)
        var kvHeads: Int
        var kvLength: Int
        var past = 0
        var vHeadSize: Int
        var maskShape: [Int]? = nil
        var boolMask = false
        var causal = false
        var softcap: Float = 0
        var scale: Float? = nil
        var left = -1
        var right = -1
        var nonpad: [Int]? = nil
    }

    /// Y (batch, q heads, q length, v head size) and the probabilities (batch, q heads, q length, total).
    static func reference(_ c: Case, q: [Float], k: [Float], v: [Float], pastK: [Float], pastV: [Float], mask: [Float])
        -> (y: [Float], p: [Float])
    {
        let (b, hq, sq, d) = (c.q[0], c.q[1], c.q[2], c.q[3])
        let total = c.past + c.kvLength
        let scale = Double(c.scale ?? 1 / Float(d).squareRoot())
        func key(_ bi: Int, _ g: Int, _ j: Int, _ e: Int, _ size: Int, _ new: [Float], _ old: [Float]) -> Double {
            j < c.past
                ? Double(old[((bi * c.kvHeads + g) * c.past + j) * size + e])
                : Double(new[((bi * c.kvHeads + g) * c.kvLength + j - c.past) * size + e])
        }
        var y = [Float](repeating: 0, count: b * hq * sq * c.vHeadSize)
        var probs = [Float](repeating: 0, count: b * hq * sq * total)
        for bi in 0..<b {
            for h in 0..<hq {
                let g = h / (hq / c.kvHeads)
                for i in 0..<sq {
                    let offset = c.nonpad.map { $0[bi] - sq } ?? c.past
                    var scores = [Double](repeating: -.infinity, count: total)
                    var anyAllowed = false
                    for j in 0..<total {
                        var allowed = true
                        var bias = 0.0
                        if c.causal && j > i + offset { allowed = false }
                        if c.left >= 0 && i + offset - j > c.left { allowed = false }
                        if c.right >= 0 && j - (i + offset) > c.right { allowed = false }
                        if let n = c.nonpad, j >= n[bi] { allowed = false }
                        if let ms = c.maskShape {
                            if j >= ms[ms.count - 1] {
                                allowed = false
                            } else {
                                let m = mask[broadcastFlat([bi, h, i, j], into: ms)]
                                if c.boolMask { allowed = allowed && m != 0 } else { bias = Double(m) }
                            }
                        }
                        if !allowed || bias == -.infinity { continue }
                        anyAllowed = true
                        var s = 0.0
                        for e in 0..<d { s += Double(q[((bi * hq + h) * sq + i) * d + e]) * key(bi, g, j, e, d, k, pastK) }
                        s *= scale
                        if c.softcap > 0 { s = Double(c.softcap) * tanh(s / Double(c.softcap)) }
                        scores[j] = s + bias
                    }
                    guard anyAllowed else { continue }
                    let top = scores.max()!
                    let e = scores.map { exp($0 - top) }
                    let sum = e.reduce(0, +)
                    let row = ((bi * hq + h) * sq + i)
                    for j in 0..<total { probs[row * total + j] = Float(e[j] / sum) }
                    for f in 0..<c.vHeadSize {
                        var acc = 0.0
                        for j in 0..<total { acc += e[j] / sum * key(bi, g, j, f, c.vHeadSize, v, pastV) }
                        y[row * c.vHeadSize + f] = Float(acc)
                    }
                }
            }
        }
        return (y, probs)
    }

    /// Runs the kernel on 4-D inputs (Y, the qk output in mode 3) and compares with `reference`.
    func check(_ c: Case, threads: Int, opset: Int = 25, seed: UInt64 = 1) throws {
        var rng = TestRNG(seed: seed)
        let (b, d) = (c.q[0], c.q[3])
        let q = rng.floats(volume(c.q)).map { $0 * 2 }
        let k = rng.floats(b * c.kvHeads * c.kvLength * d).map { $0 * 2 }
        let v = rng.floats(b * c.kvHeads * c.kvLength * c.vHeadSize)
        let pastK = rng.floats(b * c.kvHeads * c.past * d)
        let pastV = rng.floats(b * c.kvHeads * c.past * c.vHeadSize)
        var mask: [Float] = []
        if let ms = c.maskShape {
            mask = (0..<volume(ms)).map { _ in
                let r = rng.float()
                return c.boolMask ? (r > -0.6 ? 1 : 0) : (r < -0.8 ? -.infinity : r)
            }
        }
        var inputs = ["q", "k", "v", c.maskShape == nil ? "" : "mask"]
        var attributes: [String: Attribute] = ["is_causal": .int(c.causal ? 1 : 0), "qk_matmul_output_mode": .int(3)]
        if c.softcap > 0 { attributes["softcap"] = .float(c.softcap) }
        if let s = c.scale { attributes["scale"] = .float(s) }
        if c.left >= 0 { attributes["left_window_size"] = .int(c.left) }
        if c.right >= 0 { attributes["right_window_size"] = .int(c.right) }
        var tensors: [Tensor?] = [
            Tensor(q, shape: c.q), Tensor(k, shape: [b, c.kvHeads, c.kvLength, d]),
            Tensor(v, shape: [b, c.kvHeads, c.kvLength, c.vHeadSize]),
            c.maskShape.map { ms in
                c.boolMask ? Tensor(mask.map { $0 != 0 }, shape: ms) : Tensor(mask, shape: ms)
            },
        ]
        if c.past > 0 {
            inputs += ["past_key", "past_value"]
            tensors += [
                Tensor(pastK, shape: [b, c.kvHeads, c.past, d]), Tensor(pastV, shape: [b, c.kvHeads, c.past, c.vHeadSize]),
            ]
        }
        if let n = c.nonpad {
            inputs += ["", "", "nonpad"]
            tensors += [nil, nil, Tensor(n.map { Int64($0) }, shape: [b])]
        }
        let node = Node(
            name: "attention", opType: "Attention", inputs: inputs, outputs: ["y", "", "", "qk"], attributes: attributes)
        // Blocks of 32 query rows, so that the shapes below cross blocks.
        let kernel = try AttentionKernel(context: NodeContext(node: node, opset: opset), maxRowBlock: 32)
        let out = try BLAS.withThreads(threads) { try kernel.run(tensors) }
        let want = Self.reference(c, q: q, k: k, v: v, pastK: pastK, pastV: pastV, mask: mask)
        expectClose(out[0], want.y, shape: [b, c.q[1], c.q[2], c.vHeadSize])
        expectClose(out[3], want.p, shape: [b, c.q[1], c.q[2], c.past + c.kvLength])
    }

    @Test(arguments: [1, 2])
    func groupedHeadsWithCacheCausalSoftcapAndMaskOverSeveralRowBlocks(threads: Int) throws {
        // 70 query rows: three blocks of rows; 4 query heads on 2 key/value heads; a float mask
        // (-inf in places) of [q, total] shorter than total by 3 keys (padded as masked).
        let c = Case(
            q: [2, 4, 70, 8], kvHeads: 2, kvLength: 70, past: 5, vHeadSize: 6, maskShape: [70, 72], causal: true,
            softcap: 1.5)
        try check(c, threads: threads)
    }

    @Test(arguments: [1, 2])
    func windowAndPaddingSkipColumns(threads: Int) throws {
        // Causal with a left window of 10 and per-batch valid lengths (external cache): row blocks
        // read only the columns they may attend. Batch row 1 has 30 valid keys for 80 queries, so
        // its first 50 rows attend nothing (zero output, zero probabilities).
        var c = Case(q: [2, 2, 80, 4], kvHeads: 2, kvLength: 100, vHeadSize: 4, causal: true, left: 10, nonpad: [90, 30])
        try check(c, threads: threads)
        c.causal = false
        c.right = 3
        c.maskShape = [2, 1, 80, 100]
        c.boolMask = true
        try check(c, threads: threads, seed: 2)
    }

    @Test func multiQueryWithScaleAndHeadMask() throws {
        let c = Case(q: [1, 6, 9, 5], kvHeads: 1, kvLength: 11, vHeadSize: 7, maskShape: [6, 1, 11], scale: 0.3)
        try check(c, threads: 1)
    }

    /// 3-D inputs are the 4-D computation with heads split out of the hidden axis; the present
    /// outputs are past + new in (batch, kv heads, total, size) layout.
    @Test func threeDimensionalInputsMatchFourDimensionalOnes() throws {
        var rng = TestRNG(seed: 9)
        let (b, hq, hkv, sq, skv, past, d, dv) = (2, 4, 2, 3, 5, 2, 4, 3)
        let q3 = rng.tensor([b, sq, hq * d])
        let k3 = rng.tensor([b, skv, hkv * d])
        let v3 = rng.tensor([b, skv, hkv * dv])
        let pk = rng.tensor([b, hkv, past, d])
        let pv = rng.tensor([b, hkv, past, dv])
        func heads(_ t: Tensor, _ h: Int, _ size: Int) -> Tensor {
            let s = t.scalars(as: Float.self)
            let (n, l) = (t.shape[0], t.shape[1])
            var out = [Float](repeating: 0, count: s.count)
            for bi in 0..<n { for i in 0..<l { for hh in 0..<h { for e in 0..<size {
                out[((bi * h + hh) * l + i) * size + e] = s[(bi * l + i) * h * size + hh * size + e]
            } } } }
            return Tensor(out, shape: [n, h, l, size])
        }
        let outputs = ["y", "present_key", "present_value"]
        let node3 = Node(
            name: "a3", opType: "Attention", inputs: ["q", "k", "v", "", "pk", "pv"], outputs: outputs,
            attributes: ["q_num_heads": .int(hq), "kv_num_heads": .int(hkv), "is_causal": .int(1)])
        let node4 = Node(
            name: "a4", opType: "Attention", inputs: ["q", "k", "v", "", "pk", "pv"], outputs: outputs,
            attributes: ["is_causal": .int(1)])
        let three = try AttentionKernel(context: NodeContext(node: node3, opset: 23)).run([q3, k3, v3, nil, pk, pv])
        let four = try AttentionKernel(context: NodeContext(node: node4, opset: 23)).run(
            [heads(q3, hq, d), heads(k3, hkv, d), heads(v3, hkv, dv), nil, pk, pv])
        // Y: 3-D is (batch, q length, heads * v head size).
        let y4 = four[0].scalars(as: Float.self)
        var y4as3 = [Float](repeating: 0, count: y4.count)
        for bi in 0..<b { for h in 0..<hq { for i in 0..<sq { for e in 0..<dv {
            y4as3[(bi * sq + i) * hq * dv + h * dv + e] = y4[((bi * hq + h) * sq + i) * dv + e]
        } } } }
        expectClose(three[0], y4as3, shape: [b, sq, hq * dv])
        expectClose(three[1], four[1].scalars(as: Float.self), shape: [b, hkv, past + skv, d])
        expectClose(three[2], four[2].scalars(as: Float.self), shape: [b, hkv, past + skv, dv])
        // present_key starts with the past rows.
        #expect(Array(three[1].scalars(as: Float.self)[0..<(past * d)]) == Array(pk.scalars(as: Float.self)[0..<(past * d)]))
    }

    @Test func badAttributesAndShapesSayWhatIsWrong() throws {
        func node(_ attributes: [String: Attribute], inputs: [String] = ["q", "k", "v"]) -> Node {
            Node(name: "a", opType: "Attention", inputs: inputs, outputs: ["y"], attributes: attributes)
        }
        #expect(throws: EngineError.self) {
            try AttentionKernel(context: NodeContext(node: node(["qk_matmul_output_mode": .int(4)]), opset: 23))
        }
        #expect(throws: EngineError.self) {
            try AttentionKernel(context: NodeContext(node: node(["left_window_size": .int(2)]), opset: 24))
        }
        #expect(throws: EngineError.self) {
            try AttentionKernel(context: NodeContext(node: node([:], inputs: ["q", "k", "v", "", "pk"]), opset: 23))
        }
        let plain = try AttentionKernel(context: NodeContext(node: node([:]), opset: 23))
        var rng = TestRNG(seed: 3)
        let q3 = rng.tensor([1, 2, 8])
        #expect(throws: KernelError.shape("Attention with 3-D Q, K, V needs the q_num_heads and kv_num_heads attributes")) {
            try plain.run([q3, q3, q3])
        }
        let q4 = rng.tensor([1, 2, 3, 4])
        // A (heads, q, total) mask broadcasts; one of 3 heads for 2 query heads does not.
        _ = try plain.run([q4, q4, q4, rng.tensor([2, 3, 3])])
        do {
            _ = try plain.run([q4, q4, q4, rng.tensor([3, 3, 3])])
            Issue.record("a mask of 3 heads for 2 query heads was accepted")
        } catch let KernelError.shape(message) {
            #expect(message.contains("does not broadcast"))
        }
    }
}
