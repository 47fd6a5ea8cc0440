import Engine
import Tensors
import Testing

@Suite struct InputValidationTests {
    /// y = x + z with x: FP32 [batch, 4], z: FP32 [1, 4].
    func session() throws -> InferenceSession {
        let graph = Graph(
            nodes: [Node(name: "sum", opType: "Add", inputs: ["x", "z"], outputs: ["y"])],
            inputs: [
                ValueInfo(name: "x", dataType: .float32, shape: [.symbolic("batch"), .fixed(4)]),
                ValueInfo(name: "z", dataType: .float32, shape: [.fixed(1), .unknown]),
            ],
            outputs: [ValueInfo(name: "y", dataType: .float32, shape: nil)])
        return try InferenceSession(model: GraphModel(graph: graph, opsets: ["": 13], irVersion: 8))
    }

    func message(_ feeds: [String: Tensor]) throws -> String? {
        let s = try session()
        let error = engineError { _ = try s.run(feeds) }
        guard case .invalidInput(let m)? = error else {
            Issue.record("expected invalidInput, got \(String(describing: error))")
            return nil
        }
        return m
    }

    let x = Tensor(zeros: .float32, shape: [3, 4])
    let z = Tensor(zeros: .float32, shape: [1, 4])

    @Test func acceptsAnyBatchAndUnknownDims() throws {
        let s = try session()
        #expect(try s.run(["x": Tensor(zeros: .float32, shape: [7, 4]), "z": z])["y"]!.shape == [7, 4])
        // z's second dim is unknown: any size is accepted, the Add then fails on the shapes.
        let error = engineError { _ = try s.run(["x": x, "z": Tensor(zeros: .float32, shape: [1, 5])]) }
        guard case .invalidInput(let m)? = error else {
            Issue.record("expected invalidInput, got \(String(describing: error))")
            return
        }
        #expect(m.contains("'sum'"))
    }

    @Test func missingInput() throws {
        let m = try message(["x": x])
        #expect(m?.contains("input 'z' is missing") == true, "\(m ?? "")")
        #expect(m?.contains("FP32 tensor of shape [1, ?]") == true, "\(m ?? "")")
    }

    @Test func unknownInput() throws {
        let m = try message(["x": x, "z": z, "extra": z])
        #expect(m?.contains("'extra'") == true, "\(m ?? "")")
        #expect(m?.contains("'x', 'z'") == true, "\(m ?? "")")
    }

    @Test func wrongType() throws {
        let m = try message(["x": Tensor(zeros: .int64, shape: [1, 4]), "z": z])
        #expect(
            m == "input 'x': expected FP32 tensor of shape [batch, 4], got INT64 [1, 4]; send the datatype and "
                + "shape that GET /v2/models/{name} reports")
    }

    @Test func wrongRank() throws {
        let m = try message(["x": Tensor(zeros: .float32, shape: [4]), "z": z])
        #expect(m?.contains("got FP32 [4]") == true, "\(m ?? "")")
    }

    @Test func wrongFixedDimension() throws {
        let m = try message(["x": Tensor(zeros: .float32, shape: [2, 5]), "z": z])
        #expect(m?.contains("expected FP32 tensor of shape [batch, 4], got FP32 [2, 5]") == true, "\(m ?? "")")
        let m2 = try message(["x": x, "z": Tensor(zeros: .float32, shape: [2, 4])])
        #expect(m2?.contains("input 'z'") == true, "\(m2 ?? "")")
    }
}
