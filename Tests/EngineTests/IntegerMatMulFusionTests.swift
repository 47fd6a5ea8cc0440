import Engine
import Tensors
import Testing

/// Dynamic quantization's MatMulInteger -> Cast -> Mul(a_scale * b_scale) -> Add(bias) chain becomes
/// one com.microsoft MatMulIntegerToFloat at load, scaled in the integer GEMM's epilogue; the
/// outputs must be the graph's own float32 operations, bit for bit. Also the epilogue outputs of
/// MatMulIntegerToFloat and QLinearMatMul on batched operands (B fed per batch, not prepared).
@Suite struct IntegerMatMulFusionTests {
    static let (m, k, n) = (7, 24, 5)

    /// x [2, m, k] -> DynamicQuantizeLinear -> MatMulInteger with int8 weights [k, n] and per-column
    /// zero points -> Cast -> Mul(Mul(x_scale, w_scale [n])) -> Add(bias [n]). `castReaders` > 1
    /// gives the Cast a second reader (a graph output), which must stop the fusion.
    static func model(castIsOutput: Bool = false) -> GraphModel {
        var rng = TestRNG(seed: 41)
        let w = Tensor((0..<(k * n)).map { _ in Int8(rng.int(in: -128...127)) }, shape: [k, n])
        let constants: [String: Tensor] = [
            "w": w, "wz": Tensor((0..<n).map { _ in Int8(rng.int(in: -3...3)) }, shape: [n]),
            "ws": Tensor((0..<n).map { _ in Float(rng.int(in: 1...9)) / 512 }, shape: [n]),
            "bias": Tensor(rng.floats(n), shape: [n]),
        ]
        let nodes = [
            Node(name: "dql", opType: "DynamicQuantizeLinear", inputs: ["x"], outputs: ["xq", "xs", "xz"]),
            Node(name: "scale", opType: "Mul", inputs: ["xs", "ws"], outputs: ["s"]),
            Node(name: "mm", opType: "MatMulInteger", inputs: ["xq", "w", "xz", "wz"], outputs: ["acc"]),
            Node(name: "cast", opType: "Cast", inputs: ["acc"], outputs: ["f"], attributes: ["to": .int(1)]),
            Node(name: "mul", opType: "Mul", inputs: ["f", "s"], outputs: ["y"]),
            Node(name: "add", opType: "Add", inputs: ["bias", "y"], outputs: ["out"]),
        ]
        let outputs = ["out", "xq", "xs", "xz"] + (castIsOutput ? ["f"] : [])
        let graph = Graph(
            nodes: nodes, inputs: [ValueInfo(name: "x", dataType: .float32, shape: [.fixed(2), .fixed(m), .fixed(k)])],
            outputs: outputs.map { ValueInfo(name: $0, dataType: nil, shape: nil) }, initializers: constants)
        return GraphModel(graph: graph, opsets: ["": 17], irVersion: 8)
    }

    /// The graph's own arithmetic from the quantized x it returns: exact int32 sums, then
    /// Float(sum) * Float(xs * ws[j]), then + bias[j], each rounded in float32.
    static func expected(_ model: GraphModel, _ r: [String: Tensor]) -> [Float] {
        let c = model.graph.initializers
        let (w, wz) = (c["w"]!.scalars(as: Int8.self), c["wz"]!.scalars(as: Int8.self))
        let (ws, bias) = (c["ws"]!.scalars(as: Float.self), c["bias"]!.scalars(as: Float.self))
        let xq = r["xq"]!.scalars(as: UInt8.self)
        let xs = r["xs"]!.scalars(as: Float.self)[0]
        let xz = Int(r["xz"]!.scalars(as: UInt8.self)[0])
        var out = [Float](repeating: 0, count: 2 * m * n)
        for row in 0..<(2 * m) {
            for j in 0..<n {
                var sum = 0
                for p in 0..<k { sum += (Int(xq[row * k + p]) - xz) * (Int(w[p * n + j]) - Int(wz[j])) }
                let scaled = Float(Int32(sum)) * (xs * ws[j])
                out[row * n + j] = bias[j] + scaled
            }
        }
        return out
    }

    @Test(arguments: [1, 2])
    func dynamicChainFusesAndComputesTheGraphsArithmetic(_ threads: Int) throws {
        let model = Self.model()
        #expect(QuantizationReport(model: model).dynamicFused == 1)
        #expect(QuantizationReport(model: model).lines.joined().contains("1 MatMulInteger -> Cast -> Mul [-> Add] fused"))
        var rng = TestRNG(seed: 3)
        let x = Tensor(rng.floats(2 * Self.m * Self.k).map { $0 * 3 }, shape: [2, Self.m, Self.k])
        let session = try InferenceSession(model: model, options: SessionOptions(blasThreads: threads))
        let r = try session.run(["x": x])
        #expect(r["out"]!.shape == [2, Self.m, Self.n])
        #expect(r["out"]!.scalars(as: Float.self) == Self.expected(model, r))
    }

    @Test func aSecondReaderOfTheCastKeepsTheChain() throws {
        let model = Self.model(castIsOutput: true)
        #expect(QuantizationReport(model: model).dynamicFused == 0)
        var rng = TestRNG(seed: 4)
        let x = Tensor(rng.floats(2 * Self.m * Self.k), shape: [2, Self.m, Self.k])
        let r = try InferenceSession(model: model).run(["x": x])
        #expect(r["out"]!.scalars(as: Float.self) == Self.expected(model, r))
        #expect(r["f"]!.dataType == .float32)
    }

    /// MatMulIntegerToFloat and QLinearMatMul with B fed as [2, k, n] (one GEMM per batch, each
    /// storing floats or 8-bit values through the epilogue at its batch's offset).
    @Test func batchedEpiloguesMatchTheDefinition() throws {
        var rng = TestRNG(seed: 8)
        let (m, k, n) = (3, 9, 6)
        let av = (0..<(2 * m * k)).map { _ in rng.int(in: 0...255) }
        let bv = (0..<(2 * k * n)).map { _ in rng.int(in: -128...127) }
        let a = Tensor(av.map { UInt8($0) }, shape: [2, m, k])
        let b = Tensor(bv.map { Int8($0) }, shape: [2, k, n])
        let (za, zb) = (17, -2)
        let bScales = (0..<n).map { _ in Float(rng.int(in: 1...9)) / 64 }
        let bias = rng.floats(n)
        let (aScale, yScale, yZero): (Float, Float, Float) = (0.03, 0.4, 9)
        var sums = [Int](repeating: 0, count: 2 * m * n)
        for t in 0..<2 {
            for i in 0..<m {
                for j in 0..<n {
                    for p in 0..<k { sums[(t * m + i) * n + j] += (av[(t * m + i) * k + p] - za) * (bv[(t * k + p) * n + j] - zb) }
                }
            }
        }
        let floats = try runNode(
            "MatMulIntegerToFloat", inputs: ["a", "b", "as", "bs", "az", "bz", "bias"], feeds: [("a", a), ("b", b)],
            initializers: [
                "as": Tensor(scalar: aScale), "bs": Tensor(bScales, shape: [n]), "az": Tensor(scalar: UInt8(za)),
                "bz": Tensor(scalar: Int8(zb)), "bias": Tensor(bias, shape: [n]),
            ], domain: "com.microsoft", opset: 1)[0]
        #expect(floats.shape == [2, m, n])
        #expect(floats.scalars(as: Float.self) == sums.indices.map { Float(Int32(sums[$0])) * (aScale * bScales[$0 % n]) + bias[$0 % n] })
        let quantized = try runNode(
            "QLinearMatMul", inputs: ["a", "as", "az", "b", "bs", "bz", "ys", "yz"], feeds: [("a", a), ("b", b)],
            initializers: [
                "as": Tensor(scalar: aScale), "az": Tensor(scalar: UInt8(za)), "bs": Tensor(bScales, shape: [n]),
                "bz": Tensor([Int8](repeating: Int8(zb), count: n), shape: [n]), "ys": Tensor(scalar: yScale),
                "yz": Tensor(scalar: UInt8(yZero)),
            ], opset: 21)[0]
        let requantized = sums.indices.map { i in
            UInt8(min(255, max(0, (Float(Int32(sums[i])) * (aScale * bScales[i % n] / yScale)).rounded(.toNearestOrEven) + yZero)))
        }
        #expect(quantized.scalars(as: UInt8.self) == requantized)
    }
    /// QLinearMatMul with every input but A constant (B prepared and the requantization computed
    /// once at load) and with its scales and zero points fed per run: both give the definition.
    @Test func constantRequantizationMatchesPerRun() throws {
        var rng = TestRNG(seed: 12)
        let (m, k, n) = (5, 7, 4)
        let av = (0..<(m * k)).map { _ in rng.int(in: 0...255) }
        let bv = (0..<(k * n)).map { _ in rng.int(in: -128...127) }
        let (za, zb, yZero): (Int, Int, Float) = (130, 3, 120)
        let bScales = (0..<n).map { _ in Float(rng.int(in: 1...9)) / 128 }
        let (aScale, yScale): (Float, Float) = (0.02, 0.7)
        let params: [(String, Tensor)] = [
            ("as", Tensor(scalar: aScale)), ("az", Tensor(scalar: UInt8(za))), ("bs", Tensor(bScales, shape: [n])),
            ("bz", Tensor(scalar: Int8(zb))), ("ys", Tensor(scalar: yScale)), ("yz", Tensor(scalar: UInt8(yZero))),
        ]
        let a = ("a", Tensor(av.map { UInt8($0) }, shape: [m, k]))
        let b = ("b", Tensor(bv.map { Int8($0) }, shape: [k, n]))
        let names = ["a", "as", "az", "b", "bs", "bz", "ys", "yz"]
        var initializers = Dictionary(uniqueKeysWithValues: params)
        initializers["b"] = b.1
        let atLoad = try runNode("QLinearMatMul", inputs: names, feeds: [a], initializers: initializers, opset: 21)[0]
        let perRun = try runNode("QLinearMatMul", inputs: names, feeds: [a, b] + params, opset: 21)[0]
        var want = [UInt8]()
        for i in 0..<m {
            for j in 0..<n {
                var sum = 0
                for p in 0..<k { sum += (av[i * k + p] - za) * (bv[p * n + j] - zb) }
                let v = (Float(Int32(sum)) * (aScale * bScales[j] / yScale)).rounded(.toNearestOrEven) + yZero
                want.append(UInt8(min(255, max(0, v))))
            }
        }
        #expect(atLoad.scalars(as: UInt8.self) == want)
        #expect(perRun.scalars(as: UInt8.self) == want)
    }
}
