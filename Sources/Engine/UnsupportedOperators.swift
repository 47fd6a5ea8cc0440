/// One operator type a model uses that the engine cannot run, with every node that uses it.
public struct UnsupportedOperator: Sendable, Equatable {
    public var opType: String
    public var domain: String
    public var opset: Int
    /// Display names of the nodes, in the order met; nodes inside a subgraph are named
    /// `outer/inner` (the If, Loop or Scan node that holds the subgraph, then the node).
    public var nodes: [String]
    /// Set when the op type is implemented but not at the model's opset.
    public var supportedOpsets: ClosedRange<Int>?

    public init(opType: String, domain: String, opset: Int, nodes: [String], supportedOpsets: ClosedRange<Int>? = nil) {
        self.opType = opType
        self.domain = domain
        self.opset = opset
        self.nodes = nodes
        self.supportedOpsets = supportedOpsets
    }

    /// `Conv` or `com.microsoft.FusedConv`.
    public var qualifiedName: String { OperatorRegistry.isDefaultDomain(domain) ? opType : "\(domain).\(opType)" }

    /// `'Resize' (opset 13): 2 node(s): 'Resize_1', 'Resize_2'`.
    public var summary: String {
        let shown = nodes.prefix(3).map { "'\($0)'" }.joined(separator: ", ")
        let more = nodes.count > 3 ? " and \(nodes.count - 3) more" : ""
        let range = supportedOpsets.map { ", implemented for opsets \($0.lowerBound)-\($0.upperBound)" } ?? ""
        return "'\(qualifiedName)' (opset \(opset)\(range)): \(nodes.count) node(s): \(shown)\(more)"
    }
}

extension Graph {
    /// Every node of the graph and of its subgraphs (If branches, Loop and Scan bodies, at any
    /// depth), each with its path of enclosing nodes, in file order (a node before its subgraphs).
    public func walkNodes(_ visit: (_ node: Node, _ path: [String]) -> Void) {
        func walk(_ graph: Graph, _ path: [String]) {
            for node in graph.nodes {
                visit(node, path)
                for key in node.attributes.keys.sorted() {
                    switch node.attributes[key]! {
                    case .graph(let sub): walk(sub, path + [node.displayName])
                    case .graphs(let subs): for sub in subs { walk(sub, path + [node.displayName]) }
                    default: break
                    }
                }
            }
        }
        walk(self, [])
    }
}

extension OperatorRegistry {
    /// The operator types `model` uses that this registry cannot run at the model's opsets,
    /// subgraphs included, in first-use order. Empty when every node has a kernel.
    public func unsupportedOperators(in model: GraphModel) -> [UnsupportedOperator] {
        var found: [UnsupportedOperator] = []
        var index: [String: Int] = [:]
        model.graph.walkNodes { node, path in
            let isDefault = Self.isDefaultDomain(node.domain)
            let opset = model.opsets[node.domain] ?? (isDefault ? model.defaultOpset : 1)
            let record = record(node.opType, domain: node.domain)
            if let record, record.opsets.contains(opset) { return }
            let name = (path + [node.displayName]).joined(separator: "/")
            let key = "\(node.domain)|\(node.opType)"
            if let i = index[key] {
                found[i].nodes.append(name)
            } else {
                index[key] = found.count
                found.append(
                    UnsupportedOperator(
                        opType: node.opType, domain: node.domain, opset: opset, nodes: [name],
                        supportedOpsets: record?.opsets))
            }
        }
        return found
    }
}
