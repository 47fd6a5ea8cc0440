import Engine
import Foundation
import Tensors
import Testing

/// Locates the fixtures written by tools/make_onnx_fixtures.py and compares decoded values with the
/// facts that script computed with onnx/numpy.
enum Fixtures {
    static let directory: String = {
        let here = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        return here.appendingPathComponent("Fixtures").path
    }()

    static func path(_ name: String) -> String { directory + "/" + name }

    static func bytes(_ name: String) throws -> [UInt8] {
        Array(try Data(contentsOf: URL(fileURLWithPath: path(name))))
    }

    static func json(_ name: String) throws -> [String: Any] {
        let data = try Data(contentsOf: URL(fileURLWithPath: path(name)))
        return try #require(JSONSerialization.jsonObject(with: data) as? [String: Any])
    }

    /// A fresh temporary directory for a test.
    static func temporaryDirectory() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("onnx-tests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }
}

/// Tensor elements as Double for any type the engine loads, float16/bfloat16 included.
func values(of t: Tensor) -> [Double] {
    switch t.dataType {
    case .float16:
        return t.elements(as: UInt16.self).map { Double(Float16(bitPattern: $0)) }
    case .bfloat16:
        return t.elements(as: UInt16.self).map { Double(Float(bitPattern: UInt32($0) << 16)) }
    case .uint64:
        // Not Tensor.doubleValues(): its `map(Double.init)` picks Double(bitPattern:) for UInt64.
        return t.elements(as: UInt64.self).map { Double($0) }
    default:
        return t.doubleValues()
    }
}

func close(_ a: Double, _ b: Double) -> Bool {
    if a == b { return true }
    return abs(a - b) <= 1e-9 * max(abs(a), abs(b)) + 1e-12
}

/// Compares a decoded tensor with `{dtype, dims, count, sum, first}`.
func expectTensor(_ t: Tensor, matches facts: [String: Any], _ what: String) {
    #expect(Int(t.dataType.rawValue) == facts["dtype"] as? Int, "\(what): dtype")
    #expect(t.shape == facts["dims"] as? [Int], "\(what): dims")
    #expect(t.count == facts["count"] as? Int, "\(what): count")
    let v = values(of: t)
    let sum = v.reduce(0, +)
    let expectedSum = facts["sum"] as? Double ?? .nan
    #expect(close(sum, expectedSum), "\(what): sum \(sum) != \(expectedSum)")
    let first = facts["first"] as? [Double] ?? []
    #expect(v.prefix(first.count).elementsEqual(first, by: close), "\(what): first values \(v.prefix(8)) != \(first)")
}

/// Compares a ValueInfo with `{name, dtype, dims}` (dims: ints, strings for symbols, null for unknown).
func expectValueInfo(_ v: ValueInfo, matches facts: [String: Any], _ what: String) {
    #expect(v.name == facts["name"] as? String, "\(what): name")
    #expect(v.dataType.map { Int($0.rawValue) } == facts["dtype"] as? Int, "\(what) '\(v.name)': dtype")
    if let dims = facts["dims"] as? [Any] {
        let expected: [Engine.Dimension] = dims.map {
            if let n = $0 as? Int { return .fixed(n) }
            if let s = $0 as? String { return .symbolic(s) }
            return .unknown
        }
        #expect(v.shape == expected, "\(what) '\(v.name)': shape")
    } else {
        #expect(v.shape == nil, "\(what) '\(v.name)': expected no shape")
    }
}

/// Compares a whole graph with the facts, recursively through subgraph attributes.
func expectGraph(_ g: Graph, matches facts: [String: Any], _ what: String) {
    #expect(g.name == facts["name"] as? String, "\(what): name")
    let nodes = facts["nodes"] as? [[String: Any]] ?? []
    #expect(g.nodes.map(\.opType) == nodes.map { $0["op_type"] as? String ?? "" }, "\(what): op types")
    for (n, nf) in zip(g.nodes, nodes) {
        let w = "\(what) node '\(n.name)'"
        #expect(n.name == nf["name"] as? String, "\(w): name")
        #expect(n.domain == nf["domain"] as? String, "\(w): domain")
        #expect(n.inputs == nf["inputs"] as? [String], "\(w): inputs")
        #expect(n.outputs == nf["outputs"] as? [String], "\(w): outputs")
        let attrs = nf["attributes"] as? [[String: Any]] ?? []
        #expect(Set(n.attributes.keys) == Set(attrs.map { $0["name"] as? String ?? "" }), "\(w): attribute names")
        for af in attrs {
            let name = af["name"] as? String ?? ""
            guard let a = n.attributes[name] else { continue }
            expectAttribute(a, matches: af, "\(w) attribute '\(name)'")
        }
    }
    let expect = { (list: [ValueInfo], key: String) in
        let f = facts[key] as? [[String: Any]] ?? []
        #expect(list.count == f.count, "\(what): \(key) count \(list.map(\.name))")
        for (v, vf) in zip(list, f) { expectValueInfo(v, matches: vf, "\(what) \(key)") }
    }
    expect(g.inputs, "inputs")
    expect(g.outputs, "outputs")
    expect(g.valueInfo, "value_info")
    let inits = facts["initializers"] as? [[String: Any]] ?? []
    #expect(g.initializers.keys.sorted() == inits.map { $0["name"] as? String ?? "" }, "\(what): initializer names")
    for f in inits {
        let name = f["name"] as? String ?? ""
        if let t = g.initializers[name] { expectTensor(t, matches: f, "\(what) initializer '\(name)'") }
    }
}

func expectAttribute(_ a: Attribute, matches f: [String: Any], _ what: String) {
    let kind = f["kind"] as? Int ?? -1
    let value = f["value"]
    switch a {
    case .float(let x):
        #expect(kind == 1, "\(what): kind"); #expect(Double(x) == value as? Double, "\(what)")
    case .int(let x):
        #expect(kind == 2, "\(what): kind"); #expect(x == value as? Int, "\(what)")
    case .string(let x):
        #expect(kind == 3, "\(what): kind"); #expect(x.map(Int.init) == value as? [Int], "\(what)")
    case .tensor(let t):
        #expect(kind == 4, "\(what): kind"); expectTensor(t, matches: value as? [String: Any] ?? [:], what)
    case .graph(let g):
        #expect(kind == 5, "\(what): kind"); expectGraph(g, matches: value as? [String: Any] ?? [:], what)
    case .floats(let x):
        #expect(kind == 6, "\(what): kind"); #expect(x.map(Double.init) == value as? [Double], "\(what)")
    case .ints(let x):
        #expect(kind == 7, "\(what): kind"); #expect(x == value as? [Int], "\(what)")
    case .strings(let x):
        #expect(kind == 8, "\(what): kind"); #expect(x.map { $0.map(Int.init) } == value as? [[Int]], "\(what)")
    case .tensors(let ts):
        #expect(kind == 9, "\(what): kind")
        let fs = value as? [[String: Any]] ?? []
        #expect(ts.count == fs.count, "\(what): count")
        for (t, tf) in zip(ts, fs) { expectTensor(t, matches: tf, what) }
    case .graphs(let gs):
        #expect(kind == 10, "\(what): kind")
        let fs = value as? [[String: Any]] ?? []
        #expect(gs.count == fs.count, "\(what): count")
        for (g, gf) in zip(gs, fs) { expectGraph(g, matches: gf, what) }
    case .unsupported(let k):
        #expect(k == kind, "\(what): unsupported kind")
    }
}

/// Compares a decoded model with `NAME.json`.
func expectModel(_ m: GraphModel, matchesFacts name: String) throws {
    let facts = try Fixtures.json(name)
    #expect(m.irVersion == facts["ir_version"] as? Int, "ir_version")
    #expect(m.producerName == facts["producer_name"] as? String, "producer_name")
    #expect(m.producerVersion == facts["producer_version"] as? String, "producer_version")
    #expect(m.opsets == facts["opsets"] as? [String: Int], "opsets")
    expectGraph(m.graph, matches: try #require(facts["graph"] as? [String: Any]), "graph")
}
