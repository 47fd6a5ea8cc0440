import Tensors

/// com.microsoft MatMulIntegerToFloat: float(A - za)(B - zb) * a_scale * b_scale[j] + bias[j], in
/// float32 as onnxruntime's scale-and-bias output processor; b's scale and zero point per tensor or
/// per column. Inputs A, B, a_scale, b_scale, a_zero_point?, b_zero_point?, bias?.
struct MatMulIntegerToFloatKernel: Kernel, ConstantAbsorbingKernel {
    let matmul: IntegerMatMul

    init(context: NodeContext) throws {
        try context.requireInputs(4, 7)
        matmul = IntegerMatMul(b: context.constantInput(1), bZeroPoint: context.constantInput(5), zeroPointGiven: context.hasInput(5))
    }

    var absorbedInputs: [Int] { matmul.prepared == nil ? [] : [1] }

    func run(_ inputs: [Tensor?]) throws -> [Tensor] {
        let a = try Check.input(inputs, 0, "A")
        let b = inputs.count > 1 ? inputs[1] : nil
        let aScale = try Quantized.scalar(Quantized.floats(Check.input(inputs, 2, "a_scale"), "a_scale"), "a_scale")
        let bScales = try Quantized.floats(Check.input(inputs, 3, "b_scale"), "b_scale")
        let za = try inputs.count > 4 && inputs[4] != nil ? Quantized.int32s(inputs[4]!, "a_zero_point") : [0]
        let zb = try inputs.count > 5 && inputs[5] != nil ? Quantized.int32s(inputs[5]!, "b_zero_point") : [0]
        let bias = try inputs.count > 6 && inputs[6] != nil ? Quantized.floats(inputs[6]!, "bias") : nil
        let n = IntegerMatMul.columns(b, matmul.prepared)
        let result = try IntegerMatMul.Result.float(scales: Requantize.multipliers(aScale, bScales, n), bias: bias)
        return [try matmul.product(a: a, aZeroPoints: za, b: b, bZeroPoints: zb, result: result)]
    }
}

/// com.microsoft DynamicQuantizeMatMul: A (float) quantized to uint8 as DynamicQuantizeLinear does
/// (over the whole tensor), then as MatMulIntegerToFloat. Inputs A, B, b_scale, b_zero_point?, bias?.
struct DynamicQuantizeMatMulKernel: Kernel, ConstantAbsorbingKernel {
    let matmul: IntegerMatMul

    init(context: NodeContext) throws {
        try context.requireInputs(3, 5)
        matmul = IntegerMatMul(b: context.constantInput(1), bZeroPoint: context.constantInput(3), zeroPointGiven: context.hasInput(3))
    }

    var absorbedInputs: [Int] { matmul.prepared == nil ? [] : [1] }

    func run(_ inputs: [Tensor?]) throws -> [Tensor] {
        let a = try Check.input(inputs, 0, "A")
        try Check.dataType(a, [.float32], "A")
        let b = inputs.count > 1 ? inputs[1] : nil
        let bScales = try Quantized.floats(Check.input(inputs, 2, "b_scale"), "b_scale")
        let zb = try inputs.count > 3 && inputs[3] != nil ? Quantized.int32s(inputs[3]!, "b_zero_point") : [0]
        let bias = try inputs.count > 4 && inputs[4] != nil ? Quantized.floats(inputs[4]!, "bias") : nil
        let qa = try Tensor(allocating: .uint8, shape: a.shape)
        var (scale, zp): (Float, Float) = (1, 0)
        if a.count > 0 {
            let pa = a.elements(as: Float.self).baseAddress!
            (scale, zp) = DynamicQuantizeLinearKernel.parameters(pa, count: a.count)
            DynamicQuantizeLinearKernel.quantize(
                pa, count: a.count, scale: scale, zeroPoint: zp, into: qa.mutableElements(as: UInt8.self).baseAddress!)
        }
        let n = IntegerMatMul.columns(b, matmul.prepared)
        let result = try IntegerMatMul.Result.float(scales: Requantize.multipliers(scale, bScales, n), bias: bias)
        return [try matmul.product(a: qa, aZeroPoints: [Int32(zp)], b: b, bZeroPoints: zb, result: result)]
    }
}

/// com.microsoft QGemm: (A - za)(B - zb) + C (int32, scale alpha * a_scale * b_scale, zero point 0),
/// times alpha * a_scale * b_scale[j]: float32 when y_scale is absent, else requantized with
/// y_scale and y_zero_point (multiplier in float32, rounded half to even). transA, transB as Gemm.
/// Inputs A, a_scale, a_zero_point, B, b_scale, b_zero_point, C?, y_scale?, y_zero_point?.
struct QGemmKernel: Kernel, ConstantAbsorbingKernel {
    let alpha: Float
    let transA: Bool
    let transB: Bool
    let prepared: QuantizedGemm?

    init(context: NodeContext) throws {
        try context.requireInputs(6, 9)
        alpha = try context.float("alpha", default: 1)
        transA = try context.int("transA", default: 0) != 0
        transB = try context.int("transB", default: 0) != 0
        if let b = context.constantInput(3), let zt = context.constantInput(5), let zb = try? Quantized.int32s(zt, "b_zero_point") {
            prepared = try? QuantizedGemm(b: b, transposed: transB, zeroPoints: zb)
        } else {
            prepared = nil
        }
    }

    var absorbedInputs: [Int] { prepared == nil ? [] : [3] }

    func run(_ inputs: [Tensor?]) throws -> [Tensor] {
        var a = try Check.input(inputs, 0, "A")
        guard a.rank == 2, let ea = QuantizedGemm.Element(a.dataType) else {
            throw KernelError.failed("A must be a 2-D uint8 or int8 tensor, got \(a.dataType.v2Name) \(a.shape)")
        }
        if transA { a = try Self.transposed(a) }
        let aScale = try Quantized.scalar(Quantized.floats(Check.input(inputs, 1, "a_scale"), "a_scale"), "a_scale")
        let za = try Quantized.int32s(Check.input(inputs, 2, "a_zero_point"), "a_zero_point")
        let bScales = try Quantized.floats(Check.input(inputs, 4, "b_scale"), "b_scale")
        let gemm: QuantizedGemm
        if let b = inputs.count > 3 ? inputs[3] : nil {
            let zb = try Quantized.int32s(Check.input(inputs, 5, "b_zero_point"), "b_zero_point")
            gemm = try QuantizedGemm(b: b, transposed: transB, zeroPoints: zb)
        } else if let prepared {
            gemm = prepared
        } else {
            throw KernelError.failed("required input 3 (B) is missing")
        }
        let (m, k, n) = (a.shape[0], a.shape[1], gemm.n)
        guard k == gemm.k else { throw KernelError.shape("A \(a.shape) has \(k) columns, B has \(gemm.k) rows") }
        let acc = try Tensor(allocating: .int32, shape: [m, n])
        if acc.count > 0 {
            try gemm.multiply(
                a: a.rawBytes.baseAddress!, element: ea, m: m, lda: k, aZeroPoints: za,
                into: acc.mutableElements(as: Int32.self).baseAddress!, ldc: n)
        }
        if inputs.count > 6, let c = inputs[6], acc.count > 0 {
            try Check.dataType(c, [.int32], "C")
            guard let shape = Broadcast.shape([c.shape, [m, n]]), shape == [m, n] else {
                throw KernelError.shape("C of shape \(c.shape) does not broadcast to [\(m), \(n)]")
            }
            let strides = Broadcast.strides(of: c.shape, broadcastTo: [m, n])
            let pc = c.elements(as: Int32.self).baseAddress!
            let py = acc.mutableElements(as: Int32.self).baseAddress!
            for i in 0..<m { for j in 0..<n { py[i * n + j] &+= pc[i * strides[0] + j * strides[1]] } }
        }
        let scales = try Requantize.multipliers(aScale * alpha, bScales, n)
        guard inputs.count > 7, let ys = inputs[7] else {
            return [try Requantize.toFloat(acc, scales: scales, bias: nil)]
        }
        let yScale = try Quantized.scalar(Quantized.floats(ys, "y_scale"), "y_scale")
        let yType = inputs.count > 8 ? inputs[8]?.dataType ?? .uint8 : .uint8
        let yZero = try inputs.count > 8 && inputs[8] != nil ? Quantized.scalar(Quantized.int32s(inputs[8]!, "y_zero_point"), "y_zero_point") : 0
        guard let (lo, hi) = Quantized.range(yType) else { throw KernelError.failed("y_zero_point has type \(yType.v2Name); expected UINT8 or INT8") }
        let y = try Tensor(allocating: yType, shape: [m, n])
        guard y.count > 0 else { return [y] }
        let pa = acc.elements(as: Int32.self).baseAddress!
        let py = y.mutableBytes.baseAddress!
        let z = Float(yZero)
        for i in 0..<y.count {
            let v = Float(pa[i]) * (scales[i % n] / yScale)
            Quantized.store(Quantized.saturate(v, lo - z, hi - z) + z, py, i, yType)
        }
        return [y]
    }

    static func transposed(_ a: Tensor) throws -> Tensor {
        let (r, c) = (a.shape[0], a.shape[1])
        let t = try Tensor(allocating: a.dataType, shape: [c, r])
        guard t.count > 0 else { return t }
        let src = a.rawBytes.bindMemory(to: UInt8.self).baseAddress!
        let dst = t.mutableBytes.bindMemory(to: UInt8.self).baseAddress!
        for i in 0..<r { for j in 0..<c { dst[j * r + i] = src[i * c + j] } }
        return t
    }
}

/// com.microsoft MatMulNBits: Y = A B + bias with B [K, N] held as `bits`-bit (2, 4 or 8) unsigned
/// values in blocks of `block_size` along K: input B [N, blocks, block_size * bits / 8] packed low
/// bits first, scales [N * blocks], zero points packed the same way (uint8) or as floats, default
/// 2^(bits - 1). B is dequantized once to float32 (at load when constant) and multiplied with sgemm,
/// as onnxruntime does at accuracy_level 0-1 (levels 2-4 let onnxruntime quantize A as well: its
/// results then differ from this by A's rounding). g_idx (act-order) is not supported.
struct MatMulNBitsKernel: Kernel, ConstantAbsorbingKernel {
    let k: Int
    let n: Int
    let bits: Int
    let blockSize: Int
    /// Dequantized B, stored [N, K] (one row per output column), when B, scales and zero points are constant.
    let weights: [Float]?

    init(context: NodeContext) throws {
        try context.requireInputs(3, 6)
        k = try context.int("K") ?? -1
        n = try context.int("N") ?? -1
        bits = try context.int("bits", default: 4)
        blockSize = try context.int("block_size") ?? -1
        guard k > 0, n > 0, [2, 4, 8].contains(bits), blockSize >= 16, blockSize & (blockSize - 1) == 0 else {
            throw context.invalid("needs K, N > 0, bits 2, 4 or 8 and a block_size that is a power of 2 from 16 (got K \(k), N \(n), bits \(bits), block_size \(blockSize))")
        }
        if context.hasInput(4) { throw context.unsupported() }
        let zpKnown = !context.hasInput(3) || context.constantInput(3) != nil
        if let b = context.constantInput(1), let s = context.constantInput(2), zpKnown {
            weights = try? Self.dequantize(b, s, context.constantInput(3), k: k, n: n, bits: bits, blockSize: blockSize)
        } else {
            weights = nil
        }
        absorbedInputs = weights == nil ? [] : [1, 2, 3].filter { context.hasInput($0) }
    }

    let absorbedInputs: [Int]

    /// B as float32 [N, K].
    static func dequantize(_ b: Tensor, _ scales: Tensor, _ zeros: Tensor?, k: Int, n: Int, bits: Int, blockSize: Int) throws -> [Float] {
        let blocks = (k + blockSize - 1) / blockSize
        let blob = blockSize * bits / 8
        guard b.dataType == .uint8, b.count == n * blocks * blob else {
            throw KernelError.shape("B has \(b.dataType.v2Name) \(b.shape); MatMulNBits needs uint8 [\(n), \(blocks), \(blob)]")
        }
        let s = try Quantized.floats(scales, "scales")
        guard s.count == n * blocks else { throw KernelError.shape("scales has \(s.count) values, needs \(n * blocks)") }
        let perByte = 8 / bits
        let mask = (1 << bits) - 1
        let zpBytes = (blocks * bits + 7) / 8
        var floatZeros: [Float]? = nil
        var packedZeros: [UInt8]? = nil
        if let zeros {
            if zeros.dataType == .uint8 {
                guard zeros.count == n * zpBytes else { throw KernelError.shape("zero_points has \(zeros.count) bytes, needs \(n * zpBytes)") }
                packedZeros = Array(zeros.elements(as: UInt8.self))
            } else {
                let z = try Quantized.floats(zeros, "zero_points")
                guard z.count == n * blocks else { throw KernelError.shape("zero_points has \(z.count) values, needs \(n * blocks)") }
                floatZeros = z
            }
        }
        let q = b.elements(as: UInt8.self)
        var w = [Float](repeating: 0, count: n * k)
        let defaultZero = Float(1 << (bits - 1))
        for col in 0..<n {
            for blk in 0..<blocks {
                let scale = s[col * blocks + blk]
                var zero = defaultZero
                if let packedZeros {
                    let index = blk * bits
                    zero = Float((Int(packedZeros[col * zpBytes + index / 8]) >> (index % 8)) & mask)
                } else if let floatZeros {
                    zero = floatZeros[col * blocks + blk]
                }
                let base = (col * blocks + blk) * blob
                for i in 0..<min(blockSize, k - blk * blockSize) {
                    let byte = Int(q[base + i / perByte])
                    let v = Float((byte >> ((i % perByte) * bits)) & mask)
                    w[col * k + blk * blockSize + i] = (v - zero) * scale
                }
            }
        }
        return w
    }

    func run(_ inputs: [Tensor?]) throws -> [Tensor] {
        let a = try Check.input(inputs, 0, "A")
        try Check.dataType(a, [.float32], "A")
        guard a.rank >= 1, a.shape[a.rank - 1] == k else {
            throw KernelError.shape("A of shape \(a.shape) must end in K = \(k)")
        }
        let w: [Float]
        if let weights {
            w = weights
        } else {
            w = try Self.dequantize(
                Check.input(inputs, 1, "B"), Check.input(inputs, 2, "scales"), inputs.count > 3 ? inputs[3] : nil,
                k: k, n: n, bits: bits, blockSize: blockSize)
        }
        let y = try Tensor(allocating: .float32, shape: Array(a.shape.dropLast()) + [n])
        let rows = a.count / k
        guard y.count > 0 else { return [y] }
        let py = y.mutableElements(as: Float.self).baseAddress!
        w.withUnsafeBufferPointer { pw in
            BLAS.gemm(
                transA: false, transB: true, m: rows, n: n, k: k, alpha: 1, a: a.elements(as: Float.self).baseAddress!, lda: k,
                b: pw.baseAddress!, ldb: k, beta: 0, c: py, ldc: n)
        }
        if inputs.count > 5, let bias = inputs[5] {
            let pb = try Quantized.floats(bias, "bias")
            guard pb.count == n else { throw KernelError.shape("bias has \(pb.count) values for N = \(n)") }
            for r in 0..<rows { for j in 0..<n { py[r * n + j] += pb[j] } }
        }
        return [y]
    }
}
