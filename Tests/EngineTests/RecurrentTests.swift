@testable import Engine
import Foundation
import Tensors
import Testing

/// One activation of the reference: name (as ONNX spells it), alpha, beta.
typealias RefActivation = (name: String, alpha: Double, beta: Double)

/// The scalar definition of an ONNX activation function.
func refActivate(_ a: RefActivation, _ x: Double) -> Double {
    switch a.name {
    case "Sigmoid": return 1 / (1 + Foundation.exp(-x))
    case "Tanh": return Foundation.tanh(x)
    case "Relu": return max(0, x)
    case "HardSigmoid": return max(0, min(1, a.alpha * x + a.beta))
    case "LeakyRelu": return x < 0 ? a.alpha * x : x
    case "ThresholdedRelu": return x > a.alpha ? x : 0
    case "ScaledTanh": return a.alpha * Foundation.tanh(a.beta * x)
    case "Affine": return a.alpha * x + a.beta
    case "Elu": return x < 0 ? a.alpha * (Foundation.exp(x) - 1) : x
    case "Softsign": return x / (1 + abs(x))
    case "Softplus": return Foundation.log(1 + Foundation.exp(x))
    default: fatalError("unknown activation \(a.name)")
    }
}

/// Everything a recurrent node is given, for the reference and for building the node.
struct RecurrentCase {
    var op: String  // LSTM, GRU, RNN
    var seq: Int
    var batch: Int
    var input: Int
    var hidden: Int
    var direction = "forward"
    var layout = 0
    var withBias = true
    var lengths: [Int]? = nil
    var withInitialH = false
    var withInitialC = false
    var withPeepholes = false
    var clip: Double? = nil
    var inputForget = false
    var linearBeforeReset = false
    /// Per direction; nil: the defaults.
    var activations: [[RefActivation]]? = nil
    var seed: UInt64 = 1

    var dirs: Int { direction == "bidirectional" ? 2 : 1 }
    var gates: Int { op == "LSTM" ? 4 : op == "GRU" ? 3 : 1 }
    var defaultActivations: [RefActivation] {
        op == "LSTM" ? [("Sigmoid", 0, 0), ("Tanh", 0, 0), ("Tanh", 0, 0)]
            : op == "GRU" ? [("Sigmoid", 0, 0), ("Tanh", 0, 0)] : [("Tanh", 0, 0)]
    }

    struct Data {
        var x, w, r, b, h0, c0, p: Tensor
        var lens: Tensor
    }

    func data(scale: Float = 1) -> Data {
        var rng = TestRNG(seed: seed)
        let xShape = layout == 0 ? [seq, batch, input] : [batch, seq, input]
        let sShape = layout == 0 ? [dirs, batch, hidden] : [batch, dirs, hidden]
        func t(_ shape: [Int], _ s: Float) -> Tensor { Tensor(rng.floats(volume(shape)).map { $0 * s }, shape: shape) }
        return Data(
            x: t(xShape, 1), w: t([dirs, gates * hidden, input], scale), r: t([dirs, gates * hidden, hidden], scale),
            b: t([dirs, 2 * gates * hidden], scale), h0: t(sShape, 1), c0: t(sShape, 1), p: t([dirs, 3 * hidden], scale),
            lens: Tensor((lengths ?? Array(repeating: seq, count: batch)).map { Int32($0) }, shape: [batch]))
    }

    /// Direct definition from the ONNX operator docs, in Double, one scalar at a time.
    func reference(_ d: Data) -> (y: [Float], yh: [Float], yc: [Float]) {
        let x = d.x.scalars(as: Float.self).map(Double.init)
        let w = d.w.scalars(as: Float.self).map(Double.init)
        let r = d.r.scalars(as: Float.self).map(Double.init)
        let b = d.b.scalars(as: Float.self).map(Double.init)
        let h0 = d.h0.scalars(as: Float.self).map(Double.init)
        let c0 = d.c0.scalars(as: Float.self).map(Double.init)
        let p = d.p.scalars(as: Float.self).map(Double.init)
        let H = hidden
        let G = gates
        var y = [Double](repeating: 0, count: seq * dirs * batch * H)
        var yh = [Double](repeating: 0, count: dirs * batch * H)
        var yc = yh
        func xAt(_ t: Int, _ n: Int, _ i: Int) -> Double { layout == 0 ? x[(t * batch + n) * input + i] : x[(n * seq + t) * input + i] }
        func sIndex(_ dir: Int, _ n: Int, _ k: Int) -> Int { layout == 0 ? (dir * batch + n) * H + k : (n * dirs + dir) * H + k }
        func yIndex(_ t: Int, _ dir: Int, _ n: Int, _ k: Int) -> Int {
            layout == 0 ? ((t * dirs + dir) * batch + n) * H + k : ((n * seq + t) * dirs + dir) * H + k
        }
        func cl(_ v: Double) -> Double { clip.map { min(max(v, -$0), $0) } ?? v }
        for dir in 0..<dirs {
            let acts = activations?[dir] ?? defaultActivations
            // W·x_t for gate g, unit k (with its Wb), and R·v for a state vector v (with its Rb).
            func wx(_ t: Int, _ n: Int, _ g: Int, _ k: Int) -> Double {
                var s = withBias ? b[dir * 2 * G * H + g * H + k] : 0
                for i in 0..<input { s += w[(dir * G * H + g * H + k) * input + i] * xAt(t, n, i) }
                return s
            }
            func rv(_ v: [Double], _ g: Int, _ k: Int) -> Double {
                var s = withBias ? b[dir * 2 * G * H + G * H + g * H + k] : 0
                for i in 0..<H { s += r[(dir * G * H + g * H + k) * H + i] * v[i] }
                return s
            }
            for n in 0..<batch {
                let len = lengths?[n] ?? seq
                var h = (0..<H).map { withInitialH ? h0[sIndex(dir, n, $0)] : 0 }
                var c = (0..<H).map { withInitialC ? c0[sIndex(dir, n, $0)] : 0 }
                let backward = direction == "reverse" || dir == 1
                for step in 0..<len {
                    let t = backward ? len - 1 - step : step
                    var next = h
                    switch op {
                    case "RNN":
                        for k in 0..<H { next[k] = refActivate(acts[0], cl(wx(t, n, 0, k) + rv(h, 0, k))) }
                    case "GRU":
                        let z = (0..<H).map { refActivate(acts[0], cl(wx(t, n, 0, $0) + rv(h, 0, $0))) }
                        let rg = (0..<H).map { refActivate(acts[0], cl(wx(t, n, 1, $0) + rv(h, 1, $0))) }
                        let rh = (0..<H).map { rg[$0] * h[$0] }
                        for k in 0..<H {
                            let pre = linearBeforeReset ? wx(t, n, 2, k) + rg[k] * rv(h, 2, k) : wx(t, n, 2, k) + rv(rh, 2, k)
                            let hh = refActivate(acts[1], cl(pre))
                            next[k] = (1 - z[k]) * hh + z[k] * h[k]
                        }
                    default:  // LSTM, gates i, o, f, c
                        let pi = withPeepholes ? (0..<H).map { p[dir * 3 * H + $0] } : [Double](repeating: 0, count: H)
                        let po = withPeepholes ? (0..<H).map { p[dir * 3 * H + H + $0] } : pi
                        let pf = withPeepholes ? (0..<H).map { p[dir * 3 * H + 2 * H + $0] } : pi
                        var cNext = c
                        for k in 0..<H {
                            let i = refActivate(acts[0], cl(wx(t, n, 0, k) + rv(h, 0, k) + pi[k] * c[k]))
                            let f = inputForget ? 1 - i : refActivate(acts[0], cl(wx(t, n, 2, k) + rv(h, 2, k) + pf[k] * c[k]))
                            let cc = refActivate(acts[1], cl(wx(t, n, 3, k) + rv(h, 3, k)))
                            cNext[k] = f * c[k] + i * cc
                            let o = refActivate(acts[0], cl(wx(t, n, 1, k) + rv(h, 1, k) + po[k] * cNext[k]))
                            next[k] = o * refActivate(acts[2], cNext[k])
                        }
                        c = cNext
                    }
                    h = next
                    for k in 0..<H { y[yIndex(t, dir, n, k)] = h[k] }
                }
                for k in 0..<H {
                    yh[sIndex(dir, n, k)] = h[k]
                    yc[sIndex(dir, n, k)] = c[k]
                }
            }
        }
        return (y.map { Float($0) }, yh.map { Float($0) }, yc.map { Float($0) })
    }

    var attributes: [String: Attribute] {
        var a: [String: Attribute] = ["hidden_size": .int(hidden), "direction": .string(Array(direction.utf8))]
        if layout != 0 { a["layout"] = .int(layout) }
        if let clip { a["clip"] = .float(Float(clip)) }
        if inputForget { a["input_forget"] = .int(1) }
        if op == "GRU" { a["linear_before_reset"] = .int(linearBeforeReset ? 1 : 0) }
        if let activations {
            let all = activations.flatMap { $0 }
            a["activations"] = .strings(all.map { Array($0.name.utf8) })
            // Alphas and betas in order, for the functions that take them.
            let alphaNames: Set = ["HardSigmoid", "LeakyRelu", "ThresholdedRelu", "ScaledTanh", "Affine", "Elu"]
            let betaNames: Set = ["HardSigmoid", "ScaledTanh", "Affine"]
            let alphas = all.filter { alphaNames.contains($0.name) }.map { Float($0.alpha) }
            let betas = all.filter { betaNames.contains($0.name) }.map { Float($0.beta) }
            if !alphas.isEmpty { a["activation_alpha"] = .floats(alphas) }
            if !betas.isEmpty { a["activation_beta"] = .floats(betas) }
        }
        return a
    }

    /// Runs the node (W and R fed, or as initializers so they are packed at load) and compares every
    /// output with the reference.
    func check(constantWeights: Bool = false, scale: Float = 1, tolerance: Float = 2e-5) throws {
        let d = data(scale: scale)
        var names = ["x", "w", "r", withBias ? "b" : "", lengths != nil ? "lens" : "", withInitialH ? "h0" : ""]
        if op == "LSTM" { names += [withInitialC ? "c0" : "", withPeepholes ? "p" : ""] }
        while names.last == "" { names.removeLast() }
        let all: [String: Tensor] = ["x": d.x, "w": d.w, "r": d.r, "b": d.b, "lens": d.lens, "h0": d.h0, "c0": d.c0, "p": d.p]
        var feeds: [(String, Tensor)] = []
        var initializers: [String: Tensor] = [:]
        for name in names where !name.isEmpty {
            if constantWeights && (name == "w" || name == "r") {
                initializers[name] = all[name]!
            } else {
                feeds.append((name, all[name]!))
            }
        }
        let outputs = op == "LSTM" ? ["y", "yh", "yc"] : ["y", "yh"]
        let got = try runNode(
            op, inputs: names, feeds: feeds, initializers: initializers, attributes: attributes, outputs: outputs, opset: 14)
        let want = reference(d)
        let sShape = layout == 0 ? [dirs, batch, hidden] : [batch, dirs, hidden]
        #expect(got[0].shape == (layout == 0 ? [seq, dirs, batch, hidden] : [batch, seq, dirs, hidden]))
        #expect(got[1].shape == sShape)
        expectClose(got[0].scalars(as: Float.self), want.y, tolerance, "Y")
        expectClose(got[1].scalars(as: Float.self), want.yh, tolerance, "Y_h")
        if op == "LSTM" {
            #expect(got[2].shape == sShape)
            expectClose(got[2].scalars(as: Float.self), want.yc, tolerance, "Y_c")
        }
    }
}

func expectClose(_ got: [Float], _ want: [Float], _ tolerance: Float, _ what: String) {
    #expect(got.count == want.count, "\(what): \(got.count) values, expected \(want.count)")
    var worst: (Int, Float) = (-1, 0)
    for i in 0..<min(got.count, want.count) {
        let e = abs(got[i] - want[i]) / max(1, abs(want[i]))
        if !(e <= worst.1) { worst = (i, e.isNaN ? .infinity : e) }
    }
    #expect(worst.1 <= tolerance, "\(what): worst error \(worst.1) at \(worst.0)")
}

@Suite struct RecurrentTests {
    @Test(arguments: ["LSTM", "GRU", "RNN"])
    func bidirectionalWithShortSequences(op: String) throws {
        var c = RecurrentCase(op: op, seq: 5, batch: 3, input: 4, hidden: 6, direction: "bidirectional")
        c.lengths = [5, 2, 0]
        c.withInitialH = true
        c.withInitialC = true
        try c.check()
        try c.check(constantWeights: true)
    }

    @Test(arguments: [0, 1])
    func lstmPeepholesAndLayout(layout: Int) throws {
        var c = RecurrentCase(op: "LSTM", seq: 4, batch: 2, input: 3, hidden: 5, direction: "reverse", layout: layout)
        c.withPeepholes = true
        c.withInitialH = true
        c.withInitialC = true
        c.lengths = [3, 4]
        try c.check()
        try c.check(constantWeights: true)
        c.direction = "bidirectional"
        c.inputForget = true
        try c.check()
    }

    @Test(arguments: [false, true])
    func gruLinearBeforeReset(lbr: Bool) throws {
        for layout in [0, 1] {
            var c = RecurrentCase(op: "GRU", seq: 6, batch: 3, input: 5, hidden: 7, direction: "bidirectional", layout: layout)
            c.linearBeforeReset = lbr
            c.withInitialH = true
            c.lengths = [6, 1, 4]
            try c.check()
            try c.check(constantWeights: true)
        }
    }

    @Test(arguments: ["LSTM", "GRU", "RNN"])
    func clipAndCustomActivations(op: String) throws {
        var c = RecurrentCase(op: op, seq: 4, batch: 2, input: 3, hidden: 4, direction: "bidirectional")
        c.clip = 0.7
        c.withInitialH = true
        c.withPeepholes = op == "LSTM"
        c.linearBeforeReset = true
        let forward: [RefActivation] = [("HardSigmoid", 0.3, 0.4), ("ScaledTanh", 0.9, 1.3), ("Affine", 0.5, 0.1)]
        let backward: [RefActivation] = [("Softsign", 0, 0), ("LeakyRelu", 0.2, 0), ("Elu", 0.7, 0)]
        let more: [RefActivation] = [("Sigmoid", 0, 0), ("Softplus", 0, 0), ("ThresholdedRelu", 0.1, 0)]
        let relu: [RefActivation] = [("Sigmoid", 0, 0), ("Relu", 0, 0), ("Tanh", 0, 0)]
        let n = c.gates == 4 ? 3 : c.gates == 3 ? 2 : 1
        c.activations = [Array(forward.prefix(n)), Array(backward.prefix(n))]
        try c.check(scale: 0.5)
        c.clip = nil
        c.activations = [Array(more.prefix(n)), Array(relu.prefix(n))]
        try c.check(scale: 0.5)
        if op == "RNN" {
            c.activations = [[("Affine", 0.5, 0.1)], [("ThresholdedRelu", 0.1, 0)]]
            try c.check(scale: 0.5)
        }
    }

    /// Realistic size (seq 32, batch 4, input 64, hidden 128), weights packed at load and fed.
    @Test(arguments: ["LSTM", "GRU", "RNN"])
    func realisticSize(op: String) throws {
        var c = RecurrentCase(op: op, seq: 32, batch: 4, input: 64, hidden: 128, direction: "bidirectional", seed: 9)
        c.withInitialH = true
        c.lengths = [32, 17, 32, 5]
        try c.check(constantWeights: true, scale: 0.1, tolerance: 1e-4)
        c.lengths = nil
        c.linearBeforeReset = true
        try c.check(scale: 0.1, tolerance: 1e-4)
    }

    @Test func omittedOutputs() throws {
        let c = RecurrentCase(op: "LSTM", seq: 3, batch: 2, input: 3, hidden: 4)
        let d = c.data()
        let want = c.reference(d)
        let got = try runNode(
            "LSTM", inputs: ["x", "w", "r"], feeds: [("x", d.x), ("w", d.w), ("r", d.r)],
            attributes: ["hidden_size": .int(4)], outputs: ["", "yh"], opset: 14)
        // B omitted: the reference's bias is off.
        var noBias = c
        noBias.withBias = false
        expectClose(got[0].scalars(as: Float.self), noBias.reference(d).yh, 2e-5, "Y_h")
        _ = want
    }

    @Test func badShapesAreInputErrors() throws {
        let c = RecurrentCase(op: "GRU", seq: 3, batch: 2, input: 3, hidden: 4)
        let d = c.data()
        let error = engineError {
            _ = try runNode(
                "GRU", inputs: ["x", "w", "r"], feeds: [("x", Tensor(zeros: .float32, shape: [3, 2, 5])), ("w", d.w), ("r", d.r)],
                attributes: ["hidden_size": .int(4)], outputs: ["y"], opset: 14)
        }
        guard case .invalidInput(let m)? = error else {
            Issue.record("expected invalidInput, got \(String(describing: error))")
            return
        }
        #expect(m.contains("expected [1, 12, 5]"))
        let lens = engineError {
            _ = try runNode(
                "GRU", inputs: ["x", "w", "r", "", "l"], feeds: [("x", d.x), ("w", d.w), ("r", d.r), ("l", Tensor([Int32(4), 1], shape: [2]))],
                attributes: ["hidden_size": .int(4)], outputs: ["y"], opset: 14)
        }
        guard case .invalidInput? = lens else {
            Issue.record("expected invalidInput, got \(String(describing: lens))")
            return
        }
        // No hidden units (R [1, 0, 0], no hidden_size): refused, not a trap on empty tensors.
        let empty = engineError {
            _ = try runNode(
                "RNN", inputs: ["x", "w", "r", "", "", "h"],
                feeds: [("x", d.x), ("w", Tensor(zeros: .float32, shape: [1, 0, 3])), ("r", Tensor(zeros: .float32, shape: [1, 0, 0])),
                        ("h", Tensor(zeros: .float32, shape: [1, 2, 0]))],
                outputs: ["y", "yh"], opset: 14)
        }
        guard case .invalidInput(let m)? = empty else {
            Issue.record("expected invalidInput, got \(String(describing: empty))")
            return
        }
        #expect(m.contains("must be positive"))
    }

    @Test func vectorTanhAndSigmoid() {
        var worstTanh: Float = 0
        var worstSigmoid: Float = 0
        var x: Float = -12
        while x < 12 {
            let v = SIMD8<Float>((0..<8).map { x + Float($0) * 0.00037 })
            let t = RecurrentActivation.tanh(v)
            let s = RecurrentActivation.sigmoid(v)
            for i in 0..<8 {
                worstTanh = max(worstTanh, abs(t[i] - tanhf(v[i])) / max(1e-6, abs(tanhf(v[i]))))
                worstSigmoid = max(worstSigmoid, abs(s[i] - 1 / (1 + expf(-v[i]))))
            }
            x += 0.00291
        }
        #expect(worstTanh < 2e-6)
        #expect(worstSigmoid < 1e-6)
    }
}
