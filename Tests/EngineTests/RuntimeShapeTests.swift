import Engine
import Foundation
import Tensors
import Testing

/// Inputs that used to be attributes (shapes, axes, pads, starts) computed at run time, and the opset
/// differences between the attribute and input forms.
@Suite struct RuntimeShapeTests {
    /// Shape -> Gather -> Unsqueeze -> Concat -> Reshape, as exporters write `x.view(x.size(0), -1)`,
    /// on a model with a symbolic batch dimension, run at several batch sizes.
    @Test(arguments: [1, 2, 5])
    func shapeSubgraphReshape(batch: Int) throws {
        let nodes = [
            Node(name: "shape", opType: "Shape", inputs: ["x"], outputs: ["s"]),
            Node(name: "gather", opType: "Gather", inputs: ["s", "zero"], outputs: ["b"], attributes: ["axis": .int(0)]),
            Node(name: "unsqueeze", opType: "Unsqueeze", inputs: ["b", "axes0"], outputs: ["b1"]),
            Node(name: "concat", opType: "Concat", inputs: ["b1", "minusOne"], outputs: ["target"], attributes: ["axis": .int(0)]),
            Node(name: "reshape", opType: "Reshape", inputs: ["x", "target"], outputs: ["y"]),
        ]
        let graph = Graph(
            nodes: nodes, inputs: [ValueInfo(name: "x", dataType: .float32, shape: [.symbolic("batch"), .fixed(3), .fixed(4)])],
            outputs: [ValueInfo(name: "y", dataType: .float32, shape: nil)],
            initializers: [
                "zero": Tensor(scalar: Int64(0)), "axes0": Tensor([Int64(0)], shape: [1]),
                "minusOne": Tensor([Int64(-1)], shape: [1]),
            ])
        let session = try InferenceSession(model: GraphModel(graph: graph, opsets: ["": 13], irVersion: 8))
        var rng = TestRNG(seed: 200)
        let x = rng.tensor([batch, 3, 4])
        let y = try session.run(["x": x])["y"]!
        #expect(y.shape == [batch, 12])
        #expect(y.scalars(as: Float.self) == x.scalars(as: Float.self))
    }

    /// Every "attribute became an input" operator with that input fed at run time (not an initializer).
    @Test func inputsFedAtRunTime() throws {
        var rng = TestRNG(seed: 201)
        let x = rng.tensor([2, 1, 3])
        let xs = x.scalars(as: Float.self)
        func i64(_ v: [Int64]) -> Tensor { Tensor(v, shape: [v.count]) }

        #expect(try runSimple("Squeeze", [x, i64([1])], opset: 13).shape == [2, 3])
        #expect(try runSimple("Unsqueeze", [x, i64([0, -1])], opset: 13).shape == [1, 2, 1, 3, 1])
        let sliced = try runSimple("Slice", [x, i64([0, 1]), i64([1, 100]), i64([0, 2]), i64([1, 1])], opset: 13)
        #expect(sliced.shape == [1, 1, 2] && sliced.scalars(as: Float.self) == [xs[1], xs[2]])
        let padded = try runSimple("Pad", [x, i64([0, 0, 1, 0, 0, 2]), Tensor(scalar: Float(9))], opset: 13)
        #expect(padded.shape == [2, 1, 6])
        #expect(Array(padded.scalars(as: Float.self)[0..<6]) == [9, xs[0], xs[1], xs[2], 9, 9])
        let parts = try runNode(
            "Split", inputs: ["x", "split"], feeds: [("x", x), ("split", i64([1, 2]))], attributes: ["axis": .int(2)],
            outputs: ["p", "q"], opset: 13)
        #expect(parts.map(\.shape) == [[2, 1, 1], [2, 1, 2]])
        #expect(try runSimple("ReduceSum", [x, i64([2])], opset: 13).shape == [2, 1, 1])
        #expect(try runSimple("ReduceMean", [x, i64([0, 2])], attributes: ["keepdims": .int(0)], opset: 18).shape == [1])
        #expect(try runSimple("Expand", [x, i64([4, 2, 1, 1])]).shape == [4, 2, 1, 3])
        #expect(try runSimple("Tile", [x, i64([1, 2, 2])]).shape == [2, 2, 6])
        let zeros = try runSimple("ConstantOfShape", [i64([2, 3])])
        #expect(zeros.shape == [2, 3] && zeros.scalars(as: Float.self) == [Float](repeating: 0, count: 6))
        let range = try runSimple("Range", [Tensor(scalar: Int64(1)), Tensor(scalar: Int64(10)), Tensor(scalar: Int64(3))])
        #expect(range.scalars(as: Int64.self) == [1, 4, 7])
        let clipped = try runSimple("Clip", [x, Tensor(scalar: Float(-0.1)), Tensor(scalar: Float(0.1))], opset: 13)
        #expect(clipped.scalars(as: Float.self) == xs.map { min(max($0, -0.1), 0.1) })
    }

    /// The attribute forms of the older opsets give the same results.
    @Test func attributeFormsBeforeTheChange() throws {
        var rng = TestRNG(seed: 202)
        let x = rng.tensor([2, 1, 3])
        let xs = x.scalars(as: Float.self)
        #expect(try runSimple("Squeeze", [x], attributes: ["axes": .ints([1])], opset: 11).shape == [2, 3])
        #expect(try runSimple("Unsqueeze", [x], attributes: ["axes": .ints([0])], opset: 11).shape == [1, 2, 1, 3])
        let clipped = try runSimple("Clip", [x], attributes: ["min": .float(-0.1), "max": .float(0.1)], opset: 6)
        #expect(clipped.scalars(as: Float.self) == xs.map { min(max($0, -0.1), 0.1) })
        let padded = try runSimple("Pad", [x], attributes: ["pads": .ints([0, 0, 1, 0, 0, 0]), "value": .float(3)], opset: 2)
        #expect(padded.shape == [2, 1, 4] && padded.scalars(as: Float.self)[0] == 3)
        let parts = try runNode(
            "Split", inputs: ["x"], feeds: [("x", x)], attributes: ["axis": .int(2), "split": .ints([2, 1])],
            outputs: ["p", "q"], opset: 11)
        #expect(parts.map(\.shape) == [[2, 1, 2], [2, 1, 1]])
        let sum = try runSimple("ReduceSum", [x], attributes: ["axes": .ints([2]), "keepdims": .int(0)], opset: 11)
        expectClose(sum, [xs[0] + xs[1] + xs[2], xs[3] + xs[4] + xs[5]], shape: [2, 1])
        let mean = try runSimple("ReduceMean", [x], attributes: ["axes": .ints([2])], opset: 13)
        expectClose(mean, [(xs[0] + xs[1] + xs[2]) / 3, (xs[3] + xs[4] + xs[5]) / 3], shape: [2, 1, 1])
        let sliced = try runSimple("Slice", [x], attributes: ["starts": .ints([1]), "ends": .ints([3]), "axes": .ints([2])], opset: 9)
        #expect(sliced.scalars(as: Float.self) == [xs[1], xs[2], xs[4], xs[5]])
    }

    /// Softmax before opset 13 normalises over the flattened trailing dimensions; from 13 over one axis.
    @Test func softmaxAxisSemantics() throws {
        var rng = TestRNG(seed: 203)
        let x = rng.tensor([2, 3, 4])
        let old = try runSimple("Softmax", [x], attributes: ["axis": .int(1)], opset: 11).scalars(as: Float.self)
        let new = try runSimple("Softmax", [x], attributes: ["axis": .int(1)], opset: 13).scalars(as: Float.self)
        let oldSum: Float = old[0..<12].reduce(0, +)
        #expect(abs(oldSum - 1) < 1e-5)
        let newSum: Float = new[0] + new[4] + new[8]
        #expect(abs(newSum - 1) < 1e-5)
        // Over one axis only, the first 12 do not sum to 1.
        let newFirst: Float = new[0..<12].reduce(0, +)
        #expect(abs(newFirst - 1) > 0.1)
        let logOld = try runSimple("LogSoftmax", [x], attributes: ["axis": .int(1)], opset: 11).scalars(as: Float.self)
        for i in 0..<24 {
            let e = Float(Foundation.exp(Double(logOld[i])))
            #expect(abs(e - old[i]) < 1e-5)
        }
    }

    /// Mask paths: Equal -> Not -> Where and Cast between int64, int32, bool and float.
    @Test func maskPaths() throws {
        let ids = Tensor([Int64(5), 0, 7, 0], shape: [1, 4])
        let isPad = try runSimple("Equal", [ids, Tensor(scalar: Int64(0))])
        #expect(isPad.scalars(as: Bool.self) == [false, true, false, true])
        let keep = try runSimple("Not", [isPad])
        let scores = try runSimple("Where", [keep, Tensor([Float](repeating: 1, count: 4), shape: [1, 4]), Tensor(scalar: -Float.infinity)])
        #expect(scores.scalars(as: Float.self) == [1, -.infinity, 1, -.infinity])
        let asFloat = try runSimple("Cast", [keep], attributes: ["to": .int(1)])
        #expect(asFloat.scalars(as: Float.self) == [1, 0, 1, 0])
        let asInt32 = try runSimple("Cast", [Tensor([Float(2.7), -2.7, .nan, 1e20], shape: [4])], attributes: ["to": .int(6)])
        #expect(asInt32.scalars(as: Int32.self) == [2, -2, Int32.min, Int32.max])
    }
}

/// Shapes computed at run time that cannot be built fail the request instead of trapping.
@Suite struct ComputedShapeLimitTests {
    @Test func oversizedShapesAreRequestErrors() {
        let x = Tensor([Float(1)], shape: [1])
        let huge = Tensor([Int64(1) << 32, Int64(1) << 32], shape: [2])
        for (op, inputs) in [("Expand", [x, huge]), ("Tile", [x, Tensor([Int64(1) << 62], shape: [1])])] {
            let error = engineError { _ = try runSimple(op, inputs) }
            guard case .invalidInput(let m)? = error else {
                Issue.record("\(op): expected invalidInput, got \(String(describing: error))")
                continue
            }
            #expect(m.contains("too large"), "\(m)")
        }
        #expect(throws: EngineError.self) { try runSimple("ConstantOfShape", [Tensor([Int64(-1)], shape: [1])]) }
    }
}
