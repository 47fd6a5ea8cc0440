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
                conv.outputs.count == 1, let j = onlyReader(conv.outputs[0], readers), let bn = nodes[j],
                bn.opType == "BatchNormalization", OperatorRegistry.isDefaultDomain(bn.domain),
                bn.inputs.count == 5, bn.inputs[0] == conv.outputs[0],
                !(1..<bn.outputs.count).contains(where: { !bn.outputs[$0].isEmpty }),
                (try? NodeContext(node: bn, opset: 1).int("spatial", default: 1)) == 1,
                (try? NodeContext(node: bn, opset: 1).int("training_mode", default: 0)) == 0,
                let w = constant(conv, 1), w.dataType == .float32, w.rank >= 3
            else { continue }
            let m = w.shape[0]
            let params = (1...4).compactMap { constant(bn, $0) }
            guard params.count == 4, params.allSatisfy({ $0.dataType == .float32 && $0.count == m }) else { continue }
            let bias = constant(conv, 2)
            if conv.inputs.count > 2 && !conv.inputs[2].isEmpty {
                guard let bias, bias.dataType == .float32, bias.count == m else { continue }
            }
            let epsilon = (try? NodeContext(node: bn, opset: 1).float("epsilon", default: 1e-5)) ?? 1e-5
            let (scale, shift, mean, variance) = (
                params[0].scalars(as: Float.self), params[1].scalars(as: Float.self),
                params[2].scalars(as: Float.self), params[3].scalars(as: Float.self)
            )
            let perChannel = w.count / max(m, 1)
            let newW = Tensor(uninitialized: .float32, shape: w.shape)
            let src = w.elements(as: Float.self)
            let dst = newW.mutableElements(as: Float.self)
            var newB = [Float](repeating: 0, count: m)
            let oldB = bias?.scalars(as: Float.self) ?? [Float](repeating: 0, count: m)
            for c in 0..<m {
                let s = scale[c] / (variance[c] + epsilon).squareRoot()
                for k in 0..<perChannel { dst[c * perChannel + k] = src[c * perChannel + k] * s }
                newB[c] = (oldB[c] - mean[c]) * s + shift[c]
            }
            let wName = freshName(conv.inputs[1])
            let bName = freshName(conv.inputs.count > 2 && !conv.inputs[2].isEmpty ? conv.inputs[2] : wName + "_bias")
            constants[wName] = newW
            constants[bName] = Tensor(newB, shape: [m])
            conv.inputs = [conv.inputs[0], wName, bName]
            conv.outputs = [bn.outputs[0]]
            nodes[i] = conv
            nodes[j] = nil
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
                gemm.outputs.count == 1, let j = onlyReader(gemm.outputs[0], readers), let bn = nodes[j],
                bn.opType == "BatchNormalization", OperatorRegistry.isDefaultDomain(bn.domain),
                bn.inputs.count == 5, bn.inputs[0] == gemm.outputs[0],
                !(1..<bn.outputs.count).contains(where: { !bn.outputs[$0].isEmpty }),
                (try? NodeContext(node: bn, opset: 1).int("training_mode", default: 0)) == 0,
                let b = constant(gemm, 1), b.dataType == .float32, b.rank == 2
            else { continue }
            let context = NodeContext(node: gemm, opset: 13)
            guard let transB = try? context.int("transB", default: 0), let beta = try? context.float("beta", default: 1)
            else { continue }
            let n = transB != 0 ? b.shape[0] : b.shape[1]
            let params = (1...4).compactMap { constant(bn, $0) }
            guard params.count == 4, params.allSatisfy({ $0.dataType == .float32 && $0.count == n }) else { continue }
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
            let epsilon = (try? NodeContext(node: bn, opset: 1).float("epsilon", default: 1e-5)) ?? 1e-5
            let (scale, shift, mean, variance) = (
                params[0].scalars(as: Float.self), params[1].scalars(as: Float.self),
                params[2].scalars(as: Float.self), params[3].scalars(as: Float.self)
            )
            let s = (0..<n).map { scale[$0] / (variance[$0] + epsilon).squareRoot() }
            let newB = Tensor(uninitialized: .float32, shape: b.shape)
            let src = b.elements(as: Float.self)
            let dst = newB.mutableElements(as: Float.self)
            let (rows, cols) = (b.shape[0], b.shape[1])
            for r in 0..<rows {
                for c in 0..<cols { dst[r * cols + c] = src[r * cols + c] * s[transB != 0 ? r : c] }
            }
            let newC = (0..<n).map { s[$0] * (beta * oldC[$0] - mean[$0]) + shift[$0] }
            let bName = freshName(gemm.inputs[1])
            let cName = freshName(gemm.inputs.count > 2 && !gemm.inputs[2].isEmpty ? gemm.inputs[2] : bName + "_bias")
            constants[bName] = newB
            constants[cName] = Tensor(newC, shape: [n])
            gemm.inputs = [gemm.inputs[0], bName, cName]
            gemm.attributes["beta"] = .float(1)
            gemm.outputs = [bn.outputs[0]]
            nodes[i] = gemm
            nodes[j] = nil
        }
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
                let j = onlyReader(mm.outputs[0], readers), let add = nodes[j], add.opType == "Add",
                OperatorRegistry.isDefaultDomain(add.domain), add.inputs.count == 2, add.inputs[0] != add.inputs[1]
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
            let out = Tensor(uninitialized: .float32, shape: [k, n])
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

    /// Conv/Gemm/MatMul -> Relu | Clip | LeakyRelu | Sigmoid | HardSwish becomes the producer with an
    /// epilogue.
    mutating func fuseActivations(opset: Int) {
        let readers = readers()
        for i in nodes.indices {
            guard var producer = nodes[i], ["Conv", "Gemm", "MatMul"].contains(producer.opType),
                OperatorRegistry.isDefaultDomain(producer.domain),
                producer.attributes[Epilogue.activationAttribute] == nil, producer.outputs.count == 1,
                let j = onlyReader(producer.outputs[0], readers), let act = nodes[j],
                OperatorRegistry.isDefaultDomain(act.domain), act.inputs.first == producer.outputs[0],
                act.outputs.count == 1, let epilogue = epilogue(for: act, opset: opset)
            else { continue }
            for (k, v) in epilogue.attributes { producer.attributes[k] = v }
            producer.outputs = act.outputs
            nodes[i] = producer
            nodes[j] = nil
        }
    }

    /// The epilogue equivalent to `node`, or nil when it is not a fusable activation.
    func epilogue(for node: Node, opset: Int) -> Epilogue? {
        let context = NodeContext(node: node, opset: opset)
        switch node.opType {
        case "Relu" where node.inputs.count == 1:
            return Epilogue(kind: .relu, alpha: 0, beta: .infinity)
        case "Sigmoid" where node.inputs.count == 1:
            return Epilogue(kind: .sigmoid, alpha: 0, beta: 0)
        case "HardSwish" where node.inputs.count == 1:
            return Epilogue(kind: .hardSwish, alpha: 0, beta: 0)
        case "LeakyRelu" where node.inputs.count == 1:
            guard let alpha = try? context.float("alpha", default: 0.01) else { return nil }
            return Epilogue(kind: .leakyRelu, alpha: alpha, beta: 0)
        case "Clip":
            if opset < 11 {
                guard node.inputs.count == 1, let lo = try? context.float("min", default: -.greatestFiniteMagnitude),
                    let hi = try? context.float("max", default: .greatestFiniteMagnitude)
                else { return nil }
                return Epilogue(kind: .clip, alpha: lo, beta: hi)
            }
            var bounds: [Float] = [-.infinity, .infinity]
            for k in 1..<max(node.inputs.count, 1) where !node.inputs[k].isEmpty {
                guard k <= 2, let t = constant(node, k), t.dataType == .float32, t.count == 1 else { return nil }
                bounds[k - 1] = t.scalars(as: Float.self)[0]
            }
            return Epilogue(kind: .clip, alpha: bounds[0], beta: bounds[1])
        default:
            return nil
        }
    }
}
