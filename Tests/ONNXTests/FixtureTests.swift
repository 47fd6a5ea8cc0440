import Engine
import Foundation
import Tensors
import Testing

@testable import ONNX

/// Decodes each fixture and compares it with the facts onnx/numpy computed for it.
@Suite struct FixtureTests {
    @Test func typedFieldsAndRawData() throws {
        let m = try ONNXLoader.load(path: Fixtures.path("typed.onnx"))
        try expectModel(m, matchesFacts: "typed.json")
        // Spot checks that do not depend on the JSON: every type arrived as itself.
        let g = m.graph
        #expect(g.initializers["bool_int32_data"]?.scalars(as: Bool.self) == [true, false, true])
        #expect(g.initializers["i8_int32_data"]?.scalars(as: Int8.self) == [-128, -1, 0, 127])
        #expect(g.initializers["u64_uint64_data"]?.scalars(as: UInt64.self) == [UInt64(1) << 63 + 5, 1])
        #expect(g.initializers["scalar_raw"]?.shape == [])
        #expect(g.initializers["empty_raw"]?.shape == [0, 3])
        #expect(g.inputs.isEmpty)
    }

    @Test func narrowTypesUnpackedOneElementPerByte() throws {
        let m = try ONNXLoader.load(path: Fixtures.path("narrow.onnx"))
        try expectModel(m, matchesFacts: "narrow.json")
        let g = m.graph
        // int4/int2 held as sign-extended Int8, uint4/uint2 as UInt8, float codes as their byte.
        #expect(g.initializers["int4_raw_odd"]?.elements(as: Int8.self).map { $0 } == [-8, 7, -1, 0, 3])
        #expect(g.initializers["int2_int32_data"]?.elements(as: Int8.self).map { $0 } == [1, -2, -1, 0, 0, 1])
        #expect(g.initializers["uint2_int32_data_odd"]?.elements(as: UInt8.self).map { $0 } == [3, 0, 2, 1, 3])
        #expect(g.initializers["e4m3fn_raw"]?.elements(as: UInt8.self).first == 0x30)  // 0.5 = 0.0110.000
        #expect(g.initializers["e2m1_raw_odd"]?.elements(as: UInt8.self).map { $0 }.prefix(3) == [0x1, 0xF, 0x3])
    }

    @Test func everyAttributeKindSubgraphsAndDims() throws {
        let m = try ONNXLoader.load(path: Fixtures.path("attributes.onnx"))
        try expectModel(m, matchesFacts: "attributes.json")
        #expect(m.opsets["com.example"] == 3)
        #expect(m.defaultOpset == 13)
        let x = try #require(m.graph.inputs.first)
        #expect(x.shape == [.symbolic("batch"), .unknown, .fixed(4)])
        let z = try #require(m.graph.outputs.last)
        #expect(z.name == "z" && z.shape == nil)
        let node = try #require(m.graph.nodes.first { $0.domain == "com.example" })
        guard case .unsupported(kind: 11) = node.attributes["sparse"] else {
            Issue.record("sparse tensor attribute should be unsupported(11)")
            return
        }
        guard case .graph(let g) = try #require(m.graph.nodes.first?.attributes["else_branch"]) else {
            Issue.record("else_branch should be a graph")
            return
        }
        #expect(g.initializers["else_w"]?.scalars(as: Float.self) == [9])
    }

    @Test func ir3WeightsListedAsInputsAreNotRealInputs() throws {
        let m = try ONNXLoader.load(path: Fixtures.path("ir3.onnx"))
        try expectModel(m, matchesFacts: "ir3.json")
        #expect(m.irVersion == 3)
        #expect(m.graph.inputs.map(\.name) == ["data"])
        #expect(Set(m.graph.initializers.keys) == ["W", "B"])
    }

    @Test func externalDataWrittenByOnnx() throws {
        let m = try ONNXLoader.load(path: Fixtures.path("external/model.onnx"))
        try expectModel(m, matchesFacts: "external.json")
        #expect(m.graph.initializers["fc1.weight"]?.shape == [8, 4])
    }

    @Test func tinyMLPExportedByTorchDynamo() throws {
        let dataFile = Fixtures.path("torch_mlp/model.onnx.data")
        #expect(FileManager.default.fileExists(atPath: dataFile), "torch wrote external data")
        let m = try ONNXLoader.load(path: Fixtures.path("torch_mlp/model.onnx"))
        try expectModel(m, matchesFacts: "torch_mlp.json")
        #expect(m.graph.nodes.map(\.opType) == ["Gemm", "Relu", "Gemm", "Softmax"])
        #expect(m.graph.inputs.first?.shape == [.symbolic("batch"), .fixed(6)])
    }

    @Test func relativeModelPathResolvesExternalData() throws {
        let saved = FileManager.default.currentDirectoryPath
        defer { _ = FileManager.default.changeCurrentDirectoryPath(saved) }
        _ = FileManager.default.changeCurrentDirectoryPath(Fixtures.path("external"))
        let m = try ONNXLoader.load(path: "model.onnx")
        #expect(m.graph.initializers.count == 4)
    }

    @Test(arguments: ["tensor_f32.pb", "tensor_i64.pb", "tensor_bool_scalar.pb"])
    func standaloneTensorProto(file: String) throws {
        let facts = try #require(try Fixtures.json("tensors.json")[file] as? [String: Any])
        let t = try ONNXLoader.loadTensor(path: Fixtures.path(file))
        #expect(Int(t.dataType.rawValue) == facts["dtype"] as? Int)
        #expect(t.shape == facts["dims"] as? [Int])
        #expect(values(of: t) == facts["values"] as? [Double])
        // The same bytes from memory decode the same way.
        let again = try ONNXLoader.decodeTensor(bytes: try Fixtures.bytes(file))
        #expect(values(of: again) == values(of: t))
    }

    @Test func decodeFromMemoryMatchesLoad() throws {
        let m = try ONNXLoader.decode(bytes: try Fixtures.bytes("typed.onnx"), path: "typed.onnx")
        try expectModel(m, matchesFacts: "typed.json")
    }

    @Test func decodingIsFast() throws {
        // A model with 4 MB of weights in raw_data: borrowed, not copied, so decoding is cheap.
        var model = ProtoWriter()
        var graph = ProtoWriter()
        for k in 0..<16 {
            graph.message(5, tensorProto(name: "w\(k)", dims: [256, 256], dataType: 1, raw: [UInt8](repeating: 1, count: 262_144)))
        }
        graph.message(1, { var n = ProtoWriter(); n.string(4, "Identity"); n.string(1, "w0"); n.string(2, "y"); return n }())
        model.varint(1, 8)
        model.message(7, graph)
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("big.onnx").path
        try Data(model.bytes).write(to: URL(fileURLWithPath: path))
        _ = try ONNXLoader.load(path: path)
        let clock = ContinuousClock()
        let elapsed = try clock.measure { _ = try ONNXLoader.load(path: path) }
        // Generous for debug builds on a shared 2-core machine; release takes well under 1 ms.
        #expect(elapsed < .milliseconds(50), "decoding 4 MB of weights took \(elapsed)")
    }
}
