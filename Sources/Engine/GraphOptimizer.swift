import Tensors

/// The shape-independent load-time passes, run once per model by `InferenceSession` before the plan
/// is built:
/// 0. QDQ: DequantizeLinear -> Conv/MatMul/Gemm -> QuantizeLinear become QLinearConv, QLinearMatMul,
///    QGemm on the quantized values (`fuseQuantizeDequantize`), before folding could turn weights to float;
/// 1. constant folding: every default-domain node whose inputs are all constants runs once and its
///    outputs become initializers (weight transposes, Constant chains, shape arithmetic on constants);
/// 2. Identity and inference-mode Dropout removal (their readers read the input instead); then
///    MatMulInteger -> Cast -> Mul(scale) [-> Add(bias)] of dynamic quantization becomes
///    com.microsoft MatMulIntegerToFloat (`fuseMatMulIntegerToFloat`);
/// 3. BatchNormalization folded into the Conv or Gemm that feeds it (weights and bias rescaled once);
/// 4. MatMul + Add of a constant [N] bias: the bias becomes the MatMul's epilogue (`__bias`);
/// 5. an activation (Relu, Clip, LeakyRelu, Sigmoid, HardSwish, Gelu, Swish, SiLU written as
///    `Mul(x, Sigmoid(x))`, and GELU written with Erf, first made one com.microsoft Gelu) after a
///    Conv, Gemm or MatMul becomes that node's epilogue
///    (`__activation`, see `Epilogue`);
/// then nodes and initializers nobody reads are dropped.
///
/// Each rewrite applies only when the intermediate value has no other reader and is not a graph
/// output, so the graph's results are unchanged (up to float rounding of the folded BatchNorm).
/// A pure function of the model; anything it cannot prove safe it leaves for the plan as it was.
enum GraphOptimizer {
    static let biasAttribute = "__bias"

    /// The optimised model. Never throws: a node that cannot be folded is left in place, and the plan
    /// reports it as before.
    /// What the QDQ pass would fuse in `model` (for `swerve check`); the model is not changed.
    static func quantizeDequantizeFusion(_ model: GraphModel, registry: OperatorRegistry) -> QDQFusion {
        var state = State(model: model, registry: registry)
        guard state.sortNodes() else { return QDQFusion() }
        return state.fuseQuantizeDequantize()
    }

    /// How many MatMulInteger chains load fuses into MatMulIntegerToFloat (for `swerve check`).
    static func matMulIntegerToFloatFusion(_ model: GraphModel, registry: OperatorRegistry) -> Int {
        var state = State(model: model, registry: registry)
        guard state.sortNodes() else { return 0 }
        state.foldConstants(opset: model.defaultOpset)
        state.removeIdentities()
        return state.fuseMatMulIntegerToFloat()
    }

    /// Switches for passes whose benefit depends on the BLAS (measured in docs/benchmarks.md).
    struct Options: Sendable {
        var transposeGemmWeights = true
        /// QDQ pairs around Conv/MatMul/Gemm become integer operators (`fuseQuantizeDequantize`).
        var fuseQuantizeDequantize = true
    }

    static func optimize(_ model: GraphModel, registry: OperatorRegistry, options: Options = Options()) -> GraphModel {
        var state = State(model: model, registry: registry)
        guard state.sortNodes() else { return model }
        if options.fuseQuantizeDequantize { _ = state.fuseQuantizeDequantize() }
        state.foldConstants(opset: model.defaultOpset)
        state.removeIdentities()
        _ = state.fuseMatMulIntegerToFloat()
        state.foldBatchNorms()
        state.foldBatchNormsIntoGemm()
        state.fuseMatMulBias()
        state.fuseSiLU()
        state.fuseErfGelu()
        state.fuseActivations(opset: model.defaultOpset)
        if options.transposeGemmWeights { state.layOutGemmWeights() }
        state.dropUnused()
        var out = model
        out.graph.nodes = state.nodes.compactMap { $0 }
        out.graph.initializers = state.constants
        return out
    }

    /// The graph being rewritten: nodes (nil once removed) and constants by name.
    struct State {
        var nodes: [Node?]
        var constants: [String: Tensor]
        let graphInputs: Set<String>
        let graphOutputs: Set<String>
        /// The operators' records: which nodes fold, fuse or pass through is read from them.
        let registry: OperatorRegistry
        private var fresh = 0

        init(model: GraphModel, registry: OperatorRegistry) {
            self.registry = registry
            let g = model.graph
            nodes = g.nodes
            let inputs = Set(g.inputs.map(\.name))
            graphInputs = inputs
            graphOutputs = Set(g.outputs.map(\.name))
            // Graph inputs override initializers of the same name: those are not constants.
            constants = g.initializers.filter { !inputs.contains($0.key) }
        }

        /// Puts the nodes in topological order; false when the graph is malformed (the plan reports it).
        mutating func sortNodes() -> Bool {
            var known = SlotTable()
            for name in graphInputs.union(constants.keys) { _ = known.add(name) }
            guard let order = try? Plan.topologicalOrder(nodes.compactMap { $0 }, known: known) else { return false }
            let all = nodes.compactMap { $0 }
            nodes = order.map { all[$0] }
            return true
        }

        /// Value name -> indices of the nodes that read it.
        func readers() -> [String: [Int]] {
            var r: [String: [Int]] = [:]
            for (i, node) in nodes.enumerated() {
                guard let node else { continue }
                for name in node.inputs where !name.isEmpty { r[name, default: []].append(i) }
            }
            return r
        }

        /// Value name -> index of the node that writes it.
        func producers() -> [String: Int] {
            var p: [String: Int] = [:]
            for (i, node) in nodes.enumerated() {
                guard let node else { continue }
                for name in node.outputs where !name.isEmpty { p[name] = i }
            }
            return p
        }

        mutating func freshName(_ base: String) -> String {
            while true {
                fresh += 1
                let name = "\(base)__opt\(fresh)"
                if constants[name] == nil { return name }
            }
        }

        /// Whether `value` is read by exactly the node `reader` and is not a graph output.
        func onlyReader(_ value: String, _ readers: [String: [Int]]) -> Int? {
            guard !graphOutputs.contains(value), let r = readers[value], r.count == 1 else { return nil }
            return r[0]
        }

        func constant(_ node: Node, _ index: Int) -> Tensor? {
            index < node.inputs.count && !node.inputs[index].isEmpty ? constants[node.inputs[index]] : nil
        }

        // MARK: Constant folding

        mutating func foldConstants(opset: Int) {
            for i in nodes.indices {
                guard let node = nodes[i], OperatorRegistry.isDefaultDomain(node.domain),
                    let record = registry.record(node.opType, domain: node.domain), !record.random,
                    !node.attributes.values.contains(where: { if case .graph = $0 { true } else { false } }),
                    node.outputs.allSatisfy({ !graphInputs.contains($0) })
                else { continue }
                let inputs = node.inputs.map { $0.isEmpty ? nil : constants[$0] }
                guard zip(node.inputs, inputs).allSatisfy({ $0.0.isEmpty || $0.1 != nil }) else { continue }
                let context = NodeContext(node: node, opset: opset, constantInputs: inputs)
                guard let kernel = try? registry.kernel(for: context), let values = try? kernel.run(inputs),
                    values.count >= node.outputs.filter({ !$0.isEmpty }).count
                else { continue }
                for (k, name) in node.outputs.enumerated() where !name.isEmpty && k < values.count {
                    constants[name] = values[k]
                }
                nodes[i] = nil
            }
        }

        // MARK: Identity and Dropout

        mutating func removeIdentities() {
            var rename: [String: String] = [:]
            for i in nodes.indices {
                guard let node = nodes[i], registry.record(node.opType, domain: node.domain)?.fusion == .passThrough
                else { continue }
                let passThrough: Bool
                switch node.opType {
                case "Identity": passThrough = node.inputs.count == 1
                case "Dropout":
                    // Inference mode unless training_mode is given and not a constant false.
                    let training = constant(node, 2).map { $0.count == 1 && $0.doubleValues()[0] != 0 } ?? (node.inputs.count > 2 && !node.inputs[2].isEmpty)
                    passThrough = !training && (node.outputs.count < 2 || node.outputs[1].isEmpty)
                default: passThrough = false
                }
                guard passThrough, let out = node.outputs.first, !out.isEmpty, !graphOutputs.contains(out),
                    let source = node.inputs.first, !source.isEmpty
                else { continue }
                rename[out] = rename[source] ?? source
                nodes[i] = nil
            }
            if rename.isEmpty { return }
            for i in nodes.indices {
                guard var node = nodes[i] else { continue }
                node.inputs = node.inputs.map { rename[$0] ?? $0 }
                nodes[i] = node
            }
        }

        // MARK: Liveness

        /// Drops nodes whose outputs nobody reads (repeatedly) and constants nobody reads.
        mutating func dropUnused() {
            var changed = true
            while changed {
                changed = false
                let r = readers()
                for i in nodes.indices {
                    guard let node = nodes[i] else { continue }
                    let used = node.outputs.contains { !$0.isEmpty && (r[$0] != nil || graphOutputs.contains($0)) }
                    if !used {
                        nodes[i] = nil
                        changed = true
                    }
                }
            }
            let r = readers()
            constants = constants.filter { r[$0.key] != nil || graphOutputs.contains($0.key) }
        }
    }
}
