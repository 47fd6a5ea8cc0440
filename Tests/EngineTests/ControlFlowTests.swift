import Engine
import Tensors
import Testing

/// If, Loop and Scan, with subgraphs that read values of the scopes around them.
@Suite struct ControlFlowTests {
    func value(_ name: String, _ type: DataType = .float32, _ shape: [Dimension]? = nil) -> ValueInfo {
        ValueInfo(name: name, dataType: type, shape: shape)
    }

    /// y = If(x_sum > 0, then: x * w (w an outer initializer), else: x (an outer value, as it is)).
    func ifModel() throws -> InferenceSession {
        let thenBranch = Graph(
            name: "then", nodes: [Node(name: "scale", opType: "Mul", inputs: ["x", "w"], outputs: ["t"])],
            inputs: [], outputs: [value("t")])
        let elseBranch = Graph(name: "else", nodes: [], inputs: [], outputs: [value("x")])
        let graph = Graph(
            nodes: [
                Node(name: "sum", opType: "ReduceSum", inputs: ["x"], outputs: ["s"], attributes: ["keepdims": .int(0)]),
                Node(name: "positive", opType: "Greater", inputs: ["s", "zero"], outputs: ["c"]),
                Node(
                    name: "choose", opType: "If", inputs: ["c"], outputs: ["y"],
                    attributes: ["then_branch": .graph(thenBranch), "else_branch": .graph(elseBranch)]),
            ],
            inputs: [value("x", .float32, [.symbolic("n")])], outputs: [value("y")],
            initializers: ["w": Tensor([Float(3)], shape: [1]), "zero": Tensor(scalar: Float(0))])
        return try InferenceSession(model: GraphModel(graph: graph, opsets: ["": 17], irVersion: 8))
    }

    @Test func ifRunsTheBranchTheConditionPicksWithOuterValues() throws {
        let session = try ifModel()
        let up = try session.run(["x": Tensor([1, 2] as [Float], shape: [2])])["y"]!
        #expect(up.scalars(as: Float.self) == [3, 6])
        let down = try session.run(["x": Tensor([-1, -2, 0] as [Float], shape: [3])])["y"]!
        #expect(down.scalars(as: Float.self) == [-1, -2, 0])
    }

    /// Loop M times: carried acc += k * i, scan output acc each step; the body holds an If whose
    /// branch reads `k`, a value of the outermost graph (two scopes out), computed by a node
    /// that only the nested branch reads.
    func loopModel() throws -> InferenceSession {
        let inner = Graph(
            name: "inner", nodes: [Node(name: "times_k", opType: "Mul", inputs: ["i_f", "k"], outputs: ["inc"])],
            inputs: [], outputs: [value("inc")])
        let zeroBranch = Graph(
            name: "zero", nodes: [Node(name: "nothing", opType: "Mul", inputs: ["i_f", "zero"], outputs: ["none"])],
            inputs: [], outputs: [value("none")])
        let body = Graph(
            name: "body",
            nodes: [
                Node(name: "as_float", opType: "Cast", inputs: ["i"], outputs: ["i_f"], attributes: ["to": .int(1)]),
                Node(
                    name: "maybe", opType: "If", inputs: ["cond_in"], outputs: ["step"],
                    attributes: ["then_branch": .graph(inner), "else_branch": .graph(zeroBranch)]),
                Node(name: "accumulate", opType: "Add", inputs: ["acc_in", "step"], outputs: ["acc_out"]),
                Node(name: "keep", opType: "Identity", inputs: ["cond_in"], outputs: ["cond_out"]),
                Node(name: "record", opType: "Identity", inputs: ["acc_out"], outputs: ["scan"]),
            ],
            inputs: [value("i", .int64, []), value("cond_in", .bool, []), value("acc_in")],
            outputs: [value("cond_out", .bool), value("acc_out"), value("scan")])
        let graph = Graph(
            nodes: [
                Node(name: "make_k", opType: "Mul", inputs: ["base", "two"], outputs: ["k"]),
                Node(
                    name: "loop", opType: "Loop", inputs: ["m", "go", "acc0"], outputs: ["acc", "history"],
                    attributes: ["body": .graph(body)]),
            ],
            inputs: [value("m", .int64, []), value("acc0", .float32, [.fixed(2)])],
            outputs: [value("acc"), value("history")],
            initializers: [
                "base": Tensor([Float(1), 10], shape: [2]), "two": Tensor(scalar: Float(2)),
                "go": Tensor(scalar: true), "zero": Tensor(scalar: Float(0)),
            ])
        return try InferenceSession(model: GraphModel(graph: graph, opsets: ["": 17], irVersion: 8))
    }

    @Test func loopCarriesValuesStacksScanOutputsAndReadsOuterScopesTwoLevelsOut() throws {
        let session = try loopModel()
        let out = try session.run(["m": Tensor(scalar: Int64(4)), "acc0": Tensor([Float(0), 1], shape: [2])])
        // k = [2, 20]; acc after i = 0...3 adds k * (0 + 1 + 2 + 3).
        #expect(out["acc"]!.scalars(as: Float.self) == [12, 121])
        #expect(out["history"]!.shape == [4, 2])
        #expect(out["history"]!.scalars(as: Float.self) == [0, 1, 2, 21, 6, 61, 12, 121])
        // Zero iterations: the carried values come back as they were.
        let none = try session.run(["m": Tensor(scalar: Int64(0)), "acc0": Tensor([Float(5), 6], shape: [2])])
        #expect(none["acc"]!.scalars(as: Float.self) == [5, 6])
    }

    @Test func scanStacksAlongItsAxesInBothDirections() throws {
        // Running sum over axis 1 of x [2, 3], read backwards; outputs stacked on axis 1.
        let body = Graph(
            name: "body", nodes: [
                Node(name: "add", opType: "Add", inputs: ["sum_in", "column"], outputs: ["sum_out"]),
                Node(name: "copy", opType: "Identity", inputs: ["sum_out"], outputs: ["partial"]),
            ],
            inputs: [value("sum_in", .float32, [.fixed(2)]), value("column", .float32, [.fixed(2)])],
            outputs: [value("sum_out"), value("partial")])
        let graph = Graph(
            nodes: [
                Node(
                    name: "scan", opType: "Scan", inputs: ["init", "x"], outputs: ["total", "partials"],
                    attributes: [
                        "body": .graph(body), "num_scan_inputs": .int(1), "scan_input_axes": .ints([1]),
                        "scan_input_directions": .ints([1]), "scan_output_axes": .ints([1]),
                    ])
            ],
            inputs: [value("init", .float32, [.fixed(2)]), value("x", .float32, [.fixed(2), .fixed(3)])],
            outputs: [value("total"), value("partials")])
        let session = try InferenceSession(model: GraphModel(graph: graph, opsets: ["": 16], irVersion: 8))
        let out = try session.run([
            "init": Tensor([Float(0), 0], shape: [2]), "x": Tensor([1, 2, 3, 10, 20, 30] as [Float], shape: [2, 3]),
        ])
        #expect(out["total"]!.scalars(as: Float.self) == [6, 60])
        #expect(out["partials"]!.shape == [2, 3])
        #expect(out["partials"]!.scalars(as: Float.self) == [3, 5, 6, 30, 50, 60])
    }

    @Test func aLoopsScanOutputsCountAgainstTheRequestsMemory() throws {
        let session = try InferenceSession(
            model: try loopModel().model.withInitializers(try loopInitializers()),
            options: SessionOptions(maxRunMemory: 16 << 10))
        // 2 floats of history per iteration: some 2000 iterations pass a 16 KiB budget.
        let error = engineError {
            _ = try session.run(["m": Tensor(scalar: Int64(100_000)), "acc0": Tensor([Float(0), 1], shape: [2])])
        }
        guard case .memoryLimit? = error else {
            Issue.record("expected memoryLimit, got \(String(describing: error))")
            return
        }
    }

    func loopInitializers() throws -> [String: Tensor] {
        [
            "base": Tensor([Float(1), 10], shape: [2]), "two": Tensor(scalar: Float(2)),
            "go": Tensor(scalar: true), "zero": Tensor(scalar: Float(0)),
        ]
    }
}

extension GraphModel {
    /// The model with `initializers` (a session's `model` keeps none).
    func withInitializers(_ initializers: [String: Tensor]) -> GraphModel {
        var copy = self
        copy.graph.initializers = initializers
        return copy
    }
}
