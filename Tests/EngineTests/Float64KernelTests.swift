import Engine
import Tensors
import Testing

/// The float64 paths of Conv, the pools and the normalisations, which no ONNX conformance case
/// covers: each runs on random inputs in float64 and on the same values in float32 (the kernels the
/// conformance cases check), and the results must agree to float32 precision and be FP64.
@Suite struct Float64KernelTests {
    static func double(_ t: Tensor) -> Tensor { Tensor(t.scalars(as: Float.self).map(Double.init), shape: t.shape) }

    /// Runs `op` on float32 `feeds`/`initializers` and on their float64 copies; compares every output.
    func expectTwinsAgree(
        _ op: String, inputs: [String], feeds: [(String, Tensor)], initializers: [String: Tensor] = [:],
        attributes: [String: Attribute] = [:], outputs: [String] = ["y"], opset: Int = 17,
        sourceLocation: SourceLocation = #_sourceLocation
    ) throws {
        let single = try runNode(
            op, inputs: inputs, feeds: feeds, initializers: initializers, attributes: attributes, outputs: outputs,
            opset: opset)
        let wide = try runNode(
            op, inputs: inputs, feeds: feeds.map { ($0.0, Self.double($0.1)) },
            initializers: initializers.mapValues(Self.double), attributes: attributes, outputs: outputs, opset: opset)
        for (i, (s, d)) in zip(single, wide).enumerated() {
            // LayerNormalization's Mean and InvStdDev are float32 (the stash type) for either input.
            let expected: DataType = op == "LayerNormalization" && i > 0 ? .float32 : .float64
            #expect(d.dataType == expected, "\(op) output \(i) is \(d.dataType)", sourceLocation: sourceLocation)
            #expect(d.shape == s.shape, sourceLocation: sourceLocation)
            let a = s.doubleValues()
            let b = d.doubleValues()
            let worst = zip(a, b).map { abs($0 - $1) - (1e-5 + 1e-4 * abs($0)) }.max() ?? 0
            #expect(worst <= 0, "\(op): float64 differs from float32 by \(worst) beyond tolerance", sourceLocation: sourceLocation)
        }
    }

    @Test func convolutions() throws {
        var rng = TestRNG(seed: 64)
        let x = rng.tensor([2, 4, 9, 8])
        // Dense 3x3 with padding and stride, grouped, pointwise, depthwise, and a 1-D and 3-D one.
        try expectTwinsAgree(
            "Conv", inputs: ["x", "w", "b"], feeds: [("x", x)],
            initializers: ["w": rng.tensor([6, 4, 3, 3]), "b": rng.tensor([6])],
            attributes: ["pads": .ints([1, 1, 1, 1]), "strides": .ints([2, 1])])
        try expectTwinsAgree(
            "Conv", inputs: ["x", "w"], feeds: [("x", x)], initializers: ["w": rng.tensor([6, 2, 3, 2])],
            attributes: ["group": .int(2), "dilations": .ints([2, 1])])
        try expectTwinsAgree("Conv", inputs: ["x", "w"], feeds: [("x", x)], initializers: ["w": rng.tensor([5, 4, 1, 1])])
        try expectTwinsAgree(
            "Conv", inputs: ["x", "w", "b"], feeds: [("x", x)], initializers: ["w": rng.tensor([4, 1, 3, 3]), "b": rng.tensor([4])],
            attributes: ["group": .int(4), "auto_pad": .string(Array("SAME_UPPER".utf8))])
        try expectTwinsAgree(
            "Conv", inputs: ["x", "w"], feeds: [("x", rng.tensor([1, 3, 11]))], initializers: ["w": rng.tensor([2, 3, 4])])
        try expectTwinsAgree(
            "Conv", inputs: ["x", "w"], feeds: [("x", rng.tensor([1, 2, 4, 5, 5]))], initializers: ["w": rng.tensor([3, 2, 2, 3, 3])],
            attributes: ["pads": .ints([0, 1, 1, 1, 0, 1])])
        // Weights fed at run time, not an initializer.
        try expectTwinsAgree("Conv", inputs: ["x", "w"], feeds: [("x", x), ("w", rng.tensor([3, 4, 2, 2]))])
    }

    @Test func convWithAFusedActivationInFloat64() throws {
        // Conv -> Relu: the optimizer makes the Relu the Conv's epilogue, applied to doubles.
        var rng = TestRNG(seed: 65)
        let x = Self.double(rng.tensor([1, 2, 5, 5]))
        let w = Self.double(rng.tensor([3, 2, 3, 3]))
        let graph = Graph(
            nodes: [
                Node(name: "conv", opType: "Conv", inputs: ["x", "w"], outputs: ["c"], attributes: [:]),
                Node(name: "relu", opType: "Relu", inputs: ["c"], outputs: ["y"], attributes: [:]),
            ],
            inputs: [ValueInfo(name: "x", dataType: .float64, shape: [1, 2, 5, 5].map { .fixed($0) })],
            outputs: [ValueInfo(name: "y", dataType: .float64, shape: nil)], initializers: ["w": w])
        let session = try InferenceSession(model: GraphModel(graph: graph, opsets: ["": 17], irVersion: 8))
        let fused = try #require(try session.run(["x": x])["y"])
        let plain = try runNode("Conv", inputs: ["x", "w"], feeds: [("x", x)], initializers: ["w": w])[0]
        #expect(fused.dataType == .float64)
        #expect(fused.scalars(as: Double.self) == plain.scalars(as: Double.self).map { max($0, 0) })
        #expect(plain.scalars(as: Double.self).contains { $0 < 0 })  // the Relu had work to do
    }

    @Test func pools() throws {
        var rng = TestRNG(seed: 66)
        let x = rng.tensor([2, 3, 7, 6])
        let kernel: [String: Attribute] = ["kernel_shape": .ints([3, 2]), "strides": .ints([2, 2]), "pads": .ints([1, 0, 1, 1])]
        try expectTwinsAgree("AveragePool", inputs: ["x"], feeds: [("x", x)], attributes: kernel)
        try expectTwinsAgree(
            "AveragePool", inputs: ["x"], feeds: [("x", x)], attributes: kernel.merging(["count_include_pad": .int(1)]) { $1 })
        try expectTwinsAgree("MaxPool", inputs: ["x"], feeds: [("x", x)], attributes: kernel)
        try expectTwinsAgree("LpPool", inputs: ["x"], feeds: [("x", x)], attributes: kernel.merging(["p": .int(3)]) { $1 })
        try expectTwinsAgree("GlobalAveragePool", inputs: ["x"], feeds: [("x", x)])
        try expectTwinsAgree("GlobalMaxPool", inputs: ["x"], feeds: [("x", x)])
    }

    @Test func normalizations() throws {
        var rng = TestRNG(seed: 67)
        let x = rng.tensor([2, 4, 3, 5])
        let variance = Tensor(rng.floats(4).map { $0 * $0 + 0.1 }, shape: [4])
        try expectTwinsAgree(
            "BatchNormalization", inputs: ["x", "s", "b", "m", "v"], feeds: [("x", x)],
            initializers: ["s": rng.tensor([4]), "b": rng.tensor([4]), "m": rng.tensor([4]), "v": variance],
            attributes: ["epsilon": .float(1e-3)], opset: 15)
        try expectTwinsAgree(
            "InstanceNormalization", inputs: ["x", "s", "b"], feeds: [("x", x)],
            initializers: ["s": rng.tensor([4]), "b": rng.tensor([4])])
        try expectTwinsAgree(
            "LayerNormalization", inputs: ["x", "s", "b"], feeds: [("x", x)],
            initializers: ["s": rng.tensor([3, 5]), "b": rng.tensor([5])], attributes: ["axis": .int(-2)],
            outputs: ["y", "mean", "inv"])
        try expectTwinsAgree(
            "LayerNormalization", inputs: ["x", "s"], feeds: [("x", x)], initializers: ["s": rng.tensor([5])])
        for opset in [18, 21] {
            let params = opset >= 21 ? [4] : [2]
            try expectTwinsAgree(
                "GroupNormalization", inputs: ["x", "s", "b"], feeds: [("x", x)],
                initializers: ["s": rng.tensor(params), "b": rng.tensor(params)], attributes: ["num_groups": .int(2)],
                opset: opset)
        }
    }
}

/// MatMul on the integer types the spec allows: exact products, wrapping on overflow as numpy does.
@Suite struct IntegerMatMulTests {
    @Test func productsAndWrapAround() throws {
        let a = Tensor([1, 2, 3, 4, 5, 6] as [Int32], shape: [2, 3])
        let b = Tensor([7, 8, 9, 10, 11, 12] as [Int32], shape: [3, 2])
        #expect(try runSimple("MatMul", [a, b]).scalars(as: Int32.self) == [58, 64, 139, 154])
        let big = Tensor([Int64.max, 1] as [Int64], shape: [1, 2])
        let two = Tensor([2, 3] as [Int64], shape: [2, 1])
        #expect(try runSimple("MatMul", [big, two]).scalars(as: Int64.self) == [Int64.max &* 2 &+ 3])
        let u = Tensor([UInt32.max, 2] as [UInt32], shape: [2])
        #expect(try runSimple("MatMul", [u, Tensor([2, 1] as [UInt32], shape: [2])]).scalars(as: UInt32.self) == [0])
        // Batched, B broadcast over A's batch.
        let a3 = Tensor((0..<12).map { UInt64($0) }, shape: [2, 2, 3])
        let b2 = Tensor([1, 0, 0, 1, 1, 1] as [UInt64], shape: [3, 2])
        #expect(try runSimple("MatMul", [a3, b2]).scalars(as: UInt64.self) == [2, 3, 8, 9, 14, 15, 20, 21])
    }
}
