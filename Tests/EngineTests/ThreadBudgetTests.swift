import Engine
import Tensors
import Testing

/// The engine's own parallel loops (depthwise planes, max-pool planes) under a budget of two threads
/// give what one thread gives.
@Suite struct ThreadBudgetTests {
    @Test func depthwiseAndPoolAgreeAcrossBudgets() throws {
        var rng = TestRNG(seed: 500)
        let nodes = [
            Node(name: "dw", opType: "Conv", inputs: ["x", "w", "b"], outputs: ["c"],
                attributes: ["group": .int(6), "pads": .ints([1, 1, 1, 1]), "strides": .ints([2, 2])]),
            Node(name: "relu6", opType: "Clip", inputs: ["c", "lo", "hi"], outputs: ["r"]),
            Node(name: "pool", opType: "MaxPool", inputs: ["r"], outputs: ["y"],
                attributes: ["kernel_shape": .ints([3, 3]), "pads": .ints([1, 1, 1, 1])]),
        ]
        let graph = Graph(
            nodes: nodes, inputs: [ValueInfo(name: "x", dataType: .float32, shape: [.symbolic("n"), .fixed(6), .fixed(40), .fixed(44)])],
            outputs: [ValueInfo(name: "y", dataType: .float32, shape: nil)],
            initializers: [
                "w": rng.tensor([6, 1, 3, 3]), "b": rng.tensor([6]), "lo": Tensor(scalar: Float(0)),
                "hi": Tensor(scalar: Float(0.5)),
            ])
        let model = GraphModel(graph: graph, opsets: ["": 13], irVersion: 8)
        let x = rng.tensor([3, 6, 40, 44])
        let one = try InferenceSession(model: model, options: SessionOptions(blasThreads: 1))
        let expected = try one.run(["x": x])["y"]!
        let two = try InferenceSession(model: model, options: SessionOptions(blasThreads: 2))
        defer { _ = try? InferenceSession(model: model, options: SessionOptions(blasThreads: 1)) }
        for _ in 0..<2 {
            let y = try two.run(["x": x])["y"]!
            #expect(y.shape == expected.shape)
            #expect(y.scalars(as: Float.self) == expected.scalars(as: Float.self))
        }
    }
}
