import Foundation
import Tensors

/// CausalConvWithState (opset 27): a causal depthwise 1-D convolution with a carried state, the
/// preprocessing of Gated DeltaNet and Mamba layers. input [B, C, L], weight [C, 1, k], optional
/// bias [C] and past_state [B, C, k-1] (zeros when absent); output [B, C, L] over the past state
/// followed by the input, optionally through SiLU; present_state the last k-1 positions of that
/// concatenation. FP32.
struct CausalConvWithStateKernel: Kernel {
    let silu: Bool

    init(context: NodeContext) throws {
        try context.requireInputs(2, 4)
        let activation = try context.string("activation", default: "none")
        guard ["none", "silu", "swish"].contains(activation) else {
            throw context.invalid("has activation '\(activation)'; it takes none, silu or swish")
        }
        silu = activation != "none"
    }

    func run(_ inputs: [Tensor?]) throws -> [Tensor] {
        let x = try Check.input(inputs, 0, "input")
        let w = try Check.input(inputs, 1, "weight")
        try Check.dataType(x, [.float32], "CausalConvWithState's input")
        try Check.dataType(w, [.float32], "CausalConvWithState's weight")
        guard x.rank == 3, w.rank == 3, w.shape[0] == x.shape[1], w.shape[1] == 1, w.shape[2] >= 1 else {
            throw KernelError.shape("CausalConvWithState needs input [B, C, L] and weight [C, 1, k], got \(x.shape) and \(w.shape)")
        }
        let (b, c, l, k) = (x.shape[0], x.shape[1], x.shape[2], w.shape[2])
        let bias = inputs.count > 2 ? inputs[2] : nil
        if let bias, bias.shape != [c] || bias.dataType != .float32 {
            throw KernelError.shape("CausalConvWithState's bias must be FP32 [\(c)], got \(bias.dataType.v2Name) \(bias.shape)")
        }
        let past = inputs.count > 3 ? inputs[3] : nil
        if let past, past.shape != [b, c, k - 1] || past.dataType != .float32 {
            throw KernelError.shape("CausalConvWithState's past_state must be FP32 [\(b), \(c), \(k - 1)], got \(past.dataType.v2Name) \(past.shape)")
        }
        let out = try Tensor(allocating: .float32, shape: x.shape)
        let present = try Tensor(allocating: .float32, shape: [b, c, k - 1])
        let xs = x.elements(as: Float.self)
        let ws = w.elements(as: Float.self)
        let bs = bias?.elements(as: Float.self)
        let ps = past?.elements(as: Float.self)
        let ys = out.mutableElements(as: Float.self)
        let ss = present.mutableElements(as: Float.self)
        var padded = [Float](repeating: 0, count: k - 1 + l)
        for row in 0..<(b * c) {
            let ch = row % c
            for i in 0..<(k - 1) { padded[i] = ps?[row * (k - 1) + i] ?? 0 }
            for i in 0..<l { padded[k - 1 + i] = xs[row * l + i] }
            for t in 0..<l {
                var acc = bs?[ch] ?? 0
                for j in 0..<k { acc += ws[ch * k + j] * padded[t + j] }
                ys[row * l + t] = silu ? acc / (1 + exp(-acc)) : acc
            }
            for i in 0..<(k - 1) { ss[row * (k - 1) + i] = padded[l + i] }
        }
        return [out, present]
    }
}

/// LinearAttention (opset 27): the recurrent attention of linear-attention, RetNet, GLA, DeltaNet
/// and Gated DeltaNet layers. query [B, T, Hq*dk], key [B, T, Hkv*dk], value [B, T, Hkv*dv], an
/// optional past_state [B, Hkv, dk, dv]; per token the state S (per kv head) is decayed by
/// exp(decay) (gated rules), corrected toward the value (delta rules, by beta), then receives
/// k ⊗ v; each query head reads scale * q^T S of its kv head (GQA: Hq / Hkv query heads share one).
/// Outputs [B, T, Hq*dv] and the final state. FP32, accumulated in FP32.
struct LinearAttentionKernel: Kernel {
    let qHeads: Int
    let kvHeads: Int
    let scale: Float
    let gated: Bool
    let delta: Bool

    init(context: NodeContext) throws {
        try context.requireInputs(3, 6)
        guard let q = try context.int("q_num_heads"), let kv = try context.int("kv_num_heads"), q > 0, kv > 0, q % kv == 0 else {
            throw context.invalid("needs q_num_heads a positive multiple of kv_num_heads")
        }
        qHeads = q
        kvHeads = kv
        scale = try context.float("scale", default: 0)
        let rule = try context.string("update_rule", default: "gated_delta")
        guard ["linear", "gated", "delta", "gated_delta"].contains(rule) else {
            throw context.invalid("has update_rule '\(rule)'; it takes linear, gated, delta or gated_delta")
        }
        gated = rule.hasPrefix("gated")
        delta = rule.hasSuffix("delta")
        guard context.hasInput(4) == gated, context.hasInput(5) == delta else {
            throw context.invalid("update_rule '\(rule)' \(gated ? "needs" : "takes no") decay and \(delta ? "needs" : "takes no") beta")
        }
    }

    func run(_ inputs: [Tensor?]) throws -> [Tensor] {
        let q = try Check.input(inputs, 0, "query")
        let k = try Check.input(inputs, 1, "key")
        let v = try Check.input(inputs, 2, "value")
        for t in [q, k, v] { try Check.dataType(t, [.float32], "LinearAttention's inputs") }
        guard q.rank == 3, k.rank == 3, v.rank == 3, k.shape[0...1] == q.shape[0...1], v.shape[0...1] == q.shape[0...1],
            q.shape[2] % qHeads == 0, v.shape[2] % kvHeads == 0, k.shape[2] == kvHeads * (q.shape[2] / qHeads)
        else {
            throw KernelError.shape("LinearAttention cannot split query \(q.shape), key \(k.shape), value \(v.shape) into \(qHeads) and \(kvHeads) heads")
        }
        let (b, steps) = (q.shape[0], q.shape[1])
        let dk = q.shape[2] / qHeads
        let dv = v.shape[2] / kvHeads
        let group = qHeads / kvHeads
        let stateShape = [b, kvHeads, dk, dv]
        let present = try Tensor(allocating: .float32, shape: stateShape, zeroed: true)
        let s = present.mutableElements(as: Float.self)
        if inputs.count > 3, let past = inputs[3] {
            guard past.shape == stateShape, past.dataType == .float32 else {
                throw KernelError.shape("LinearAttention's past_state must be FP32 \(stateShape), got \(past.dataType.v2Name) \(past.shape)")
            }
            _ = s.update(fromContentsOf: past.elements(as: Float.self))
        }
        // decay: [B, T, Hkv] (per head) or [B, T, Hkv*dk] (per key dim); beta: [B, T, Hkv] or [B, T, 1].
        var decay: UnsafeBufferPointer<Float>?
        var decayPerKey = false
        if gated, let g = inputs[4] {
            guard g.dataType == .float32, g.rank == 3, g.shape[0...1] == q.shape[0...1], g.shape[2] == kvHeads || g.shape[2] == kvHeads * dk else {
                throw KernelError.shape("LinearAttention's decay must be FP32 [\(b), \(steps), \(kvHeads) or \(kvHeads * dk)], got \(g.dataType.v2Name) \(g.shape)")
            }
            decay = g.elements(as: Float.self)
            decayPerKey = g.shape[2] != kvHeads || dk == 1
        }
        var beta: UnsafeBufferPointer<Float>?
        var betaWidth = 1
        if delta, let be = inputs[5] {
            guard be.dataType == .float32, be.rank == 3, be.shape[0...1] == q.shape[0...1], be.shape[2] == kvHeads || be.shape[2] == 1 else {
                throw KernelError.shape("LinearAttention's beta must be FP32 [\(b), \(steps), \(kvHeads) or 1], got \(be.dataType.v2Name) \(be.shape)")
            }
            beta = be.elements(as: Float.self)
            betaWidth = be.shape[2]
        }
        let factor = scale == 0 ? 1 / Float(dk).squareRoot() : scale
        let out = try Tensor(allocating: .float32, shape: [b, steps, qHeads * dv])
        let o = out.mutableElements(as: Float.self)
        let qs = q.elements(as: Float.self)
        let ks = k.elements(as: Float.self)
        let vs = v.elements(as: Float.self)
        var update = [Float](repeating: 0, count: dv)
        for n in 0..<b {
            for h in 0..<kvHeads {
                let state = s.baseAddress! + (n * kvHeads + h) * dk * dv
                for t in 0..<steps {
                    let row = n * steps + t
                    if let decay {
                        let width = decayPerKey ? kvHeads * dk : kvHeads
                        for d in 0..<dk {
                            let g = exp(decay[row * width + (decayPerKey ? h * dk + d : h)])
                            for m in 0..<dv { state[d * dv + m] *= g }
                        }
                    }
                    let key = ks.baseAddress! + row * kvHeads * dk + h * dk
                    let value = vs.baseAddress! + row * kvHeads * dv + h * dv
                    for m in 0..<dv { update[m] = value[m] }
                    if let beta {
                        let rate = beta[row * betaWidth + (betaWidth == 1 ? 0 : h)]
                        for m in 0..<dv {
                            var retrieved: Float = 0
                            for d in 0..<dk { retrieved += state[d * dv + m] * key[d] }
                            update[m] = rate * (value[m] - retrieved)
                        }
                    }
                    for d in 0..<dk {
                        for m in 0..<dv { state[d * dv + m] += key[d] * update[m] }
                    }
                    for qh in (h * group)..<((h + 1) * group) {
                        let query = qs.baseAddress! + row * qHeads * dk + qh * dk
                        let y = o.baseAddress! + row * qHeads * dv + qh * dv
                        for m in 0..<dv {
                            var acc: Float = 0
                            for d in 0..<dk { acc += query[d] * state[d * dv + m] }
                            y[m] = factor * acc
                        }
                    }
                }
            }
        }
        return [out, present]
    }
}
