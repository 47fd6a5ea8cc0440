import Tensors

extension GraphOptimizer.State {
    /// MatMulInteger -> Cast(to FLOAT) -> Mul(scale) [-> Add(bias)], what onnxruntime's
    /// `quantize_dynamic` writes for every MatMul with constant weights, becomes one com.microsoft
    /// MatMulIntegerToFloat, as onnxruntime's MatMulIntegerToFloatFusion does: the int32 sums are
    /// scaled (and the bias added) in the integer GEMM's epilogue instead of three more passes over
    /// the output (Cast, Mul and Add were 21 % of a dynamic int8 BERT-base at batch 8).
    ///
    /// Matched: B a constant [K, N]; the Cast, Mul and Add each the only reader of the value before;
    /// the Mul's other operand either a float32 constant of 1 or N values (`b_scale`, with an
    /// `a_scale` of 1 added), or the output of a Mul of a scalar (DynamicQuantizeLinear's scale, or a
    /// constant of one value: `a_scale`) and such a constant (`b_scale`); the Add's other operand a
    /// float32 constant [N]. The fused node computes Float(sum) * (a_scale * b_scale[j]) + bias[j]
    /// in float32, which are the graph's own operations in its order (the scale product, then the
    /// Mul, then the Add, each rounded once), so the outputs are unchanged. Returns how many fused.
    mutating func fuseMatMulIntegerToFloat() -> Int {
        let readers = readers()
        let producers = producers()
        var fused = 0
        for i in nodes.indices {
            guard let mm = nodes[i], mm.opType == "MatMulInteger", OperatorRegistry.isDefaultDomain(mm.domain),
                (2...4).contains(mm.inputs.count), mm.outputs.count == 1, !mm.inputs[0].isEmpty,
                let b = constant(mm, 1), b.rank == 2, b.dataType == .uint8 || b.dataType == .int8
            else { continue }
            let n = b.shape[1]
            guard let c = onlyReader(mm.outputs[0], readers), let cast = nodes[c], cast.opType == "Cast",
                OperatorRegistry.isDefaultDomain(cast.domain), cast.outputs.count == 1,
                case .int(1)? = cast.attributes["to"],  // FLOAT
                let m = onlyReader(cast.outputs[0], readers), let mul = nodes[m], mul.opType == "Mul",
                OperatorRegistry.isDefaultDomain(mul.domain), mul.inputs.count == 2, mul.outputs.count == 1,
                mul.inputs.filter({ $0 == cast.outputs[0] }).count == 1
            else { continue }
            let scale = mul.inputs[0] == cast.outputs[0] ? mul.inputs[1] : mul.inputs[0]
            guard let (aScale, bScale) = scaleFactors(scale, columns: n, producers) else { continue }
            var output = mul.outputs[0]
            var bias = ""
            var add: Int?
            if let a = onlyReader(output, readers), let node = nodes[a], node.opType == "Add", OperatorRegistry.isDefaultDomain(node.domain),
                node.inputs.count == 2, node.outputs.count == 1, node.inputs.filter({ $0 == output }).count == 1
            {
                let other = node.inputs[0] == output ? node.inputs[1] : node.inputs[0]
                if let t = constants[other], t.dataType == .float32, t.rank == 1, t.count == n {
                    (bias, output, add) = (other, node.outputs[0], a)
                }
            }
            let aScaleName: String
            switch aScale {
            case .value(let name): aScaleName = name
            case .one:
                aScaleName = freshName("\(mm.name)_a_scale")
                constants[aScaleName] = Tensor(scalar: Float(1))
            }
            let optional = { (k: Int) in k < mm.inputs.count ? mm.inputs[k] : "" }
            var inputs = [mm.inputs[0], mm.inputs[1], aScaleName, bScale, optional(2), optional(3), bias]
            while inputs.last?.isEmpty == true { inputs.removeLast() }
            nodes[i] = Node(name: mm.name, opType: "MatMulIntegerToFloat", domain: "com.microsoft", inputs: inputs, outputs: [output])
            nodes[c] = nil
            nodes[m] = nil
            if let add { nodes[add] = nil }
            fused += 1
        }
        return fused
    }

    /// A's scale: a graph value, or 1 (the whole scale is B's).
    enum AScale { case value(String), one }

    /// `scale` as (a_scale, b_scale): a float32 constant of 1 or `columns` values (rank 0 or 1)
    /// is b_scale with an a_scale of 1; the output of a Mul of a scalar (DynamicQuantizeLinear's
    /// scale output, or a one-value constant) and such a constant is the pair.
    private func scaleFactors(_ scale: String, columns n: Int, _ producers: [String: Int]) -> (AScale, String)? {
        func isColumnScale(_ name: String) -> Bool {
            guard let t = constants[name], t.dataType == .float32, t.rank <= 1 else { return false }
            return t.count == 1 || t.count == n
        }
        func isScalar(_ name: String) -> Bool {
            if let t = constants[name] { return t.dataType == .float32 && t.rank <= 1 && t.count == 1 }
            guard let p = producers[name], let q = nodes[p], q.opType == "DynamicQuantizeLinear",
                OperatorRegistry.isDefaultDomain(q.domain), q.outputs.count >= 2
            else { return false }
            return q.outputs[1] == name
        }
        if isColumnScale(scale) { return (.one, scale) }
        guard let p = producers[scale], let mul = nodes[p], mul.opType == "Mul", OperatorRegistry.isDefaultDomain(mul.domain),
            mul.inputs.count == 2
        else { return nil }
        let (x, y) = (mul.inputs[0], mul.inputs[1])
        if isScalar(x) && isColumnScale(y) { return (.value(x), y) }
        if isScalar(y) && isColumnScale(x) { return (.value(y), x) }
        return nil
    }
}
