import Engine
import Tensors
import Testing

/// float16 and bfloat16 models: held as float32 inside, converted at the session's edges, with a
/// Cast to a 16-bit type rounding as onnxruntime's does.
@Suite struct HalfPrecisionTests {
    /// A model of `nodes` with typed, fixed-shape inputs and outputs.
    func session(
        _ nodes: [Node], inputs: [(String, DataType, [Int])], outputs: [(String, DataType, [Int])],
        initializers: [String: Tensor] = [:]
    ) throws -> InferenceSession {
        let info = { (v: (String, DataType, [Int])) in ValueInfo(name: v.0, dataType: v.1, shape: v.2.map { .fixed($0) }) }
        let graph = Graph(nodes: nodes, inputs: inputs.map(info), outputs: outputs.map(info), initializers: initializers)
        return try InferenceSession(model: GraphModel(graph: graph, opsets: ["": 21], irVersion: 9))
    }

    func half(_ values: [Float], _ format: DataType, shape: [Int]) throws -> Tensor {
        try Tensor(values, shape: shape).narrowed(to: format)
    }

    /// A 16-bit model keeps its packed weights 16-bit: a Winograd 3x3 Conv, a strided (im2col)
    /// Conv and a MatMul hold half the bytes of the float32 twin (`memoryFootprint().packed`, what
    /// the model store accounts), and compute what the twin computes on the same rounded weights
    /// (the MatMul and im2col Conv bit for bit; the Winograd one within float16's rounding of U).
    @Test(arguments: [DataType.float16, .bfloat16])
    func sixteenBitModelsHoldHalfTheWeightBytes(format: DataType) throws {
        var rng = TestRNG(seed: 17)
        let rounded = { (n: Int) in rng.floats(n).map { HalfConversion.rounded($0, to: format) } }
        let (w1, w2, w3) = (rounded(64 * 64 * 9), rounded(64 * 64 * 9), rounded(64 * 4 * 4 * 512))
        let nodes = [
            Node(name: "c1", opType: "Conv", inputs: ["x", "w1"], outputs: ["a"], attributes: ["pads": .ints([1, 1, 1, 1])]),
            Node(name: "c2", opType: "Conv", inputs: ["a", "w2"], outputs: ["b"], attributes: ["strides": .ints([2, 2])]),
            Node(name: "f", opType: "Flatten", inputs: ["b"], outputs: ["fl"]),
            Node(name: "mm", opType: "MatMul", inputs: ["fl", "w3"], outputs: ["y"]),
        ]
        func load(_ type: DataType) throws -> InferenceSession {
            let t = { (v: [Float], shape: [Int]) in type == .float32 ? Tensor(v, shape: shape) : try self.half(v, type, shape: shape) }
            return try session(
                nodes, inputs: [("x", type, [1, 64, 10, 10])], outputs: [("y", type, [1, 512])],
                initializers: ["w1": try t(w1, [64, 64, 3, 3]), "w2": try t(w2, [64, 64, 3, 3]), "w3": try t(w3, [64 * 16, 512])])
        }
        let twin = try load(.float32)
        let sixteen = try load(format)
        let (fullBytes, halfBytes) = (twin.memoryFootprint().packed, sixteen.memoryFootprint().packed)
        #expect(abs(Double(halfBytes) / Double(fullBytes) - 0.5) < 0.01, "packed bytes \(halfBytes) of \(fullBytes)")
        let x = rounded(64 * 100)
        let want = try twin.run(["x": Tensor(x, shape: [1, 64, 10, 10])])["y"]!.scalars(as: Float.self)
        let got = try sixteen.run(["x": try half(x, format, shape: [1, 64, 10, 10])])["y"]!.widenedToFloat32().scalars(as: Float.self)
        let largest = want.map(abs).max()!
        let unit: Float = format == .float16 ? 0x1p-10 : 0x1p-7
        let worst = zip(got, want).map { abs($0 - $1) }.max()!
        #expect(worst <= 2 * unit * largest, "worst difference \(worst) of \(largest)")
    }

    @Test(arguments: [DataType.float16, .bfloat16])
    func matMulWithSixteenBitWeightsMatchesFloat32OnTheRoundedValues(format: DataType) throws {
        var rng = TestRNG(seed: 7)
        let x = try half(rng.floats(2 * 8), format, shape: [2, 8])
        let w = try half(rng.floats(8 * 3), format, shape: [8, 3])
        let s = try session(
            [Node(name: "mm", opType: "MatMul", inputs: ["x", "w"], outputs: ["y"])],
            inputs: [("x", format, [2, 8])], outputs: [("y", format, [2, 3])], initializers: ["w": w])
        #expect(s.inputs.first?.dataType == format && s.outputs.first?.dataType == format)
        let y = try s.run(["x": x])["y"]!
        #expect(y.dataType == format && y.shape == [2, 3])
        let xs = try x.widenedToFloat32().scalars(as: Float.self)
        let ws = try w.widenedToFloat32().scalars(as: Float.self)
        let got = try y.widenedToFloat32().scalars(as: Float.self)
        for i in 0..<2 {
            for j in 0..<3 {
                var sum: Float = 0
                for k in 0..<8 { sum += xs[i * 8 + k] * ws[k * 3 + j] }
                let ulp: Float = format == .float16 ? 0x1p-10 : 0x1p-7
                #expect(abs(got[i * 3 + j] - HalfConversion.rounded(sum, to: format)) <= ulp * max(abs(sum), 1) * 2)
            }
        }
    }

    @Test(arguments: [DataType.float16, .bfloat16])
    func castToSixteenBitsRoundsAndCastBackIsExact(format: DataType) throws {
        let s = try session(
            [
                Node(name: "down", opType: "Cast", inputs: ["x"], outputs: ["h"], attributes: ["to": .int(Int(format.rawValue))]),
                Node(name: "up", opType: "Cast", inputs: ["h"], outputs: ["y"], attributes: ["to": .int(1)]),
            ],
            inputs: [("x", .float32, [4])], outputs: [("y", .float32, [4]), ("h", format, [4])])
        let x = Tensor([0.1, 1e6, -3.3, 1e-30] as [Float], shape: [4])
        let out = try s.run(["x": x])
        let y = out["y"]!.scalars(as: Float.self)
        #expect(y == x.scalars(as: Float.self).map { HalfConversion.rounded($0, to: format) })
        #expect(out["h"]!.dataType == format)
        #expect(try out["h"]!.widenedToFloat32().scalars(as: Float.self) == y)
        if format == .float16 { #expect(y[1] == .infinity && y[0] == 0.0999755859375) }
    }

    @Test func castLikeToASixteenBitTargetRounds() throws {
        let s = try session(
            [Node(name: "cl", opType: "CastLike", inputs: ["x", "like"], outputs: ["y"])],
            inputs: [("x", .float32, [2]), ("like", .bfloat16, [1])], outputs: [("y", .bfloat16, [2])])
        let out = try s.run(["x": Tensor([1.00390625, 3.14159] as [Float], shape: [2]), "like": try half([0], .bfloat16, shape: [1])])
        #expect(out["y"]!.dataType == .bfloat16)
        // 1 + 2^-8 is the tie between 1 and 1 + 2^-7: even is 1.
        #expect(out["y"]!.elements(as: UInt16.self).map { $0 } == [0x3F80, HalfConversion.bfloat16Bits(Float(3.14159))])
    }

    @Test func sixteenBitConstantsAndDtypeAttributesAreWidened() throws {
        let s = try session(
            [
                Node(name: "k", opType: "Constant", inputs: [], outputs: ["k"],
                     attributes: ["value": .tensor(try half([0.5, -2], .float16, shape: [2]))]),
                Node(name: "fill", opType: "ConstantOfShape", inputs: ["shape"], outputs: ["f"],
                     attributes: ["value": .tensor(try half([1.5], .float16, shape: [1]))]),
                Node(name: "add", opType: "Add", inputs: ["k", "f"], outputs: ["sum"]),
                Node(name: "add2", opType: "Add", inputs: ["sum", "x"], outputs: ["y"]),
                Node(name: "eye", opType: "EyeLike", inputs: ["e"], outputs: ["i"], attributes: ["dtype": .int(10)]),
            ],
            inputs: [("x", .float16, [2]), ("shape", .int64, [1]), ("e", .float32, [2, 2])],
            outputs: [("y", .float16, [2]), ("i", .float16, [2, 2])])
        let out = try s.run([
            "x": try half([1, 2], .float16, shape: [2]), "shape": Tensor([2] as [Int64], shape: [1]),
            "e": Tensor(zeros: .float32, shape: [2, 2]),
        ])
        #expect(try out["y"]!.widenedToFloat32().scalars(as: Float.self) == [3, 1.5])
        #expect(try out["i"]!.widenedToFloat32().scalars(as: Float.self) == [1, 0, 0, 1])
    }

    @Test func bitCastOfASixteenBitFloatIsRefusedAtLoad() {
        let error = engineError {
            _ = try session(
                [Node(name: "bits", opType: "BitCast", inputs: ["x"], outputs: ["y"], attributes: ["to": .int(5)])],
                inputs: [("x", .float16, [2])], outputs: [("y", .int16, [2])])
        }
        #expect(error.map { "\($0)".contains("'BitCast'") && "\($0)".contains("'bits'") } == true)
    }

    @Test func aFeedOfAnotherTypeForASixteenBitInputNamesTheDeclaredType() throws {
        let s = try session(
            [Node(name: "relu", opType: "Relu", inputs: ["x"], outputs: ["y"])],
            inputs: [("x", .float16, [2])], outputs: [("y", .float16, [2])])
        let error = engineError { _ = try s.run(["x": Tensor([1, -1] as [Float], shape: [2])]) }
        #expect(error.map { "\($0)".contains("FP16") && "\($0)".contains("got FP32") } == true)
        let shape = engineError { _ = try s.run(["x": try half([1, -1, 2], .float16, shape: [3])]) }
        #expect(shape.map { "\($0)".contains("expected FP16 tensor of shape [2], got FP16 [3]") } == true)
        let y = try s.run(["x": try half([1, -1], .float16, shape: [2])])["y"]!
        #expect(y.elements(as: UInt16.self).map { $0 } == [0x3C00, 0x0000])
    }
}
