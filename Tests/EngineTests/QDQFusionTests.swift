import Engine
import Tensors
import Testing

/// The QDQ pass: DequantizeLinear -> Conv / MatMul -> QuantizeLinear becomes QLinearConv /
/// QLinearMatMul at load. The fused model must compute what the same model written with the
/// integer operator computes (bit for bit), stay within one output step of the float path, and
/// `QuantizationReport` must say what was fused.
@Suite struct QDQFusionTests {
    static let xScale = Tensor(scalar: Float(0.05))
    static let xZero = Tensor(scalar: UInt8(128))
    static let yScale = Tensor(scalar: Float(0.1))
    static let yZero = Tensor(scalar: UInt8(100))

    /// Conv weights [3, 2, 3, 3] int8, per-channel scales, an int32 bias with scale xs * ws.
    static func convConstants() -> [String: Tensor] {
        var rng = TestRNG(seed: 5)
        let w = (0..<54).map { _ in Int8(rng.int(in: -127...127)) }
        let ws: [Float] = [0.01, 0.02, 0.005]
        let bias: [Int32] = [100, -2000, 37]
        return [
            "xs": xScale, "xz": xZero, "wq": Tensor(w, shape: [3, 2, 3, 3]), "ws": Tensor(ws, shape: [3]),
            "wz": Tensor([Int8](repeating: 0, count: 3), shape: [3]), "bq": Tensor(bias, shape: [3]),
            "bs": Tensor(ws.map { Float(0.05) * $0 }, shape: [3]), "ys": yScale, "yz": yZero,
        ]
    }

    static func session(_ nodes: [Node], _ constants: [String: Tensor]) throws -> InferenceSession {
        let graph = Graph(
            nodes: nodes, inputs: [ValueInfo(name: "x", dataType: .float32, shape: [.fixed(1), .fixed(2), .fixed(5), .fixed(5)])],
            outputs: [ValueInfo(name: "out", dataType: nil, shape: nil)], initializers: constants)
        return try InferenceSession(model: GraphModel(graph: graph, opsets: ["": 13], irVersion: 8))
    }

    static let qdqNodes: [Node] = [
        Node(name: "qx", opType: "QuantizeLinear", inputs: ["x", "xs", "xz"], outputs: ["xq"]),
        Node(name: "dx", opType: "DequantizeLinear", inputs: ["xq", "xs", "xz"], outputs: ["xd"]),
        Node(name: "dw", opType: "DequantizeLinear", inputs: ["wq", "ws", "wz"], outputs: ["wd"], attributes: ["axis": .int(0)]),
        Node(name: "db", opType: "DequantizeLinear", inputs: ["bq", "bs"], outputs: ["bd"], attributes: ["axis": .int(0)]),
        Node(name: "conv", opType: "Conv", inputs: ["xd", "wd", "bd"], outputs: ["y"], attributes: ["pads": .ints([1, 1, 1, 1])]),
        Node(name: "qy", opType: "QuantizeLinear", inputs: ["y", "ys", "yz"], outputs: ["yq"]),
        Node(name: "dy", opType: "DequantizeLinear", inputs: ["yq", "ys", "yz"], outputs: ["out"]),
    ]

    @Test func convBetweenQDQPairsRunsAsQLinearConv() throws {
        let constants = Self.convConstants()
        var rng = TestRNG(seed: 9)
        let x = Tensor(rng.floats(50).map { $0 * 4 }, shape: [1, 2, 5, 5])
        let fused = try Self.session(Self.qdqNodes, constants).run(["x": x])["out"]!
        let integer = try Self.session(
            [
                Node(name: "qx", opType: "QuantizeLinear", inputs: ["x", "xs", "xz"], outputs: ["xq"]),
                Node(
                    name: "conv", opType: "QLinearConv", inputs: ["xq", "xs", "xz", "wq", "ws", "wz", "ys", "yz", "bq"],
                    outputs: ["yq"], attributes: ["pads": .ints([1, 1, 1, 1])]),
                Node(name: "dy", opType: "DequantizeLinear", inputs: ["yq", "ys", "yz"], outputs: ["out"]),
            ], constants
        ).run(["x": x])["out"]!
        #expect(fused.scalars(as: Float.self) == integer.scalars(as: Float.self))

        // The float path (dequantized values, float convolution, then quantized): within one step.
        let xs = x.scalars(as: Float.self).map { v -> Float in
            let q = min(255, max(0, (v / 0.05).rounded(.toNearestOrEven) + 128))
            return (q - 128) * 0.05
        }
        let w = constants["wq"]!.scalars(as: Int8.self)
        let ws = constants["ws"]!.scalars(as: Float.self)
        let bias = constants["bq"]!.scalars(as: Int32.self)
        let got = fused.scalars(as: Float.self)
        var worst: Float = 0
        for m in 0..<3 {
            for oy in 0..<5 {
                for ox in 0..<5 {
                    var s = Double(Float(bias[m]) * 0.05 * ws[m])
                    for c in 0..<2 {
                        for ky in 0..<3 {
                            for kx in 0..<3 {
                                let (iy, ix) = (oy - 1 + ky, ox - 1 + kx)
                                guard iy >= 0, iy < 5, ix >= 0, ix < 5 else { continue }
                                s += Double(xs[(c * 5 + iy) * 5 + ix]) * Double(Float(w[((m * 2 + c) * 3 + ky) * 3 + kx]) * ws[m])
                            }
                        }
                    }
                    let q = min(255, max(0, (s / 0.1).rounded(.toNearestOrEven) + 100))
                    worst = max(worst, abs(Float((q - 100) * 0.1) - got[(m * 5 + oy) * 5 + ox]))
                }
            }
        }
        #expect(worst <= 0.1 + 1e-6, "the fused result is \(worst) from the float path (one step is 0.1)")
    }

    @Test func theReportSaysWhatWasFused() throws {
        let graph = Graph(
            nodes: Self.qdqNodes,
            inputs: [ValueInfo(name: "x", dataType: .float32, shape: [.fixed(1), .fixed(2), .fixed(5), .fixed(5)])],
            outputs: [ValueInfo(name: "out", dataType: nil, shape: nil)], initializers: Self.convConstants())
        let report = QuantizationReport(model: GraphModel(graph: graph, opsets: ["": 13], irVersion: 8))
        #expect(report.formats == ["QDQ"])
        #expect(report.perChannel)
        #expect(report.fusion.fused == ["QLinearConv": 1])
        #expect(report.lines.joined().contains("1 QLinearConv"))
    }

    @Test func aConvWithoutQuantizeLinearAfterItStaysInFloat() throws {
        var nodes = Self.qdqNodes
        nodes.removeLast(2)
        nodes[4].outputs = ["out"]
        let graph = Graph(
            nodes: nodes, inputs: [ValueInfo(name: "x", dataType: .float32, shape: [.fixed(1), .fixed(2), .fixed(5), .fixed(5)])],
            outputs: [ValueInfo(name: "out", dataType: nil, shape: nil)], initializers: Self.convConstants())
        let report = QuantizationReport(model: GraphModel(graph: graph, opsets: ["": 13], irVersion: 8))
        #expect(report.fusion.fused.isEmpty)
        #expect(report.fusion.left.count == 1 && report.fusion.left[0].contains("QuantizeLinear"), "\(report.fusion.left)")
        var rng = TestRNG(seed: 9)
        let x = Tensor(rng.floats(50), shape: [1, 2, 5, 5])
        let y = try Self.session(nodes, Self.convConstants()).run(["x": x])["out"]!
        #expect(y.shape == [1, 3, 5, 5])
    }

    /// A residual Add between QDQ pairs becomes com.microsoft QLinearAdd (as onnxruntime's default
    /// session computes it), equal to the same model written with QLinearAdd, and the report says so.
    @Test func addBetweenQDQPairsRunsAsQLinearAdd() throws {
        let constants: [String: Tensor] = [
            "as": Tensor(scalar: Float(0.07436571)), "az": Tensor(scalar: UInt8(130)), "bs": Tensor(scalar: Float(0.046617586)),
            "bz": Tensor(scalar: UInt8(0)), "ys": Tensor(scalar: Float(0.05466321)), "yz": Tensor(scalar: UInt8(0)),
        ]
        func session(_ nodes: [Node]) throws -> InferenceSession {
            let inputs = ["a", "b"].map { ValueInfo(name: $0, dataType: .float32, shape: [.fixed(1), .fixed(64)]) }
            let graph = Graph(nodes: nodes, inputs: inputs, outputs: [ValueInfo(name: "out", dataType: nil, shape: nil)], initializers: constants)
            return try InferenceSession(model: GraphModel(graph: graph, opsets: ["": 13, "com.microsoft": 1], irVersion: 8))
        }
        let quantize = [
            Node(name: "qa", opType: "QuantizeLinear", inputs: ["a", "as", "az"], outputs: ["aq"]),
            Node(name: "qb", opType: "QuantizeLinear", inputs: ["b", "bs", "bz"], outputs: ["bq"]),
        ]
        let qdq = quantize + [
            Node(name: "da", opType: "DequantizeLinear", inputs: ["aq", "as", "az"], outputs: ["ad"]),
            Node(name: "db", opType: "DequantizeLinear", inputs: ["bq", "bs", "bz"], outputs: ["bd"]),
            Node(name: "add", opType: "Add", inputs: ["ad", "bd"], outputs: ["y"]),
            Node(name: "qy", opType: "QuantizeLinear", inputs: ["y", "ys", "yz"], outputs: ["out"]),
        ]
        let integer = quantize + [
            Node(name: "add", opType: "QLinearAdd", domain: "com.microsoft", inputs: ["aq", "as", "az", "bq", "bs", "bz", "ys", "yz"],
                 outputs: ["out"]),
        ]
        var rng = TestRNG(seed: 3)
        let feeds = ["a": Tensor(rng.floats(64).map { $0 * 9 }, shape: [1, 64]), "b": Tensor(rng.floats(64).map { $0 * 6 }, shape: [1, 64])]
        let fused = try session(qdq).run(feeds)["out"]!
        #expect(fused.scalars(as: UInt8.self) == (try session(integer).run(feeds)["out"]!).scalars(as: UInt8.self))
        let graph = Graph(
            nodes: qdq, inputs: ["a", "b"].map { ValueInfo(name: $0, dataType: .float32, shape: [.fixed(1), .fixed(64)]) },
            outputs: [ValueInfo(name: "out", dataType: nil, shape: nil)], initializers: constants)
        let report = QuantizationReport(model: GraphModel(graph: graph, opsets: ["": 13], irVersion: 8))
        #expect(report.fusion.fused == ["com.microsoft.QLinearAdd": 1])
    }

    /// MaxPool between a QDQ pair of equal parameters pools the 8-bit values (exact); with another
    /// output scale it stays in float.
    @Test func maxPoolBetweenEqualPairsPoolsEightBitValues() throws {
        func graph(outScale: Float) -> Graph {
            let constants: [String: Tensor] = [
                "s": Tensor(scalar: Float(0.05)), "z": Tensor(scalar: UInt8(128)), "os": Tensor(scalar: outScale),
            ]
            let nodes = [
                Node(name: "q", opType: "QuantizeLinear", inputs: ["x", "s", "z"], outputs: ["xq"]),
                Node(name: "d", opType: "DequantizeLinear", inputs: ["xq", "s", "z"], outputs: ["xd"]),
                Node(name: "pool", opType: "MaxPool", inputs: ["xd"], outputs: ["p"],
                     attributes: ["kernel_shape": .ints([3, 3]), "strides": .ints([2, 2]), "pads": .ints([1, 1, 1, 1])]),
                Node(name: "qp", opType: "QuantizeLinear", inputs: ["p", "os", "z"], outputs: ["out"]),
            ]
            return Graph(
                nodes: nodes, inputs: [ValueInfo(name: "x", dataType: .float32, shape: [.fixed(1), .fixed(3), .fixed(7), .fixed(7)])],
                outputs: [ValueInfo(name: "out", dataType: nil, shape: nil)], initializers: constants)
        }
        var rng = TestRNG(seed: 21)
        let x = Tensor(rng.floats(147).map { $0 * 8 }, shape: [1, 3, 7, 7])
        let fused = try InferenceSession(model: GraphModel(graph: graph(outScale: 0.05), opsets: ["": 13], irVersion: 8)).run(["x": x])["out"]!
        #expect(QuantizationReport(model: GraphModel(graph: graph(outScale: 0.05), opsets: ["": 13], irVersion: 8)).fusion.fused
                == ["MaxPool on 8-bit values": 1])
        #expect(QuantizationReport(model: GraphModel(graph: graph(outScale: 0.1), opsets: ["": 13], irVersion: 8)).fusion.fused.isEmpty)
        // The reference: the quantized input pooled as integers.
        let q = x.scalars(as: Float.self).map { UInt8(min(255, max(0, ($0 / 0.05).rounded(.toNearestOrEven) + 128))) }
        var expected: [UInt8] = []
        for c in 0..<3 {
            for oy in 0..<4 {
                for ox in 0..<4 {
                    var best: UInt8 = 0
                    for ky in 0..<3 {
                        for kx in 0..<3 {
                            let (iy, ix) = (oy * 2 - 1 + ky, ox * 2 - 1 + kx)
                            guard iy >= 0, iy < 7, ix >= 0, ix < 7 else { continue }
                            best = max(best, q[(c * 7 + iy) * 7 + ix])
                        }
                    }
                    expected.append(best)
                }
            }
        }
        #expect(fused.shape == [1, 3, 4, 4])
        #expect(fused.scalars(as: UInt8.self) == expected)
    }
}
