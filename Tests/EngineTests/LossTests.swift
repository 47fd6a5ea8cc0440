import Engine
import Foundation
import Tensors
import Testing

/// The class losses and BitCast beyond what the conformance cases check: a target outside the
/// classes is a request error, the mean divides by the weights that took part, BitCast is a view.
@Suite struct LossTests {
    func session(_ op: String, _ attributes: [String: Attribute], outputs: [String] = ["loss"]) throws -> InferenceSession {
        let graph = Graph(
            nodes: [Node(name: "loss", opType: op, inputs: ["x", "t", "w"], outputs: outputs, attributes: attributes)],
            inputs: [ValueInfo(name: "x", dataType: .float32, shape: nil), ValueInfo(name: "t", dataType: .int64, shape: nil)],
            outputs: outputs.map { ValueInfo(name: $0, dataType: .float32, shape: nil) },
            initializers: ["w": Tensor([1, 2, 0.5] as [Float], shape: [3])])
        return try InferenceSession(model: GraphModel(graph: graph, opsets: ["": 13], irVersion: 8))
    }

    @Test func weightedMeanSkipsTheIgnoredTargetAndAgreesWithADirectDefinition() throws {
        let x: [Float] = [0.1, 0.7, -0.3, 1.2, -2, 0.4, 0.9, 0.2, -0.5, 0.3, 0.3, 0.3]  // [4, 3]
        let t: [Int64] = [1, 0, 2, -100]
        let s = try session("SoftmaxCrossEntropyLoss", ["ignore_index": .int(-100)], outputs: ["loss", "log_prob"])
        let out = try s.run(["x": Tensor(x, shape: [4, 3]), "t": Tensor(t, shape: [4])])
        let w: [Float] = [1, 2, 0.5]
        var total: Float = 0
        var weights: Float = 0
        for i in 0..<3 {
            let row = x[(i * 3)..<(i * 3 + 3)]
            let logSum = log(row.map { exp($0) }.reduce(0, +))
            total += -(x[i * 3 + Int(t[i])] - logSum) * w[Int(t[i])]
            weights += w[Int(t[i])]
        }
        #expect(abs(out["loss"]!.scalars(as: Float.self)[0] - total / weights) < 1e-5)
        #expect(out["log_prob"]!.shape == [4, 3])
    }

    @Test func aTargetOutsideTheClassesIsARequestError() throws {
        let s = try session("NegativeLogLikelihoodLoss", ["reduction": .string(Array("sum".utf8))])
        #expect(throws: EngineError.self) {
            try s.run(["x": Tensor([0, 0, 0] as [Float], shape: [1, 3]), "t": Tensor([3] as [Int64], shape: [1])])
        }
    }

    @Test func bitCastReinterpretsWithoutCopying() throws {
        let graph = Graph(
            nodes: [Node(name: "cast", opType: "BitCast", inputs: ["x"], outputs: ["y"], attributes: ["to": .int(Int(DataType.int32.rawValue))])],
            inputs: [ValueInfo(name: "x", dataType: .float32, shape: nil)], outputs: [ValueInfo(name: "y", dataType: .int32, shape: nil)])
        let s = try InferenceSession(model: GraphModel(graph: graph, opsets: ["": 26], irVersion: 10))
        let y = try s.run(["x": Tensor([1, -2.5] as [Float], shape: [2])])["y"]!
        #expect(y.scalars(as: Int32.self) == [Int32(bitPattern: Float(1).bitPattern), Int32(bitPattern: Float(-2.5).bitPattern)])
    }
}
