import Tensors

/// The int32 product (A - za)(B - zb) with numpy `matmul` shapes (batch dimensions broadcast, 1-D
/// operands promoted), over `QuantizedGemm`. A constant 2-D B with a constant zero point is prepared
/// once at load (`prepared`); its kernel then absorbs B (the plan passes nil for it).
///
/// A value built by a kernel's init; immutable, shared by the kernel's concurrent runs.
struct IntegerMatMul: Sendable {
    let prepared: QuantizedGemm?

    /// `b` and `bZeroPoint` as known at load (nil when computed); `zeroPointGiven`: whether the node
    /// lists a B zero point at all.
    init(b: Tensor?, bZeroPoint: Tensor?, zeroPointGiven: Bool) {
        guard let b, b.rank == 2, QuantizedGemm.Element(b.dataType) != nil, b.count > 0 else { prepared = nil; return }
        var zb: [Int32] = [0]
        if zeroPointGiven {
            guard let t = bZeroPoint, let values = try? Quantized.int32s(t, "B's zero point") else { prepared = nil; return }
            zb = values
        }
        prepared = try? QuantizedGemm(b: b, transposed: false, zeroPoints: zb)
    }

    /// What `product` stores: the int32 sums, or the sums turned into float32 or 8-bit values in the
    /// integer kernels' epilogue (`IntegerGemm.Output`), so no int32 tensor is written and read again.
    enum Result {
        case int32
        /// Float(acc) * scales[j] + bias[j] (N scales; bias nil or N values): MatMulIntegerToFloat.
        case float(scales: [Float], bias: [Float]?)
        /// saturate(round_half_even(Float(acc) * multipliers[j]) + zeroPoint) into `type` (N
        /// multipliers): QLinearMatMul. 16-bit types go through the int32 sums and `Requantize`.
        case quantized(type: DataType, multipliers: [Float], zeroPoint: Int32)
    }

    /// The product stored as `result` says; `b` nil means the prepared B. Zero points: A's 1 or M
    /// values (per row), B's 1 or N (per column); ignored for a prepared B.
    func product(a: Tensor, aZeroPoints: [Int32], b: Tensor?, bZeroPoints: [Int32], result: Result) throws -> Tensor {
        let n = Self.columns(b, prepared)
        switch result {
        case .int32:
            return try product(a: a, aZeroPoints: aZeroPoints, b: b, bZeroPoints: bZeroPoints)
        case .float(let scales, let bias):
            guard scales.count == n, bias.map({ $0.count == n }) ?? true else {
                throw KernelError.shape("\(scales.count) scales and \(bias?.count ?? 0) bias values for \(n) columns")
            }
            if (a.shape.last ?? 0) == 0 {
                return try Requantize.toFloat(product(a: a, aZeroPoints: aZeroPoints, b: b, bZeroPoints: bZeroPoints), scales: scales, bias: bias)
            }
            return try scales.withUnsafeBufferPointer { s in
                try (bias ?? []).withUnsafeBufferPointer { bb in
                    try product(a: a, aZeroPoints: aZeroPoints, b: b, bZeroPoints: bZeroPoints, type: .float32) { c, offset, ldc in
                        .float(c.assumingMemoryBound(to: Float.self) + offset, rowStride: ldc, scale: 1, columnScales: s.baseAddress!,
                               bias: bias == nil ? nil : bb.baseAddress!)
                    }
                }
            }
        case .quantized(let type, let multipliers, let zeroPoint):
            guard multipliers.count == n else { throw KernelError.shape("\(multipliers.count) multipliers for \(n) columns") }
            guard type == .uint8 || type == .int8, (a.shape.last ?? 0) > 0 else {
                let acc = try product(a: a, aZeroPoints: aZeroPoints, b: b, bZeroPoints: bZeroPoints)
                return try Requantize.toQuantized(acc, multipliers: multipliers, zeroPoint: Float(zeroPoint), type: type)
            }
            return try multipliers.withUnsafeBufferPointer { s in
                try product(a: a, aZeroPoints: aZeroPoints, b: b, bZeroPoints: bZeroPoints, type: type) { c, offset, ldc in
                    .quantized(c + offset, rowStride: ldc, signed: type == .int8, scale: 1, columnScales: s.baseAddress!,
                               zeroPoint: zeroPoint, bias: nil, range: nil)
                }
            }
        }
    }

    /// The int32 product; `b` nil means the prepared B. Zero points: A's 1 or M values (per row),
    /// B's 1 or N (per column); ignored for a prepared B.
    func product(a: Tensor, aZeroPoints: [Int32], b: Tensor?, bZeroPoints: [Int32]) throws -> Tensor {
        try product(a: a, aZeroPoints: aZeroPoints, b: b, bZeroPoints: bZeroPoints, type: .int32) { c, offset, ldc in
            .int32(c.assumingMemoryBound(to: Int32.self) + offset, rowStride: ldc)
        }
    }

    /// The product into a new tensor of `type`, each GEMM call storing through `output(base, element
    /// offset of its first row, row stride)`, whose epilogue must write `type`.
    private func product(
        a: Tensor, aZeroPoints: [Int32], b: Tensor?, bZeroPoints: [Int32], type: DataType,
        output: (UnsafeMutableRawPointer, Int, Int) -> IntegerGemm.Output
    ) throws -> Tensor {
        guard let ea = QuantizedGemm.Element(a.dataType) else {
            throw KernelError.failed("A has type \(a.dataType.v2Name); this kernel supports UINT8, INT8")
        }
        let gemm = b == nil ? prepared : nil
        guard b != nil || gemm != nil else { throw KernelError.failed("required input B is missing") }
        let bStored = b?.shape ?? [gemm!.k, gemm!.n]
        guard a.rank >= 1, bStored.count >= 1 else {
            throw KernelError.shape("a matrix product needs operands of rank 1 or more, got \(a.shape) and \(bStored)")
        }
        let aShape = a.rank == 1 ? [1, a.shape[0]] : a.shape
        let bShape = bStored.count == 1 ? [bStored[0], 1] : bStored
        let m = aShape[aShape.count - 2]
        let k = aShape[aShape.count - 1]
        let n = bShape[bShape.count - 1]
        guard bShape[bShape.count - 2] == k else {
            throw KernelError.shape("inner dimensions differ: A \(a.shape) has \(k) columns, B \(bStored) has \(bShape[bShape.count - 2]) rows")
        }
        let aBatch = Array(aShape.dropLast(2))
        let bBatch = Array(bShape.dropLast(2))
        guard let batch = Broadcast.shape([aBatch, bBatch]) else {
            throw KernelError.shape("batch dimensions \(aBatch) and \(bBatch) do not broadcast")
        }
        var outShape = batch + [m, n]
        if a.rank == 1 { outShape.remove(at: outShape.count - 2) }
        if bStored.count == 1 { outShape.removeLast() }
        guard Tensor.checkedElementCount(outShape) != nil else { throw KernelError.shape("the product's shape \(outShape) is too large") }
        guard aZeroPoints.count == 1 || aZeroPoints.count == m else {
            throw KernelError.shape("A's zero point has \(aZeroPoints.count) values; it takes 1 or one per row (\(m))")
        }
        let y = try Tensor(allocating: type, shape: outShape)
        let batches = Tensor.elementCount(batch)
        guard y.count > 0 else { return y }
        let pa = a.rawBytes.baseAddress!
        let pc = y.mutableBytes.baseAddress!
        if k == 0 {
            guard type == .int32 else { throw KernelError.failed("an empty product has no epilogue output") }
            pc.initializeMemory(as: Int32.self, repeating: 0, count: y.count)
            return y
        }
        // B 2-D: A's batches fold into its rows.
        if bBatch.isEmpty && aBatch == batch {
            let g = try gemm ?? QuantizedGemm(b: b!.reshaped([k, n]), transposed: false, zeroPoints: bZeroPoints)
            let rows = batches * m
            let za = aZeroPoints.count == 1 || batches == 1 ? aZeroPoints : Array((0..<batches).map { _ in aZeroPoints }.joined())
            try g.multiply(a: pa, element: ea, m: rows, lda: k, aZeroPoints: za, output: output(pc, 0, n))
            return y
        }
        guard let b else { throw KernelError.failed("a prepared B does not broadcast over A's batch \(aBatch)") }
        guard QuantizedGemm.Element(b.dataType) != nil else {
            throw KernelError.failed("B has type \(b.dataType.v2Name); this kernel supports UINT8, INT8")
        }
        let aStrides = Broadcast.strides(of: aBatch, broadcastTo: batch)
        let bStrides = Broadcast.strides(of: bBatch, broadcastTo: batch)
        let pb = b.rawBytes.baseAddress!
        var index = [Int](repeating: 0, count: batch.count)
        for t in 0..<batches {
            var (ao, bo) = (0, 0)
            for d in 0..<batch.count {
                ao += index[d] * aStrides[d]
                bo += index[d] * bStrides[d]
            }
            let g = try QuantizedGemm(
                b: pb + bo * k * n, element: QuantizedGemm.Element(b.dataType)!, k: k, n: n, transposed: false,
                zeroPoints: bZeroPoints)
            try g.multiply(a: pa + ao * m * k, element: ea, m: m, lda: k, aZeroPoints: aZeroPoints, output: output(pc, t * m * n, n))
            var d = batch.count - 1
            while d >= 0 {
                index[d] += 1
                if index[d] < batch[d] { break }
                index[d] = 0
                d -= 1
            }
        }
        return y
    }

    /// N, the product's columns: from a prepared B, else from B's last dimension.
    static func columns(_ b: Tensor?, _ prepared: QuantizedGemm?) -> Int {
        if let b { return b.rank == 1 ? 1 : b.shape[b.rank - 1] }
        return prepared?.n ?? 0
    }
}

/// MatMulInteger (opset 10): int32 (A - a_zero_point)(B - b_zero_point), u8/s8 operands in every
/// combination; A's zero point per tensor or per row, B's per tensor or per column.
struct MatMulIntegerKernel: Kernel, ConstantAbsorbingKernel {
    let matmul: IntegerMatMul

    init(context: NodeContext) throws {
        try context.requireInputs(2, 4)
        matmul = IntegerMatMul(b: context.constantInput(1), bZeroPoint: context.constantInput(3), zeroPointGiven: context.hasInput(3))
    }

    var absorbedInputs: [Int] { matmul.prepared == nil ? [] : [1] }

    func run(_ inputs: [Tensor?]) throws -> [Tensor] {
        let a = try Check.input(inputs, 0, "A")
        let b = inputs.count > 1 ? inputs[1] : nil
        let za = try inputs.count > 2 && inputs[2] != nil ? Quantized.int32s(inputs[2]!, "a_zero_point") : [0]
        let zb = try inputs.count > 3 && inputs[3] != nil ? Quantized.int32s(inputs[3]!, "b_zero_point") : [0]
        return [try matmul.product(a: a, aZeroPoints: za, b: b, bZeroPoints: zb)]
    }
}

/// QLinearMatMul (opsets 10, 21): y = saturate(round((A - za)(B - zb) * a_scale * b_scale / y_scale) + y_zero_point);
/// b_scale and b_zero_point per tensor or per column. The multiplier and its product with the int32
/// sum are float32, as onnxruntime's requantization (onnx's reference multiplies in double).
struct QLinearMatMulKernel: Kernel, ConstantAbsorbingKernel {
    let matmul: IntegerMatMul
    /// The zero points and the requantization (N multipliers) when every input but A is a constant
    /// (the usual case: computed once here, as QLinearConv's); nil: computed per run.
    let constantParameters: Parameters?

    typealias Parameters = (za: [Int32], zb: [Int32], result: IntegerMatMul.Result)

    init(context: NodeContext) throws {
        try context.requireInputs(8)
        matmul = IntegerMatMul(b: context.constantInput(3), bZeroPoint: context.constantInput(5), zeroPointGiven: true)
        let constants = (0..<8).map(context.constantInput)
        if constants[3] != nil || matmul.prepared != nil, [1, 2, 4, 5, 6, 7].allSatisfy({ constants[$0] != nil }) {
            constantParameters = try Self.parameters(constants, n: IntegerMatMul.columns(constants[3], matmul.prepared))
        } else {
            constantParameters = nil
        }
    }

    var absorbedInputs: [Int] { matmul.prepared == nil ? [] : [3] }

    func run(_ inputs: [Tensor?]) throws -> [Tensor] {
        let a = try Check.input(inputs, 0, "a")
        let b = inputs.count > 3 ? inputs[3] : nil
        let p = try constantParameters ?? Self.parameters(inputs, n: IntegerMatMul.columns(b, matmul.prepared))
        return [try matmul.product(a: a, aZeroPoints: p.za, b: b, bZeroPoints: p.zb, result: p.result)]
    }

    /// The zero points and the requantization of the product's `n` columns from the inputs.
    static func parameters(_ inputs: [Tensor?], n: Int) throws -> Parameters {
        let aScale = try Quantized.scalar(Quantized.floats(Check.input(inputs, 1, "a_scale"), "a_scale"), "a_scale")
        let za = try Quantized.int32s(Check.input(inputs, 2, "a_zero_point"), "a_zero_point")
        let bScales = try Quantized.floats(Check.input(inputs, 4, "b_scale"), "b_scale")
        let zb = try Quantized.int32s(Check.input(inputs, 5, "b_zero_point"), "b_zero_point")
        let yScale = try Quantized.scalar(Quantized.floats(Check.input(inputs, 6, "y_scale"), "y_scale"), "y_scale")
        let yZeroTensor = try Check.input(inputs, 7, "y_zero_point")
        let yZero = try Quantized.scalar(Quantized.int32s(yZeroTensor, "y_zero_point"), "y_zero_point")
        let multipliers = try Requantize.multipliers(aScale, bScales, n, divisor: yScale)
        return (za, zb, .quantized(type: yZeroTensor.dataType, multipliers: multipliers, zeroPoint: yZero))
    }
}

/// Turning int32 sums into quantized or float values, column by column (the last dimension).
enum Requantize {
    /// a_scale * b_scale[j] (/ divisor) for each of `n` columns, in float32.
    static func multipliers(_ aScale: Float, _ bScales: [Float], _ n: Int, divisor: Float? = nil) throws -> [Float] {
        guard bScales.count == 1 || bScales.count == n else {
            throw KernelError.shape("b_scale has \(bScales.count) values; it takes 1 or one per column (\(n))")
        }
        return (0..<n).map { j in
            let s = aScale * bScales[bScales.count == 1 ? 0 : j]
            return divisor.map { s / $0 } ?? s
        }
    }

    /// saturate(round(acc * multiplier[j]) + zeroPoint) into `type` (u8/s8/u16/s16), rows of n = multipliers.count.
    static func toQuantized(_ acc: Tensor, multipliers: [Float], zeroPoint: Float, type: DataType) throws -> Tensor {
        guard let (lo, hi) = Quantized.range(type) else {
            throw KernelError.failed("the output zero point has type \(type.v2Name); expected UINT8, INT8, UINT16 or INT16")
        }
        let y = try Tensor(allocating: type, shape: acc.shape)
        let n = multipliers.count
        guard y.count > 0, n > 0 else { return y }
        let pa = acc.elements(as: Int32.self).baseAddress!
        let py = y.mutableBytes.baseAddress!
        let z = zeroPoint
        for row in stride(from: 0, to: y.count, by: n) {
            for j in 0..<n {
                let v = Quantized.saturate(Float(pa[row + j]) * multipliers[j], lo - z, hi - z) + z
                Quantized.store(v, py, row + j, type)
            }
        }
        return y
    }

    /// float(acc) * scale[j] + bias[j] in float32 (MatMulIntegerToFloat, DynamicQuantizeMatMul).
    static func toFloat(_ acc: Tensor, scales: [Float], bias: [Float]?) throws -> Tensor {
        let n = scales.count
        if let bias, bias.count != n { throw KernelError.shape("bias has \(bias.count) values for \(n) columns") }
        let y = try Tensor(allocating: .float32, shape: acc.shape)
        guard y.count > 0, n > 0 else { return y }
        let pa = acc.elements(as: Int32.self).baseAddress!
        let py = y.mutableElements(as: Float.self).baseAddress!
        let b = bias ?? [Float](repeating: 0, count: n)
        for row in stride(from: 0, to: y.count, by: n) {
            for j in 0..<n { py[row + j] = Float(pa[row + j]) * scales[j] + b[j] }
        }
        return y
    }
}
