import Tensors

/// What `fuseQuantizeDequantize` rewrote, for `swerve check`'s quantization report.
public struct QDQFusion: Sendable, Equatable {
    /// Fused nodes by the operator they became (QLinearConv, QLinearMatMul, com.microsoft.QGemm).
    public var fused: [String: Int] = [:]
    /// Conv, MatMul and Gemm nodes between DequantizeLinear nodes that stayed in float, with why.
    public var left: [String] = []
}

extension GraphOptimizer.State {
    /// A DequantizeLinear (per tensor or per axis, not blocked) that writes `value`.
    struct Dequantizer {
        let index: Int
        let quantized: String
        let scale: String
        let zeroPoint: String?
        let axis: Int
    }

    func dequantizer(of value: String, _ producers: [String: Int]) -> Dequantizer? {
        guard let i = producers[value], let node = nodes[i], node.opType == "DequantizeLinear",
            OperatorRegistry.isDefaultDomain(node.domain), node.inputs.count >= 2, !node.inputs[0].isEmpty,
            constants[node.inputs[1]] != nil
        else { return nil }
        if case .int(let b)? = node.attributes["block_size"], b != 0 { return nil }
        var axis = 1
        if case .int(let a)? = node.attributes["axis"] { axis = a }
        let zp = node.inputs.count > 2 && !node.inputs[2].isEmpty ? node.inputs[2] : nil
        if let zp, constants[zp] == nil { return nil }
        return Dequantizer(index: i, quantized: node.inputs[0], scale: node.inputs[1], zeroPoint: zp, axis: axis)
    }

    /// The 8-bit type of a dequantizer's input: its zero point's, else its own when constant.
    func eightBitType(_ d: Dequantizer) -> DataType? {
        let t = d.zeroPoint.flatMap { constants[$0]?.dataType } ?? constants[d.quantized]?.dataType
        return t == .uint8 || t == .int8 ? t : nil
    }

    /// A constant zero point for `d` (its own, or zeros of `type` shaped like its scale).
    mutating func zeroPointName(_ d: Dequantizer, type: DataType) -> String {
        if let z = d.zeroPoint { return z }
        let shape = constants[d.scale]?.shape ?? []
        let name = freshName("\(d.scale)_zero_point")
        constants[name] = Tensor(zeros: type, shape: shape)
        return name
    }

    /// Per tensor, or per `axis` (normalised against `rank`) with `count` values.
    func perTensorOrAxis(_ d: Dequantizer, rank: Int, axis: Int, count: Int) -> Bool {
        guard let s = constants[d.scale] else { return false }
        if s.count == 1 { return true }
        let a = d.axis < 0 ? d.axis + rank : d.axis
        return s.rank == 1 && s.count == count && a == axis
    }

    /// Scale values as Float.
    func scaleValues(_ name: String) -> [Float]? {
        guard let t = constants[name], t.dataType == .float32 else { return nil }
        return Array(t.elements(as: Float.self))
    }

    /// QDQ -> integer operators, as onnxruntime's QDQ transformer does: DequantizeLinear of the
    /// activation (per tensor) and of constant 8-bit weights (per tensor, or per output channel /
    /// column), into Conv / MatMul / Gemm, whose only reader is a QuantizeLinear (per tensor),
    /// become QLinearConv, QLinearMatMul or com.microsoft QGemm on the quantized values (int32
    /// sums, requantized per channel). A bias DequantizeLinear of int32 with scale x_scale * w_scale
    /// (zero point 0) becomes the integer bias. A Gemm with no QuantizeLinear after it becomes a
    /// QGemm with float output. The weights' DequantizeLinear nodes are removed, so their float
    /// form is never made (constant folding comes after this). What does not match stays in float
    /// between the pairs.
    mutating func fuseQuantizeDequantize() -> QDQFusion {
        var report = QDQFusion()
        let readers = readers()
        let producers = producers()
        for i in nodes.indices {
            guard let node = nodes[i], OperatorRegistry.isDefaultDomain(node.domain),
                ["Conv", "MatMul", "Gemm"].contains(node.opType), node.inputs.count >= 2, node.outputs.count == 1
            else { continue }
            guard let x = dequantizer(of: node.inputs[0], producers), let w = dequantizer(of: node.inputs[1], producers)
            else { continue }
            let why = fuse(i, node, x, w, readers, producers)
            if let why {
                report.left.append("\(node.opType) '\(node.displayName)': \(why)")
            } else {
                let fusedNode = nodes[i]!
                let name = OperatorRegistry.isDefaultDomain(fusedNode.domain) ? fusedNode.opType : "\(fusedNode.domain).\(fusedNode.opType)"
                report.fused[name, default: 0] += 1
            }
        }
        fuseQuantizedBinary(&report)
        return report
    }

    /// Add and Mul of two per-tensor 8-bit DequantizeLinear outputs of one type, read only by a
    /// per-tensor QuantizeLinear of that type, become com.microsoft QLinearAdd / QLinearMul, as
    /// onnxruntime's QDQ transformer does (a residual Add of a QDQ ResNet). It is also what keeps
    /// outputs equal to onnxruntime's default session: QLinearAdd rounds once from the two scaled
    /// integers, where the float Add rounds the sum, then the division by the output scale, and a
    /// QDQ resnet50 has a few values per layer where the two land on either side of a half.
    /// Also MaxPool between a pair of equal parameters, which then pools the 8-bit values.
    private mutating func fuseQuantizedBinary(_ report: inout QDQFusion) {
        let readers = readers()
        let producers = producers()
        var candidates: [Int] = []
        for i in nodes.indices {
            guard let node = nodes[i], OperatorRegistry.isDefaultDomain(node.domain), node.opType == "Add" || node.opType == "Mul",
                node.inputs.count == 2, node.outputs.count == 1,
                let a = dequantizer(of: node.inputs[0], producers), let b = dequantizer(of: node.inputs[1], producers),
                let type = eightBitType(a), eightBitType(b) == type,
                [a, b].allSatisfy({ d in constants[d.scale]?.count == 1 && (d.zeroPoint.map { constants[$0]?.count == 1 } ?? true) })
            else { continue }
            guard let j = onlyReader(node.outputs[0], readers), let q = nodes[j], q.opType == "QuantizeLinear",
                OperatorRegistry.isDefaultDomain(q.domain), q.inputs.count >= 2, q.attributes["output_dtype"] == nil,
                let ys = constants[q.inputs[1]], ys.count == 1, ys.dataType == .float32
            else { continue }
            let hasZero = q.inputs.count > 2 && !q.inputs[2].isEmpty
            let yz = hasZero ? constants[q.inputs[2]] : nil
            guard hasZero ? (yz?.count == 1 && yz?.dataType == type) : type == .uint8 else { continue }
            let yZero: String
            if hasZero {
                yZero = q.inputs[2]
            } else {
                yZero = freshName("\(q.inputs[1])_zero_point")
                constants[yZero] = Tensor(zeros: .uint8, shape: [])
            }
            let inputs = [a.quantized, a.scale, zeroPointName(a, type: type), b.quantized, b.scale, zeroPointName(b, type: type), q.inputs[1], yZero]
            let op = node.opType == "Add" ? "QLinearAdd" : "QLinearMul"
            nodes[i] = Node(name: node.name, opType: op, domain: "com.microsoft", inputs: inputs, outputs: q.outputs)
            nodes[j] = nil
            report.fused["com.microsoft.\(op)", default: 0] += 1
            candidates += [a.index, b.index]
        }
        // MaxPool between a pair with the same scale and zero point runs on the 8-bit values
        // (onnxruntime drops such a pair too): max commutes with the monotonic (de)quantization,
        // and quantizing a dequantized value with the same parameters gives it back exactly.
        for i in nodes.indices {
            guard let node = nodes[i], OperatorRegistry.isDefaultDomain(node.domain), node.opType == "MaxPool",
                node.inputs.count == 1, node.outputs.count == 1,
                let d = dequantizer(of: node.inputs[0], producers), let type = eightBitType(d), constants[d.scale]?.count == 1,
                let j = onlyReader(node.outputs[0], readers), let q = nodes[j], q.opType == "QuantizeLinear",
                OperatorRegistry.isDefaultDomain(q.domain), q.inputs.count >= 2, q.attributes["output_dtype"] == nil,
                let inScale = scaleValues(d.scale), let outScale = scaleValues(q.inputs[1]), inScale.count == 1, inScale == outScale
            else { continue }
            let inZero = d.zeroPoint.flatMap { constants[$0] }
            let outZero = q.inputs.count > 2 && !q.inputs[2].isEmpty ? constants[q.inputs[2]] : nil
            if q.inputs.count > 2 && !q.inputs[2].isEmpty && outZero == nil { continue }
            let zeroIn = inZero.flatMap { try? Quantized.int32s($0, "zero point") } ?? [0]
            let zeroOut = outZero.flatMap { try? Quantized.int32s($0, "zero point") } ?? [0]
            let outType = outZero?.dataType ?? .uint8
            guard zeroIn.count == 1, zeroIn == zeroOut, outType == type else { continue }
            var pooled = node
            pooled.inputs = [d.quantized]
            pooled.outputs = q.outputs
            nodes[i] = pooled
            nodes[j] = nil
            report.fused["MaxPool on 8-bit values", default: 0] += 1
            candidates.append(d.index)
        }
        // Their DequantizeLinear nodes go when nothing else reads them.
        let after = self.readers()
        for d in Set(candidates) where nodes[d].map({ n in n.outputs.allSatisfy { after[$0] == nil && !graphOutputs.contains($0) } }) == true {
            nodes[d] = nil
        }
    }

    /// Rewrites node `i` into its integer operator; nil when done, else why not.
    private mutating func fuse(
        _ i: Int, _ node: Node, _ x: Dequantizer, _ w: Dequantizer, _ readers: [String: [Int]], _ producers: [String: Int]
    ) -> String? {
        guard let xType = eightBitType(x), constants[x.scale]?.count == 1, x.zeroPoint.map({ constants[$0]?.count == 1 }) ?? true else {
            return "the activation is not 8-bit per-tensor quantized"
        }
        guard let wq = constants[w.quantized], wq.dataType == .uint8 || wq.dataType == .int8 else {
            return "the weights are not constant 8-bit values"
        }
        // The QuantizeLinear after it (required, except for Gemm).
        var q: Node? = nil
        var qIndex: Int? = nil
        if let j = onlyReader(node.outputs[0], readers), let reader = nodes[j], reader.opType == "QuantizeLinear",
            OperatorRegistry.isDefaultDomain(reader.domain), reader.inputs.count >= 2, let ys = constants[reader.inputs[1]],
            ys.count == 1, ys.dataType == .float32
        {
            let yz = reader.inputs.count > 2 && !reader.inputs[2].isEmpty ? constants[reader.inputs[2]] : nil
            let hasZero = reader.inputs.count > 2 && !reader.inputs[2].isEmpty
            if (!hasZero || (yz != nil && yz!.count == 1 && (yz!.dataType == .uint8 || yz!.dataType == .int8))),
                reader.attributes["output_dtype"] == nil
            {
                q = reader
                qIndex = j
            }
        }
        guard q != nil || node.opType == "Gemm" else { return "no per-tensor 8-bit QuantizeLinear reads its output alone" }
        let xZero = zeroPointName(x, type: xType)

        var yScale = ""
        var yZero = ""
        if let q {
            yScale = q.inputs[1]
            if q.inputs.count > 2 && !q.inputs[2].isEmpty {
                yZero = q.inputs[2]
            } else {
                yZero = freshName("\(q.inputs[1])_zero_point")
                constants[yZero] = Tensor(zeros: .uint8, shape: [])
            }
        }
        var removed = [w.index]
        var fused: Node
        switch node.opType {
        case "Conv":
            let m = wq.shape.first ?? 0
            guard wq.rank >= 3, perTensorOrAxis(w, rank: wq.rank, axis: 0, count: m) else {
                return "the weights are not quantized per tensor or per output channel"
            }
            var bias: String? = nil
            if node.inputs.count > 2, !node.inputs[2].isEmpty {
                guard let b = integerBias(node.inputs[2], x: x, w: w, alpha: 1, producers) else {
                    return "its bias is not an int32 DequantizeLinear with scale x_scale * w_scale"
                }
                bias = b.quantized
                removed.append(b.index)
            }
            guard q != nil else { return "no QuantizeLinear after it" }
            let wZero = zeroPointName(w, type: wq.dataType)
            fused = Node(
                name: node.name, opType: "QLinearConv",
                inputs: [x.quantized, x.scale, xZero, w.quantized, w.scale, wZero, yScale, yZero] + (bias.map { [$0] } ?? []),
                outputs: q!.outputs, attributes: node.attributes)
        case "MatMul":
            guard wq.rank == 2, perTensorOrAxis(w, rank: 2, axis: 1, count: wq.shape[1]) else {
                return "the weights are not 2-D and quantized per tensor or per column"
            }
            let wZero = zeroPointName(w, type: wq.dataType)
            fused = Node(
                name: node.name, opType: "QLinearMatMul",
                inputs: [x.quantized, x.scale, xZero, w.quantized, w.scale, wZero, yScale, yZero], outputs: q!.outputs)
        default:  // Gemm
            var transB = 0
            if case .int(let t)? = node.attributes["transB"] { transB = t }
            var alpha: Float = 1
            if case .float(let a)? = node.attributes["alpha"] { alpha = a }
            if case .float(let b)? = node.attributes["beta"], b != 1 { return "beta is not 1" }
            guard wq.rank == 2, perTensorOrAxis(w, rank: 2, axis: transB != 0 ? 0 : 1, count: wq.shape[transB != 0 ? 0 : 1]) else {
                return "the weights are not 2-D and quantized per tensor or per column"
            }
            var c: [String] = [""]
            if node.inputs.count > 2, !node.inputs[2].isEmpty {
                guard let b = integerBias(node.inputs[2], x: x, w: w, alpha: alpha, producers) else {
                    return "its C is not an int32 DequantizeLinear with scale alpha * a_scale * b_scale"
                }
                c = [b.quantized]
                removed.append(b.index)
            }
            let wZero = zeroPointName(w, type: wq.dataType)
            var attributes: [String: Attribute] = ["transB": .int(transB), "alpha": .float(alpha)]
            attributes["transA"] = node.attributes["transA"]
            fused = Node(
                name: node.name, opType: "QGemm", domain: "com.microsoft",
                inputs: [x.quantized, x.scale, xZero, w.quantized, w.scale, wZero] + c + (q == nil ? [] : [yScale, yZero]),
                outputs: q?.outputs ?? node.outputs, attributes: attributes)
        }
        nodes[i] = fused
        if let qIndex { nodes[qIndex] = nil }
        // The weights' (and bias') DequantizeLinear go when nothing else reads them.
        let after = self.readers()
        for d in removed where nodes[d].map({ n in n.outputs.allSatisfy { after[$0] == nil && !graphOutputs.contains($0) } }) == true {
            nodes[d] = nil
        }
        return nil
    }

    /// A bias DequantizeLinear of constant int32 values with zero point 0 and scale
    /// alpha * x_scale * w_scale (per channel where w's is), as onnxruntime's quantizer writes it.
    private func integerBias(_ value: String, x: Dequantizer, w: Dequantizer, alpha: Float, _ producers: [String: Int]) -> Dequantizer? {
        guard let b = dequantizer(of: value, producers), let bq = constants[b.quantized], bq.dataType == .int32,
            let bs = scaleValues(b.scale), let xs = scaleValues(x.scale)?.first, let ws = scaleValues(w.scale)
        else { return nil }
        if let z = b.zeroPoint, let zt = constants[z], (try? Quantized.int32s(zt, "zero point"))?.allSatisfy({ $0 == 0 }) != true {
            return nil
        }
        guard bs.count == 1 || bs.count == ws.count || ws.count == 1 else { return nil }
        let n = max(bs.count, ws.count)
        for j in 0..<n {
            let want = alpha * xs * ws[ws.count == 1 ? 0 : j]
            let got = bs[bs.count == 1 ? 0 : j]
            guard abs(got - want) <= 1e-6 * abs(want) else { return nil }
        }
        return b
    }
}
