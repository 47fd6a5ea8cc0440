import Glibc
import Tensors

/// ONNX LSTM, GRU and RNN (opsets 7 and 14; 22 only widens the element types), float32.
///
/// Inputs: X [seq, batch, input] ([batch, seq, input] with `layout` 1), W [dirs, gates*hidden, input],
/// R [dirs, gates*hidden, hidden], B [dirs, 2*gates*hidden] (Wb then Rb), sequence_lens [batch],
/// initial_h (and LSTM's initial_c) [dirs, batch, hidden] ([batch, dirs, hidden] with layout 1), LSTM's
/// peepholes P [dirs, 3*hidden]. Outputs: Y [seq, dirs, batch, hidden] ([batch, seq, dirs, hidden]),
/// Y_h and LSTM's Y_c like initial_h; each optional. Gate order is ONNX's: LSTM i, o, f, c; GRU z, r, h.
///
/// How it runs, per direction: the input projections of every time step, X·Wᵀ plus the biases, are
/// one GEMM before the time loop (into a scratch [rows of X, gates*hidden]); each step then is one
/// GEMM H·Rᵀ ([batch, hidden] x [hidden, gates*hidden]; GRU with linear_before_reset 0 needs a second
/// one for the reset-scaled state) and one fused elementwise pass per batch row. Constant W and R are
/// packed once at load for `PackedGemm` (`ConstantAbsorbingKernel`); computed ones go through OpenBLAS.
/// All scratch is one tensor allocated (and charged to the run's budget) before the loop.
///
/// With sequence_lens, a row's steps past its length leave its state alone and its Y there is zero,
/// so Y_h / Y_c hold the state at its last valid step; the reverse direction of a row starts at its
/// last valid step. Immutable after init; safe from any thread.
struct RecurrentKernel: Kernel, ConstantAbsorbingKernel {
    enum Cell: String, Sendable {
        case rnn = "RNN", gru = "GRU", lstm = "LSTM"
        var gates: Int { self == .rnn ? 1 : self == .gru ? 3 : 4 }
        /// Activation functions per direction (f; f, g; f, g, h).
        var activationCount: Int { self == .rnn ? 1 : self == .gru ? 2 : 3 }
        var defaultActivations: [String] {
            self == .rnn ? ["Tanh"] : self == .gru ? ["Sigmoid", "Tanh"] : ["Sigmoid", "Tanh", "Tanh"]
        }
    }

    let cell: Cell
    let directions: Int
    /// direction == "reverse" (with one direction).
    let reverse: Bool
    let hiddenSize: Int?
    let clip: Float?
    let inputForget: Bool
    let linearBeforeReset: Bool
    /// layout 1: X, Y, initial and final states are batch-major.
    let batchFirst: Bool
    /// Per direction, the cell's activation functions in ONNX's order.
    let activations: [[RecurrentActivation]]
    let wantY: Bool
    let wantYh: Bool
    let wantYc: Bool
    /// Constant W packed per direction (k = input, n = gates*hidden), with W's shape.
    let packedW: (shape: [Int], columns: [PackedColumns])?
    /// Constant R packed per direction; GRU has two parts per direction (z and r; h).
    let packedR: (shape: [Int], columns: [PackedColumns])?

    init(context: NodeContext, cell: Cell) throws {
        self.cell = cell
        try context.requireInputs(3, cell == .lstm ? 8 : 6)
        let direction = try context.string("direction", default: "forward")
        switch direction {
        case "forward": (directions, reverse) = (1, false)
        case "reverse": (directions, reverse) = (1, true)
        case "bidirectional": (directions, reverse) = (2, false)
        default: throw context.invalid("has direction '\(direction)' (expected forward, reverse or bidirectional)")
        }
        let hidden = try context.int("hidden_size")
        if let hidden, hidden <= 0 { throw context.invalid("has hidden_size \(hidden) (must be positive)") }
        hiddenSize = hidden
        clip = try context.float("clip")
        if let clip, !(clip > 0) { throw context.invalid("has clip \(clip) (must be positive)") }
        inputForget = cell == .lstm ? try context.int("input_forget", default: 0) != 0 : false
        linearBeforeReset = cell == .gru ? try context.int("linear_before_reset", default: 0) != 0 : false
        let layout = try context.int("layout", default: 0)
        guard layout == 0 || layout == 1 else { throw context.invalid("has layout \(layout) (expected 0 or 1)") }
        batchFirst = layout == 1
        if context.opset < 7 { throw context.unsupported() }

        // Activations: per direction `activationCount` names; alphas and betas are taken in order by
        // the functions that use them (defaults otherwise), as onnxruntime does.
        let names: [String]
        switch context.node.attributes["activations"] {
        case nil: names = Array(repeating: cell.defaultActivations, count: directions).flatMap { $0 }
        case .strings(let v)?:
            let given = v.map { String(decoding: $0, as: UTF8.self) }
            if given.count == cell.activationCount * directions {
                names = given
            } else if directions == 2 && given.count == cell.activationCount {
                names = given + given
            } else {
                throw context.invalid(
                    "has \(given.count) activations; \(cell.rawValue) takes \(cell.activationCount) per direction "
                        + "(\(cell.activationCount * directions) for \(directions) direction(s))")
            }
        case let other?: throw context.invalid("has attribute 'activations' of kind \(NodeContext.kindName(other)), expected strings")
        }
        var alphas = try context.floats("activation_alpha", default: [])[...]
        var betas = try context.floats("activation_beta", default: [])[...]
        var parsed: [RecurrentActivation] = []
        for name in names {
            guard let a = RecurrentActivation(name: name, alphas: &alphas, betas: &betas) else {
                throw context.invalid("has an unknown activation '\(name)'")
            }
            parsed.append(a)
        }
        activations = (0..<directions).map { Array(parsed[$0 * cell.activationCount..<($0 + 1) * cell.activationCount]) }

        wantY = context.hasOutput(0)
        wantYh = context.hasOutput(1)
        wantYc = cell == .lstm && context.hasOutput(2)

        // Pack constant weights once (only when their shapes are self-consistent; run checks them).
        let gates = cell.gates
        let dirs = directions
        if let w = context.constantInput(1), w.dataType == .float32, w.rank == 3, w.count > 0, w.shape[0] == dirs,
            w.shape[1] % gates == 0
        {
            let (n, k) = (w.shape[1], w.shape[2])
            let p = w.elements(as: Float.self).baseAddress!
            packedW = (w.shape, (0..<dirs).map { PackedColumns(p + $0 * n * k, k: k, n: n, transposed: true) })
        } else {
            packedW = nil
        }
        if let r = context.constantInput(2), r.dataType == .float32, r.rank == 3, r.count > 0, r.shape[0] == dirs,
            r.shape[1] == gates * r.shape[2]
        {
            let h = r.shape[2]
            let p = r.elements(as: Float.self).baseAddress!
            var columns: [PackedColumns] = []
            for d in 0..<dirs {
                let base = p + d * gates * h * h
                if cell == .gru {
                    columns.append(PackedColumns(base, k: h, n: 2 * h, transposed: true))
                    columns.append(PackedColumns(base + 2 * h * h, k: h, n: h, transposed: true))
                } else {
                    columns.append(PackedColumns(base, k: h, n: gates * h, transposed: true))
                }
            }
            packedR = (r.shape, columns)
        } else {
            packedR = nil
        }
    }

    var absorbedInputs: [Int] { (packedW == nil ? [] : [1]) + (packedR == nil ? [] : [2]) }

    /// A right operand `Bᵀ` for `C += A·Bᵀ`: packed, or B [n, k] as stored (row stride k).
    private enum Weights {
        case packed(PackedColumns)
        case raw(UnsafePointer<Float>, n: Int, k: Int)
    }

    /// `C[m, n] += A[m, k] · Bᵀ`.
    @inline(__always)
    private static func accumulate(
        _ a: UnsafePointer<Float>, lda: Int, m: Int, _ w: Weights, _ c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        switch w {
        case .packed(let p):
            PackedGemm.multiply(a: a, lda: lda, m: m, p, c: c, ldc: ldc)
        case .raw(let b, let n, let k):
            BLAS.gemm(
                transA: false, transB: true, m: m, n: n, k: k, alpha: 1, a: a, lda: lda, b: b, ldb: k, beta: 1, c: c,
                ldc: ldc)
        }
    }

    private static func product(_ factors: [Int], _ what: String) throws -> Int {
        guard let n = Tensor.checkedElementCount(factors), n <= 1 << 34 else {
            throw KernelError.shape("\(what) \(factors) is too large")
        }
        return n
    }

    func run(_ inputs: [Tensor?]) throws -> [Tensor] {
        let op = cell.rawValue
        let x = try Check.input(inputs, 0, "X")
        try Check.dataType(x, [.float32], "X")
        guard x.rank == 3 else {
            throw KernelError.shape(
                "\(op) needs a 3-D X [\(batchFirst ? "batch, seq_length" : "seq_length, batch"), input_size], got \(x.shape)")
        }
        let (seq, batch, inputSize) = batchFirst ? (x.shape[1], x.shape[0], x.shape[2]) : (x.shape[0], x.shape[1], x.shape[2])
        let w = inputs.count > 1 ? inputs[1] : nil
        let r = inputs.count > 2 ? inputs[2] : nil
        let useW = w == nil ? packedW : nil
        let useR = r == nil ? packedR : nil
        if w == nil && useW == nil { _ = try Check.input(inputs, 1, "W") }
        if r == nil && useR == nil { _ = try Check.input(inputs, 2, "R") }
        if let w { try Check.dataType(w, [.float32], "W") }
        if let r { try Check.dataType(r, [.float32], "R") }
        let wShape = w?.shape ?? useW!.shape
        let rShape = r?.shape ?? useR!.shape
        let dirs = directions
        let gates = cell.gates
        guard rShape.count == 3 else {
            throw KernelError.shape("\(op) needs a 3-D R [num_directions, \(gates)*hidden_size, hidden_size], got \(rShape)")
        }
        let hidden = hiddenSize ?? rShape[2]
        guard hidden > 0 else {
            throw KernelError.shape("\(op) R has shape \(rShape): its hidden_size (last dimension) must be positive")
        }
        let gh = try Self.product([gates, hidden], "\(op) gates x hidden_size")
        guard rShape == [dirs, gh, hidden] else {
            throw KernelError.shape("\(op) R has shape \(rShape); expected [\(dirs), \(gh), \(hidden)] (num_directions, \(gates)*hidden_size, hidden_size)")
        }
        guard wShape == [dirs, gh, inputSize] else {
            throw KernelError.shape("\(op) W has shape \(wShape); expected [\(dirs), \(gh), \(inputSize)] (num_directions, \(gates)*hidden_size, input_size of X \(x.shape))")
        }
        let b = inputs.count > 3 ? inputs[3] : nil
        if let b {
            try Check.dataType(b, [.float32], "B")
            guard b.shape == [dirs, 2 * gh] else {
                throw KernelError.shape("\(op) B has shape \(b.shape); expected [\(dirs), \(2 * gh)] (num_directions, 2*\(gates)*hidden_size)")
            }
        }
        // sequence_lens: each in 0...seq; nil when every row runs the whole sequence.
        var lengths: [Int]? = nil
        if inputs.count > 4, let sl = inputs[4] {
            guard sl.shape == [batch] else {
                throw KernelError.shape("\(op) sequence_lens has shape \(sl.shape); expected [\(batch)] (batch_size)")
            }
            let values: [Int]
            switch sl.dataType {
            case .int32: values = sl.elements(as: Int32.self).map { Int($0) }
            case .int64: values = sl.elements(as: Int64.self).map { Int($0) }
            default: throw KernelError.failed("sequence_lens has type \(sl.dataType.v2Name); expected int32")
            }
            if let bad = values.first(where: { $0 < 0 || $0 > seq }) {
                throw KernelError.shape("\(op) sequence_lens holds \(bad); each length must be in 0...\(seq) (seq_length)")
            }
            if values.contains(where: { $0 != seq }) { lengths = values }
        }
        let stateShape = batchFirst ? [batch, dirs, hidden] : [dirs, batch, hidden]
        func state(_ index: Int, _ name: String) throws -> Tensor? {
            guard inputs.count > index, let t = inputs[index] else { return nil }
            try Check.dataType(t, [.float32], name)
            guard t.shape == stateShape else {
                throw KernelError.shape("\(op) \(name) has shape \(t.shape); expected \(stateShape)")
            }
            return t
        }
        let initialH = try state(5, "initial_h")
        let initialC = cell == .lstm ? try state(6, "initial_c") : nil
        var peepholes: Tensor? = nil
        if cell == .lstm, inputs.count > 7, let p = inputs[7] {
            try Check.dataType(p, [.float32], "P")
            guard p.shape == [dirs, 3 * hidden] else {
                throw KernelError.shape("\(op) P has shape \(p.shape); expected [\(dirs), \(3 * hidden)] (num_directions, 3*hidden_size)")
            }
            peepholes = p
        }

        // Outputs (placeholders for omitted ones: the plan skips them).
        let yShape = batchFirst ? [batch, seq, dirs, hidden] : [seq, dirs, batch, hidden]
        let yCount = try Self.product(yShape, "\(op) Y shape")
        let stateCount = try Self.product(stateShape, "\(op) state shape")
        let y = wantY ? try Tensor(allocating: .float32, shape: yShape) : Tensor(zeros: .float32, shape: [0])
        let yh = wantYh ? try Tensor(allocating: .float32, shape: stateShape) : Tensor(zeros: .float32, shape: [0])
        let yc = wantYc ? try Tensor(allocating: .float32, shape: stateShape) : Tensor(zeros: .float32, shape: [0])
        if wantY, lengths != nil, yCount > 0 { y.mutableElements(as: Float.self).initialize(repeating: 0) }

        // Scratch: projections [seq*batch, gh], state h and c [batch, hidden], recurrent products
        // [batch, gh], GRU's reset-scaled state [batch, hidden], bias row [gh].
        let rows = try Self.product([seq, batch], "\(op) seq_length x batch")
        let xwCount = try Self.product([rows, gh], "\(op) projections")
        let bh = batch * hidden
        let (scratchCount, o1) = xwCount.addingReportingOverflow(4 * bh + batch * gh + gh + 8)
        guard !o1, scratchCount <= 1 << 34 else { throw KernelError.shape("\(op) scratch for X \(x.shape) is too large") }
        let scratch = try Tensor(allocating: .float32, shape: [scratchCount])
        let base = scratch.mutableElements(as: Float.self).baseAddress!
        let xw = base
        let h = xw + xwCount
        let c = h + bh
        let rh = c + bh
        let hr = rh + bh
        let biasRow = hr + batch * gh

        let xp = x.count > 0 ? x.elements(as: Float.self).baseAddress : nil
        let wp = w.flatMap { $0.count > 0 ? $0.elements(as: Float.self).baseAddress : nil }
        let rp = r.flatMap { $0.count > 0 ? $0.elements(as: Float.self).baseAddress : nil }
        let bp = b.flatMap { $0.count > 0 ? $0.elements(as: Float.self).baseAddress : nil }
        let yp = wantY && yCount > 0 ? y.mutableElements(as: Float.self).baseAddress : nil

        // Row of X (and of the projections) holding time t of batch row j.
        @inline(__always) func xRow(_ t: Int, _ j: Int) -> Int { batchFirst ? j * seq + t : t * batch + j }
        @inline(__always) func stateRow(_ d: Int, _ j: Int) -> Int { (batchFirst ? j * dirs + d : d * batch + j) * hidden }
        @inline(__always) func yRow(_ t: Int, _ d: Int, _ j: Int) -> Int {
            (batchFirst ? (j * seq + t) * dirs + d : (t * dirs + d) * batch + j) * hidden
        }

        for d in 0..<dirs {
            let backward = reverse || d == 1
            let acts = activations[d]
            // Bias row: Wb + Rb, except GRU's Rbh with linear_before_reset, which stays inside r ⊙ (...).
            if let bp {
                let wb = bp + d * 2 * gh
                let rb = wb + gh
                for i in 0..<gh { biasRow[i] = wb[i] + rb[i] }
                if cell == .gru && linearBeforeReset { for i in 2 * hidden..<gh { biasRow[i] = wb[i] } }
            } else {
                for i in 0..<gh { biasRow[i] = 0 }
            }
            // Projections of every step: xw = bias + X · W[d]ᵀ, one GEMM.
            for row in 0..<rows { (xw + row * gh).update(from: biasRow, count: gh) }
            if rows > 0, inputSize > 0, let xp {
                if let useW {
                    Self.accumulate(xp, lda: inputSize, m: rows, .packed(useW.columns[d]), xw, ldc: gh)
                } else if let wp {
                    Self.accumulate(xp, lda: inputSize, m: rows, .raw(wp + d * gh * inputSize, n: gh, k: inputSize), xw, ldc: gh)
                }
            }
            // Recurrent weights of this direction.
            let rFirst: Weights
            var rSecond: Weights? = nil
            if let useR {
                if cell == .gru {
                    rFirst = .packed(useR.columns[2 * d])
                    rSecond = .packed(useR.columns[2 * d + 1])
                } else {
                    rFirst = .packed(useR.columns[d])
                }
            } else {
                // R has elements: hidden > 0 (checked) and gh > 0.
                let rd = (rp ?? UnsafePointer(biasRow)) + d * gh * hidden
                if cell == .gru {
                    rFirst = .raw(rd, n: 2 * hidden, k: hidden)
                    rSecond = .raw(rd + 2 * hidden * hidden, n: hidden, k: hidden)
                } else {
                    rFirst = .raw(rd, n: gh, k: hidden)
                }
            }
            // Initial state.
            for j in 0..<batch {
                if let initialH {
                    (h + j * hidden).update(from: initialH.elements(as: Float.self).baseAddress! + stateRow(d, j), count: hidden)
                } else {
                    (h + j * hidden).update(repeating: 0, count: hidden)
                }
                if cell == .lstm {
                    if let initialC {
                        (c + j * hidden).update(from: initialC.elements(as: Float.self).baseAddress! + stateRow(d, j), count: hidden)
                    } else {
                        (c + j * hidden).update(repeating: 0, count: hidden)
                    }
                }
            }
            let pp = peepholes.map { $0.elements(as: Float.self).baseAddress! + d * 3 * hidden }
            let rbh = (cell == .gru && linearBeforeReset) ? bp.map { $0 + d * 2 * gh + gh + 2 * hidden } : nil
            let steps = lengths?.max() ?? seq

            for s in 0..<steps {
                // hr = Hprev · Rᵀ (GRU: the z and r columns, and h's unless linear_before_reset is 0).
                if hidden > 0 && batch > 0 {
                    hr.update(repeating: 0, count: batch * gh)
                    if cell == .gru {
                        Self.accumulate(h, lda: hidden, m: batch, rFirst, hr, ldc: gh)
                        if linearBeforeReset { Self.accumulate(h, lda: hidden, m: batch, rSecond!, hr + 2 * hidden, ldc: gh) }
                    } else {
                        Self.accumulate(h, lda: hidden, m: batch, rFirst, hr, ldc: gh)
                    }
                }
                // GRU with linear_before_reset 0: z and r first, then (r ⊙ Hprev) · Rhᵀ.
                if cell == .gru && !linearBeforeReset {
                    for j in 0..<batch {
                        let len = lengths?[j] ?? seq
                        let g = hr + j * gh
                        let hj = h + j * hidden
                        let rj = rh + j * hidden
                        guard s < len else {
                            rj.update(repeating: 0, count: hidden)
                            continue
                        }
                        let t = backward ? len - 1 - s : s
                        let xr = xw + xRow(t, j) * gh
                        Self.addClip(g, xr, 2 * hidden, clip)
                        acts[0].apply(g, 2 * hidden)
                        for i in 0..<hidden { rj[i] = g[hidden + i] * hj[i] }
                    }
                    if hidden > 0 && batch > 0 { Self.accumulate(rh, lda: hidden, m: batch, rSecond!, hr + 2 * hidden, ldc: gh) }
                }
                for j in 0..<batch {
                    let len = lengths?[j] ?? seq
                    guard s < len else { continue }
                    let t = backward ? len - 1 - s : s
                    let xr = xw + xRow(t, j) * gh
                    let g = hr + j * gh
                    let hj = h + j * hidden
                    switch cell {
                    case .rnn:
                        Self.addClip(g, xr, hidden, clip)
                        acts[0].apply(g, hidden)
                        hj.update(from: g, count: hidden)
                    case .gru:
                        let gz = g
                        let gHat = g + 2 * hidden
                        let xh = xr + 2 * hidden
                        if linearBeforeReset {
                            Self.addClip(g, xr, 2 * hidden, clip)
                            acts[0].apply(g, 2 * hidden)
                            let gr = g + hidden
                            if let rbh {
                                for i in 0..<hidden { gHat[i] = xh[i] + gr[i] * (gHat[i] + rbh[i]) }
                            } else {
                                for i in 0..<hidden { gHat[i] = xh[i] + gr[i] * gHat[i] }
                            }
                            if let clip { Self.clamp(gHat, hidden, clip) }
                        } else {
                            Self.addClip(gHat, xh, hidden, clip)
                        }
                        acts[1].apply(gHat, hidden)
                        for i in 0..<hidden { hj[i] = (1 - gz[i]) * gHat[i] + gz[i] * hj[i] }
                    case .lstm:
                        let cj = c + j * hidden
                        let gi = g
                        let go = g + hidden
                        let gf = g + 2 * hidden
                        let gc = g + 3 * hidden
                        for i in 0..<gh { g[i] += xr[i] }
                        if let pp {
                            for i in 0..<hidden {
                                gi[i] += pp[i] * cj[i]
                                gf[i] += pp[2 * hidden + i] * cj[i]
                            }
                        }
                        if let clip {
                            Self.clamp(gi, hidden, clip)
                            Self.clamp(gf, hidden, clip)
                            Self.clamp(gc, hidden, clip)
                        }
                        acts[0].apply(gi, hidden)
                        if inputForget {
                            for i in 0..<hidden { gf[i] = 1 - gi[i] }
                        } else {
                            acts[0].apply(gf, hidden)
                        }
                        acts[1].apply(gc, hidden)
                        for i in 0..<hidden { cj[i] = gf[i] * cj[i] + gi[i] * gc[i] }
                        if let pp { for i in 0..<hidden { go[i] += pp[hidden + i] * cj[i] } }
                        if let clip { Self.clamp(go, hidden, clip) }
                        acts[0].apply(go, hidden)
                        // hj = o ⊙ h(C), with h(C) computed in gc's space.
                        gc.update(from: cj, count: hidden)
                        acts[2].apply(gc, hidden)
                        for i in 0..<hidden { hj[i] = go[i] * gc[i] }
                    }
                    if let yp { (yp + yRow(t, d, j)).update(from: hj, count: hidden) }
                }
            }
            if wantYh, stateCount > 0 {
                let p = yh.mutableElements(as: Float.self).baseAddress!
                for j in 0..<batch { (p + stateRow(d, j)).update(from: h + j * hidden, count: hidden) }
            }
            if wantYc, stateCount > 0 {
                let p = yc.mutableElements(as: Float.self).baseAddress!
                for j in 0..<batch { (p + stateRow(d, j)).update(from: c + j * hidden, count: hidden) }
            }
        }
        return cell == .lstm ? [y, yh, yc] : [y, yh]
    }

    /// `g[i] += x[i]`, then clamped to `[-clip, clip]` when there is a clip.
    @inline(__always)
    private static func addClip(_ g: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, _ n: Int, _ clip: Float?) {
        for i in 0..<n { g[i] += x[i] }
        if let clip { clamp(g, n, clip) }
    }

    @inline(__always)
    private static func clamp(_ g: UnsafeMutablePointer<Float>, _ n: Int, _ clip: Float) {
        for i in 0..<n { g[i] = Swift.min(Swift.max(g[i], -clip), clip) }
    }
}

/// One of the activation functions the recurrent operators accept, with its alpha and beta.
struct RecurrentActivation: Sendable, Equatable {
    enum Kind: String, Sendable, CaseIterable {
        case sigmoid, tanh, relu, hardSigmoid = "hardsigmoid", leakyRelu = "leakyrelu"
        case thresholdedRelu = "thresholdedrelu", scaledTanh = "scaledtanh", affine, elu, softsign, softplus
    }

    let kind: Kind
    let alpha: Float
    let beta: Float

    init(_ kind: Kind, alpha: Float = 0, beta: Float = 0) {
        self.kind = kind
        self.alpha = alpha
        self.beta = beta
    }

    /// Parses an ONNX activation name (any case); takes its alpha and beta from the front of the
    /// lists when it uses them, else their defaults. Nil for an unknown name.
    init?(name: String, alphas: inout ArraySlice<Float>, betas: inout ArraySlice<Float>) {
        guard let kind = Kind(rawValue: name.lowercased()) else { return nil }
        let defaults: (alpha: Float, beta: Float)?
        let usesBeta: Bool
        switch kind {
        case .sigmoid, .tanh, .relu, .softsign, .softplus: (defaults, usesBeta) = (nil, false)
        case .leakyRelu: (defaults, usesBeta) = ((0.01, 0), false)
        case .thresholdedRelu, .elu: (defaults, usesBeta) = ((1, 0), false)
        case .hardSigmoid: (defaults, usesBeta) = ((0.2, 0.5), true)
        case .scaledTanh: (defaults, usesBeta) = ((1, 1), true)
        case .affine: (defaults, usesBeta) = ((1, 0), true)
        }
        var alpha: Float = 0
        var beta: Float = 0
        if let defaults {
            alpha = alphas.popFirst() ?? defaults.alpha
            beta = usesBeta ? (betas.popFirst() ?? defaults.beta) : 0
        }
        self.init(kind, alpha: alpha, beta: beta)
    }

    /// The function at one value (the reference the vector loops follow).
    func value(_ x: Float) -> Float {
        switch kind {
        case .sigmoid: return 1 / (1 + expf(-x))
        case .tanh: return tanhf(x)
        case .relu: return x > 0 ? x : 0
        case .hardSigmoid: return Swift.max(0, Swift.min(1, alpha * x + beta))
        case .leakyRelu: return x < 0 ? alpha * x : x
        case .thresholdedRelu: return x > alpha ? x : 0
        case .scaledTanh: return alpha * tanhf(beta * x)
        case .affine: return alpha * x + beta
        case .elu: return x < 0 ? alpha * (expf(x) - 1) : x
        case .softsign: return x / (1 + Swift.abs(x))
        case .softplus: return x > 20 ? x : log1pf(expf(x))
        }
    }

    /// Applies the function in place to `n` floats (Sigmoid and Tanh eight lanes at a time).
    @inline(__always)
    func apply(_ p: UnsafeMutablePointer<Float>, _ n: Int) {
        switch kind {
        case .sigmoid: VectorMath.map(p, p, n, Self.sigmoid, { 1 / (1 + expf(-$0)) })
        case .tanh: VectorMath.map(p, p, n, Self.tanh, tanhf)
        case .relu: for i in 0..<n { p[i] = p[i] > 0 ? p[i] : 0 }
        default: for i in 0..<n { p[i] = value(p[i]) }
        }
    }

    @inline(__always)
    static func sigmoid(_ x: SIMD8<Float>) -> SIMD8<Float> { 1 / (1 + VectorMath.exp(-x)) }

    /// Eigen's rational tanh approximation (odd degree-13 over even degree-6 polynomials in x clamped to
    /// ±7.905), x itself below 0.0004 in magnitude; a few ulp. NaN stays NaN.
    @inline(__always)
    static func tanh(_ input: SIMD8<Float>) -> SIMD8<Float> {
        typealias V = SIMD8<Float>
        var x = input
        x.replace(with: V(repeating: 7.90531110763549805), where: x .> V(repeating: 7.90531110763549805))
        x.replace(with: V(repeating: -7.90531110763549805), where: x .< V(repeating: -7.90531110763549805))
        let x2 = x * x
        var p = x2 * -2.76076847742355e-16 + 2.00018790482477e-13
        p = x2 * p + -8.60467152213735e-11
        p = x2 * p + 5.12229709037114e-08
        p = x2 * p + 1.48572235717979e-05
        p = x2 * p + 6.37261928875436e-04
        p = x2 * p + 4.89352455891786e-03
        p = x * p
        var q = x2 * 1.19825839466702e-06 + 1.18534705686654e-04
        q = x2 * q + 2.26843463243900e-03
        q = x2 * q + 4.89352518554385e-03
        var result = p / q
        let tiny = (input .< V(repeating: 0.0004)) .& (input .> V(repeating: -0.0004))
        result.replace(with: input, where: tiny)
        result.replace(with: input, where: input .!= input)
        return result
    }
}
