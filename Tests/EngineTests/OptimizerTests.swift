@testable import Engine
import Tensors
import Testing

/// The load-time passes of `GraphOptimizer`: each rewritten graph must give what the graph as written
/// gives (run through a plan built without the passes), and the rewrite must actually happen.
@Suite struct OptimizerTests {
    /// Runs `graph` twice: as written (plan without passes) and optimised (session); returns both
    /// results for `output` and the optimised node op types.
    /// The graph run plainly (no load-time passes) and through a session (optimised), the latter
    /// also under a budget of two threads (`onTwoThreads`), and the optimised graph's operators.
    func both(_ graph: Graph, feeds: [String: Tensor], output: String = "y", opset: Int = 17) throws
        -> (plain: Tensor, optimised: Tensor, onTwoThreads: Tensor, ops: [String])
    {
        let model = GraphModel(graph: graph, opsets: ["": opset], irVersion: 8)
        let plain = try Plan(model: model).run(feeds)[output]!
        let optimisedModel = GraphOptimizer.optimize(model, registry: .cpu)
        let optimised = try InferenceSession(model: model).run(feeds)[output]!
        let two = try InferenceSession(model: model, options: SessionOptions(blasThreads: 2)).run(feeds)[output]!
        return (plain, optimised, two, optimisedModel.graph.nodes.map(\.opType))
    }

    func input(_ name: String, _ shape: [Int]) -> ValueInfo {
        ValueInfo(name: name, dataType: .float32, shape: shape.map { .fixed($0) })
    }

    let output = [ValueInfo(name: "y", dataType: .float32, shape: nil)]

    /// The node `activation` reading `input` and writing "y" (Clip with bounds -0.2 and 0.3 added
    /// to `initializers`, LeakyRelu with alpha 0.2).
    func activationNode(_ activation: String, reading input: String, _ initializers: inout [String: Tensor]) -> Node {
        var inputs = [input]
        if activation == "Clip" {
            inputs += ["lo", "hi"]
            initializers["lo"] = Tensor(scalar: Float(-0.2))
            initializers["hi"] = Tensor(scalar: Float(0.3))
        }
        return Node(name: "act", opType: activation, inputs: inputs, outputs: ["y"],
            attributes: activation == "LeakyRelu" ? ["alpha": .float(0.2)] : [:])
    }

    @Test func convBatchNormReluFoldsIntoOneConv() throws {
        var rng = TestRNG(seed: 300)
        let nodes = [
            Node(name: "conv", opType: "Conv", inputs: ["x", "w", "b"], outputs: ["c"],
                attributes: ["pads": .ints([1, 1, 1, 1])]),
            Node(name: "bn", opType: "BatchNormalization", inputs: ["c", "scale", "shift", "mean", "var"], outputs: ["n"]),
            Node(name: "relu", opType: "Relu", inputs: ["n"], outputs: ["y"]),
        ]
        let variance = Tensor(rng.floats(4).map { abs($0) + 0.1 }, shape: [4])
        let graph = Graph(
            nodes: nodes, inputs: [input("x", [2, 3, 6, 6])], outputs: output,
            initializers: [
                "w": rng.tensor([4, 3, 3, 3]), "b": rng.tensor([4]), "scale": rng.tensor([4]),
                "shift": rng.tensor([4]), "mean": rng.tensor([4]), "var": variance,
            ])
        let r = try both(graph, feeds: ["x": rng.tensor([2, 3, 6, 6])])
        #expect(r.ops == ["Conv"])
        expectClose(r.optimised, r.plain.scalars(as: Float.self), shape: r.plain.shape)
        #expect(r.plain.scalars(as: Float.self).contains(0))  // the Relu did something
    }

    /// Gemm (either layout of B, with or without C, alpha and beta not 1) -> BatchNormalization ->
    /// Relu becomes one Gemm with a Relu epilogue, and gives what the three nodes give.
    @Test(arguments: [(0, true), (1, true), (1, false)])
    func gemmBatchNormFoldsIntoOneGemm(transB: Int, withC: Bool) throws {
        var rng = TestRNG(seed: 302)
        let nodes = [
            Node(name: "gemm", opType: "Gemm", inputs: withC ? ["x", "w", "c"] : ["x", "w"], outputs: ["g"],
                attributes: ["transB": .int(transB), "alpha": .float(0.7), "beta": .float(1.5)]),
            Node(name: "bn", opType: "BatchNormalization", inputs: ["g", "scale", "shift", "mean", "var"], outputs: ["n"]),
            Node(name: "relu", opType: "Relu", inputs: ["n"], outputs: ["y"]),
        ]
        var initializers: [String: Tensor] = [
            "w": rng.tensor(transB != 0 ? [6, 4] : [4, 6]), "scale": rng.tensor([6]), "shift": rng.tensor([6]),
            "mean": rng.tensor([6]), "var": Tensor(rng.floats(6).map { abs($0) + 0.1 }, shape: [6]),
        ]
        if withC { initializers["c"] = rng.tensor([1, 6]) }
        let graph = Graph(nodes: nodes, inputs: [input("x", [5, 4])], outputs: output, initializers: initializers)
        let r = try both(graph, feeds: ["x": rng.tensor([5, 4])])
        #expect(r.ops == ["Gemm"])
        expectClose(r.optimised, r.plain.scalars(as: Float.self), shape: r.plain.shape)
        #expect(r.plain.scalars(as: Float.self).contains(0))
    }

    @Test(arguments: ["Relu", "Sigmoid", "HardSwish", "LeakyRelu", "Clip", "Gelu"])
    func gemmActivationFuses(activation: String) throws {
        var rng = TestRNG(seed: 301)
        var initializers: [String: Tensor] = ["w": rng.tensor([5, 4]), "c": rng.tensor([5])]
        let nodes = [
            Node(name: "gemm", opType: "Gemm", inputs: ["x", "w", "c"], outputs: ["g"], attributes: ["transB": .int(1)]),
            activationNode(activation, reading: "g", &initializers),
        ]
        let graph = Graph(nodes: nodes, inputs: [input("x", [3, 4])], outputs: output, initializers: initializers)
        // Gelu is an operator from opset 20.
        let r = try both(graph, feeds: ["x": rng.tensor([3, 4])], opset: activation == "Gelu" ? 20 : 17)
        #expect(r.ops == ["Gemm"])
        expectClose(r.optimised, r.plain.scalars(as: Float.self), shape: [3, 5])
    }

    /// Depthwise 3x3 convolutions with each activation fused, on eleven channels: one block of
    /// eight (`DepthwiseBlocks`: bias and clamp in registers; the other activations on the planes)
    /// and three single planes (stride 1: bias and clamp in registers; stride 2: the plane loop
    /// adding onto the bias), planes whose width is not a multiple of eight and whose height is not
    /// a multiple of four, at 1 and 2 threads.
    @Test(arguments: ["Relu", "Clip", "LeakyRelu", "HardSwish", "Sigmoid"], [1, 2])
    func depthwiseActivationFuses(activation: String, stride: Int) throws {
        var rng = TestRNG(seed: 305)
        var initializers: [String: Tensor] = ["w": rng.tensor([11, 1, 3, 3]), "b": rng.tensor([11])]
        let nodes = [
            Node(name: "dw", opType: "Conv", inputs: ["x", "w", "b"], outputs: ["c"],
                attributes: ["group": .int(11), "pads": .ints([1, 1, 1, 1]), "strides": .ints([stride, stride])]),
            activationNode(activation, reading: "c", &initializers),
        ]
        let graph = Graph(nodes: nodes, inputs: [input("x", [2, 11, 19, 37])], outputs: output, initializers: initializers)
        let x = rng.tensor([2, 11, 19, 37])
        let r = try both(graph, feeds: ["x": x])
        #expect(r.ops == ["Conv"])
        expectClose(r.optimised, r.plain.scalars(as: Float.self), shape: r.plain.shape)
        expectClose(r.onTwoThreads, r.plain.scalars(as: Float.self), shape: r.plain.shape)
    }

    /// Convolutions on the packed GEMM with each activation fused (Relu and Clip: bias and clamp in
    /// the micro-kernel's registers; the others as a pass after it): 1x1 and 3x3 stride 2, K over
    /// one block (300 and 360), rows not a multiple of 6 (13), N with full and edge tiles (81, 25),
    /// at 1 and 2 threads and batch 1 and 2.
    @Test(arguments: ["Relu", "Clip", "LeakyRelu", "Sigmoid"], [1, 3])
    func packedConvActivationFuses(activation: String, kernel: Int) throws {
        var rng = TestRNG(seed: 306)
        let c = kernel == 1 ? 300 : 40
        var initializers: [String: Tensor] = ["w": rng.tensor([13, c, kernel, kernel]), "b": rng.tensor([13])]
        let attributes: [String: Attribute] =
            kernel == 1 ? [:] : ["pads": .ints([1, 1, 1, 1]), "strides": .ints([2, 2])]
        let nodes = [
            Node(name: "conv", opType: "Conv", inputs: ["x", "w", "b"], outputs: ["c"], attributes: attributes),
            activationNode(activation, reading: "c", &initializers),
        ]
        for batch in [1, 2] {
            let shape = [batch, c, 9, 9]
            let graph = Graph(nodes: nodes, inputs: [input("x", shape)], outputs: output, initializers: initializers)
            let x = rng.tensor(shape)
            let r = try both(graph, feeds: ["x": x])
            #expect(r.ops == ["Conv"])
            expectClose(r.optimised, r.plain.scalars(as: Float.self), shape: r.plain.shape)
            expectClose(r.onTwoThreads, r.plain.scalars(as: Float.self), shape: r.plain.shape)
        }
    }

    /// SiLU as PyTorch exports it, `Mul(x, Sigmoid(x))` in either operand order, after a depthwise
    /// Conv, a packed 1x1 Conv, a Gemm and a MatMul: one node with a Swish epilogue, giving what
    /// the three nodes give (at 1 and 2 threads); with a third reader of x nothing fuses.
    @Test(arguments: ["depthwise", "pointwise", "Gemm", "MatMul"], [false, true])
    func siluFuses(producer: String, sigmoidFirst: Bool) throws {
        var rng = TestRNG(seed: 307)
        let (producerNode, shape, weights): (Node, [Int], [String: Tensor])
        switch producer {
        case "depthwise":
            producerNode = Node(name: "p", opType: "Conv", inputs: ["x", "w", "b"], outputs: ["c"],
                attributes: ["group": .int(11), "pads": .ints([2, 2, 2, 2]), "kernel_shape": .ints([5, 5])])
            (shape, weights) = ([2, 11, 13, 21], ["w": rng.tensor([11, 1, 5, 5]), "b": rng.tensor([11])])
        case "pointwise":
            producerNode = Node(name: "p", opType: "Conv", inputs: ["x", "w", "b"], outputs: ["c"])
            (shape, weights) = ([1, 40, 9, 11], ["w": rng.tensor([24, 40, 1, 1]), "b": rng.tensor([24])])
        case "Gemm":
            producerNode = Node(name: "p", opType: "Gemm", inputs: ["x", "w", "b"], outputs: ["c"])
            (shape, weights) = ([5, 70], ["w": rng.tensor([70, 33]), "b": rng.tensor([33])])
        default:
            producerNode = Node(name: "p", opType: "MatMul", inputs: ["x", "w"], outputs: ["c"])
            (shape, weights) = ([2, 7, 70], ["w": rng.tensor([70, 33])])
        }
        let sigmoid = Node(name: "s", opType: "Sigmoid", inputs: ["c"], outputs: ["g"])
        let mul = Node(name: "m", opType: "Mul", inputs: sigmoidFirst ? ["g", "c"] : ["c", "g"], outputs: ["y"])
        let x = Tensor(rng.floats(volume(shape)).map { $0 * 3 }, shape: shape)
        let graph = Graph(nodes: [producerNode, sigmoid, mul], inputs: [input("x", shape)], outputs: output, initializers: weights)
        let r = try both(graph, feeds: ["x": x])
        #expect(r.ops == [producerNode.opType])
        expectClose(r.optimised, r.plain.scalars(as: Float.self), shape: r.plain.shape)
        expectClose(r.onTwoThreads, r.plain.scalars(as: Float.self), shape: r.plain.shape)

        let third = Node(name: "t", opType: "Add", inputs: ["y", "c"], outputs: ["z"])
        let shared = Graph(
            nodes: [producerNode, sigmoid, mul, third], inputs: [input("x", shape)],
            outputs: [ValueInfo(name: "z", dataType: .float32, shape: nil)], initializers: weights)
        let s = try both(shared, feeds: ["x": x], output: "z")
        #expect(s.ops == [producerNode.opType, "Sigmoid", "Mul", "Add"])
        expectClose(s.optimised, s.plain.scalars(as: Float.self), shape: s.plain.shape)
    }

    /// GELU written with Erf as TorchScript exports it (Div by sqrt 2 or Mul by 1/sqrt 2; the 0.5
    /// in each of its three places) after MatMul + bias: one MatMul with a Gelu epilogue, giving
    /// what the seven nodes give (1 and 2 threads). On a graph input (no producer to fold into) it
    /// is one com.microsoft Gelu; with a second reader of an intermediate nothing changes.
    @Test(arguments: [0, 1, 2], [false, true])
    func erfGeluFuses(halfAt: Int, multiplied: Bool) throws {
        var rng = TestRNG(seed: 311)
        let weights: [String: Tensor] = [
            "w": rng.tensor([24, 40]), "bias": rng.tensor([40]), "one": Tensor(scalar: Float(1)),
            "half": Tensor(scalar: Float(0.5)),
            "root": Tensor(scalar: multiplied ? Float(0.5).squareRoot() : Float(2).squareRoot()),
        ]
        let initializers = weights
        func gelu(_ x: String) -> [Node] {
            var nodes = [
                Node(name: "d", opType: multiplied ? "Mul" : "Div", inputs: multiplied ? ["root", x] : [x, "root"], outputs: ["s"]),
                Node(name: "e", opType: "Erf", inputs: ["s"], outputs: ["r"]),
                Node(name: "a", opType: "Add", inputs: ["r", "one"], outputs: ["p"]),
            ]
            switch halfAt {
            case 0:
                nodes += [Node(name: "m", opType: "Mul", inputs: [x, "p"], outputs: ["q"]),
                          Node(name: "h", opType: "Mul", inputs: ["q", "half"], outputs: ["y"])]
            case 1:
                nodes += [Node(name: "h", opType: "Mul", inputs: ["half", x], outputs: ["q"]),
                          Node(name: "m", opType: "Mul", inputs: ["q", "p"], outputs: ["y"])]
            default:
                nodes += [Node(name: "h", opType: "Mul", inputs: ["p", "half"], outputs: ["q"]),
                          Node(name: "m", opType: "Mul", inputs: ["q", x], outputs: ["y"])]
            }
            return nodes
        }
        let x = Tensor(rng.floats(2 * 5 * 24).map { $0 * 4 }, shape: [2, 5, 24])
        let producer = [
            Node(name: "mm", opType: "MatMul", inputs: ["x", "w"], outputs: ["c"]),
            Node(name: "b", opType: "Add", inputs: ["c", "bias"], outputs: ["g"]),
        ]
        let fused = try both(
            Graph(nodes: producer + gelu("g"), inputs: [input("x", [2, 5, 24])], outputs: output, initializers: initializers),
            feeds: ["x": x])
        #expect(fused.ops == ["MatMul"])
        expectClose(fused.optimised, fused.plain.scalars(as: Float.self), shape: [2, 5, 40])
        expectClose(fused.onTwoThreads, fused.plain.scalars(as: Float.self), shape: [2, 5, 40])

        let alone = try both(
            Graph(nodes: gelu("x"), inputs: [input("x", [2, 5, 24])], outputs: output, initializers: initializers), feeds: ["x": x])
        #expect(alone.ops == ["Gelu"])
        expectClose(alone.optimised, alone.plain.scalars(as: Float.self), shape: [2, 5, 24])

        let reread = Node(name: "t", opType: "Add", inputs: ["y", "r"], outputs: ["z"])
        let shared = try both(
            Graph(nodes: gelu("x") + [reread], inputs: [input("x", [2, 5, 24])],
                  outputs: [ValueInfo(name: "z", dataType: .float32, shape: nil)], initializers: initializers),
            feeds: ["x": x], output: "z")
        #expect(shared.ops.contains("Erf"))
        expectClose(shared.optimised, shared.plain.scalars(as: Float.self), shape: [2, 5, 24])
    }

    /// MatMul of a 3-D activation by a constant matrix, + bias [N], + Relu: one MatMul node.
    @Test func matMulBiasReluFuses() throws {
        var rng = TestRNG(seed: 302)
        let nodes = [
            Node(name: "mm", opType: "MatMul", inputs: ["x", "w"], outputs: ["m"]),
            Node(name: "add", opType: "Add", inputs: ["bias", "m"], outputs: ["a"]),
            Node(name: "relu", opType: "Relu", inputs: ["a"], outputs: ["y"]),
        ]
        let graph = Graph(
            nodes: nodes, inputs: [input("x", [2, 3, 4])], outputs: output,
            initializers: ["w": rng.tensor([4, 6]), "bias": rng.tensor([6])])
        let r = try both(graph, feeds: ["x": rng.tensor([2, 3, 4])])
        #expect(r.ops == ["MatMul"])
        expectClose(r.optimised, r.plain.scalars(as: Float.self), shape: [2, 3, 6])
    }

    /// MatMul + bias + Gelu (a transformer's feed-forward layer, opset 20), with the exact and the
    /// tanh Gelu, at 1 and 2 threads (the packed GEMM's tasks apply it to their own blocks, split
    /// by columns or by rows): one MatMul node that gives what the three give.
    @Test(arguments: ["none", "tanh"], [(2, 5, 37), (1, 40, 200), (1, 200, 20)])
    func matMulBiasGeluFuses(approximate: String, dims: (Int, Int, Int)) throws {
        var rng = TestRNG(seed: 304)
        let (batch, rows, n) = dims
        let nodes = [
            Node(name: "mm", opType: "MatMul", inputs: ["x", "w"], outputs: ["m"]),
            Node(name: "add", opType: "Add", inputs: ["m", "bias"], outputs: ["a"]),
            Node(name: "gelu", opType: "Gelu", inputs: ["a"], outputs: ["y"],
                attributes: ["approximate": .string(Array(approximate.utf8))]),
        ]
        let graph = Graph(
            nodes: nodes, inputs: [input("x", [batch, rows, 64])], outputs: output,
            initializers: ["w": rng.tensor([64, n]), "bias": rng.tensor([n])])
        let x = rng.tensor([batch, rows, 64])
        let r = try both(graph, feeds: ["x": x], opset: 20)
        #expect(r.ops == ["MatMul"])
        expectClose(r.optimised, r.plain.scalars(as: Float.self), shape: [batch, rows, n])
        expectClose(r.onTwoThreads, r.plain.scalars(as: Float.self), shape: [batch, rows, n])
    }

    /// A value read twice is not fused away: the Relu must stay when the Conv output is also a graph
    /// output.
    @Test func sharedValueIsNotFused() throws {
        var rng = TestRNG(seed: 303)
        let nodes = [
            Node(name: "gemm", opType: "Gemm", inputs: ["x", "w"], outputs: ["g"]),
            Node(name: "relu", opType: "Relu", inputs: ["g"], outputs: ["y"]),
        ]
        let graph = Graph(
            nodes: nodes, inputs: [input("x", [2, 3])],
            outputs: output + [ValueInfo(name: "g", dataType: .float32, shape: nil)],
            initializers: ["w": rng.tensor([3, 3])])
        let model = GraphModel(graph: graph, opsets: ["": 17], irVersion: 8)
        #expect(GraphOptimizer.optimize(model, registry: .cpu).graph.nodes.map(\.opType) == ["Gemm", "Relu"])
    }

    /// Constant chains (Transpose of a weight, Identity, Dropout, shape arithmetic on constants) fold
    /// away and give the same result.
    @Test func constantsFoldAndIdentitiesVanish() throws {
        var rng = TestRNG(seed: 304)
        let nodes = [
            Node(name: "t", opType: "Transpose", inputs: ["wT"], outputs: ["w"], attributes: ["perm": .ints([1, 0])]),
            Node(name: "id", opType: "Identity", inputs: ["x"], outputs: ["xi"]),
            Node(name: "drop", opType: "Dropout", inputs: ["xi"], outputs: ["xd"]),
            Node(name: "shape", opType: "Shape", inputs: ["w"], outputs: ["ws"]),
            Node(name: "mm", opType: "MatMul", inputs: ["xd", "w"], outputs: ["m"]),
            Node(name: "reshape", opType: "Reshape", inputs: ["m", "ws"], outputs: ["y"]),
        ]
        let graph = Graph(
            nodes: nodes, inputs: [input("x", [4, 4])], outputs: output, initializers: ["wT": rng.tensor([4, 4])])
        let r = try both(graph, feeds: ["x": rng.tensor([4, 4])])
        #expect(r.ops == ["MatMul", "Reshape"])
        expectClose(r.optimised, r.plain.scalars(as: Float.self), shape: [4, 4])
    }
}
