import Engine
import Tensors
import Testing

/// CausalConvWithState and LinearAttention beyond the conformance cases: prefill then decode with
/// the carried state equals one pass over the whole sequence, and wrong state shapes are request errors.
@Suite struct StateSpaceTests {
    func conv() throws -> InferenceSession {
        let graph = Graph(
            nodes: [Node(name: "conv", opType: "CausalConvWithState", inputs: ["x", "w", "", "past"], outputs: ["y", "state"],
                         attributes: ["activation": .string(Array("silu".utf8))])],
            inputs: [ValueInfo(name: "x", dataType: .float32, shape: nil), ValueInfo(name: "past", dataType: .float32, shape: nil)],
            outputs: [ValueInfo(name: "y", dataType: .float32, shape: nil), ValueInfo(name: "state", dataType: .float32, shape: nil)],
            initializers: ["w": Tensor([0.5, -1, 2, 0.25, 0.75, -0.5] as [Float], shape: [2, 1, 3])])
        return try InferenceSession(model: GraphModel(graph: graph, opsets: ["": 27], irVersion: 10))
    }

    @Test func decodingWithTheCarriedStateEqualsOnePass() throws {
        let s = try conv()
        let x: [Float] = [1, 2, 3, 4, 5, -1, -2, -3, -4, -5]  // [1, 2, 5]
        let zero = Tensor([Float](repeating: 0, count: 4), shape: [1, 2, 2])
        let whole = try s.run(["x": Tensor(x, shape: [1, 2, 5]), "past": zero])
        let first = try s.run(["x": Tensor([1, 2, 3, -1, -2, -3] as [Float], shape: [1, 2, 3]), "past": zero])
        let rest = try s.run(["x": Tensor([4, 5, -4, -5] as [Float], shape: [1, 2, 2]), "past": first["state"]!])
        let y = whole["y"]!.scalars(as: Float.self)
        let a = first["y"]!.scalars(as: Float.self)
        let b = rest["y"]!.scalars(as: Float.self)
        let joined = Array(a[0..<3]) + Array(b[0..<2]) + Array(a[3..<6]) + Array(b[2..<4])
        for (u, v) in zip(y, joined) { #expect(abs(u - v) < 1e-5) }
        #expect(whole["state"]!.scalars(as: Float.self) == rest["state"]!.scalars(as: Float.self))
    }

    @Test func aStateOfTheWrongShapeIsARequestError() throws {
        #expect(throws: EngineError.self) {
            try conv().run(["x": Tensor([1, 2, 3, 4] as [Float], shape: [1, 2, 2]), "past": Tensor([1, 2] as [Float], shape: [1, 2, 1])])
        }
    }

    @Test func linearAttentionGroupsQueryHeadsOverKeyValueHeads() throws {
        // Two query heads share one kv head: with equal queries they read the same state.
        let graph = Graph(
            nodes: [Node(name: "la", opType: "LinearAttention", inputs: ["q", "k", "v"], outputs: ["y", "state"],
                         attributes: ["q_num_heads": .int(2), "kv_num_heads": .int(1), "update_rule": .string(Array("linear".utf8))])],
            inputs: ["q", "k", "v"].map { ValueInfo(name: $0, dataType: .float32, shape: nil) },
            outputs: [ValueInfo(name: "y", dataType: .float32, shape: nil), ValueInfo(name: "state", dataType: .float32, shape: nil)])
        let s = try InferenceSession(model: GraphModel(graph: graph, opsets: ["": 27], irVersion: 10))
        let out = try s.run([
            "q": Tensor([1, 0, 1, 0, 0, 1, 0, 1] as [Float], shape: [1, 2, 4]),
            "k": Tensor([1, 0, 0, 1] as [Float], shape: [1, 2, 2]),
            "v": Tensor([2, 3] as [Float], shape: [1, 2, 1]),
        ])
        // Step 0: S = k0 v0 = [[2], [0]]; q = [1, 0] reads 2 / sqrt(2). Step 1: S = [[2], [3]]; q = [0, 1] reads 3 / sqrt(2).
        let y = out["y"]!.scalars(as: Float.self)
        let r: Float = 1 / Float(2).squareRoot()
        for (u, v) in zip(y, [2 * r, 2 * r, 3 * r, 3 * r]) { #expect(abs(u - v) < 1e-5) }
        #expect(out["state"]!.shape == [1, 1, 2, 1])
    }
}
