import Engine
import Tensors
import Testing

/// Conv and pooling against straightforward reference loops written from the ONNX definitions, over
/// groups, dilations, strides, asymmetric pads, auto_pad and ceil_mode.
@Suite struct ConvPoolTests {
    struct ConvCase: CustomStringConvertible, Sendable {
        var n = 1, c = 4, h = 7, w = 6, m = 6, kh = 3, kw = 3, group = 1
        var strides = [1, 1], dilations = [1, 1], pads = [0, 0, 0, 0], autoPad = "NOTSET", bias = true
        var description: String {
            "n\(n) c\(c) \(h)x\(w) m\(m) k\(kh)x\(kw) g\(group) s\(strides) d\(dilations) p\(pads) \(autoPad)"
        }
    }

    static let convCases: [ConvCase] = [
        ConvCase(kh: 1, kw: 1),  // pointwise: direct sgemm
        ConvCase(n: 2, kh: 1, kw: 1, bias: false),
        ConvCase(),  // im2col
        ConvCase(n: 2, strides: [2, 1], pads: [1, 0, 2, 1]),
        ConvCase(dilations: [2, 2], pads: [2, 2, 2, 2]),
        ConvCase(c: 4, m: 8, group: 2, strides: [2, 2], pads: [1, 1, 1, 1]),  // grouped
        ConvCase(c: 4, m: 4, group: 4, pads: [1, 1, 1, 1]),  // depthwise
        ConvCase(c: 4, m: 4, group: 4, strides: [2, 2], dilations: [2, 1], pads: [0, 1, 2, 1], bias: false),
        ConvCase(c: 3, m: 6, kh: 5, kw: 5, group: 3, pads: [2, 2, 2, 2]),  // depthwise, multiplier 2 (im2col)
        ConvCase(h: 8, w: 8, strides: [2, 2], autoPad: "SAME_UPPER"),
        ConvCase(h: 8, w: 8, kh: 4, kw: 4, strides: [3, 3], autoPad: "SAME_LOWER"),
        ConvCase(strides: [2, 2], autoPad: "VALID"),
        ConvCase(h: 1, w: 9, kh: 1, kw: 3, strides: [1, 2], pads: [0, 1, 0, 1]),
        // Depthwise planes wider than one vector, rows not a multiple of four (PlaneLoops).
        ConvCase(n: 2, c: 3, h: 19, w: 37, m: 3, group: 3, pads: [1, 1, 1, 1]),
        ConvCase(c: 3, h: 18, w: 41, m: 3, group: 3, strides: [2, 2], pads: [1, 1, 1, 1]),
        // Stride 2 with the even/odd split built from the input in 16-column blocks and an overlapping
        // last block: wide planes, no left pad, asymmetric pads, odd and even widths.
        ConvCase(c: 2, h: 9, w: 70, m: 2, group: 2, strides: [2, 2], pads: [0, 0, 1, 1]),
        ConvCase(c: 2, h: 11, w: 57, m: 2, group: 2, strides: [2, 2], pads: [1, 1, 0, 0]),
        ConvCase(n: 2, c: 2, h: 6, w: 112, m: 2, group: 2, strides: [2, 2], pads: [1, 1, 1, 1], bias: false),
        ConvCase(c: 2, h: 13, w: 29, m: 2, kh: 5, kw: 3, group: 2, strides: [1, 2], dilations: [1, 2], pads: [2, 0, 1, 3]),
        ConvCase(c: 2, h: 9, w: 17, m: 2, group: 2, strides: [2, 1], pads: [0, 2, 1, 0], bias: false),
        ConvCase(c: 2, h: 15, w: 33, m: 2, kh: 5, kw: 5, group: 2, strides: [2, 2], pads: [2, 2, 2, 2]),
        // Depthwise 3x3 on blocks of eight channels (DepthwiseBlocks) beside single planes: one block
        // and four planes with rows of eight or more (packed and convolved along rows, the last
        // block of a row overlapping); rows narrower than eight (flat order across row ends); stride
        // 2 with asymmetric pads; mixed strides; pads wider than the window; an output of fewer than
        // eight positions (PlaneLoops only).
        ConvCase(n: 2, c: 12, h: 9, w: 11, m: 12, group: 12, pads: [1, 1, 1, 1]),
        ConvCase(c: 16, h: 5, w: 6, m: 16, group: 16, strides: [2, 2], pads: [1, 1, 1, 1], bias: false),
        ConvCase(c: 8, h: 20, w: 23, m: 8, group: 8, strides: [2, 2], pads: [0, 1, 2, 0]),
        ConvCase(c: 8, h: 7, w: 7, m: 8, group: 8, strides: [1, 2], pads: [1, 1, 1, 1]),
        ConvCase(c: 8, h: 6, w: 9, m: 8, group: 8, pads: [3, 0, 1, 4]),
        ConvCase(c: 8, h: 3, w: 3, m: 8, group: 8, strides: [2, 2], pads: [1, 1, 1, 1]),
        ConvCase(c: 9, h: 20, w: 5, m: 9, group: 9, strides: [2, 1], pads: [1, 1, 1, 1], autoPad: "SAME_UPPER"),
        // Depthwise blocks of other kernel sizes (EfficientNet's and MobileNetV3's 5x5, ConvNeXt's
        // 7x7, 1x1, asymmetric 3x5 and 9x9): along rows and in flat order, strides 1 and 2,
        // asymmetric pads, a block beside single planes.
        ConvCase(n: 2, c: 11, h: 14, w: 13, m: 11, kh: 5, kw: 5, group: 11, pads: [2, 2, 2, 2]),
        ConvCase(c: 16, h: 15, w: 17, m: 16, kh: 5, kw: 5, group: 16, strides: [2, 2], pads: [1, 2, 2, 1], bias: false),
        ConvCase(c: 8, h: 7, w: 7, m: 8, kh: 7, kw: 7, group: 8, pads: [3, 3, 3, 3]),
        ConvCase(c: 8, h: 12, w: 20, m: 8, kh: 7, kw: 7, group: 8, strides: [2, 1], pads: [3, 3, 3, 3]),
        ConvCase(c: 8, h: 6, w: 10, m: 8, kh: 3, kw: 5, group: 8, strides: [1, 2], pads: [1, 2, 1, 2]),
        ConvCase(c: 8, h: 9, w: 9, m: 8, kh: 1, kw: 1, group: 8, strides: [2, 2]),
        ConvCase(c: 8, h: 12, w: 12, m: 8, kh: 9, kw: 9, group: 8, pads: [4, 4, 4, 4]),
        // PackedGemm: K over one block (360 > 256), N over one block with a 1-column edge (625), rows
        // not a multiple of the 6-row panel (13); pointwise with K 300 and N 576.
        ConvCase(c: 40, h: 25, w: 25, m: 13, pads: [1, 1, 1, 1]),
        ConvCase(c: 300, h: 24, w: 24, m: 7, kh: 1, kw: 1, bias: false),
        ConvCase(c: 16, h: 7, w: 7, m: 50, pads: [1, 1, 1, 1]),
        // A stem-like stride-2 convolution on 3 channels: patches gathered eight columns per load,
        // the last loads of each plane kept inside it.
        ConvCase(c: 3, h: 12, w: 45, m: 10, strides: [2, 2], pads: [1, 1, 1, 1]),
    ]

    /// Direct definition: y[n, m, oy, ox] = b[m] + sum over the group's channels and the window.
    static func referenceConv(_ x: [Float], _ w: [Float], _ b: [Float]?, _ p: ConvCase, out: (Int, Int), pads: [Int]) -> [Float] {
        let (oh, ow) = out
        let cg = p.c / p.group
        let mg = p.m / p.group
        var y = [Float](repeating: 0, count: p.n * p.m * oh * ow)
        for n in 0..<p.n {
            for m in 0..<p.m {
                let g = m / mg
                for oy in 0..<oh {
                    for ox in 0..<ow {
                        var s: Float = b?[m] ?? 0
                        for ci in 0..<cg {
                            let c = g * cg + ci
                            for ky in 0..<p.kh {
                                for kx in 0..<p.kw {
                                    let iy = oy * p.strides[0] - pads[0] + ky * p.dilations[0]
                                    let ix = ox * p.strides[1] - pads[1] + kx * p.dilations[1]
                                    if iy < 0 || iy >= p.h || ix < 0 || ix >= p.w { continue }
                                    s += x[((n * p.c + c) * p.h + iy) * p.w + ix] * w[((m * cg + ci) * p.kh + ky) * p.kw + kx]
                                }
                            }
                        }
                        y[((n * p.m + m) * oh + oy) * ow + ox] = s
                    }
                }
            }
        }
        return y
    }

    /// Output size and begin pads per dimension for auto_pad, from the ONNX formulas.
    static func geometry(_ p: ConvCase) -> (out: (Int, Int), pads: [Int]) {
        let ins = [p.h, p.w]
        let ks = [p.kh, p.kw]
        var out = [0, 0]
        var begin = [0, 0]
        for i in 0..<2 {
            let extent = (ks[i] - 1) * p.dilations[i] + 1
            switch p.autoPad {
            case "SAME_UPPER", "SAME_LOWER":
                out[i] = (ins[i] + p.strides[i] - 1) / p.strides[i]
                let total = max(0, (out[i] - 1) * p.strides[i] + extent - ins[i])
                begin[i] = p.autoPad == "SAME_UPPER" ? total / 2 : total - total / 2
            case "VALID":
                out[i] = (ins[i] - extent) / p.strides[i] + 1
            default:
                begin[i] = p.pads[i]
                out[i] = (ins[i] + p.pads[i] + p.pads[i + 2] - extent) / p.strides[i] + 1
            }
        }
        return ((out[0], out[1]), begin)
    }

    @Test(arguments: convCases)
    func convMatchesTheDefinition(_ p: ConvCase) throws {
        var rng = TestRNG(seed: 7)
        let x = rng.tensor([p.n, p.c, p.h, p.w])
        let w = rng.tensor([p.m, p.c / p.group, p.kh, p.kw])
        let b = rng.tensor([p.m])
        var attributes: [String: Attribute] = [
            "group": .int(p.group), "strides": .ints(p.strides), "dilations": .ints(p.dilations),
            "kernel_shape": .ints([p.kh, p.kw]),
        ]
        if p.autoPad == "NOTSET" { attributes["pads"] = .ints(p.pads) } else { attributes["auto_pad"] = .string(Array(p.autoPad.utf8)) }
        let y = try runNode(
            "Conv", inputs: p.bias ? ["x", "w", "b"] : ["x", "w"], feeds: [("x", x)],
            initializers: p.bias ? ["w": w, "b": b] : ["w": w], attributes: attributes, opset: 11)[0]
        let (out, pads) = Self.geometry(p)
        let expected = Self.referenceConv(
            x.scalars(as: Float.self), w.scalars(as: Float.self), p.bias ? b.scalars(as: Float.self) : nil, p, out: out,
            pads: pads)
        expectClose(y, expected, shape: [p.n, p.m, out.0, out.1])
    }

    /// Weights fed at run time (not an initializer) take the OpenBLAS path instead of the packed one.
    /// Also a depthwise one, whose channel blocks then interleave their weights per run instead
    /// of once at load (`DepthwiseBlocks`).
    @Test(arguments: [
        ConvCase(c: 5, h: 9, w: 11, m: 7, pads: [1, 1, 1, 1]),
        ConvCase(c: 10, h: 9, w: 11, m: 10, group: 10, pads: [1, 1, 1, 1]),
        ConvCase(c: 10, h: 9, w: 11, m: 10, kh: 5, kw: 5, group: 10, pads: [2, 2, 2, 2]),
    ])
    func convWithComputedWeightsMatchesTheDefinition(_ p: ConvCase) throws {
        var rng = TestRNG(seed: 9)
        let x = rng.tensor([p.n, p.c, p.h, p.w])
        let w = rng.tensor([p.m, p.c / p.group, p.kh, p.kw])
        let y = try runNode(
            "Conv", inputs: ["x", "w"], feeds: [("x", x), ("w", w)],
            attributes: ["pads": .ints(p.pads), "kernel_shape": .ints([p.kh, p.kw]), "group": .int(p.group)], opset: 11)[0]
        let (out, pads) = Self.geometry(p)
        let expected = Self.referenceConv(x.scalars(as: Float.self), w.scalars(as: Float.self), nil, p, out: out, pads: pads)
        expectClose(y, expected, shape: [p.n, p.m, out.0, out.1])
    }

    @Test func convRejectsMismatchedChannels() {
        var rng = TestRNG(seed: 8)
        let error = engineError {
            _ = try runNode(
                "Conv", inputs: ["x", "w"], feeds: [("x", rng.tensor([1, 4, 5, 5]))],
                initializers: ["w": rng.tensor([2, 3, 3, 3])], opset: 11)
        }
        guard case .invalidInput(let m)? = error else {
            Issue.record("expected invalidInput, got \(String(describing: error))")
            return
        }
        #expect(m.contains("[1, 4, 5, 5]") && m.contains("[2, 3, 3, 3]"), "\(m)")
    }

    struct PoolCase: CustomStringConvertible, Sendable {
        var h = 7, w = 8, k = [3, 3], strides = [2, 2], pads = [0, 0, 0, 0], dilations = [1, 1]
        var ceil = false, includePad = false
        var description: String { "\(h)x\(w) k\(k) s\(strides) p\(pads) d\(dilations) ceil \(ceil) incl \(includePad)" }
    }

    static let poolCases: [PoolCase] = [
        PoolCase(h: 23, w: 45, pads: [1, 1, 1, 1]),  // wide planes (PlaneLoops for MaxPool)
        PoolCase(h: 20, w: 37, k: [2, 3], strides: [1, 1], pads: [0, 1, 1, 2], dilations: [1, 2]),
        PoolCase(h: 11, w: 40, k: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1], ceil: true),
        PoolCase(),
        PoolCase(ceil: true),
        PoolCase(pads: [1, 1, 1, 1], ceil: true),
        PoolCase(pads: [1, 0, 1, 2], includePad: true),
        PoolCase(pads: [1, 1, 1, 1], ceil: true, includePad: true),
        PoolCase(k: [2, 2], strides: [1, 1], dilations: [2, 2]),
        PoolCase(h: 6, w: 6, k: [2, 2], strides: [2, 2], ceil: true),
    ]

    /// Output sizes as onnx's reference computes them (ceil_mode drops a window starting in the pad).
    static func poolOut(_ size: Int, _ k: Int, _ s: Int, _ d: Int, _ p0: Int, _ p1: Int, _ ceil: Bool) -> Int {
        let span = size + p0 + p1 - ((k - 1) * d + 1)
        var o = (ceil ? (span + s - 1) / s : span / s) + 1
        if ceil && (o - 1) * s >= size + p0 { o -= 1 }
        return o
    }

    @Test(arguments: poolCases)
    func poolingMatchesTheDefinition(_ p: PoolCase) throws {
        var rng = TestRNG(seed: 9)
        let x = rng.tensor([1, 2, p.h, p.w])
        let xs = x.scalars(as: Float.self)
        let oh = Self.poolOut(p.h, p.k[0], p.strides[0], p.dilations[0], p.pads[0], p.pads[2], p.ceil)
        let ow = Self.poolOut(p.w, p.k[1], p.strides[1], p.dilations[1], p.pads[1], p.pads[3], p.ceil)
        var maxRef: [Float] = []
        var avgRef: [Float] = []
        for c in 0..<2 {
            for oy in 0..<oh {
                for ox in 0..<ow {
                    var best = -Float.infinity
                    var sum: Float = 0
                    var real = 0
                    var padded = 0
                    for ky in 0..<p.k[0] {
                        for kx in 0..<p.k[1] {
                            let iy = oy * p.strides[0] - p.pads[0] + ky * p.dilations[0]
                            let ix = ox * p.strides[1] - p.pads[1] + kx * p.dilations[1]
                            if iy >= -p.pads[0] && iy < p.h + p.pads[2] && ix >= -p.pads[1] && ix < p.w + p.pads[3] { padded += 1 }
                            if iy < 0 || iy >= p.h || ix < 0 || ix >= p.w { continue }
                            let v = xs[(c * p.h + iy) * p.w + ix]
                            best = max(best, v)
                            sum += v
                            real += 1
                        }
                    }
                    maxRef.append(best)
                    avgRef.append(sum / Float(p.includePad ? padded : real))
                }
            }
        }
        let attributes: [String: Attribute] = [
            "kernel_shape": .ints(p.k), "strides": .ints(p.strides), "pads": .ints(p.pads),
            "dilations": .ints(p.dilations), "ceil_mode": .int(p.ceil ? 1 : 0),
            "count_include_pad": .int(p.includePad ? 1 : 0),
        ]
        var maxAttributes = attributes
        maxAttributes["count_include_pad"] = nil
        expectClose(try runSimple("MaxPool", [x], attributes: maxAttributes, opset: 12), maxRef, shape: [1, 2, oh, ow])
        expectClose(try runSimple("AveragePool", [x], attributes: attributes, opset: 19), avgRef, shape: [1, 2, oh, ow])
    }

    @Test func globalAveragePoolAndBatchNorm() throws {
        var rng = TestRNG(seed: 10)
        let x = rng.tensor([2, 3, 4, 5])
        let xs = x.scalars(as: Float.self)
        let expected = (0..<6).map { p in xs[(p * 20)..<(p * 20 + 20)].reduce(0, +) / 20 }
        expectClose(try runSimple("GlobalAveragePool", [x]), expected, shape: [2, 3, 1, 1])

        let scale: [Float] = [1, 2, 0.5]
        let bias: [Float] = [0, 1, -1]
        let mean: [Float] = [0.1, -0.2, 0.3]
        let variance: [Float] = [1, 0.5, 2]
        let ins = ["x", "s", "b", "m", "v"]
        let inits = ["s": Tensor(scale, shape: [3]), "b": Tensor(bias, shape: [3]), "m": Tensor(mean, shape: [3]), "v": Tensor(variance, shape: [3])]
        let bnExpected = xs.indices.map { i -> Float in
            let c = (i / 20) % 3
            return (xs[i] - mean[c]) / (variance[c] + 1e-5).squareRoot() * scale[c] + bias[c]
        }
        // Opset 15 and the legacy form of opset 6 (is_test, spatial, consumed_inputs) agree.
        expectClose(try runNode("BatchNormalization", inputs: ins, feeds: [("x", x)], initializers: inits, opset: 15)[0], bnExpected, shape: x.shape)
        let legacy: [String: Attribute] = ["is_test": .int(1), "spatial": .int(1), "consumed_inputs": .ints([0, 0, 0, 1, 1])]
        expectClose(
            try runNode("BatchNormalization", inputs: ins, feeds: [("x", x)], initializers: inits, attributes: legacy, opset: 6)[0],
            bnExpected, shape: x.shape)
    }
}
