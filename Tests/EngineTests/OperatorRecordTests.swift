@testable import Engine
import Tensors
import Testing

/// Every operator is one record, and a record that leaves something out fails here.
@Suite struct OperatorRecordTests {
    @Test func everyRegisteredRecordIsComplete() {
        let problems = OperatorRegistry.cpu.allRecords.flatMap(\.problems)
        #expect(problems.isEmpty, "\(problems.joined(separator: "\n"))")
        #expect(OperatorRegistry.cpu.allRecords.count == OperatorRegistry.cpu.supportedOperators.count)
    }

    @Test func incompleteRecordsAreReported() {
        let factory: KernelFactory = { try IdentityKernel(context: $0) }
        let noTypes = OperatorRecord("Relu", types: [], shape: .fromInputShapes, rows: .rowwise, factory: factory)
        #expect(noTypes.problems.contains { $0.contains("no element types") })
        let activationWithoutEpilogue = OperatorRecord(
            "Relu", types: [.float32], shape: .fromInputShapes, rows: .rowwise, fusion: .activation, factory: factory)
        #expect(activationWithoutEpilogue.problems.contains { $0.contains("without an epilogue") })
        let notONNX = OperatorRecord("MyOp", types: [.float32], shape: .fromInputShapes, rows: .rowwise, factory: factory)
        #expect(notONNX.problems.contains { $0.contains("not an operator of the default ONNX domain") })
        let tooEarly = OperatorRecord(
            "Gelu", types: [.float32], shape: .fromInputShapes, rows: .rowwise, firstOpset: 13, factory: factory)
        #expect(tooEarly.problems.contains { $0.contains("before ONNX defined 'Gelu'") })
        let strings = OperatorRecord("Identity", types: [.string], shape: .fromInputShapes, rows: .rowwise, factory: factory)
        #expect(strings.problems.contains { $0.contains("string") })
    }

    @Test func theOptimizerReadsFusionRolesFromTheRecords() {
        let cpu = OperatorRegistry.cpu
        #expect(["Conv", "Gemm", "MatMul"].allSatisfy { cpu.record($0)?.fusion == .producer })
        #expect(["Relu", "Sigmoid", "HardSwish", "Gelu", "LeakyRelu", "Clip"].allSatisfy { cpu.record($0)?.fusion == .activation })
        #expect(cpu.record("BatchNormalization")?.fusion == .foldsIntoProducer)
        #expect(cpu.record("Identity")?.fusion == .passThrough && cpu.record("Dropout")?.fusion == .passThrough)
        // An activation the records do not mark stays a node of its own (Tanh has no epilogue).
        #expect(cpu.record("Tanh")?.fusion == OperatorRecord.FusionRole.none)
    }

    @Test func anOpsetOutsideTheRecordsRangeIsUnsupported() throws {
        // Gelu was defined at opset 20: a model importing opset 17 that uses it is refused, naming it.
        let graph = Graph(
            nodes: [Node(name: "g", opType: "Gelu", inputs: ["x"], outputs: ["y"])],
            inputs: [ValueInfo(name: "x", dataType: .float32, shape: [.fixed(2)])],
            outputs: [ValueInfo(name: "y", dataType: .float32, shape: nil)])
        let error = engineError { _ = try InferenceSession(model: GraphModel(graph: graph, opsets: ["": 17], irVersion: 8)) }
        guard case .unsupportedOperator(let op, _, let opset, _)? = error else {
            Issue.record("expected unsupportedOperator, got \(String(describing: error))")
            return
        }
        #expect(op == "Gelu" && opset == 17)
        _ = try InferenceSession(model: GraphModel(graph: graph, opsets: ["": 20], irVersion: 8))
    }
}
