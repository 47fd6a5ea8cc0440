import Engine
import Tensors
import Testing

/// Sequences and optionals inside graphs: the list-building pattern TorchScript exports for Python
/// lists in loops (SequenceEmpty, then SequenceInsert in a Loop body, then ConcatFromSequence).
@Suite struct SequenceTests {
    func value(_ name: String, _ type: DataType = .float32, _ shape: [Dimension]? = nil, kind: ValueKind = .tensor) -> ValueInfo {
        ValueInfo(name: name, dataType: type, shape: shape, kind: kind)
    }

    /// Loop M times: parts.append(x * i); y = concat(parts, axis 0); n = len(parts).
    func listModel() throws -> InferenceSession {
        let body = Graph(
            name: "body",
            nodes: [
                Node(name: "as_float", opType: "Cast", inputs: ["i"], outputs: ["i_f"], attributes: ["to": .int(1)]),
                Node(name: "scaled", opType: "Mul", inputs: ["x", "i_f"], outputs: ["part"]),
                Node(name: "append", opType: "SequenceInsert", inputs: ["parts_in", "part"], outputs: ["parts_out"]),
                Node(name: "keep", opType: "Identity", inputs: ["cond_in"], outputs: ["cond_out"]),
            ],
            inputs: [value("i", .int64, []), value("cond_in", .bool, []), value("parts_in", kind: .sequence)],
            outputs: [value("cond_out", .bool), value("parts_out", kind: .sequence)])
        let graph = Graph(
            nodes: [
                Node(name: "empty", opType: "SequenceEmpty", inputs: [], outputs: ["parts0"]),
                Node(name: "loop", opType: "Loop", inputs: ["m", "go", "parts0"], outputs: ["parts"], attributes: ["body": .graph(body)]),
                Node(name: "join", opType: "ConcatFromSequence", inputs: ["parts"], outputs: ["y"], attributes: ["axis": .int(0)]),
                Node(name: "count", opType: "SequenceLength", inputs: ["parts"], outputs: ["n"]),
            ],
            inputs: [value("m", .int64, []), value("x", .float32, [.symbolic("k")])],
            outputs: [value("y"), value("n", .int64, [])],
            initializers: ["go": Tensor(scalar: true)])
        return try InferenceSession(model: GraphModel(graph: graph, opsets: ["": 17], irVersion: 8))
    }

    @Test func aLoopBuildsAListThatIsJoinedAfterIt() throws {
        let session = try listModel()
        for _ in 0..<2 {  // the second run goes through the shape plan
            let out = try session.run(["m": Tensor(scalar: Int64(3)), "x": Tensor([1, 2] as [Float], shape: [2])])
            #expect(out["y"]!.scalars(as: Float.self) == [0, 0, 1, 2, 2, 4])
            #expect(out["n"]!.scalars(as: Int64.self) == [3])
        }
    }

    @Test func joiningAnEmptyListIsARequestErrorNotACrash() throws {
        let session = try listModel()
        #expect(throws: EngineError.self) {
            try session.run(["m": Tensor(scalar: Int64(0)), "x": Tensor([1, 2] as [Float], shape: [2])])
        }
    }

    /// SplitToSequence, SequenceAt with a negative position, an optional around it.
    @Test func splitPickAndOptional() throws {
        let graph = Graph(
            nodes: [
                Node(name: "split", opType: "SplitToSequence", inputs: ["x"], outputs: ["rows"], attributes: ["keepdims": .int(0)]),
                Node(name: "last", opType: "SequenceAt", inputs: ["rows", "minus_one"], outputs: ["row"]),
                Node(name: "wrap", opType: "Optional", inputs: ["row"], outputs: ["maybe"]),
                Node(name: "has", opType: "OptionalHasElement", inputs: ["maybe"], outputs: ["present"]),
                Node(name: "get", opType: "OptionalGetElement", inputs: ["maybe"], outputs: ["y"]),
            ],
            inputs: [value("x", .float32, [.symbolic("n"), .fixed(2)])],
            outputs: [value("y"), value("present", .bool, [])],
            initializers: ["minus_one": Tensor(scalar: Int64(-1))])
        let session = try InferenceSession(model: GraphModel(graph: graph, opsets: ["": 18], irVersion: 8))
        let out = try session.run(["x": Tensor([1, 2, 3, 4, 5, 6] as [Float], shape: [3, 2])])
        #expect(out["y"]!.shape == [2])
        #expect(out["y"]!.scalars(as: Float.self) == [5, 6])
        #expect(out["present"]!.scalars(as: Bool.self) == [true])
    }

    /// A tensor where the graph declares a sequence input is refused with what was expected.
    @Test func aTensorFedToASequenceInputIsRefused() throws {
        let graph = Graph(
            nodes: [Node(name: "count", opType: "SequenceLength", inputs: ["s"], outputs: ["n"])],
            inputs: [value("s", kind: .sequence)], outputs: [value("n", .int64, [])])
        let session = try InferenceSession(model: GraphModel(graph: graph, opsets: ["": 17], irVersion: 8))
        do {
            _ = try session.run(["s": Tensor([1] as [Float], shape: [1])])
            Issue.record("a tensor was accepted as a sequence")
        } catch {
            #expect("\(error)".contains("expected a sequence, got a tensor"))
        }
        let n = try session.run(["s": Tensor(sequence: [Tensor([1] as [Float], shape: [1])], elementType: .float32)])["n"]!
        #expect(n.scalars(as: Int64.self) == [1])
    }
}
