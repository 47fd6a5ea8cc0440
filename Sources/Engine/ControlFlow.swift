import Tensors

/// Subgraphs (If branches, Loop and Scan bodies) read values of the scopes around them by name.
/// Before anything else looks at a model, `exposeOuterScope` makes those reads explicit: every
/// node that holds subgraphs gets the outer values its subgraphs read (at any depth) appended to
/// its inputs, and their names in the subgraphs' own terms as an attribute. Topological order,
/// dead-node removal, renaming by the optimizer and the plan's slots then treat them as ordinary
/// inputs, and the kernel hands them to the subgraph's plan as extra graph inputs.
enum ControlFlow {
    /// Attribute: the names the subgraphs read from outside, in the order they were appended.
    static let outerScopeAttribute = "__outer_scope"
    /// Attribute: how many inputs the node had before the outer-scope ones.
    static let formalInputsAttribute = "__formal_inputs"

    /// `graph` with the outer-scope reads of every subgraph made explicit (recursively).
    static func exposeOuterScope(_ graph: Graph) -> Graph {
        var out = graph
        out.nodes = graph.nodes.map(expose)
        return out
    }

    private static func expose(_ node: Node) -> Node {
        var subgraphs: [Graph] = []
        var rewritten = node
        for key in node.attributes.keys.sorted() {
            switch node.attributes[key]! {
            case .graph(let g):
                let inner = exposeOuterScope(g)
                rewritten.attributes[key] = .graph(inner)
                subgraphs.append(inner)
            case .graphs(let gs):
                let inner = gs.map(exposeOuterScope)
                rewritten.attributes[key] = .graphs(inner)
                subgraphs += inner
            default: break
            }
        }
        guard !subgraphs.isEmpty, rewritten.attributes[outerScopeAttribute] == nil else { return rewritten }
        var names: [String] = []
        var seen = Set<String>()
        for g in subgraphs {
            for name in freeNames(of: g) where seen.insert(name).inserted { names.append(name) }
        }
        rewritten.attributes[formalInputsAttribute] = .int(node.inputs.count)
        rewritten.attributes[outerScopeAttribute] = .strings(names.map { Array($0.utf8) })
        rewritten.inputs += names
        return rewritten
    }

    /// Names `graph`'s nodes read that it does not define (inputs, initializers, node outputs), in
    /// first-use order. Nested subgraphs' reads are already explicit inputs of their nodes.
    static func freeNames(of graph: Graph) -> [String] {
        var defined = Set(graph.inputs.map(\.name)).union(graph.initializers.keys)
        for node in graph.nodes { defined.formUnion(node.outputs) }
        var names: [String] = []
        var seen = Set<String>()
        for node in graph.nodes {
            for name in node.inputs where !name.isEmpty && !defined.contains(name) && seen.insert(name).inserted {
                names.append(name)
            }
        }
        for output in graph.outputs where !defined.contains(output.name) && seen.insert(output.name).inserted {
            names.append(output.name)  // a branch that returns an outer value as it is
        }
        return names
    }

    /// The plan of one subgraph: its formal inputs, then the outer-scope names as inputs of any
    /// type and shape; optimized and planned like a model of its own.
    static func plan(of graph: Graph, context: NodeContext) throws -> Plan {
        guard let registry = context.registry else {
            throw context.invalid("has a subgraph, which needs the engine's registry to plan")
        }
        var body = graph
        let outer = outerNames(context.node)
        let formal = Set(graph.inputs.map(\.name))
        body.inputs += outer.filter { !formal.contains($0) }.map { ValueInfo(name: $0, dataType: nil, shape: nil, kind: .unknown) }
        // A branch output that is an outer value (or a formal input) as it is: an Identity makes it a
        // node output, which the plan needs.
        var renamed: [ValueInfo] = []
        for output in body.outputs {
            let produced = body.nodes.contains { $0.outputs.contains(output.name) } || body.initializers[output.name] != nil
            if produced {
                renamed.append(output)
            } else {
                let name = "\(output.name)__passed"
                body.nodes.append(Node(name: name, opType: "Identity", inputs: [output.name], outputs: [name]))
                renamed.append(ValueInfo(name: name, dataType: output.dataType, shape: output.shape))
            }
        }
        body.outputs = renamed
        let model = GraphModel(graph: body, opsets: context.opsets, irVersion: 8)
        do {
            return try Plan(model: GraphOptimizer.optimize(model, registry: registry), registry: registry)
        } catch let error as EngineError {
            throw context.invalid("subgraph '\(graph.name)': \(error)")
        }
    }

    /// The names the node's subgraphs read from outside (`exposeOuterScope`).
    static func outerNames(_ node: Node) -> [String] {
        guard case .strings(let names)? = node.attributes[outerScopeAttribute] else { return [] }
        return names.map { String(decoding: $0, as: UTF8.self) }
    }

    /// How many of the node's inputs are its own (the rest are outer-scope values).
    static func formalInputs(_ node: Node) -> Int {
        if case .int(let n)? = node.attributes[formalInputsAttribute] { return n }
        return node.inputs.count
    }

    /// Feeds for a subgraph plan: `formal` by the subgraph's input names, then the outer values.
    static func feeds(
        _ plan: Plan, formal: [Tensor], outerNames: [String], outerValues: ArraySlice<Tensor?>
    ) throws -> [String: Tensor] {
        var feeds: [String: Tensor] = [:]
        let names = plan.inputNames
        for (i, t) in formal.enumerated() where i < names.count { feeds[names[i]] = t }
        for (name, value) in zip(outerNames, outerValues) where feeds[name] == nil {
            guard let value else {
                throw KernelError.failed("the outer value '\(name)' a subgraph reads was not computed")
            }
            feeds[name] = value
        }
        return feeds
    }

    /// The outputs of a subgraph run, in the subgraph's declared order.
    static func ordered(_ results: [String: Tensor], _ plan: Plan) throws -> [Tensor] {
        try plan.outputNames.map { name in
            guard let t = results[name] else { throw KernelError.failed("the subgraph did not compute '\(name)'") }
            return t
        }
    }
}

extension Plan {
    /// Declared input names in order.
    var inputNames: [String] { inputBindings.map(\.info.name) }
    /// Declared output names in order.
    var outputNames: [String] { outputBindings.map(\.name) }
}
