@testable import Engine
import Tensors
import Testing

/// Large batches run in slices when, and only when, the graph keeps the batch rows apart.
@Suite struct BatchSplitTests {
    /// x [batch, 3, 32, 32] -> Conv 3x3 (16 channels, pad 1) + Relu -> GlobalAveragePool -> Flatten ->
    /// Gemm -> Softmax, plus `extra` nodes between the Gemm ("g") and the Softmax (which reads "z").
    static func convModel(extra: [Node] = [], extraInitializers: [String: Tensor] = [:], fixedBatch: Int? = nil)
        -> GraphModel
    {
        var rng = TestRNG(seed: 900)
        var nodes = [
            Node(name: "conv", opType: "Conv", inputs: ["x", "w", "b"], outputs: ["c"],
                attributes: ["pads": .ints([1, 1, 1, 1])]),
            Node(name: "relu", opType: "Relu", inputs: ["c"], outputs: ["r"]),
            Node(name: "gap", opType: "GlobalAveragePool", inputs: ["r"], outputs: ["p"]),
            Node(name: "flat", opType: "Flatten", inputs: ["p"], outputs: ["f"]),
            Node(name: "fc", opType: "Gemm", inputs: ["f", "fw", "fb"], outputs: ["g"], attributes: ["transB": .int(1)]),
        ]
        nodes += extra
        if extra.isEmpty { nodes.append(Node(name: "id", opType: "Identity", inputs: ["g"], outputs: ["z"])) }
        nodes.append(Node(name: "softmax", opType: "Softmax", inputs: ["z"], outputs: ["y"], attributes: ["axis": .int(1)]))
        var initializers: [String: Tensor] = [
            "w": rng.tensor([16, 3, 3, 3]), "b": rng.tensor([16]), "fw": rng.tensor([5, 16]), "fb": rng.tensor([5]),
        ]
        initializers.merge(extraInitializers) { a, _ in a }
        let batchDim: Dimension = fixedBatch.map { .fixed($0) } ?? .symbolic("batch")
        let graph = Graph(
            nodes: nodes,
            inputs: [ValueInfo(name: "x", dataType: .float32, shape: [batchDim, .fixed(3), .fixed(32), .fixed(32)])],
            outputs: [ValueInfo(name: "y", dataType: .float32, shape: nil)], initializers: initializers)
        return GraphModel(graph: graph, opsets: ["": 13], irVersion: 8)
    }

    /// The batch (whose arena, 16 x 32 x 32 floats per image: 20 MB, is far above the split threshold)
    /// runs in slices, at 1 and 2 threads, with the same result as the whole batch run unplanned.
    @Test(arguments: [1, 2])
    func convBatchRunsInSlices(threads: Int) throws {
        let batch = 300
        let session = try InferenceSession(model: Self.convModel(), options: SessionOptions(blasThreads: threads))
        var rng = TestRNG(seed: 901)
        let x = rng.tensor([batch, 3, 32, 32])
        let expected = try session.plan.runUnplanned(["x": x])["y"]!
        for _ in 0..<2 {  // the first run builds the plans, the second runs through them
            let y = try session.run(["x": x])["y"]!
            expectClose(y, expected.scalars(as: Float.self), shape: [batch, 5])
        }
        let split = try #require(try session.plan.shapePlan(for: ["x": x]).split)
        #expect(split.batch == batch)
        let count = split.count(threads: threads)
        #expect(count > 1 && count % threads == 0 && split.rows >= 1)
        // The slices cover the batch once, in order, and differ in size by at most one row.
        let ranges = (0..<count).map { split.range($0, of: count) }
        #expect(ranges.first?.lowerBound == 0 && ranges.last?.upperBound == batch)
        #expect(zip(ranges, ranges.dropFirst()).allSatisfy { $0.upperBound == $1.lowerBound })
        #expect(Set(ranges.map(\.count)).count <= 2)
        // The slices' own plans are cached and never split again.
        let sliceFeeds = ["x": Plan.rows(x, ranges[0], of: batch)]
        #expect(try session.plan.shapePlan(for: sliceFeeds).split == nil)
    }

    /// Steps that work within rows keep the split: a mean over the other axis (ReduceMean, as the
    /// dynamo exporter writes global pooling), a reshape to a shape computed from the batch's.
    @Test func rowwiseReductionsAndComputedReshapesSplit() throws {
        let extra = [
            Node(name: "mean", opType: "ReduceMean", inputs: ["g"], outputs: ["m"],
                attributes: ["axes": .ints([1]), "keepdims": .int(1)]),
            Node(name: "sub", opType: "Sub", inputs: ["g", "m"], outputs: ["d"]),
            Node(name: "shape", opType: "Shape", inputs: ["d"], outputs: ["s"]),
            Node(name: "reshape", opType: "Reshape", inputs: ["d", "s"], outputs: ["z"]),
        ]
        let plan = try Plan(model: Self.convModel(extra: extra))
        var rng = TestRNG(seed: 904)
        let x = rng.tensor([300, 3, 32, 32])
        let expected = try plan.runUnplanned(["x": x])["y"]!
        _ = try plan.run(["x": x])
        expectClose(try plan.run(["x": x])["y"]!, expected.scalars(as: Float.self), shape: [300, 5])
        #expect(try plan.shapePlan(for: ["x": x]).split != nil)
    }

    /// A small batch, or one whose dimension the model fixes, runs whole.
    @Test func smallOrFixedBatchRunsWhole() throws {
        var rng = TestRNG(seed: 902)
        let small = try Plan(model: Self.convModel())
        #expect(try small.shapePlan(for: ["x": rng.tensor([4, 3, 32, 32])]).split == nil)
        let fixed = try Plan(model: Self.convModel(fixedBatch: 300))
        #expect(try fixed.shapePlan(for: ["x": rng.tensor([300, 3, 32, 32])]).split == nil)
    }

    /// Graphs that mix rows run whole, and give the right answer: a mean over the batch (ReduceMean
    /// on axis 0), a value divided by the batch size (a constant computed from Shape), a transpose
    /// that moves axis 0.
    @Test(arguments: ["mean over batch", "divide by batch size", "transpose"])
    func graphsMixingRowsRunWhole(kind: String) throws {
        let extra: [Node]
        var initializers: [String: Tensor] = [:]
        switch kind {
        case "mean over batch":
            extra = [
                Node(name: "mean", opType: "ReduceMean", inputs: ["g"], outputs: ["m"],
                    attributes: ["axes": .ints([0]), "keepdims": .int(1)]),
                Node(name: "sub", opType: "Sub", inputs: ["g", "m"], outputs: ["z"]),
            ]
        case "divide by batch size":
            extra = [
                Node(name: "shape", opType: "Shape", inputs: ["g"], outputs: ["s"]),
                Node(name: "gather", opType: "Gather", inputs: ["s", "zero"], outputs: ["n"]),
                Node(name: "cast", opType: "Cast", inputs: ["n"], outputs: ["nf"], attributes: ["to": .int(1)]),
                Node(name: "div", opType: "Div", inputs: ["g", "nf"], outputs: ["z"]),
            ]
            initializers["zero"] = Tensor(scalar: Int64(0))
        default:
            extra = [
                Node(name: "t1", opType: "Transpose", inputs: ["g"], outputs: ["t"], attributes: ["perm": .ints([1, 0])]),
                Node(name: "t2", opType: "Transpose", inputs: ["t"], outputs: ["z"], attributes: ["perm": .ints([1, 0])]),
            ]
        }
        let plan = try Plan(model: Self.convModel(extra: extra, extraInitializers: initializers))
        var rng = TestRNG(seed: 903)
        let x = rng.tensor([300, 3, 32, 32])
        let expected = try plan.runUnplanned(["x": x])["y"]!
        let y = try plan.run(["x": x])["y"]!
        expectClose(y, expected.scalars(as: Float.self), shape: [300, 5])
        #expect(try plan.shapePlan(for: ["x": x]).split == nil, "\(kind)")
        // The same graph without the mixing step would split: the analysis, not the size, decided.
        #expect(try Plan(model: Self.convModel()).shapePlan(for: ["x": x]).split != nil)
    }
}
