import Engine
import Foundation
import Tensors

/// What `swerve check` says about a model, computed without running it: interface, opsets, operator
/// counts and the operators the engine lacks. Pure functions over a `GraphModel`, so that the
/// formatting can be unit-tested. A value type; build one per model.
struct CheckReport {
    typealias Unsupported = UnsupportedOperator

    let model: GraphModel
    let registry: OperatorRegistry

    init(model: GraphModel, registry: OperatorRegistry = .cpu) {
        self.model = model
        self.registry = registry
    }

    /// Op type (domain-qualified outside the default domain) and how many nodes use it, most used
    /// first; nodes inside subgraphs (If, Loop, Scan bodies) count too.
    var operatorCounts: [(op: String, count: Int)] {
        var counts: [String: Int] = [:]
        model.graph.walkNodes { node, _ in
            let name = OperatorRegistry.isDefaultDomain(node.domain) ? node.opType : "\(node.domain).\(node.opType)"
            counts[name, default: 0] += 1
        }
        return counts.map { (op: $0.key, count: $0.value) }.sorted { $0.count != $1.count ? $0.count > $1.count : $0.op < $1.op }
    }

    /// Operator types the registry cannot run at the model's opsets (or in a domain it does not
    /// serve), subgraphs included, in first-use order.
    var unsupported: [Unsupported] { registry.unsupportedOperators(in: model) }

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
        out.append("operators   \(counts.reduce(0) { $0 + $1.count }) nodes, \(counts.count) types")
        out += Self.table(counts.map { [$0.op, String($0.count)] })
        out += QuantizationReport(model: model, registry: registry).lines
        let missing = unsupported
        if missing.isEmpty {
            out.append("unsupported none")
        } else {
            out.append("unsupported \(missing.count) operator type(s) the engine does not implement")
            for u in missing {
                let shown = u.nodes.prefix(3).map { "'\($0)'" }.joined(separator: ", ")
                let more = u.nodes.count > 3 ? " and \(u.nodes.count - 3) more" : ""
                let range = u.supportedOpsets.map { ", implemented for opsets \($0.lowerBound)-\($0.upperBound)" } ?? ""
                out.append("  \(u.qualifiedName) (opset \(u.opset)\(range)): \(u.nodes.count) node(s): \(shown)\(more)")
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
