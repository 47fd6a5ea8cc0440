import Foundation
import Engine
import Tensors
import Testing

@testable import swerve

/// A graph with two Relu, one Gemm and two nodes the CPU registry lacks (StringNormalizer twice, one custom op).
private func sampleModel() -> GraphModel {
    let nodes = [
        Node(name: "c1", opType: "StringNormalizer", inputs: ["x", "w"], outputs: ["a"]),
        Node(name: "r1", opType: "Relu", inputs: ["a"], outputs: ["b"]),
        Node(name: "", opType: "StringNormalizer", inputs: ["b", "w"], outputs: ["c"]),
        Node(name: "r2", opType: "Relu", inputs: ["c"], outputs: ["d"]),
        Node(name: "g", opType: "Gemm", inputs: ["d", "w2"], outputs: ["e"]),
        Node(name: "fused", opType: "FusedThing", domain: "com.microsoft", inputs: ["e"], outputs: ["y"]),
    ]
    let graph = Graph(
        nodes: nodes,
        inputs: [ValueInfo(name: "x", dataType: .float32, shape: [.symbolic("batch"), .fixed(3), .unknown])],
        outputs: [ValueInfo(name: "y", dataType: nil, shape: nil)])
    return GraphModel(graph: graph, opsets: ["": 17, "com.microsoft": 1], irVersion: 8, producerName: "pytorch", producerVersion: "2.13.0")
}

@Test func operatorCountsMostUsedFirstThenByName() {
    let counts = CheckReport(model: sampleModel()).operatorCounts
    #expect(counts.map(\.op) == ["Relu", "StringNormalizer", "Gemm", "com.microsoft.FusedThing"])
    #expect(counts.map(\.count) == [2, 2, 1, 1])
}

@Test func unsupportedOperatorsNameOpsetAndNodes() {
    let missing = CheckReport(model: sampleModel()).unsupported
    #expect(missing == [
        .init(opType: "StringNormalizer", domain: "", opset: 17, nodes: ["c1", "c"]),
        .init(opType: "FusedThing", domain: "com.microsoft", opset: 1, nodes: ["fused"]),
    ])
    #expect(missing.count > 1 && missing[1].qualifiedName == "com.microsoft.FusedThing")
}

@Test func opsetLineDefaultDomainFirst() {
    #expect(CheckReport(model: sampleModel()).opsetLine == "ai.onnx 17, com.microsoft 1")
}

@Test func shapesNameSymbolicDimensions() {
    #expect(CheckReport.shapeText([.symbolic("batch"), .fixed(3), .unknown]) == "[batch, 3, ?]")
    #expect(CheckReport.shapeText(nil) == "(rank unknown)")
    #expect(CheckReport.shapeText([]) == "[]")
}

@Test func reportLines() {
    let lines = CheckReport(model: sampleModel()).lines(path: "m.onnx", fileBytes: 46_800_000)
    #expect(lines.contains("model       m.onnx (46.8 MB)"))
    #expect(lines.contains("producer    pytorch 2.13.0"))
    #expect(lines.contains("  x  FP32  [batch, 3, ?]"))
    #expect(lines.contains("  y  (type not declared)  (rank unknown)"))
    #expect(lines.contains("operators   6 nodes, 4 types"))
    #expect(lines.contains("  StringNormalizer (opset 17): 2 node(s): 'c1', 'c'"))
    #expect(lines.contains("  com.microsoft.FusedThing (opset 1): 1 node(s): 'fused'"))
}

@Test func byteSizes() {
    #expect(CheckReport.bytes(999) == "999 B")
    #expect(CheckReport.bytes(19_900) == "19.9 kB")
    #expect(CheckReport.bytes(2_500_000_000) == "2.5 GB")
}

@Test func dimOverridesParseAndReject() throws {
    #expect(try FeedGenerator.parseDims(["batch=8", "sequence=128"]) == ["batch": 8, "sequence": 128])
    #expect(throws: (any Error).self) { try FeedGenerator.parseDims(["batch"]) }
    #expect(throws: (any Error).self) { try FeedGenerator.parseDims(["batch=0"]) }
    #expect(throws: (any Error).self) { try FeedGenerator.parseDims(["=3"]) }
}

@Test func generatedShapesAndValues() throws {
    let info = ValueInfo(name: "x", dataType: .float32, shape: [.symbolic("batch"), .symbolic("seq"), .fixed(2)])
    var generator = FeedGenerator(overrides: ["seq": 5], batch: 3)
    #expect(try generator.shape(of: info) == [3, 5, 2])
    generator.batch = nil
    #expect(try generator.shape(of: info) == [1, 5, 2])
    let ids = ValueInfo(name: "ids", dataType: .int64, shape: [.unknown, .fixed(4)])
    let feeds = try FeedGenerator(overrides: ["seq": 5], batch: 2).feeds(for: [info, ids])
    #expect(feeds["ids"]?.scalars(as: Int64.self) == [Int64](repeating: 1, count: 8))
    let floats = feeds["x"]!.scalars(as: Float.self)
    #expect(floats.count == 20 && floats.allSatisfy { $0 >= 0 && $0 < 1 })
    // Deterministic: the same generator gives the same values.
    #expect(try FeedGenerator(overrides: ["seq": 5], batch: 2).feeds(for: [info])["x"]!.scalars(as: Float.self) == floats)
    #expect(throws: EngineError.self) { try generator.shape(of: ValueInfo(name: "r", dataType: .float32, shape: nil)) }
}

@Test func generatedInputsOfEveryNumericType() throws {
    // swerve check and bench make an input of every type the engine holds; only strings are refused.
    let generator = FeedGenerator(overrides: [:], batch: 2)
    for type in DataType.allNumeric {
        let info = ValueInfo(name: "x", dataType: type, shape: [.symbolic("batch"), .fixed(3)])
        let feed = try #require(try generator.feeds(for: [info])["x"])
        #expect(feed.dataType == type && feed.shape == [2, 3], "\(type)")
        let values = feed.doubleValues()
        #expect(values.count == 6 && values.allSatisfy { $0 >= 0 && $0 <= 1 }, "\(type)")
    }
    let half = try generator.feeds(for: [ValueInfo(name: "h", dataType: .float16, shape: [.fixed(64)])])["h"]!
    #expect(Set(half.doubleValues()).count > 8)  // uniform values, not a constant
    #expect(throws: EngineError.self) {
        try generator.feeds(for: [ValueInfo(name: "s", dataType: .string, shape: [.fixed(1)])])
    }
}

@Test func listOpsPrintsEachOperatorsOpsets() {
    let lines = Check.operatorList(.cpu)
    #expect(lines.first?.hasPrefix("Supported operators") == true)
    let newest = OperatorRegistry.newestOpset
    #expect(newest >= 21)
    // Conv changed at 1, 11 and 22 in onnx 1.23; Gelu appeared at 20.
    let conv = lines.first { $0.hasPrefix("  Conv ") }
    #expect(conv?.contains("opsets 1-\(newest) (changed at 1, 11") == true, "\(conv ?? "no Conv line")")
    let gelu = lines.first { $0.hasPrefix("  Gelu ") }
    #expect(gelu?.contains("opsets 20-\(newest)") == true, "\(gelu ?? "no Gelu line")")
    // Every implemented operator is an ONNX operator with recorded versions.
    #expect(!lines.contains { $0.contains("not an ONNX operator") })
    #expect(lines.count == OperatorRegistry.cpu.supportedOperators.count + 2)
}

@Suite struct OperatorTableTests {
    /// docs/operators.md is the generated table of the registry's records: a record added or
    /// changed without regenerating it fails here.
    @Test func docsTableIsGeneratedFromTheRecords() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        let committed = try String(contentsOf: root.appendingPathComponent("docs/operators.md"), encoding: .utf8)
        let generated = Check.operatorTable(OperatorRegistry.cpu).joined(separator: "\n") + "\n"
        #expect(
            committed == generated,
            "docs/operators.md is out of date: regenerate it with `swift run swerve check --list-ops --markdown > docs/operators.md`")
    }

    @Test func listOpsNamesEveryRecordWithItsTypes() {
        let text = Check.operatorList(OperatorRegistry.cpu).joined(separator: "\n")
        #expect(text.contains("Sign"))
        #expect(text.contains("types FP32, FP64, INT64, INT32, INT16, INT8, UINT64, UINT32, UINT16, UINT8"))
        #expect(!text.contains("load and use the opset"), "opsets above the newest are refused, not mapped")
    }
}

/// An If whose branches use two operators no engine has, next to a top-level one.
private func modelWithSubgraphs() -> GraphModel {
    func branch(_ op: String, _ name: String) -> Graph {
        Graph(
            nodes: [Node(name: name, opType: op, inputs: ["x"], outputs: ["b"])], inputs: [],
            outputs: [ValueInfo(name: "b", dataType: .float32, shape: nil)])
    }
    let graph = Graph(
        nodes: [
            Node(name: "top", opType: "SwerveTestOpA", inputs: ["x"], outputs: ["v"]),
            Node(
                name: "choose", opType: "If", inputs: ["cond"], outputs: ["y"],
                attributes: ["then_branch": .graph(branch("SwerveTestOpB", "up")), "else_branch": .graph(branch("SwerveTestOpC", "odd"))]),
        ],
        inputs: [
            ValueInfo(name: "x", dataType: .float32, shape: [.fixed(4)]),
            ValueInfo(name: "cond", dataType: .bool, shape: []),
        ],
        outputs: [ValueInfo(name: "y", dataType: nil, shape: nil), ValueInfo(name: "v", dataType: nil, shape: nil)])
    return GraphModel(graph: graph, opsets: ["": 17], irVersion: 8)
}

@Test func unsupportedOperatorsInsideSubgraphsAreListedToo() {
    let missing = CheckReport(model: modelWithSubgraphs(), registry: .cpu).unsupported
    let names = missing.map(\.opType)
    // Each operator the engine lacks, in first-use order, subgraph nodes named by their path.
    for op in ["SwerveTestOpA", "SwerveTestOpB", "SwerveTestOpC"] { #expect(names.contains(op), "\(names)") }
    #expect(missing.first { $0.opType == "SwerveTestOpB" }?.nodes == ["choose/up"])
    #expect(missing.first { $0.opType == "SwerveTestOpC" }?.nodes == ["choose/odd"])
    // The load error lists them all, not only the first.
    do {
        _ = try InferenceSession(model: modelWithSubgraphs())
        Issue.record("a model with unsupported operators loaded")
    } catch {
        let message = "\(error)"
        for op in names { #expect(message.contains("'\(op)'"), "\(message)") }
        #expect(message.contains("choose/up"))
    }
}
