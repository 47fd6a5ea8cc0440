import Engine
import Foundation
import Tensors

/// What `swerve check` says about a model, computed without running it: interface, opsets, operator
/// counts and the operators the engine lacks. Pure functions over a `GraphModel`, so that the
/// formatting can be unit-tested. A value type; build one per model.
struct CheckReport {
    /// One operator type that the engine cannot run, with the nodes that use it.
    struct Unsupported: Equatable {
        var opType: String
        var domain: String
        var opset: Int
        var nodes: [String]
        /// `Conv` or `com.microsoft.FusedConv`.
        var qualifiedName: String { OperatorRegistry.isDefaultDomain(domain) ? opType : "\(domain).\(opType)" }
    }

    let model: GraphModel
    let registry: OperatorRegistry

    init(model: GraphModel, registry: OperatorRegistry = .cpu) {
        self.model = model
        self.registry = registry
    }

    /// Op type (domain-qualified outside the default domain) and how many nodes use it, most used first.
    var operatorCounts: [(op: String, count: Int)] {
        var counts: [String: Int] = [:]
        for node in model.graph.nodes {
            let name = OperatorRegistry.isDefaultDomain(node.domain) ? node.opType : "\(node.domain).\(node.opType)"
            counts[name, default: 0] += 1
        }
        return counts.map { (op: $0.key, count: $0.value) }.sorted { $0.count != $1.count ? $0.count > $1.count : $0.op < $1.op }
    }

    /// Operator types the registry does not implement (or in a domain it does not serve), in first-use order.
    var unsupported: [Unsupported] {
        var found: [Unsupported] = []
        var index: [String: Int] = [:]
        for node in model.graph.nodes {
            let isDefault = OperatorRegistry.isDefaultDomain(node.domain)
            if isDefault && registry.supports(node.opType) { continue }
            let key = "\(node.domain)|\(node.opType)"
            if let i = index[key] {
                found[i].nodes.append(node.displayName)
            } else {
                index[key] = found.count
                let opset = model.opsets[node.domain] ?? (isDefault ? model.defaultOpset : 1)
                found.append(Unsupported(opType: node.opType, domain: node.domain, opset: opset, nodes: [node.displayName]))
            }
        }
        return found
    }

    /// `ai.onnx 17, ai.onnx.ml 3`, default domain first.
    var opsetLine: String {
        let named: [(domain: String, version: Int)] = model.opsets.map { (domain: $0.key.isEmpty ? "ai.onnx" : $0.key, version: $0.value) }
        let sorted = named.sorted { a, b in
            let aFirst = a.domain == "ai.onnx", bFirst = b.domain == "ai.onnx"
            return aFirst != bFirst ? aFirst : a.domain < b.domain
        }
        return sorted.map { "\($0.domain) \($0.version)" }.joined(separator: ", ")
    }

    /// The report's header lines (file, producer, IR, opsets, interface, operators, unsupported).
    func lines(path: String, fileBytes: Int?) -> [String] {
        var out: [String] = []
        out.append("model       \(path)" + (fileBytes.map { " (\(Self.bytes($0)))" } ?? ""))
        let producer = [model.producerName, model.producerVersion].filter { !$0.isEmpty }.joined(separator: " ")
        out.append("producer    \(producer.isEmpty ? "(not recorded)" : producer)")
        out.append("IR version  \(model.irVersion)")
        out.append("opsets      \(opsetLine)")
        out.append("inputs")
        out += Self.table(model.graph.inputs.map(Self.describe))
        out.append("outputs")
        out += Self.table(model.graph.outputs.map(Self.describe))
        let counts = operatorCounts
        out.append("operators   \(model.graph.nodes.count) nodes, \(counts.count) types")
        out += Self.table(counts.map { [$0.op, String($0.count)] })
        let missing = unsupported
        if missing.isEmpty {
            out.append("unsupported none")
        } else {
            out.append("unsupported \(missing.count) operator type(s) the engine does not implement")
            for u in missing {
                let shown = u.nodes.prefix(3).map { "'\($0)'" }.joined(separator: ", ")
                let more = u.nodes.count > 3 ? " and \(u.nodes.count - 3) more" : ""
                out.append("  \(u.qualifiedName) (opset \(u.opset)): \(u.nodes.count) node(s): \(shown)\(more)")
            }
        }
        return out
    }

    /// `[name, type, shape]` of a declared value.
    static func describe(_ info: ValueInfo) -> [String] {
        [info.name, info.dataType?.v2Name ?? "(type not declared)", shapeText(info.shape)]
    }

    /// `[batch, 3, 224, 224]`; `[?]` for an unknown dimension; `(rank unknown)` without a shape.
    static func shapeText(_ shape: [Engine.Dimension]?) -> String {
        guard let shape else { return "(rank unknown)" }
        return "[" + shape.map { (d: Engine.Dimension) in d.description }.joined(separator: ", ") + "]"
    }

    /// Two-space indented columns, left-aligned.
    static func table(_ rows: [[String]]) -> [String] {
        guard let columns = rows.map(\.count).max() else { return ["  (none)"] }
        let widths = (0..<columns).map { c in rows.map { c < $0.count ? $0[c].count : 0 }.max() ?? 0 }
        return rows.map { row in
            var line = "  "
            for (c, cell) in row.enumerated() {
                line += c == row.count - 1 ? cell : cell.padding(toLength: widths[c] + 2, withPad: " ", startingAt: 0)
            }
            return line
        }
    }

    /// `512 B`, `44.7 MB` (decimal units, as `ls -h --si`).
    static func bytes(_ n: Int) -> String {
        if n < 1000 { return "\(n) B" }
        let units = ["kB", "MB", "GB", "TB"]
        var value = Double(n) / 1000
        var unit = 0
        while value >= 1000 && unit < units.count - 1 {
            value /= 1000
            unit += 1
        }
        return String(format: "%.1f", value) + " " + units[unit]
    }
}
