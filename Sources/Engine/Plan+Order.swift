extension Plan {
    /// Node indices in an order where every node comes after the producers of its inputs. Keeps the
    /// file's order when it already is one. Fails when an input is never defined, a value is defined
    /// twice, or the nodes form a cycle.
    static func topologicalOrder(_ nodes: [Node], known: SlotTable) throws -> [Int] {
        var producer: [String: Int] = [:]
        for (i, node) in nodes.enumerated() {
            for name in node.outputs where !name.isEmpty {
                if known.slot(of: name) != nil || producer[name] != nil {
                    throw EngineError.invalidModel(
                        "value '\(name)' is defined twice (output of node '\(node.displayName)' and an earlier "
                            + "graph input, initializer or node); fix the model")
                }
                producer[name] = i
            }
        }
        var deps: [[Int]] = []
        deps.reserveCapacity(nodes.count)
        for node in nodes {
            var d: [Int] = []
            for name in node.inputs where !name.isEmpty && known.slot(of: name) == nil {
                guard let p = producer[name] else {
                    throw EngineError.invalidModel(
                        "node '\(node.displayName)' (\(node.opType)) reads '\(name)', which is not a graph input, "
                            + "initializer or output of any node; fix the model")
                }
                d.append(p)
            }
            deps.append(d)
        }

        // Iterative depth-first post-order (no recursion: graphs can be thousands of nodes deep).
        enum Mark { case new, active, done }
        var mark = [Mark](repeating: .new, count: nodes.count)
        var order: [Int] = []
        order.reserveCapacity(nodes.count)
        var stack: [(node: Int, next: Int)] = []
        for root in nodes.indices where mark[root] == .new {
            stack.append((root, 0))
            mark[root] = .active
            while let top = stack.last {
                if top.next < deps[top.node].count {
                    stack[stack.count - 1].next += 1
                    let d = deps[top.node][top.next]
                    switch mark[d] {
                    case .done: continue
                    case .active:
                        throw EngineError.invalidModel(
                            "the graph has a cycle through node '\(nodes[d].displayName)' (\(nodes[d].opType)); "
                                + "ONNX graphs must be acyclic, fix the model")
                    case .new:
                        mark[d] = .active
                        stack.append((d, 0))
                    }
                } else {
                    stack.removeLast()
                    mark[top.node] = .done
                    order.append(top.node)
                }
            }
        }
        return order
    }
}
