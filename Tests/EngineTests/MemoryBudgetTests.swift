import Engine
import Tensors
import Testing

/// Every allocation a request or a load makes is charged to a budget (`MemoryLedger`) and refused
/// with `EngineError.memoryLimit` before anything is allocated, instead of trapping in the allocator.
@Suite struct MemoryBudgetTests {
    /// y = a + b with a: FP32 [n, 1] and b: FP32 [1, m], both dims free: the output is n x m.
    func broadcastingAdd(_ options: SessionOptions) throws -> InferenceSession {
        let graph = Graph(
            nodes: [Node(name: "outer_sum", opType: "Add", inputs: ["a", "b"], outputs: ["y"])],
            inputs: [
                ValueInfo(name: "a", dataType: .float32, shape: [.symbolic("n"), .fixed(1)]),
                ValueInfo(name: "b", dataType: .float32, shape: [.fixed(1), .symbolic("m")]),
            ],
            outputs: [ValueInfo(name: "y", dataType: .float32, shape: nil)])
        return try InferenceSession(model: GraphModel(graph: graph, opsets: ["": 17], irVersion: 8), options: options)
    }

    @Test func broadcastPastTheRequestLimitIsRefusedNotAllocated() throws {
        // 131072 x 131072 floats = 64 GiB from a 1 MB request: the defect the issue reports.
        let session = try broadcastingAdd(SessionOptions(maxRunMemory: 256 << 20))
        let a = Tensor(zeros: .float32, shape: [131_072, 1])
        let b = Tensor(zeros: .float32, shape: [1, 131_072])
        let error = engineError { _ = try session.run(["a": a, "b": b]) }
        guard case .memoryLimit(let limit)? = error else {
            Issue.record("expected memoryLimit, got \(String(describing: error))")
            return
        }
        #expect(limit.requested == 131_072 * 131_072 * 4)
        #expect(limit.limit == 256 << 20)
        #expect(limit.purpose == MemoryLedger.requestPurpose)
        let message = "\(error!)"
        #expect(message.contains("64.0 GiB"), "says how much the request would need: \(message)")
        #expect(message.contains("--max-request-memory"), "names the setting: \(message)")
        // The same session still serves a request that fits.
        let small = try session.run([
            "a": Tensor([1, 2] as [Float], shape: [2, 1]), "b": Tensor([10, 20, 30] as [Float], shape: [1, 3]),
        ])
        #expect(small["y"]!.scalars(as: Float.self) == [11, 21, 31, 12, 22, 32])
    }

    @Test func constantFoldedAtLoadPastTheLoadLimitFailsTheLoad() throws {
        // ConstantOfShape of a constant shape [2^31]: 8 GiB of zeros, folded while the session is built.
        let shape = Tensor([Int64(1) << 31], shape: [1])
        let graph = Graph(
            nodes: [
                Node(name: "Constant_0", opType: "Constant", inputs: [], outputs: ["shape"], attributes: ["value": .tensor(shape)]),
                Node(name: "big", opType: "ConstantOfShape", inputs: ["shape"], outputs: ["zeros"]),
                Node(name: "sum", opType: "Add", inputs: ["x", "zeros"], outputs: ["y"]),
            ],
            inputs: [ValueInfo(name: "x", dataType: .float32, shape: [.fixed(1)])],
            outputs: [ValueInfo(name: "y", dataType: .float32, shape: nil)])
        let model = GraphModel(graph: graph, opsets: ["": 17], irVersion: 8)
        let options = SessionOptions(maxRunMemory: 64 << 20, maxLoadMemory: 64 << 20)
        // Built lazily or at load, the 8 GiB never comes into being: either the build or the first
        // run (the loader's warm-up) refuses it.
        do {
            let session = try InferenceSession(model: model, options: options)
            let error = engineError { _ = try session.run(["x": Tensor([1] as [Float], shape: [1])]) }
            guard case .memoryLimit? = error else {
                Issue.record("expected memoryLimit, got \(String(describing: error))")
                return
            }
        } catch let error as EngineError {
            guard case .memoryLimit = error else {
                Issue.record("expected memoryLimit, got \(error)")
                return
            }
        }
    }

    @Test func unknownOpsetIsRefusedWithTheSupportedRange() throws {
        let graph = Graph(
            nodes: [Node(name: "r", opType: "Relu", inputs: ["x"], outputs: ["y"])],
            inputs: [ValueInfo(name: "x", dataType: .float32, shape: [.fixed(2)])],
            outputs: [ValueInfo(name: "y", dataType: .float32, shape: nil)])
        let error = engineError { _ = try InferenceSession(model: GraphModel(graph: graph, opsets: ["": 10000], irVersion: 8)) }
        guard case .invalidModel(let m)? = error else {
            Issue.record("expected invalidModel, got \(String(describing: error))")
            return
        }
        #expect(m.contains("opset 10000"))
        #expect(m.contains("1 to \(OperatorRegistry.newestOpset)"))
        #expect(throws: Never.self) {
            _ = try InferenceSession(
                model: GraphModel(graph: graph, opsets: ["": OperatorRegistry.newestOpset], irVersion: 8))
        }
    }
}
