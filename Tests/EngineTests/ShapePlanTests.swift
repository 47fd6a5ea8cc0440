@testable import Engine
import Tensors
import Testing

/// Per-signature shape plans: shape folding, the arena layout, and the plan cache.
@Suite struct ShapePlanTests {
    /// x [batch, 8] -> Gemm+Relu -> Shape/Gather/Unsqueeze/Concat -> Reshape -> Gemm -> Add(x-derived)
    /// -> Softmax: a chain with a shape subgraph and several intermediate values.
    static func model() -> GraphModel {
        var rng = TestRNG(seed: 400)
        let nodes = [
            Node(name: "fc1", opType: "Gemm", inputs: ["x", "w1", "b1"], outputs: ["h1"], attributes: ["transB": .int(1)]),
            Node(name: "relu", opType: "Relu", inputs: ["h1"], outputs: ["a1"]),
            Node(name: "shape", opType: "Shape", inputs: ["a1"], outputs: ["s"]),
            Node(name: "gather", opType: "Gather", inputs: ["s", "zero"], outputs: ["n"], attributes: ["axis": .int(0)]),
            Node(name: "unsq", opType: "Unsqueeze", inputs: ["n", "axes0"], outputs: ["n1"]),
            Node(name: "concat", opType: "Concat", inputs: ["n1", "minusOne"], outputs: ["target"], attributes: ["axis": .int(0)]),
            Node(name: "reshape", opType: "Reshape", inputs: ["a1", "target"], outputs: ["r"]),
            Node(name: "fc2", opType: "Gemm", inputs: ["r", "w2"], outputs: ["h2"], attributes: ["transB": .int(1)]),
            Node(name: "mul", opType: "Mul", inputs: ["h2", "h2"], outputs: ["sq"]),
            Node(name: "add", opType: "Add", inputs: ["sq", "h2"], outputs: ["z"]),
            Node(name: "softmax", opType: "Softmax", inputs: ["z"], outputs: ["y"], attributes: ["axis": .int(1)]),
        ]
        let graph = Graph(
            nodes: nodes,
            inputs: [ValueInfo(name: "x", dataType: .float32, shape: [.symbolic("batch"), .fixed(8)])],
            outputs: [ValueInfo(name: "y", dataType: .float32, shape: nil)],
            initializers: [
                "w1": rng.tensor([16, 8]), "b1": rng.tensor([16]), "w2": rng.tensor([6, 16]),
                "zero": Tensor(scalar: Int64(0)), "axes0": Tensor([Int64(0)], shape: [1]),
                "minusOne": Tensor([Int64(-1)], shape: [1]),
            ])
        return GraphModel(graph: graph, opsets: ["": 13], irVersion: 8)
    }

    @Test(arguments: [1, 3, 32])
    func shapePlanMatchesUnplannedRun(batch: Int) throws {
        let plan = try Plan(model: Self.model())
        var rng = TestRNG(seed: UInt64(401 + batch))
        for _ in 0..<3 {
            let feeds = ["x": rng.tensor([batch, 8])]
            let expected = try plan.runUnplanned(feeds)["y"]!
            let actual = try plan.run(feeds)["y"]!
            expectClose(actual, expected.scalars(as: Float.self), shape: [batch, 6])
        }
        let shapePlan = try plan.shapePlan(for: ["x": rng.tensor([batch, 8])])
        // Shape, Gather, Unsqueeze, Concat folded; the Gemms, Relu, Mul, Add, Softmax in the arena.
        #expect(shapePlan.foldedSteps == 4)
        #expect(!shapePlan.steps.map(\.base.opType).contains("Shape"))
        #expect(shapePlan.allocations.count == 5)
    }

    /// A step profile times every step of the shape plan once per profiled run, by node name, and
    /// leaves out the run that builds the plan.
    @Test func stepProfileTimesEachPlannedStep() throws {
        let session = try InferenceSession(model: Self.model())
        var rng = TestRNG(seed: 420)
        let feeds = ["x": rng.tensor([4, 8])]
        let profile = StepProfile()
        _ = try session.run(feeds, profile: profile)  // builds the shape plan: not timed
        #expect(profile.entries.isEmpty)
        for _ in 0..<3 { _ = try session.run(feeds, profile: profile) }
        _ = try session.run(feeds)  // not profiled
        let steps = try session.plan.shapePlan(for: feeds).steps.map(\.base)
        #expect(profile.entries.map(\.node) == steps.map(\.node))
        #expect(profile.entries.map(\.opType) == steps.map(\.opType))
        #expect(profile.entries.allSatisfy { $0.count == 3 && $0.seconds > 0 })
    }

    /// No two arena values alive at the same step share a byte.
    @Test func arenaOffsetsNeverOverlapWhileAlive() throws {
        let plan = try Plan(model: Self.model())
        var rng = TestRNG(seed: 410)
        let allocations = try plan.shapePlan(for: ["x": rng.tensor([5, 8])]).allocations
        #expect(!allocations.isEmpty)
        for (i, a) in allocations.enumerated() {
            for b in allocations[(i + 1)...] where a.first <= b.last && b.first <= a.last {
                let disjoint = a.offset + a.size <= b.offset || b.offset + b.size <= a.offset
                #expect(disjoint, "slots \(a.slot) and \(b.slot) overlap while both alive")
            }
        }
        // Reuse happened: the arena is smaller than the sum of the values.
        let sum = allocations.map(\.size).reduce(0, +)
        #expect(try plan.shapePlan(for: ["x": rng.tensor([5, 8])]).arenaBytes < sum)
    }

    @Test func planCacheIsKeyedByShapeAndBounded() throws {
        let plan = try Plan(model: Self.model())
        var rng = TestRNG(seed: 420)
        _ = try plan.run(["x": rng.tensor([2, 8])])
        _ = try plan.run(["x": rng.tensor([2, 8])])
        #expect(plan.shapePlans.count == 1)
        _ = try plan.run(["x": rng.tensor([4, 8])])
        #expect(plan.shapePlans.count == 2)
        for batch in 1...(Plan.shapePlanCapacity + 3) { _ = try plan.run(["x": rng.tensor([batch, 8])]) }
        #expect(plan.shapePlans.count == Plan.shapePlanCapacity)
        // The oldest signatures went first; the newest is there.
        #expect(plan.shapePlans.keys.last == plan.signature(["x": rng.tensor([Plan.shapePlanCapacity + 3, 8])]))
    }

    /// Outputs never point into the arena: results of one run survive the next run.
    @Test func outputsSurviveLaterRuns() throws {
        let plan = try Plan(model: Self.model())
        var rng = TestRNG(seed: 430)
        let x1 = rng.tensor([3, 8])
        _ = try plan.run(["x": x1])
        let first = try plan.run(["x": x1])["y"]!
        let copy = first.scalars(as: Float.self)
        _ = try plan.run(["x": rng.tensor([3, 8])])
        #expect(first.scalars(as: Float.self) == copy)
    }

    /// A 3x3 and a 3x3-stride-2 convolution, spatial rank 2 or 3, weights as initializers.
    static func convModel(rank: Int, _ rng: inout TestRNG) -> GraphModel {
        let ones = [Int](repeating: 1, count: 2 * rank)
        let twos = [Int](repeating: 2, count: rank)
        let kernel = [Int](repeating: 3, count: rank)
        let nodes = [
            Node(name: "c1", opType: "Conv", inputs: ["x", "w1"], outputs: ["a"], attributes: ["pads": .ints(ones)]),
            Node(name: "c2", opType: "Conv", inputs: ["a", "w2"], outputs: ["b"], attributes: ["strides": .ints(twos)]),
            Node(name: "relu", opType: "Relu", inputs: ["b"], outputs: ["y"]),
        ]
        let spatial: [Dimension] = rank == 2 ? [.fixed(11), .fixed(12)] : [.fixed(4), .fixed(5), .fixed(6)]
        let graph = Graph(
            nodes: nodes,
            inputs: [ValueInfo(name: "x", dataType: .float32, shape: [.symbolic("n"), .fixed(3)] + spatial)],
            outputs: [ValueInfo(name: "y", dataType: .float32, shape: nil)],
            initializers: ["w1": rng.tensor([5, 3] + kernel), "w2": rng.tensor([4, 5] + kernel)])
        return GraphModel(graph: graph, opsets: ["": 13], irVersion: 8)
    }

    /// Two 3x3x3 convolutions share the im2col region at the end of the arena and give what the
    /// unplanned run gives.
    @Test func convScratchComesFromTheArena() throws {
        var rng = TestRNG(seed: 440)
        let plan = try Plan(model: Self.convModel(rank: 3, &rng))
        let x = rng.tensor([2, 3, 4, 5, 6])
        let shapePlan = try plan.shapePlan(for: ["x": x])
        // c1: 81 x 120 floats; c2: 135 x 4.
        #expect(shapePlan.arenaBytes - shapePlan.scratchOffset == 81 * 120 * 4)
        #expect(shapePlan.steps.filter { $0.scratch != nil }.count == 2)
        let expected = try plan.runUnplanned(["x": x])["y"]!
        for _ in 0..<2 {
            expectClose(try plan.run(["x": x])["y"]!, expected.scalars(as: Float.self), shape: expected.shape)
        }
    }

    /// 2-D convolutions with packed weights read their patches straight from the input
    /// (`PatchSource`): no im2col region at all.
    @Test func twoDimensionalConvNeedsNoScratch() throws {
        var rng = TestRNG(seed: 441)
        let plan = try Plan(model: Self.convModel(rank: 2, &rng))
        let x = rng.tensor([2, 3, 11, 12])
        let shapePlan = try plan.shapePlan(for: ["x": x])
        #expect(shapePlan.arenaBytes == shapePlan.scratchOffset)
        #expect(shapePlan.steps.allSatisfy { $0.scratch == nil })
        let expected = try plan.runUnplanned(["x": x])["y"]!
        expectClose(try plan.run(["x": x])["y"]!, expected.scalars(as: Float.self), shape: expected.shape)
    }
}
