import Tensors

/// An executable form of a graph: kernels resolved for the model's opset, values mapped to integer
/// slots, constants (initializers and Constant nodes) computed once, nodes in topological order, and
/// for each step the slots to release after it (last use).
///
/// Built once per model by `InferenceSession`; immutable apart from its locked cache of per-signature
/// `ShapePlan`s, so `run` may be called from many threads at once (each call has its own slot array
/// and arena).
public struct Plan: Sendable {
    /// One node to run: its kernel and the slots it reads and writes.
    public struct Step: Sendable {
        /// The node's display name and op type, for messages.
        public let node: String
        public let opType: String
        let kernel: any Kernel
        /// Slot per input position; -1 for an omitted optional input.
        let inputs: [Int]
        /// Slot per output position; -1 for an output nobody asked for.
        let outputs: [Int]
        /// Slots whose last use is this step.
        let release: [Int]
        /// From the operator's record: how its output shape is known, how it treats batch rows.
        let outputShape: OperatorRecord.OutputShape
        let batchRows: OperatorRecord.BatchRows
        /// The record's `random`: the step never folds into a constant.
        var random = false
    }

    /// A declared graph input and the slot it is bound to.
    struct InputBinding: Sendable {
        let info: ValueInfo
        let slot: Int
    }

    /// The steps in execution order (Constant nodes are not among them: they ran at plan time).
    public let steps: [Step]
    /// Value name of each slot.
    public let slotNames: [String]
    /// Slot contents at the start of a run: constants filled in, everything else nil.
    let initialSlots: [Tensor?]
    let inputBindings: [InputBinding]
    let outputBindings: [(name: String, slot: Int)]
    let maxInputs: Int
    /// Shape plans by input-shape signature (bounded; see `ShapePlan`).
    let shapePlans: ShapePlanCache
    /// How many signatures' shape plans a plan keeps.
    public static let shapePlanCapacity = 16

    /// Checks the graph and builds the plan. Throws `EngineError.invalidModel` for a malformed graph
    /// (unknown value, value defined twice, cycle, output never produced) and
    /// `.unsupportedOperator` for an operator (or domain) that `registry` does not implement.
    public init(model: GraphModel, registry: OperatorRegistry = .cpu) throws {
        try Self.checkOpset(model)
        // Every unsupported operator at once (subgraphs too), not only the first one met.
        let missing = registry.unsupportedOperators(in: model)
        if missing.count > 1 { throw EngineError.unsupportedOperators(missing) }
        if let only = missing.first {
            throw EngineError.unsupportedOperator(
                opType: only.opType, domain: only.domain, opset: only.opset, node: only.nodes.joined(separator: "', '"))
        }
        let graph = model.graph
        var builder = SlotTable()
        var initial: [Tensor?] = []
        for input in graph.inputs {
            guard builder.slot(of: input.name) == nil else {
                throw EngineError.invalidModel("graph input '\(input.name)' is declared twice; fix the model")
            }
            _ = builder.add(input.name)
            initial.append(nil)
        }
        // Graph inputs override initializers of the same name (IR >= 4 default values).
        for (name, tensor) in graph.initializers.sorted(by: { $0.key < $1.key }) where builder.slot(of: name) == nil {
            _ = builder.add(name)
            initial.append(tensor)
        }
        let order = try Self.topologicalOrder(graph.nodes, known: builder)

        var steps: [Step] = []
        for index in order {
            let node = graph.nodes[index]
            var inputSlots: [Int] = []
            for name in node.inputs {
                if name.isEmpty { inputSlots.append(-1); continue }
                // topologicalOrder checked that every input is defined before its use.
                inputSlots.append(builder.slot(of: name)!)
            }
            var outputSlots: [Int] = []
            for name in node.outputs {
                if name.isEmpty { outputSlots.append(-1); continue }
                outputSlots.append(builder.add(name))
                initial.append(nil)
            }
            let opset = Self.opset(of: node.domain, in: model)
            let context = NodeContext(
                node: node, opset: opset, constantInputs: inputSlots.map { $0 < 0 ? nil : initial[$0] },
                opsets: model.opsets, registry: registry)
            let kernel = try registry.kernel(for: context)
            if let absorbing = kernel as? any ConstantAbsorbingKernel {
                for i in absorbing.absorbedInputs where i < inputSlots.count { inputSlots[i] = -1 }
            }
            if node.opType == "Constant" && OperatorRegistry.isDefaultDomain(node.domain) {
                let values = try Self.evaluateAtPlanTime(kernel, node: node)
                for (i, slot) in outputSlots.enumerated() where slot >= 0 && i < values.count {
                    initial[slot] = values[i]
                }
                continue
            }
            let record = registry.record(node.opType, domain: node.domain)
            steps.append(
                Step(node: node.displayName, opType: node.opType, kernel: kernel, inputs: inputSlots,
                    outputs: outputSlots, release: [], outputShape: record?.outputShape ?? .fromValues,
                    batchRows: record?.batchRows ?? .mixes, random: record?.random ?? false))
        }

        var outputs: [(name: String, slot: Int)] = []
        for output in graph.outputs {
            guard let slot = builder.slot(of: output.name) else {
                throw EngineError.invalidModel(
                    "graph output '\(output.name)' is not an input, initializer or output of any node; fix the model")
            }
            outputs.append((output.name, slot))
        }
        // Initializers no step reads (absorbed by their kernels, or unused) are not kept.
        var read = Set(outputs.map(\.slot))
        for step in steps { read.formUnion(step.inputs) }
        for name in graph.initializers.keys {
            if let slot = builder.slot(of: name), !read.contains(slot) { initial[slot] = nil }
        }
        self.steps = Self.withReleases(steps, keep: Set(outputs.map(\.slot)), constants: initial)
        self.slotNames = builder.names
        self.initialSlots = initial
        self.inputBindings = graph.inputs.map { InputBinding(info: $0, slot: builder.slot(of: $0.name)!) }
        self.outputBindings = outputs
        self.maxInputs = steps.map(\.inputs.count).max() ?? 0
        self.shapePlans = ShapePlanCache(capacity: Self.shapePlanCapacity)
    }

    /// Refuses a default-domain opset outside 1...`OperatorRegistry.newestOpset`: the engine cannot
    /// know what a newer opset's operators mean, and a wrong guess would answer wrong numbers.
    static func checkOpset(_ model: GraphModel) throws {
        for (domain, version) in model.opsets where OperatorRegistry.isDefaultDomain(domain) {
            let newest = OperatorRegistry.newestOpset
            guard (1...newest).contains(version) else {
                throw EngineError.invalidModel(
                    "the model imports opset \(version) of the default ONNX domain; this engine knows opsets 1 to "
                        + "\(newest) (onnx \(OperatorRegistry.onnxRelease)): export it again with opset_version <= \(newest)")
            }
        }
    }

    /// The opset version that governs nodes of `domain`.
    static func opset(of domain: String, in model: GraphModel) -> Int {
        if OperatorRegistry.isDefaultDomain(domain) { return model.defaultOpset }
        return model.opsets[domain] ?? 1
    }

    private static func evaluateAtPlanTime(_ kernel: any Kernel, node: Node) throws -> [Tensor] {
        do {
            return try kernel.run([])
        } catch let error as KernelError {
            let message: String
            switch error { case .shape(let m), .failed(let m): message = m }
            throw EngineError.invalidModel("node '\(node.displayName)' (\(node.opType)): \(message); fix the model")
        } catch let error as MemoryLimitError {
            throw EngineError.memoryLimit(error)
        }
    }

    /// Adds to each step the slots whose last reader (or, for unread values, producer) it is. Graph
    /// outputs and constants are never released.
    private static func withReleases(_ steps: [Step], keep: Set<Int>, constants: [Tensor?]) -> [Step] {
        var lastUse = [Int](repeating: -1, count: constants.count)
        for (i, step) in steps.enumerated() {
            for s in step.outputs where s >= 0 { lastUse[s] = max(lastUse[s], i) }
            for s in step.inputs where s >= 0 { lastUse[s] = i }
        }
        var releases = [[Int]](repeating: [], count: steps.count)
        for (slot, i) in lastUse.enumerated() where i >= 0 && !keep.contains(slot) && constants[slot] == nil {
            releases[i].append(slot)
        }
        return steps.enumerated().map { i, s in
            Step(node: s.node, opType: s.opType, kernel: s.kernel, inputs: s.inputs, outputs: s.outputs,
                release: releases[i], outputShape: s.outputShape, batchRows: s.batchRows, random: s.random)
        }
    }
}

/// Value name -> slot while a plan is built.
struct SlotTable {
    private(set) var names: [String] = []
    private var index: [String: Int] = [:]

    func slot(of name: String) -> Int? { index[name] }

    /// A new slot for `name` (the caller checked it is not defined yet).
    mutating func add(_ name: String) -> Int {
        index[name] = names.count
        names.append(name)
        return names.count - 1
    }
}
