import Engine
import Tensors
import Testing

/// ConvTranspose against a direct definition written from the ONNX operator's text: every input
/// element times every tap lands on output position i * stride - pad + t * dilation, over 1 to 3
/// spatial dimensions, groups, output_padding, output_shape and auto_pad; on one and two threads
/// (a batch then runs whole images per thread); with the weights an initializer (packed GEMM) or
/// fed (sgemm).
@Suite struct ConvTransposeTests {
    struct Case: CustomStringConvertible, Sendable {
        var n = 1, c = 4, m = 6, spatial = [5, 6], kernel = [3, 3], group = 1
        var strides: [Int]? = nil, dilations: [Int]? = nil, pads: [Int]? = nil, outputPadding: [Int]? = nil
        var outputShape: [Int]? = nil, autoPad = "NOTSET", bias = true, fedWeights = false
        var description: String {
            "n\(n) c\(c) m\(m) \(spatial) k\(kernel) g\(group) s\(strides ?? []) d\(dilations ?? []) p\(pads ?? []) "
                + "op\(outputPadding ?? []) os\(outputShape ?? []) \(autoPad)\(fedWeights ? " fed W" : "")"
        }
    }

    static let cases: [Case] = [
        Case(),
        Case(n: 2, strides: [2, 2], pads: [1, 1, 1, 1], bias: false),
        Case(c: 8, m: 32, spatial: [9, 7], kernel: [4, 4], strides: [2, 2], pads: [1, 1, 1, 1]),  // decoder-like
        Case(n: 3, c: 4, m: 6, kernel: [3, 2], group: 2, strides: [2, 3], dilations: [2, 1], pads: [0, 1, 2, 0]),
        Case(c: 3, m: 3, group: 3, strides: [2, 2], outputPadding: [1, 0]),  // one channel in and out per group
        Case(spatial: [7], kernel: [3], strides: [3], autoPad: "SAME_UPPER"),
        Case(spatial: [7], kernel: [4], strides: [2], autoPad: "SAME_LOWER"),
        Case(kernel: [2, 3], strides: [2, 1], autoPad: "VALID"),
        Case(strides: [2, 2], outputShape: [12, 15]),  // larger than the natural size: zeros (bias) at the end
        Case(strides: [2, 2], outputShape: [9, 10]),  // smaller: the total padding split, larger half first
        Case(strides: [2, 2], pads: [1, 0, 0, 0], outputShape: [10, 11]),  // explicit pads with output_shape
        Case(n: 2, c: 4, m: 4, spatial: [3, 4, 5], kernel: [2, 3, 2], group: 2, strides: [2, 1, 2], dilations: [1, 2, 1],
             pads: [1, 0, 1, 0, 2, 1]),
        Case(c: 3, m: 2, spatial: [3, 3, 4], kernel: [3, 3, 3], strides: [2, 2, 2], outputPadding: [1, 0, 1],
             autoPad: "SAME_UPPER"),
        Case(n: 2, group: 2, strides: [2, 2], pads: [1, 1, 1, 1], fedWeights: true),
        Case(spatial: [4, 4, 3], kernel: [2, 2, 2], strides: [2, 2, 1], fedWeights: true),
        Case(n: 4, c: 32, m: 16, spatial: [10, 10], strides: [2, 2], pads: [1, 1, 1, 1]),  // whole images per thread
        // PackedGemm past one K block (C/group 300 > 256) and rows not a multiple of six (5 * 9).
        Case(c: 300, m: 5, spatial: [6, 5], strides: [1, 2], pads: [1, 1, 1, 1]),
    ]

    /// Output size and leading pad per dimension from the ONNX definition.
    static func geometry(_ p: Case, x: [Int]) -> (out: [Int], begin: [Int]) {
        let r = p.spatial.count
        var out = [Int](repeating: 0, count: r)
        var begin = [Int](repeating: 0, count: r)
        for i in 0..<r {
            let s = p.strides?[i] ?? 1
            let d = p.dilations?[i] ?? 1
            let natural = s * (x[i] - 1) + (p.outputPadding?[i] ?? 0) + (p.kernel[i] - 1) * d + 1
            func split(_ size: Int) {
                let total = max(0, natural - size)
                begin[i] = p.autoPad == "SAME_UPPER" ? total / 2 : total - total / 2
            }
            if let os = p.outputShape {
                out[i] = os[i]
                if let pads = p.pads { begin[i] = pads[i] } else { split(out[i]) }
            } else if p.autoPad.hasPrefix("SAME") {
                out[i] = x[i] * s
                split(out[i])
            } else if p.autoPad == "VALID" {
                out[i] = natural
            } else {
                begin[i] = p.pads?[i] ?? 0
                out[i] = natural - begin[i] - (p.pads?[i + r] ?? 0)
            }
        }
        return (out, begin)
    }

    /// y[n, g * M/group + mo, o] = b + sum over the group's channels ci, input positions i and taps t
    /// with o = i * stride - begin + t * dilation of x[n, ci, i] * w[ci, mo, t].
    static func reference(_ x: [Float], _ w: [Float], _ b: [Float]?, _ p: Case, out: [Int], begin: [Int]) -> [Float] {
        let cg = p.c / p.group
        let mg = p.m / p.group
        let inSize = volume(p.spatial)
        let outSize = volume(out)
        let kSize = volume(p.kernel)
        var y = [Float](repeating: 0, count: p.n * p.m * outSize)
        for img in 0..<p.n {
            for ch in 0..<p.m {
                for o in 0..<outSize { y[(img * p.m + ch) * outSize + o] = b?[ch] ?? 0 }
            }
            for c in 0..<p.c {
                let g = c / cg
                for i in 0..<inSize {
                    let xi = unravel(i, p.spatial)
                    let xv = x[(img * p.c + c) * inSize + i]
                    for t in 0..<kSize {
                        let ti = unravel(t, p.kernel)
                        var flat = 0
                        var inside = true
                        for dim in 0..<p.spatial.count {
                            let o = xi[dim] * (p.strides?[dim] ?? 1) - begin[dim] + ti[dim] * (p.dilations?[dim] ?? 1)
                            if o < 0 || o >= out[dim] { inside = false }
                            flat = flat * out[dim] + o
                        }
                        if !inside { continue }
                        for mo in 0..<mg {
                            let ch = g * mg + mo
                            y[(img * p.m + ch) * outSize + flat] += xv * w[(c * mg + mo) * kSize + t]
                        }
                    }
                }
            }
        }
        return y
    }

    static func attributes(_ p: Case) -> [String: Attribute] {
        var a: [String: Attribute] = ["group": .int(p.group), "kernel_shape": .ints(p.kernel)]
        if let v = p.strides { a["strides"] = .ints(v) }
        if let v = p.dilations { a["dilations"] = .ints(v) }
        if let v = p.pads { a["pads"] = .ints(v) }
        if let v = p.outputPadding { a["output_padding"] = .ints(v) }
        if let v = p.outputShape { a["output_shape"] = .ints(v) }
        if p.autoPad != "NOTSET" { a["auto_pad"] = .string(Array(p.autoPad.utf8)) }
        return a
    }

    @Test(arguments: cases)
    func convTransposeMatchesTheDefinition(_ p: Case) throws {
        var rng = TestRNG(seed: 11)
        let x = rng.tensor([p.n, p.c] + p.spatial)
        let w = rng.tensor([p.c, p.m / p.group] + p.kernel)
        let b = rng.tensor([p.m])
        let (out, begin) = Self.geometry(p, x: p.spatial)
        let expected = Self.reference(
            x.scalars(as: Float.self), w.scalars(as: Float.self), p.bias ? b.scalars(as: Float.self) : nil, p, out: out,
            begin: begin)
        var feeds = [("x", x)]
        var initializers: [String: Tensor] = [:]
        if p.fedWeights { feeds.append(("w", w)) } else { initializers["w"] = w }
        if p.bias { initializers["b"] = b }
        let node = Node(
            name: "node0", opType: "ConvTranspose", inputs: p.bias ? ["x", "w", "b"] : ["x", "w"], outputs: ["y"],
            attributes: Self.attributes(p))
        let graph = Graph(
            nodes: [node],
            inputs: feeds.map { ValueInfo(name: $0.0, dataType: .float32, shape: $0.1.shape.map { .fixed($0) }) },
            outputs: [ValueInfo(name: "y", dataType: nil, shape: nil)], initializers: initializers)
        let model = GraphModel(graph: graph, opsets: ["": 17], irVersion: 8)
        for threads in [1, 2] {
            let session = try InferenceSession(model: model, options: SessionOptions(blasThreads: threads))
            // Twice: the second run goes through the shape plan's arena (and its scratch).
            for _ in 0..<2 {
                let y = try session.run(Dictionary(uniqueKeysWithValues: feeds))["y"]!
                expectClose(y, expected, shape: [p.n, p.m] + out)
            }
        }
    }

    @Test func convTransposeRejectsWeightsThatDoNotFit() {
        var rng = TestRNG(seed: 12)
        let error = engineError {
            _ = try runNode(
                "ConvTranspose", inputs: ["x", "w"], feeds: [("x", rng.tensor([1, 4, 5, 5]))],
                initializers: ["w": rng.tensor([3, 2, 3, 3])], attributes: ["group": .int(2)])
        }
        guard case .invalidInput(let m)? = error else {
            Issue.record("expected invalidInput, got \(String(describing: error))")
            return
        }
        #expect(m.contains("[1, 4, 5, 5]") && m.contains("[3, 2, 3, 3]") && m.contains("group 2"), "\(m)")
    }

    @Test func convTransposeRejectsPadsLargerThanTheOutput() {
        var rng = TestRNG(seed: 13)
        let error = engineError {
            _ = try runNode(
                "ConvTranspose", inputs: ["x", "w"], feeds: [("x", rng.tensor([1, 1, 2, 2]))],
                initializers: ["w": rng.tensor([1, 1, 2, 2])], attributes: ["pads": .ints([2, 0, 2, 0])])
        }
        guard case .invalidInput(let m)? = error else {
            Issue.record("expected invalidInput, got \(String(describing: error))")
            return
        }
        #expect(m.contains("pads"), "\(m)")
    }
}
