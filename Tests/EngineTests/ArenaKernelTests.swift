@testable import Engine
import Tensors
import Testing

/// Kernels that write their output into the shape plan's arena (`BufferedKernel`): for each, a small
/// graph with a symbolic batch runs twice through `Plan.run` (the second run through the shape plan)
/// and gives what the unplanned run gives, and the step under test has an arena offset, so a kernel
/// that went back to allocating its output fails here.
@Suite struct ArenaKernelTests {
    /// One graph: `x` float32 [batch, 3, 4, 5] -> `pre` nodes -> the node under test ("op", output
    /// "o") -> Identity -> graph output "y" (a graph output never lives in the arena, so the Identity
    /// keeps "o" an intermediate value).
    struct Case {
        var pre: [Node] = []
        var op: Node
        var constants: [String: Tensor] = [:]
        var opset = 17
    }

    static func node(_ op: String, _ inputs: [String], _ attributes: [String: Attribute] = [:]) -> Node {
        Node(name: "op", opType: op, inputs: inputs, outputs: ["o"], attributes: attributes)
    }

    static func pre(_ name: String, _ op: String, _ inputs: [String], _ attributes: [String: Attribute] = [:]) -> Node {
        Node(name: name, opType: op, inputs: inputs, outputs: [name], attributes: attributes)
    }

    static func ints(_ v: [Int64]) -> Tensor { Tensor(v, shape: [v.count]) }
    static func string(_ s: String) -> Attribute { .string(Array(s.utf8)) }

    /// x * 100 as int64 ("xi"), for the integer paths.
    static let toInt: [Node] = [
        pre("x100", "Mul", ["x", "hundred"]), pre("xi", "Cast", ["x100"], ["to": .int(Int(DataType.int64.rawValue))]),
    ]
    static let hundred: [String: Tensor] = ["hundred": Tensor(scalar: Float(100))]

    static let cases: [String: Case] = {
        var c: [String: Case] = [:]
        var rng = TestRNG(seed: 900)
        let channels = ["scale": rng.tensor([3]), "bias": rng.tensor([3])]
        // Reduce*
        c["ReduceSum"] = Case(op: node("ReduceSum", ["x", "axes"], ["keepdims": .int(0)]), constants: ["axes": ints([1, 3])])
        c["ReduceSum-noop"] = Case(op: node("ReduceSum", ["x", ""], ["noop_with_empty_axes": .int(1)]))
        for op in ["ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceSumSquare", "ReduceL1", "ReduceL2"] {
            c[op] = Case(op: node(op, ["x"], ["axes": .ints([2])]))
        }
        c["ReduceLogSumExp"] = Case(op: node("ReduceLogSumExp", ["x"], ["axes": .ints([1, 2]), "keepdims": .int(0)]))
        c["ReduceLogSum"] = Case(pre: [pre("ax", "Abs", ["x"])], op: node("ReduceLogSum", ["ax"], ["axes": .ints([3])]))
        c["ReduceMax-int64"] = Case(pre: toInt, op: node("ReduceMax", ["xi"], ["axes": .ints([1])]), constants: hundred)
        c["ReduceSum-int64"] = Case(
            pre: toInt, op: node("ReduceSum", ["xi", "axes"]), constants: hundred.merging(["axes": ints([-1])]) { a, _ in a })
        c["ReduceMax-bool"] = Case(
            pre: [pre("positive", "Greater", ["x", "zero"])], op: node("ReduceMax", ["positive"], ["axes": .ints([1])]),
            constants: ["zero": Tensor(scalar: Float(0))])
        // Pad, Tile
        c["Pad-constant"] = Case(
            op: node("Pad", ["x", "pads", "value"]),
            constants: ["pads": ints([0, 1, 0, 2, 0, 0, 1, 1]), "value": Tensor(scalar: Float(0.5))])
        c["Pad-reflect"] = Case(
            op: node("Pad", ["x", "pads"], ["mode": string("reflect")]), constants: ["pads": ints([0, 0, 1, 1, 0, 0, 1, 1])])
        c["Pad-zero"] = Case(op: node("Pad", ["x", "pads"]), constants: ["pads": ints([0, 0, 0, 0, 0, 0, 0, 0])])
        c["Tile"] = Case(op: node("Tile", ["x", "repeats"]), constants: ["repeats": ints([1, 2, 1, 3])])
        // ArgMax, ArgMin, gathers
        c["ArgMax"] = Case(op: node("ArgMax", ["x"], ["axis": .int(1), "keepdims": .int(0)]))
        c["ArgMin"] = Case(op: node("ArgMin", ["x"], ["axis": .int(-1), "select_last_index": .int(1)]))
        c["GatherElements"] = Case(
            op: node("GatherElements", ["x", "idx"], ["axis": .int(3)]),
            constants: ["idx": Tensor((0..<24).map { Int64($0 % 5) - 2 }, shape: [1, 3, 4, 2])])
        c["GatherND"] = Case(op: node("GatherND", ["x", "idx"]), constants: ["idx": Tensor([Int64(0), 1, 0, -1], shape: [2, 2])])
        // Einsum: product straight into the output, permute, sum, sum + permute, batched with a transpose.
        c["Einsum-product"] = Case(op: node("Einsum", ["x", "w"], ["equation": string("bcij,jk->bcik")]), constants: ["w": rng.tensor([5, 6])])
        c["Einsum-permute"] = Case(op: node("Einsum", ["x"], ["equation": string("bcij->bjic")]))
        c["Einsum-sum"] = Case(op: node("Einsum", ["x"], ["equation": string("bcij->bc")]))
        c["Einsum-sum-permute"] = Case(op: node("Einsum", ["x"], ["equation": string("bcij->cb")]))
        c["Einsum-batched"] = Case(pre: [pre("nx", "Neg", ["x"])], op: node("Einsum", ["x", "nx"], ["equation": string("...ij,...ik->...jk")]))
        c["Einsum-chain"] = Case(
            op: node("Einsum", ["x", "w", "v"], ["equation": string("bcij,jk,kl->bcil")]),
            constants: ["w": rng.tensor([5, 6]), "v": rng.tensor([6, 2])])
        // Normalisations
        c["BatchNormalization"] = Case(
            op: node("BatchNormalization", ["x", "scale", "bias", "mean", "var"]),
            constants: channels.merging(["mean": rng.tensor([3]), "var": Tensor([Float(0.5), 1, 2], shape: [3])]) { a, _ in a })
        c["InstanceNormalization"] = Case(op: node("InstanceNormalization", ["x", "scale", "bias"]), constants: channels)
        c["LRN"] = Case(op: node("LRN", ["x"], ["size": .int(3)]))
        // Clip, PRelu
        c["Clip"] = Case(
            op: node("Clip", ["x", "lo", "hi"]), constants: ["lo": Tensor(scalar: Float(-0.5)), "hi": Tensor(scalar: Float(0.3))])
        c["Clip-int64"] = Case(
            pre: toInt, op: node("Clip", ["xi", "lo"]), constants: hundred.merging(["lo": Tensor(scalar: Int64(-20))]) { a, _ in a })
        c["PRelu"] = Case(op: node("PRelu", ["x", "slope"]), constants: ["slope": Tensor([Float(0.1), 0.2, 0.3], shape: [3, 1, 1])])
        // Sum, Mean, Max, Min: same shapes, broadcast, broadcast-copy first, one input, int64.
        c["Sum"] = Case(op: node("Sum", ["x", "row", "x"]), constants: ["row": rng.tensor([5])])
        c["Mean"] = Case(op: node("Mean", ["row", "x"]), constants: ["row": rng.tensor([5])])
        c["Max"] = Case(op: node("Max", ["col", "row", "x"]), constants: ["col": rng.tensor([4, 1]), "row": rng.tensor([5])])
        c["Min"] = Case(op: node("Min", ["x"]))
        c["Sum-int64"] = Case(pre: toInt, op: node("Sum", ["xi", "xi", "xi"]), constants: hundred)
        // Predicates, CastLike
        c["IsNaN"] = Case(pre: [pre("lx", "Log", ["x"])], op: node("IsNaN", ["lx"]))
        c["IsInf"] = Case(
            pre: [pre("rx", "Relu", ["x"]), pre("ix", "Reciprocal", ["rx"])], op: node("IsInf", ["ix"], ["detect_negative": .int(0)]))
        c["Not"] = Case(pre: [pre("positive", "Greater", ["x", "zero"])], op: node("Not", ["positive"]), constants: ["zero": Tensor(scalar: Float(0))])
        c["CastLike"] = Case(pre: [pre("x100", "Mul", ["x", "hundred"])], op: node("CastLike", ["x100", "like"]),
            constants: hundred.merging(["like": Tensor(scalar: Int32(0))]) { a, _ in a })
        // Where reads its operands through broadcast strides.
        c["Where-broadcast"] = Case(
            op: node("Where", ["mask", "x", "minus"]),
            constants: ["mask": Tensor([true, false, true, true], shape: [4, 1]), "minus": Tensor(scalar: Float(-9))])
        c["Where-condition"] = Case(
            pre: [pre("positive", "Greater", ["x", "zero"])], op: node("Where", ["positive", "row", "x"]),
            constants: ["zero": Tensor(scalar: Float(0)), "row": rng.tensor([5])])
        // Integer paths of kernels that were already buffered for float32.
        c["Add-int64"] = Case(pre: toInt, op: node("Add", ["xi", "xi"]), constants: hundred)
        c["Neg-int64"] = Case(pre: toInt, op: node("Neg", ["xi"]), constants: hundred)
        c["Mod-int64"] = Case(pre: toInt, op: node("Mod", ["xi", "seven"]), constants: hundred.merging(["seven": Tensor(scalar: Int64(7))]) { a, _ in a })
        return c
    }()

    static func model(_ c: Case) -> GraphModel {
        let graph = Graph(
            nodes: c.pre + [c.op, Node(name: "out", opType: "Identity", inputs: ["o"], outputs: ["y"])],
            inputs: [ValueInfo(name: "x", dataType: .float32, shape: [.symbolic("batch"), .fixed(3), .fixed(4), .fixed(5)])],
            outputs: [ValueInfo(name: "y", dataType: nil, shape: nil)],
            initializers: c.constants)
        return GraphModel(graph: graph, opsets: ["": c.opset], irVersion: 8)
    }

    @Test(arguments: cases.keys.sorted())
    func kernelWritesIntoTheArena(name: String) throws {
        let plan = try Plan(model: Self.model(Self.cases[name]!))
        var rng = TestRNG(seed: 901)
        for batch in [1, 3] {
            let feeds = ["x": rng.tensor([batch, 3, 4, 5])]
            let expected = try plan.runUnplanned(feeds)["y"]!
            for _ in 0..<2 {
                let actual = try plan.run(feeds)["y"]!
                if expected.dataType == .float32 {
                    expectClose(actual, expected.scalars(as: Float.self), shape: expected.shape)
                } else {
                    #expect(actual.dataType == expected.dataType)
                    #expect(actual.shape == expected.shape)
                    #expect(Self.bytes(actual) == Self.bytes(expected))
                }
            }
            let shapePlan = try plan.shapePlan(for: feeds)
            let step = try #require(shapePlan.steps.first { $0.base.node == "op" }, "the node under test was folded away")
            #expect(step.buffered != nil, "\(name) allocates its output instead of writing into the arena")
            #expect(step.offset >= 0)
            #expect(shapePlan.allocations.contains { $0.slot == step.base.outputs[0] && $0.offset == step.offset })
            // And it really writes into the buffer it is given (returns it, not a tensor of its own), all of it.
            let storage = TensorStorage(uninitializedByteCount: Tensor.elementCount(step.outputShape) * step.outputType.byteSize)
            let buffer = Tensor(dataType: step.outputType, shape: step.outputShape, storage: storage)
            // Filled with a pattern first, so an element the kernel leaves unwritten shows.
            buffer.mutableBytes.initializeMemory(as: UInt8.self, repeating: 0xA5)
            let result = try Self.runSteps(shapePlan, feeds, until: "op") { try step.buffered!.run($0, into: buffer) }
            #expect(result.storage === storage, "\(name) ignores the buffer it is given")
            #expect(Self.bytes(result) == Self.bytes(expected))
        }
    }

    /// A copy of the tensor's bytes (the tensor kept alive while they are read).
    static func bytes(_ t: Tensor) -> [UInt8] { withExtendedLifetime(t) { Array(t.rawBytes) } }

    /// Runs the shape plan's steps before the one named `node` as `ShapePlan.run` would (but
    /// allocating), then that step through `body` with its arguments, and returns its first output.
    static func runSteps(
        _ plan: ShapePlan, _ feeds: [String: Tensor], until node: String, _ body: ([Tensor?]) throws -> [Tensor]
    ) throws -> Tensor {
        var slots = plan.initialSlots
        for (name, slot) in plan.inputSlots { slots[slot] = feeds[name] }
        for step in plan.steps {
            let args = step.base.inputs.map { $0 < 0 ? nil : slots[$0] }
            if step.base.node == node { return try body(args)[0] }
            for (i, s) in try step.base.kernel.run(args).enumerated() where step.base.outputs[i] >= 0 {
                slots[step.base.outputs[i]] = s
            }
        }
        throw KernelError.failed("no step named \(node)")
    }

    /// The no-op Reduce and the all-zero Pad copy their input into the arena instead of returning it:
    /// the arena assumes a buffered kernel's output never aliases its input.
    @Test(arguments: ["ReduceSum-noop", "Pad-zero"])
    func noOpsCopyIntoTheirBuffer(name: String) throws {
        let plan = try Plan(model: Self.model(Self.cases[name]!))
        var rng = TestRNG(seed: 902)
        let x = rng.tensor([2, 3, 4, 5])
        let shapePlan = try plan.shapePlan(for: ["x": x])
        let step = try #require(shapePlan.steps.first { $0.base.node == "op" })
        let buffered = try #require(step.buffered)
        let arena = TensorStorage(uninitializedByteCount: x.byteCount)
        let buffer = Tensor(dataType: .float32, shape: x.shape, storage: arena)
        let result = try Self.runSteps(shapePlan, ["x": x], until: "op") { try buffered.run($0, into: buffer) }
        #expect(result.storage === arena)
        #expect(result.scalars(as: Float.self) == x.scalars(as: Float.self))
    }
}
