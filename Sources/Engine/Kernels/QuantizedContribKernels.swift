import Tensors

// The com.microsoft operators onnxruntime's quantizer emits (ContribOperators.md), each following
// onnxruntime's CPU kernel: float32 requantization (round half to even) where it uses MLAS's
// float paths, lookup tables of 256 entries for the unary ones.

/// The scale and zero point of one quantized operand of a com.microsoft operator (the zero point
/// optional, 0 when absent).
struct QuantParameter {
    let scale: Float
    let zeroPoint: Int32

    init(_ inputs: [Tensor?], scale: Int, zeroPoint: Int?, _ what: String) throws {
        self.scale = try Quantized.scalar(Quantized.floats(Check.input(inputs, scale, "\(what)_scale"), "\(what)_scale"), "\(what)_scale")
        if let zeroPoint, zeroPoint < inputs.count, let t = inputs[zeroPoint] {
            self.zeroPoint = try Quantized.scalar(Quantized.int32s(t, "\(what)_zero_point"), "\(what)_zero_point")
        } else {
            self.zeroPoint = 0
        }
    }

    /// The 256 outputs of `f` on the dequantized values of an 8-bit `type`, quantized with `output`
    /// (index: the stored byte, as UInt8 bit pattern).
    func table(_ type: DataType, to output: QuantParameter, _ f: (Float) -> Float) throws -> [UInt8] {
        guard let (lo, hi) = Quantized.range(type), type == .uint8 || type == .int8 else {
            throw KernelError.failed("the operand has type \(type.v2Name); this kernel supports UINT8, INT8")
        }
        let z = Float(output.zeroPoint)
        return (0..<256).map { byte in
            let q = type == .uint8 ? byte : Int(Int8(truncatingIfNeeded: byte))
            let v = f(Float(q - Int(zeroPoint)) * scale)
            let r = Quantized.saturate(v / output.scale, lo - z, hi - z) + z
            return type == .uint8 ? UInt8(r) : UInt8(bitPattern: Int8(r))
        }
    }
}

/// Maps every byte of an 8-bit tensor through a table into a tensor of the same type and shape.
func lookUp(_ x: Tensor, _ table: [UInt8], shape: [Int]? = nil) throws -> Tensor {
    let y = try Tensor(allocating: x.dataType, shape: shape ?? x.shape)
    guard x.count > 0 else { return y }
    let px = x.rawBytes.bindMemory(to: UInt8.self).baseAddress!
    let py = y.mutableBytes.bindMemory(to: UInt8.self).baseAddress!
    for i in 0..<x.count { py[i] = table[Int(px[i])] }
    return y
}

/// com.microsoft QLinearSigmoid and QLinearLeakyRelu: the function on the dequantized input,
/// requantized, through a 256-entry table.
struct QLinearUnaryKernel: Kernel {
    enum Op: String { case sigmoid = "QLinearSigmoid", leakyRelu = "QLinearLeakyRelu" }
    let op: Op
    let alpha: Float

    init(context: NodeContext, op: Op) throws {
        try context.requireInputs(4, 5)
        self.op = op
        alpha = try context.float("alpha", default: 0.01)
    }

    func run(_ inputs: [Tensor?]) throws -> [Tensor] {
        let x = try Check.input(inputs, 0, "X")
        let px = try QuantParameter(inputs, scale: 1, zeroPoint: 2, "X")
        let py = try QuantParameter(inputs, scale: 3, zeroPoint: 4, "Y")
        let alpha = self.alpha
        let table = try op == .sigmoid
            ? px.table(x.dataType, to: py) { 1 / (1 + (-$0).exp) }
            : px.table(x.dataType, to: py) { $0 >= 0 ? $0 : alpha * $0 }
        return [try lookUp(x, table)]
    }
}

extension Float {
    fileprivate var exp: Float { Float(Glibc.expf(self)) }
}

/// com.microsoft QLinearAdd and QLinearMul: C = quantize(dequantize(A) op dequantize(B)) with
/// numpy broadcasting, computed as onnxruntime's MLAS does in float32: for Add
/// (A - za) * sa/sc + (B - zb) * sb/sc, for Mul (A - za)(B - zb) * sa*sb/sc, rounded half to even,
/// plus zc.
struct QLinearBinaryKernel: Kernel {
    enum Op: String { case add = "QLinearAdd", mul = "QLinearMul" }
    let op: Op

    init(context: NodeContext, op: Op) throws {
        try context.requireInputs(7, 8)
        self.op = op
    }

    func run(_ inputs: [Tensor?]) throws -> [Tensor] {
        let a = try Check.input(inputs, 0, "A")
        let b = try Check.input(inputs, 3, "B")
        try Check.dataType(a, [.uint8, .int8], "A")
        try Check.dataType(b, [a.dataType], "B")
        let pa = try QuantParameter(inputs, scale: 1, zeroPoint: 2, "A")
        let pb = try QuantParameter(inputs, scale: 4, zeroPoint: 5, "B")
        let pc = try QuantParameter(inputs, scale: 6, zeroPoint: 7, "C")
        guard let shape = Broadcast.shape([a.shape, b.shape]) else {
            throw KernelError.shape("A \(a.shape) and B \(b.shape) do not broadcast")
        }
        let (lo, hi) = Quantized.range(a.dataType)!
        let y = try Tensor(allocating: a.dataType, shape: shape)
        guard y.count > 0 else { return [y] }
        let sa = Broadcast.strides(of: a.shape, broadcastTo: shape)
        let sb = Broadcast.strides(of: b.shape, broadcastTo: shape)
        let (xa, xb) = (a.rawBytes.baseAddress!, b.rawBytes.baseAddress!)
        let py = y.mutableBytes.baseAddress!
        let type = a.dataType
        let (za, zb, zc) = (Float(pa.zeroPoint), Float(pb.zeroPoint), Float(pc.zeroPoint))
        let ratioA = pa.scale / pc.scale
        let ratioB = pb.scale / pc.scale
        let ratio = pa.scale * pb.scale / pc.scale
        if a.shape == b.shape {
            // Same shapes (a residual Add): one vectorizable loop, the same arithmetic, split over the budget.
            let (op, signed, count) = (op, type == .int8, y.count)
            Parallel.forEach((count + 4095) / 4096, costPerItem: 4096 * 4, minimumWork: 262_144) { range in
                let start = range.lowerBound * 4096
                let n = min(count, range.upperBound * 4096) - start
                if signed {
                    Self.sameShape(xa.assumingMemoryBound(to: Int8.self) + start, xb.assumingMemoryBound(to: Int8.self) + start, n,
                                   op: op, za: za, zb: zb, ratioA: ratioA, ratioB: ratioB, ratio: ratio, zc: zc, lo: lo, hi: hi,
                                   into: py + start)
                } else {
                    Self.sameShape(xa.assumingMemoryBound(to: UInt8.self) + start, xb.assumingMemoryBound(to: UInt8.self) + start, n,
                                   op: op, za: za, zb: zb, ratioA: ratioA, ratioB: ratioB, ratio: ratio, zc: zc, lo: lo, hi: hi,
                                   into: py + start)
                }
            }
            return [y]
        }
        var index = [Int](repeating: 0, count: shape.count)
        var (ia, ib) = (0, 0)
        for i in 0..<y.count {
            let va = Float(Quantized.load(xa, ia, type)) - za
            let vb = Float(Quantized.load(xb, ib, type)) - zb
            let v = op == .add ? va * ratioA + vb * ratioB : va * vb * ratio
            Quantized.store(Quantized.saturate(v, lo - zc, hi - zc) + zc, py, i, type)
            var d = shape.count - 1
            while d >= 0 {
                index[d] += 1
                ia += sa[d]
                ib += sb[d]
                if index[d] < shape[d] { break }
                ia -= sa[d] * shape[d]
                ib -= sb[d] * shape[d]
                index[d] = 0
                d -= 1
            }
        }
        return [y]
    }
}

extension QLinearBinaryKernel {
    /// `n` elements of same-shaped operands: the general loop's arithmetic (float32 products of the
    /// centred values with the scale ratios, clamped to the type's bounds, rounded half to even
    /// with the 1.5 x 2^23 trick as `Quantized.quantize8` does), in a loop the compiler vectorizes.
    @inline(__always)
    static func sameShape<T: FixedWidthInteger>(
        _ a: UnsafePointer<T>, _ b: UnsafePointer<T>, _ n: Int, op: Op, za: Float, zb: Float, ratioA: Float, ratioB: Float,
        ratio: Float, zc: Float, lo: Float, hi: Float, into out: UnsafeMutableRawPointer
    ) {
        let (l, h) = (lo - zc, hi - zc)
        let zi = UInt32(bitPattern: Int32(zc))
        let o = out.assumingMemoryBound(to: UInt8.self)
        if op == .add {
            for i in 0..<n {
                var v = (Float(Int32(truncatingIfNeeded: a[i])) - za) * ratioA + (Float(Int32(truncatingIfNeeded: b[i])) - zb) * ratioB
                v = v >= l ? v : l
                v = v <= h ? v : h
                o[i] = UInt8(truncatingIfNeeded: (v + 12_582_912).bitPattern &+ zi)
            }
        } else {
            for i in 0..<n {
                var v = (Float(Int32(truncatingIfNeeded: a[i])) - za) * (Float(Int32(truncatingIfNeeded: b[i])) - zb) * ratio
                v = v >= l ? v : l
                v = v <= h ? v : h
                o[i] = UInt8(truncatingIfNeeded: (v + 12_582_912).bitPattern &+ zi)
            }
        }
    }
}

/// com.microsoft QLinearGlobalAveragePool: the mean over the spatial dimensions (NCHW, or NHWC with
/// `channels_last`), as onnxruntime computes it: the int32 sum minus zx * size, times
/// sx / (sy * size) in float32, rounded half to even, plus zy.
struct QLinearGlobalAveragePoolKernel: Kernel {
    let channelsLast: Bool

    init(context: NodeContext) throws {
        try context.requireInputs(5)
        channelsLast = try context.int("channels_last", default: 0) != 0
    }

    func run(_ inputs: [Tensor?]) throws -> [Tensor] {
        let x = try Check.input(inputs, 0, "X")
        try Check.dataType(x, [.uint8, .int8], "X")
        let px = try QuantParameter(inputs, scale: 1, zeroPoint: 2, "x")
        let py = try QuantParameter(inputs, scale: 3, zeroPoint: 4, "y")
        guard x.rank >= 3 else { throw KernelError.shape("X of shape \(x.shape) needs rank 3 or more") }
        let (n, c) = (x.shape[0], channelsLast ? x.shape[x.rank - 1] : x.shape[1])
        let size = channelsLast ? Tensor.elementCount(Array(x.shape[1..<(x.rank - 1)])) : Tensor.elementCount(Array(x.shape[2...]))
        var outShape = [Int](repeating: 1, count: x.rank)
        outShape[0] = n
        outShape[channelsLast ? x.rank - 1 : 1] = c
        let y = try Tensor(allocating: x.dataType, shape: outShape)
        guard y.count > 0 else { return [y] }
        let (lo, hi) = Quantized.range(x.dataType)!
        let scale = px.scale / (py.scale * Float(size))
        let bias = -Int(px.zeroPoint) * size
        let zy = Float(py.zeroPoint)
        let src = x.rawBytes.baseAddress!
        let dst = y.mutableBytes.baseAddress!
        for b in 0..<n {
            for ch in 0..<c {
                var sum = 0
                for s in 0..<size {
                    let i = channelsLast ? (b * size + s) * c + ch : (b * c + ch) * size + s
                    sum += Quantized.load(src, i, x.dataType)
                }
                let v = Float(Int32(truncatingIfNeeded: sum + bias)) * scale
                Quantized.store(Quantized.saturate(v, lo - zy, hi - zy) + zy, dst, b * c + ch, x.dataType)
            }
        }
        return [y]
    }
}

/// com.microsoft QLinearConcat: inputs Y_scale, Y_zero_point, then (X, X_scale, X_zero_point) per
/// tensor; each requantized to Y's parameters through a table (copied when they are equal), joined
/// along `axis`.
struct QLinearConcatKernel: Kernel {
    let axis: Int

    init(context: NodeContext) throws {
        guard context.inputCount >= 5, (context.inputCount - 2) % 3 == 0 else {
            throw context.invalid("has \(context.inputCount) inputs; QLinearConcat takes Y_scale, Y_zero_point and (X, X_scale, X_zero_point) triplets")
        }
        axis = try context.int("axis", default: 0)
    }

    func run(_ inputs: [Tensor?]) throws -> [Tensor] {
        let out = try QuantParameter(inputs, scale: 0, zeroPoint: 1, "Y")
        let count = (inputs.count - 2) / 3
        var parts: [Tensor] = []
        for t in 0..<count {
            let x = try Check.input(inputs, 2 + 3 * t, "X")
            try Check.dataType(x, [.uint8, .int8], "X")
            if let first = parts.first { try Check.dataType(x, [first.dataType], "X") }
            let p = try QuantParameter(inputs, scale: 3 + 3 * t, zeroPoint: 4 + 3 * t, "X")
            if p.scale == out.scale && p.zeroPoint == out.zeroPoint {
                parts.append(x)
            } else {
                parts.append(try lookUp(x, p.table(x.dataType, to: out) { $0 }))
            }
        }
        guard let first = parts.first else { throw KernelError.failed("QLinearConcat has no tensor to join") }
        let a = try Check.axis(axis, rank: first.rank)
        var shape = first.shape
        shape[a] = 0
        for p in parts {
            guard p.rank == first.rank, (0..<p.rank).allSatisfy({ $0 == a || p.shape[$0] == first.shape[$0] }) else {
                throw KernelError.shape("QLinearConcat's inputs \(parts.map(\.shape)) differ outside axis \(axis)")
            }
            shape[a] += p.shape[a]
        }
        let y = try Tensor(allocating: first.dataType, shape: shape)
        let outer = first.shape[..<a].reduce(1, *)
        let inner = first.shape[(a + 1)...].reduce(1, *)
        let dst = y.mutableBytes.baseAddress!
        var offset = 0
        for p in parts {
            let run = p.shape[a] * inner
            guard run > 0 else { continue }
            let src = p.rawBytes.baseAddress!
            for o in 0..<outer {
                (dst + o * shape[a] * inner + offset).copyMemory(from: src + o * run, byteCount: run)
            }
            offset += run
        }
        return [y]
    }
}

import Glibc
