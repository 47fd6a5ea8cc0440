@testable import Engine
import Tensors
import Testing

/// Winograd F(2x2, 3x3) convolutions (`WinogradConv`) against a direct double-precision
/// convolution: odd and even sizes (clipped edge tiles), a 1x1 input, pads 0, 1, asymmetric and
/// SAME_UPPER, batches, channel counts off the 6/8/16 multiples, C over the GEMM's K block, tile
/// counts over one block, bias or none, fused activations, one and two threads (blocks split
/// between threads, or a block's output channels). And which convolutions take the path.
@Suite struct WinogradTests {
    struct Case: CustomStringConvertible, Sendable {
        var n = 1, c = 5, h = 7, w = 7, m = 7
        /// top, left, bottom, right (ONNX order) unless `autoPad` is set.
        var pads = [1, 1, 1, 1], autoPad = "NOTSET", bias = true, activation = "", threads = 1
        var description: String {
            "n\(n) c\(c) \(h)x\(w) m\(m) p\(pads) \(autoPad) bias \(bias) \(activation) threads \(threads)"
        }
    }

    static let cases: [Case] = [
        Case(activation: "relu"),
        Case(n: 3, c: 16, h: 8, w: 8, m: 13, bias: false),
        Case(c: 3, h: 5, w: 9, m: 20, pads: [0, 0, 0, 0]),
        Case(c: 4, h: 1, w: 1, m: 6),
        Case(c: 9, h: 6, w: 7, m: 10, autoPad: "SAME_UPPER", activation: "relu"),
        Case(c: 7, h: 6, w: 5, m: 11, pads: [0, 2, 1, 0]),
        Case(n: 2, c: 17, h: 11, w: 13, m: 25, pads: [2, 1, 0, 3], activation: "clip"),
        // C over three K blocks of the GEMM (600 > 2 x 256); 100 tiles over one block (96).
        Case(c: 600, h: 20, w: 20, m: 8, activation: "relu"),
        // Two threads: the blocks split between them (30 panels of tiles), one image's 16 tiles
        // split by output channels, a batch, and C over one K block with several blocks.
        Case(n: 3, c: 12, h: 27, w: 26, m: 19, activation: "relu", threads: 2),
        Case(c: 20, h: 7, w: 7, m: 50, threads: 2),
        Case(n: 3, c: 6, h: 9, w: 4, m: 9, pads: [1, 0, 1, 2], bias: false, threads: 2),
        Case(c: 600, h: 20, w: 20, m: 8, threads: 2),
    ]

    /// y = act(b + Σ x w) in double, and the sum of |x w| per output (the scale of its rounding).
    static func reference(_ x: [Float], _ w: [Float], _ b: [Float]?, _ p: Case, out: (Int, Int), begin: (Int, Int))
        -> (y: [Double], scale: [Double])
    {
        let (oh, ow) = out
        var y = [Double](repeating: 0, count: p.n * p.m * oh * ow)
        var scale = y
        for n in 0..<p.n {
            for m in 0..<p.m {
                for oy in 0..<oh {
                    for ox in 0..<ow {
                        var s = Double(b?[m] ?? 0)
                        var a = abs(s)
                        for c in 0..<p.c {
                            for ky in 0..<3 {
                                let iy = oy - begin.0 + ky
                                if iy < 0 || iy >= p.h { continue }
                                for kx in 0..<3 {
                                    let ix = ox - begin.1 + kx
                                    if ix < 0 || ix >= p.w { continue }
                                    let t = Double(x[((n * p.c + c) * p.h + iy) * p.w + ix]) * Double(w[((m * p.c + c) * 3 + ky) * 3 + kx])
                                    s += t
                                    a += abs(t)
                                }
                            }
                        }
                        switch p.activation {
                        case "relu": s = max(s, 0)
                        case "clip": s = min(max(s, -0.5), 0.75)
                        default: break
                        }
                        let i = ((n * p.m + m) * oh + oy) * ow + ox
                        y[i] = s
                        scale[i] = a
                    }
                }
            }
        }
        return (y, scale)
    }

    static func convNode(_ p: Case) -> Node {
        var attributes: [String: Attribute] = ["kernel_shape": .ints([3, 3])]
        if p.autoPad == "NOTSET" { attributes["pads"] = .ints(p.pads) } else { attributes["auto_pad"] = .string(Array(p.autoPad.utf8)) }
        if !p.activation.isEmpty {
            attributes = attributes.merging(
                Epilogue(kind: Epilogue.Kind(rawValue: p.activation)!, alpha: -0.5, beta: 0.75).attributes) { a, _ in a }
        }
        return Node(name: "conv", opType: "Conv", inputs: p.bias ? ["x", "w", "b"] : ["x", "w"], outputs: ["y"], attributes: attributes)
    }

    @Test(arguments: cases)
    func winogradMatchesTheDefinition(_ p: Case) throws {
        // Every CPU level this machine runs (the 16 products are PackedGemm's loop nest).
        for level in CPULevel.testable { try CPULevel.withLevel(level) { try winogradMatchesTheDefinition(p, level) } }
    }

    /// The same cases with float16 weights (a float16 model's initializer), whose transformed
    /// weights are held as float16 (`PackedWeights`): each U rounded once, so within float16
    /// rounding (2^-11 relative) of the terms' magnitude, at every CPU level.
    @Test(arguments: cases)
    func float16WeightsMatchTheDefinition(_ p: Case) throws {
        for level in CPULevel.testable {
            // Every size held as float16 (the default keeps small weights float32).
            try PackedWeights.$minimumElements.withValue(0) {
                try CPULevel.withLevel(level) { try winogradMatchesTheDefinition(p, level, weights: .float16) }
            }
        }
    }

    func winogradMatchesTheDefinition(_ p: Case, _ level: CPULevel, weights: DataType = .float32) throws {
        var rng = TestRNG(seed: 77)
        let x = rng.tensor([p.n, p.c, p.h, p.w])
        var w = rng.tensor([p.m, p.c, 3, 3])
        if weights != .float32 { w = try w.narrowed(to: weights) }
        let b = rng.tensor([p.m])
        let graph = Graph(
            nodes: [Self.convNode(p)],
            inputs: [ValueInfo(name: "x", dataType: .float32, shape: x.shape.map { .fixed($0) })],
            outputs: [ValueInfo(name: "y", dataType: nil, shape: nil)],
            initializers: p.bias ? ["w": w, "b": b] : ["w": w])
        if weights != .float32 { w = try w.widenedToFloat32() }
        let session = try InferenceSession(
            model: GraphModel(graph: graph, opsets: ["": 13], irVersion: 8), options: SessionOptions(blasThreads: p.threads))
        let y = try session.run(["x": x])["y"]!
        // SAME_UPPER with stride 1: 2 pad in total, 1 before.
        let begin = p.autoPad == "NOTSET" ? (p.pads[0], p.pads[1]) : (1, 1)
        let out = p.autoPad == "NOTSET" ? (p.h + p.pads[0] + p.pads[2] - 2, p.w + p.pads[1] + p.pads[3] - 2) : (p.h, p.w)
        let (want, scale) = Self.reference(
            x.scalars(as: Float.self), w.scalars(as: Float.self), p.bias ? b.scalars(as: Float.self) : nil, p, out: out,
            begin: begin)
        #expect(y.shape == [p.n, p.m, out.0, out.1])
        let got = y.scalars(as: Float.self)
        guard got.count == want.count else { return }
        var worst = 0
        var worstRatio = 0.0
        // float32: a few roundings of the terms' magnitude; a wrong or missing term is far more.
        // U held as float16: each U (up to 2.25 x the largest weight) rounded by 2^-12 of itself,
        // times V (up to 4 x the largest |x|) over the C channels, through the output transform's
        // 9 terms: 2^-12 x 2.25 x 4 x 9 x C x max|w| x max|x|, about 2^-7 x C x max|w| x max|x|
        // (a widening read at a wrong offset is of the order of the result itself).
        let maxW = w.scalars(as: Float.self).map(abs).max() ?? 0
        let maxX = x.scalars(as: Float.self).map(abs).max() ?? 0
        let halfBound = 0x1p-7 * Double(p.c) * Double(maxW) * Double(maxX)
        for i in got.indices {
            let bound = weights == .float32 ? 1e-5 * scale[i] : halfBound
            let ratio = abs(Double(got[i]) - want[i]) / (bound + 1e-6)
            if !(ratio <= worstRatio) { worstRatio = ratio; worst = i }
        }
        #expect(
            worstRatio <= 1, "\(level) element \(worst): got \(got[worst]), expected \(want[worst]) (scale \(scale[worst]))")
    }

    /// In a 16-bit model (`PackedWeights.storage`) the 16 transformed weight matrices are held as
    /// float16: half the bytes (64 x 32 channels: 32768 U values, at `minimumElements`). Not
    /// outside one, not when some |U| would pass float16's range, and not for fewer channels.
    @Test func sixteenBitModelsHoldTransformedWeightsInFloat16() throws {
        var rng = TestRNG(seed: 5)
        let w = rng.tensor([64, 32, 3, 3]).scalars(as: Float.self).map { HalfConversion.rounded($0, to: .float16) }
        let node = Node(name: "conv", opType: "Conv", inputs: ["x", "w"], outputs: ["y"], attributes: ["pads": .ints([1, 1, 1, 1])])
        func transformed(_ values: [Float], in model: DataType?) throws -> [PackedMatrix] {
            let context = NodeContext(node: node, opset: 13, constantInputs: [nil, Tensor(values, shape: [64, 32, 3, 3])])
            return try PackedWeights.$storage.withValue(model) { try ConvKernel(context: context) }.winograd!.weights
        }
        let full = try transformed(w, in: nil)
        let half = try transformed(w, in: .float16)
        #expect(full.allSatisfy { $0.storage == .float32 } && half.allSatisfy { $0.storage == .float16 })
        #expect(zip(full, half).allSatisfy { $0.byteCount == 2 * $1.byteCount })
        #expect(try transformed(w.map { HalfConversion.rounded($0, to: .bfloat16) }, in: .bfloat16).allSatisfy { $0.storage == .float16 })
        // |U| up to 2.25 x 30000 would overflow float16 (65504).
        #expect(try transformed(Array(w.prefix(63 * 32 * 9)) + [Float](repeating: 0, count: 32 * 9), in: .float16)
            .allSatisfy { $0.storage == .float16 })
        #expect(try transformed(w.map { $0 * 30000 }.map { HalfConversion.rounded($0, to: .bfloat16) }, in: .bfloat16)
            .allSatisfy { $0.storage == .float32 })
    }

    /// The kernel a Conv node with constant weights of `shape` builds.
    static func kernel(_ shape: [Int], _ attributes: [String: Attribute]) throws -> ConvKernel {
        var rng = TestRNG(seed: 3)
        let node = Node(name: "conv", opType: "Conv", inputs: ["x", "w"], outputs: ["y"], attributes: attributes)
        return try ConvKernel(context: NodeContext(node: node, opset: 13, constantInputs: [nil, rng.tensor(shape)]))
    }

    /// Only 2-D 3x3, stride 1, dilation 1, group 1 convolutions with constant weights take the
    /// path, and they keep only the transformed weights.
    @Test func onlyQualifyingConvolutionsTakeThePath() throws {
        let dense = try Self.kernel([8, 4, 3, 3], ["pads": .ints([1, 1, 1, 1])])
        #expect(dense.winograd != nil && dense.packed == nil)
        #expect(dense.absorbedInputs == [1])
        #expect(try Self.kernel([8, 4, 3, 3], ["auto_pad": .string(Array("SAME_UPPER".utf8))]).winograd != nil)
        let others: [([Int], [String: Attribute])] = [
            ([8, 4, 3, 3], ["strides": .ints([2, 2])]),
            ([8, 4, 3, 3], ["strides": .ints([1, 2])]),
            ([8, 4, 3, 3], ["dilations": .ints([2, 2])]),
            ([8, 2, 3, 3], ["group": .int(2)]),
            ([8, 1, 3, 3], ["group": .int(8)]),
            ([8, 4, 1, 1], [:]),
            ([8, 4, 3, 1], [:]),
            ([8, 4, 3], [:]),
            ([8, 4, 3, 3, 3], [:]),
        ]
        for (shape, attributes) in others {
            let k = try Self.kernel(shape, attributes)
            #expect(k.winograd == nil, "\(shape) \(attributes)")
        }
        // Weights computed at run time: no transformed copy (OpenBLAS's sgemm on im2col).
        let node = Node(name: "conv", opType: "Conv", inputs: ["x", "w"], outputs: ["y"], attributes: [:])
        #expect(try ConvKernel(context: NodeContext(node: node, opset: 13)).winograd == nil)
    }
}
