import Tensors

extension GraphOptimizer.State {
    // MARK: BatchNormalization into Conv

    /// Conv -> BatchNormalization (inference mode, constant parameters, constant weights) becomes one
    /// Conv with `W' = W * s` per output channel and `B' = (B - mean) * s + bias`,
    /// `s = scale / sqrt(var + epsilon)`.
    mutating func foldBatchNorms() {
        let readers = readers()
        for i in nodes.indices {
            guard var conv = nodes[i], conv.opType == "Conv", OperatorRegistry.isDefaultDomain(conv.domain),
                conv.attributes[Epilogue.activationAttribute] == nil,
                let w = constant(conv, 1), w.dataType == .float32, w.rank >= 3,
                let bn = batchNorm(after: conv, channels: w.shape[0], readers)
            else { continue }
            let m = w.shape[0]
            let bias = constant(conv, 2)
            if conv.inputs.count > 2 && !conv.inputs[2].isEmpty {
                guard let bias, bias.dataType == .float32, bias.count == m else { continue }
            }
            let perChannel = w.count / max(m, 1)
            guard let newW = try? Tensor(allocating: .float32, shape: w.shape) else { continue }
            let src = w.elements(as: Float.self)
            let dst = newW.mutableElements(as: Float.self)
            let oldB = bias?.scalars(as: Float.self) ?? [Float](repeating: 0, count: m)
            for c in 0..<m {
                for k in 0..<perChannel { dst[c * perChannel + k] = src[c * perChannel + k] * bn.factor[c] }
            }
            let wName = freshName(conv.inputs[1])
            let bName = freshName(conv.inputs.count > 2 && !conv.inputs[2].isEmpty ? conv.inputs[2] : wName + "_bias")
            constants[wName] = newW
            constants[bName] = Tensor((0..<m).map { bn.bias(oldB[$0], $0) }, shape: [m])
            conv.inputs = [conv.inputs[0], wName, bName]
            conv.outputs = [bn.output]
            nodes[i] = conv
            nodes[bn.index] = nil
        }
    }

    /// Gemm -> BatchNormalization (inference mode, constant parameters over the Gemm's N outputs,
    /// constant B, C absent or constant per column) becomes one Gemm: every column c of op(B) is
    /// scaled by `s = scale / sqrt(var + epsilon)` and `C' = s * (beta * C - mean) + bias` with
    /// beta 1 (alpha is unchanged: it multiplies A · B' as it multiplied A · B).
    mutating func foldBatchNormsIntoGemm() {
        let readers = readers()
        for i in nodes.indices {
            guard var gemm = nodes[i], gemm.opType == "Gemm", OperatorRegistry.isDefaultDomain(gemm.domain),
                gemm.attributes[Epilogue.activationAttribute] == nil,
                let b = constant(gemm, 1), b.dataType == .float32, b.rank == 2
            else { continue }
            let context = NodeContext(node: gemm, opset: 13)
            guard let transB = try? context.int("transB", default: 0), let beta = try? context.float("beta", default: 1)
            else { continue }
            let n = transB != 0 ? b.shape[0] : b.shape[1]
            guard let bn = batchNorm(after: gemm, channels: n, readers) else { continue }
            // C, as one value per column (absent, a scalar, [N] or [1, N]); anything else stays unfolded.
            var oldC = [Float](repeating: 0, count: n)
            if gemm.inputs.count > 2 && !gemm.inputs[2].isEmpty {
                guard let c = constant(gemm, 2), c.dataType == .float32 else { continue }
                if c.count == 1 {
                    oldC = [Float](repeating: c.scalars(as: Float.self)[0], count: n)
                } else if c.count == n && (c.rank == 1 || (c.rank == 2 && c.shape[0] == 1)) {
                    oldC = c.scalars(as: Float.self)
                } else {
                    continue
                }
            }
            guard let newB = try? Tensor(allocating: .float32, shape: b.shape) else { continue }
            let src = b.elements(as: Float.self)
            let dst = newB.mutableElements(as: Float.self)
            let (rows, cols) = (b.shape[0], b.shape[1])
            for r in 0..<rows {
                for c in 0..<cols { dst[r * cols + c] = src[r * cols + c] * bn.factor[transB != 0 ? r : c] }
            }
            let bName = freshName(gemm.inputs[1])
            let cName = freshName(gemm.inputs.count > 2 && !gemm.inputs[2].isEmpty ? gemm.inputs[2] : bName + "_bias")
            constants[bName] = newB
            constants[cName] = Tensor((0..<n).map { bn.bias(beta * oldC[$0], $0) }, shape: [n])
            gemm.inputs = [gemm.inputs[0], bName, cName]
            gemm.attributes["beta"] = .float(1)
            gemm.outputs = [bn.output]
            nodes[i] = gemm
            nodes[bn.index] = nil
        }
    }

    /// An inference-mode BatchNormalization, ready to fold into the node it follows: per channel
    /// `factor = scale / sqrt(var + epsilon)`, and `bias(b, c) = (b - mean) * factor + B`.
    struct BatchNormFold {
        let index: Int
        let output: String
        let factor: [Float]
        let mean: [Float]
        let shift: [Float]

        func bias(_ old: Float, _ c: Int) -> Float { (old - mean[c]) * factor[c] + shift[c] }
    }

    /// The BatchNormalization that is the only reader of `node`'s single output, when it is in
    /// inference mode (spatial, no training outputs) with constant float parameters for `channels`
    /// channels: the match both folds share.
    func batchNorm(after node: Node, channels: Int, _ readers: [String: [Int]]) -> BatchNormFold? {
        guard node.outputs.count == 1, let j = onlyReader(node.outputs[0], readers), let bn = nodes[j],
            registry.record(bn.opType, domain: bn.domain)?.fusion == .foldsIntoProducer,
            bn.inputs.count == 5, bn.inputs[0] == node.outputs[0],
            !(1..<bn.outputs.count).contains(where: { !bn.outputs[$0].isEmpty })
        else { return nil }
        let context = NodeContext(node: bn, opset: 1)
        guard (try? context.int("spatial", default: 1)) == 1, (try? context.int("training_mode", default: 0)) == 0
        else { return nil }
        let params = (1...4).compactMap { constant(bn, $0) }
        guard params.count == 4, params.allSatisfy({ $0.dataType == .float32 && $0.count == channels }) else {
            return nil
        }
        let epsilon = (try? context.float("epsilon", default: 1e-5)) ?? 1e-5
        let (scale, variance) = (params[0].scalars(as: Float.self), params[3].scalars(as: Float.self))
        return BatchNormFold(
            index: j, output: bn.outputs[0],
            factor: (0..<channels).map { scale[$0] / (variance[$0] + epsilon).squareRoot() },
            mean: params[2].scalars(as: Float.self), shift: params[1].scalars(as: Float.self))
    }

    // MARK: MatMul + bias

    /// MatMul(A, B) -> Add(_, c) with B a constant matrix [K, N] and c a constant [N] becomes a MatMul
    /// that adds c to every output row after its sgemm (attribute `__bias`).
    mutating func fuseMatMulBias() {
        let readers = readers()
        for i in nodes.indices {
            guard var mm = nodes[i], mm.opType == "MatMul", OperatorRegistry.isDefaultDomain(mm.domain),
                mm.attributes[GraphOptimizer.biasAttribute] == nil, mm.outputs.count == 1,
                let b = constant(mm, 1), b.dataType == .float32, b.rank == 2,
                let j = onlyReader(mm.outputs[0], readers), let add = nodes[j],
                registry.record(add.opType, domain: add.domain)?.fusion == .bias, add.inputs.count == 2,
                add.inputs[0] != add.inputs[1]
            else { continue }
            let other = add.inputs[0] == mm.outputs[0] ? add.inputs[1] : add.inputs[0]
            guard let c = constants[other], c.dataType == .float32, c.rank == 1, c.count == b.shape[1] else { continue }
            mm.attributes[GraphOptimizer.biasAttribute] = .tensor(c)
            mm.outputs = add.outputs
            nodes[i] = mm
            nodes[j] = nil
        }
    }

    // MARK: Weight layout

    /// Gemm with transB = 1 and a constant B: B is transposed once here and transB cleared, so the
    /// sgemm reads B [K, N] row by row (OpenBLAS's NN path) on every request.
    mutating func layOutGemmWeights() {
        for i in nodes.indices {
            guard var gemm = nodes[i], gemm.opType == "Gemm", OperatorRegistry.isDefaultDomain(gemm.domain),
                case .int(let t)? = gemm.attributes["transB"], t != 0,
                let b = constant(gemm, 1), b.dataType == .float32, b.rank == 2
            else { continue }
            let (n, k) = (b.shape[0], b.shape[1])
            guard let out = try? Tensor(allocating: .float32, shape: [k, n]) else { continue }
            let src = b.elements(as: Float.self)
            let dst = out.mutableElements(as: Float.self)
            for r in 0..<n {
                for c in 0..<k { dst[c * n + r] = src[r * k + c] }
            }
            let name = freshName(gemm.inputs[1])
            constants[name] = out
            gemm.inputs[1] = name
            gemm.attributes["transB"] = .int(0)
            nodes[i] = gemm
        }
    }

    // MARK: Activations

    /// A producer (Conv/Gemm/MatMul, by their records) followed by an activation (Relu, Clip,
    /// LeakyRelu, Sigmoid, HardSwish, Gelu: the records with an epilogue) becomes the producer with
    /// that epilogue.
    mutating func fuseActivations(opset: Int) {
        let readers = readers()
        for i in nodes.indices {
            guard var producer = nodes[i], registry.record(producer.opType, domain: producer.domain)?.fusion == .producer,
                producer.attributes[Epilogue.activationAttribute] == nil, producer.outputs.count == 1,
                let j = onlyReader(producer.outputs[0], readers), let act = nodes[j],
                let activation = registry.record(act.opType, domain: act.domain), activation.fusion == .activation,
                act.inputs.first == producer.outputs[0], act.outputs.count == 1,
                let epilogue = activation.epilogue?(
                    NodeContext(node: act, opset: opset, constantInputs: act.inputs.map { $0.isEmpty ? nil : constants[$0] }))
            else { continue }
            for (k, v) in epilogue.attributes { producer.attributes[k] = v }
            producer.outputs = act.outputs
            nodes[i] = producer
            nodes[j] = nil
        }
    }

    /// SiLU as exporters write it, `Mul(x, Sigmoid(x))` (PyTorch's `nn.SiLU` below opset 24,
    /// EfficientNet's and YOLO's activation), after a producer becomes the producer with a Swish
    /// epilogue (alpha 1): one pass over the output while it is in cache instead of two more
    /// steps and a tensor. Runs before `fuseActivations`; x must be read by exactly the two.
    mutating func fuseSiLU() {
        let readers = readers()
        for i in nodes.indices {
            guard var producer = nodes[i], registry.record(producer.opType, domain: producer.domain)?.fusion == .producer,
                producer.attributes[Epilogue.activationAttribute] == nil, producer.outputs.count == 1,
                !graphOutputs.contains(producer.outputs[0]),
                let pair = readers[producer.outputs[0]], pair.count == 2
            else { continue }
            let x = producer.outputs[0]
            let isSigmoid = { (k: Int) -> Bool in
                guard let n = self.nodes[k] else { return false }
                return n.opType == "Sigmoid" && OperatorRegistry.isDefaultDomain(n.domain) && n.inputs == [x]
                    && n.outputs.count == 1
            }
            guard let s = pair.first(where: isSigmoid), let m = pair.first(where: { $0 != s }),
                let sigmoid = nodes[s], let mul = nodes[m], mul.opType == "Mul", OperatorRegistry.isDefaultDomain(mul.domain),
                Set(mul.inputs) == [x, sigmoid.outputs[0]], mul.inputs.count == 2, mul.outputs.count == 1,
                onlyReader(sigmoid.outputs[0], readers) == m
            else { continue }
            for (k, v) in Epilogue(kind: .swish, alpha: 1, beta: 0).attributes { producer.attributes[k] = v }
            producer.outputs = mul.outputs
            nodes[i] = producer
            nodes[s] = nil
            nodes[m] = nil
        }
    }

    // MARK: GELU written with Erf

    /// GELU as PyTorch's TorchScript exporter (and most exporters below opset 20) writes it,
    /// `x * 0.5 * (1 + Erf(x / sqrt(2)))` in five nodes, becomes one com.microsoft Gelu (the exact
    /// form; onnxruntime's GeluFusion does the same), which `fuseActivations` then folds into a
    /// MatMul/Gemm producer's epilogue: a transformer's feed-forward activation in one pass over the
    /// output while it is in cache instead of five passes over [tokens, 4 x hidden].
    ///
    /// Matched: `Div(x, sqrt 2)` or `Mul(x, 1/sqrt 2)`, `Erf`, `Add(_, 1)`, then either
    /// `Mul(Mul(x, _), 0.5)`, `Mul(Mul(x, 0.5), _)` or `Mul(x, Mul(_, 0.5))` (operands in either
    /// order, constants scalars within 1e-6 of the value); each intermediate value read only by
    /// the next node. The result differs from the five nodes only by the rounding of the Erf
    /// approximation against the Gelu one (both within a few float32 ulps of the exact value).
    mutating func fuseErfGelu() {
        let readers = readers()
        let producers = producers()
        func isScalar(_ name: String, _ value: Float) -> Bool {
            guard let t = constants[name], t.dataType == .float32, t.count == 1 else { return false }
            return abs(t.elements(as: Float.self)[0] - value) <= 1e-6 * max(1, abs(value))
        }
        /// The node at `index` if it is `op` in the default domain with two inputs and one output.
        func binary(_ index: Int?, _ op: String) -> Node? {
            guard let index, let n = nodes[index], n.opType == op, OperatorRegistry.isDefaultDomain(n.domain),
                n.inputs.count == 2, n.outputs.count == 1
            else { return nil }
            return n
        }
        /// The operand of `node` other than `value` (nil unless `value` is exactly one operand).
        func other(_ node: Node, _ value: String) -> String? {
            if node.inputs[0] == value && node.inputs[1] != value { return node.inputs[1] }
            if node.inputs[1] == value && node.inputs[0] != value { return node.inputs[0] }
            return nil
        }
        for e in nodes.indices {
            guard let erf = nodes[e], erf.opType == "Erf", OperatorRegistry.isDefaultDomain(erf.domain), erf.inputs.count == 1,
                erf.outputs.count == 1, let d = producers[erf.inputs[0]], onlyReader(erf.inputs[0], readers) == e,
                let scaled = nodes[d], OperatorRegistry.isDefaultDomain(scaled.domain), scaled.inputs.count == 2,
                scaled.opType == "Div" ? isScalar(scaled.inputs[1], Float(2).squareRoot())
                    : scaled.opType == "Mul" && (isScalar(scaled.inputs[1], Float(0.5).squareRoot()) || isScalar(scaled.inputs[0], Float(0.5).squareRoot()))
            else { continue }
            let x = scaled.opType == "Div" || isScalar(scaled.inputs[1], Float(0.5).squareRoot()) ? scaled.inputs[0] : scaled.inputs[1]
            guard let a = onlyReader(erf.outputs[0], readers), let add = binary(a, "Add"), let one = other(add, erf.outputs[0]),
                isScalar(one, 1), let m = onlyReader(add.outputs[0], readers), let mul = binary(m, "Mul"),
                let mulOther = other(mul, add.outputs[0])
            else { continue }
            // The three places the 0.5 can be.
            var chain: [Int] = [d, e, a, m]
            let output: String
            if mulOther == x, let h = onlyReader(mul.outputs[0], readers), let half = binary(h, "Mul"),
                let c = other(half, mul.outputs[0]), isScalar(c, 0.5)
            {
                chain.append(h)  // Mul(Mul(x, 1 + erf), 0.5)
                output = half.outputs[0]
            } else if let p = producers[mulOther], let half = binary(p, "Mul"), onlyReader(mulOther, readers) == m,
                let c = other(half, x), isScalar(c, 0.5)
            {
                chain.append(p)  // Mul(Mul(x, 0.5), 1 + erf)
                output = mul.outputs[0]
            } else if isScalar(mulOther, 0.5), let h = onlyReader(mul.outputs[0], readers), let outer = binary(h, "Mul"),
                other(outer, mul.outputs[0]) == x
            {
                chain.append(h)  // Mul(x, Mul(1 + erf, 0.5))
                output = outer.outputs[0]
            } else {
                continue
            }
            guard !chain.contains(where: { i in nodes[i]!.outputs.contains { $0 != output && graphOutputs.contains($0) } }) else { continue }
            let last = chain.max()!
            for i in chain { nodes[i] = nil }
            nodes[last] = Node(name: "\(erf.name)_gelu", opType: "Gelu", domain: "com.microsoft", inputs: [x], outputs: [output])
        }
    }

}
