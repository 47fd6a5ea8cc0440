import Tensors

/// CumSum (and CumProd, `product`) along the axis given by input 1 (an INT64 or INT32 scalar),
/// inclusive or `exclusive`, forward or `reverse`. FP32, FP64 and every integer type (integers wrap
/// on overflow).
struct CumSumKernel: BufferedKernel {
    let exclusive: Bool
    let reverse: Bool
    let product: Bool

    init(context: NodeContext, product: Bool = false) throws {
        try context.requireInputs(2)
        exclusive = try context.int("exclusive", default: 0) != 0
        reverse = try context.int("reverse", default: 0) != 0
        self.product = product
    }

    func run(_ inputs: [Tensor?], into output: Tensor?) throws -> [Tensor] {
        let op = product ? "CumProd" : "CumSum"
        let x = try Check.input(inputs, 0, "x")
        let axes = try IntInput.values(try Check.input(inputs, 1, "axis"), "\(op)'s axis")
        guard axes.count == 1 else { throw KernelError.shape("\(op)'s axis must hold one value, got \(axes.count)") }
        guard x.rank >= 1 else { throw KernelError.shape("\(op) needs an input of rank 1 or more, got a scalar") }
        let a = try Check.axis(axes[0], rank: x.rank)
        let out = try Output.tensor(output, x.dataType, x.shape)
        if out.count == 0 { return [out] }
        let n = x.shape[a]
        let outer = x.shape[..<a].reduce(1, *)
        let inner = x.shape[(a + 1)...].reduce(1, *)
        switch (x.dataType, product) {
        case (.float32, false): scan(x, out, Float.self, outer, n, inner, 0, +)
        case (.float32, true): scan(x, out, Float.self, outer, n, inner, 1, *)
        default:
            if try x.dataType.dispatch(Scan(kernel: self, x: x, out: out, outer: outer, n: n, inner: inner)) == nil {
                throw KernelError.unsupportedType(op, x.dataType, supported: DataType.realNumbers)
            }
        }
        return [out]
    }

    private struct Scan: NumericBody {
        let kernel: CumSumKernel
        let x: Tensor
        let out: Tensor
        let outer: Int
        let n: Int
        let inner: Int

        func integer<T: FixedWidthInteger & TensorElement>(_: T.Type) throws {
            if kernel.product {
                kernel.scan(x, out, T.self, outer, n, inner, 1, &*)
            } else {
                kernel.scan(x, out, T.self, outer, n, inner, 0, &+)
            }
        }

        func float<T: FloatElement>(_: T.Type) throws {
            if kernel.product {
                kernel.scan(x, out, T.self, outer, n, inner, 1, *)
            } else {
                kernel.scan(x, out, T.self, outer, n, inner, 0, +)
            }
        }
    }

    /// Running sums or products along the middle axis, a whole inner row at a time (vectorisable):
    /// each output row combines the previous output row (the running value) with an input row.
    @inline(__always)
    fileprivate func scan<T>(
        _ x: Tensor, _ out: Tensor, _: T.Type, _ outer: Int, _ n: Int, _ inner: Int, _ identity: T,
        _ combine: (T, T) -> T
    ) {
        let src = x.elements(as: T.self).baseAddress!
        let dst = out.mutableElements(as: T.self).baseAddress!
        // Row `step` of the walk, in the direction of the scan.
        let (first, delta) = reverse ? ((n - 1) * inner, -inner) : (0, inner)
        for o in 0..<outer {
            let s = src + o * n * inner + first
            let d = dst + o * n * inner + first
            if exclusive {
                for j in 0..<inner { d[j] = identity }
                for step in 1..<max(n, 1) {
                    let (row, previous) = (d + step * delta, d + (step - 1) * delta)
                    let input = s + (step - 1) * delta
                    for j in 0..<inner { row[j] = combine(previous[j], input[j]) }
                }
            } else {
                for j in 0..<inner { d[j] = s[j] }
                for step in 1..<max(n, 1) {
                    let (row, previous) = (d + step * delta, d + (step - 1) * delta)
                    let input = s + step * delta
                    for j in 0..<inner { row[j] = combine(previous[j], input[j]) }
                }
            }
        }
    }
}

/// Trilu: keeps the upper (`upper` = 1, j - i >= k) or lower (j - i <= k) triangle of the last two
/// axes and zeroes the rest; `k` is the optional INT64 input 1. Any element type (byte copies).
struct TriluKernel: BufferedKernel {
    let upper: Bool

    init(context: NodeContext) throws {
        try context.requireInputs(1, 2)
        upper = try context.int("upper", default: 1) != 0
    }

    func run(_ inputs: [Tensor?], into output: Tensor?) throws -> [Tensor] {
        let x = try Check.input(inputs, 0, "input")
        var k = 0
        if let ks = try IntInput.optional(inputs, 1, "Trilu's k") {
            guard ks.count == 1 else { throw KernelError.shape("Trilu's k must hold one value, got \(ks.count)") }
            k = ks[0]
        }
        guard x.rank >= 2 else { throw KernelError.shape("Trilu needs an input of rank 2 or more, got \(x.shape)") }
        let out = try Output.tensor(output, x.dataType, x.shape)
        if out.count == 0 { return [out] }
        let rows = x.shape[x.rank - 2]
        let cols = x.shape[x.rank - 1]
        let size = x.dataType.byteSize
        let src = x.rawBytes.baseAddress!
        let dst = out.mutableBytes.baseAddress!
        let matrices = x.count / (rows * cols)
        for m in 0..<matrices {
            for i in 0..<rows {
                let row = (m * rows + i) * cols * size
                // Kept columns: [max(0, i + k), cols) for upper, [0, min(cols, i + k + 1)) for lower;
                // k is clamped first so that i + k cannot overflow.
                let kk = max(-rows - 1, min(k, cols + 1))
                let (lo, hi) = upper ? (min(max(0, i + kk), cols), cols) : (0, min(max(0, i + kk + 1), cols))
                (dst + row).initializeMemory(as: UInt8.self, repeating: 0, count: cols * size)
                if hi > lo {
                    (dst + row + lo * size).copyMemory(from: src + row + lo * size, byteCount: (hi - lo) * size)
                }
            }
        }
        return [out]
    }
}

/// OneHot(indices, depth, values): a new axis of size `depth` at `axis` (default -1), `values[1]`
/// where the index (negative ones count from the end) is, `values[0]` elsewhere; indices outside
/// [-depth, depth) give a row of `values[0]`. Indices and depth of any real type (floats truncate);
/// values of any type.
struct OneHotKernel: BufferedKernel {
    let axis: Int

    init(context: NodeContext) throws {
        try context.requireInputs(3)
        axis = try context.int("axis", default: -1)
    }

    func run(_ inputs: [Tensor?], into output: Tensor?) throws -> [Tensor] {
        let indices = try Check.input(inputs, 0, "indices")
        let depthTensor = try Check.input(inputs, 1, "depth")
        let values = try Check.input(inputs, 2, "values")
        for t in [indices, depthTensor] where [.float16, .bfloat16, .bool, .string].contains(t.dataType) {
            throw KernelError.failed("OneHot's indices and depth must be of a real type, got \(t.dataType.v2Name)")
        }
        guard depthTensor.count == 1, let depthValue = depthTensor.doubleValues().first else {
            throw KernelError.shape("OneHot's depth must hold one value, got \(depthTensor.count)")
        }
        guard depthValue.isFinite, depthValue >= 1, depthValue < Double(1 << 40) else {
            throw KernelError.shape("OneHot's depth \(depthValue) is not a positive size")
        }
        let depth = Int(depthValue)
        guard values.count == 2 else { throw KernelError.shape("OneHot's values must hold [off, on], got \(values.count) values") }
        let a = try Check.axis(axis, rank: indices.rank + 1)
        var outShape = indices.shape
        outShape.insert(depth, at: a)
        try Check.computedShape(outShape, "OneHot")
        let out = try Output.tensor(output, values.dataType, outShape)
        if out.count == 0 { return [out] }
        let size = values.dataType.byteSize
        let offValue = values.rawBytes.baseAddress!
        let onValue = offValue + size
        let dst = out.mutableBytes.baseAddress!
        for i in 0..<out.count { (dst + i * size).copyMemory(from: offValue, byteCount: size) }
        let inner = indices.shape[a...].reduce(1, *)
        let idx = indices.doubleValues()
        for (flat, v) in idx.enumerated() {
            guard v.isFinite, v >= -Double(depth), v < Double(depth) else { continue }
            var i = Int(v.rounded(.towardZero))
            if i < 0 { i += depth }
            guard i >= 0, i < depth else { continue }
            let o = flat / inner
            let r = flat % inner
            (dst + ((o * depth + i) * inner + r) * size).copyMemory(from: onValue, byteCount: size)
        }
        return [out]
    }
}

/// EyeLike: a matrix of the input's shape (rank 2) with ones on diagonal `k` (default 0) and zeros
/// elsewhere, of type `dtype` (default the input's). Any element type.
struct EyeLikeKernel: BufferedKernel {
    let k: Int
    let dtype: DataType?

    init(context: NodeContext) throws {
        try context.requireInputs(1)
        k = try context.int("k", default: 0)
        if let raw = try context.int("dtype") {
            guard let t = DataType(rawValue: Int32(truncatingIfNeeded: raw)), t != .string else {
                throw context.invalid("has an unsupported 'dtype' \(raw)")
            }
            dtype = t
        } else {
            dtype = nil
        }
    }

    func run(_ inputs: [Tensor?], into output: Tensor?) throws -> [Tensor] {
        let x = try Check.input(inputs, 0, "input")
        guard x.rank == 2 else { throw KernelError.shape("EyeLike needs a matrix (rank 2), got \(x.shape)") }
        let type = dtype ?? x.dataType
        let out = try Output.tensor(output, type, x.shape)
        if out.count == 0 { return [out] }
        let size = type.byteSize
        let dst = out.mutableBytes.baseAddress!
        dst.initializeMemory(as: UInt8.self, repeating: 0, count: out.byteCount)
        let one = Self.one(type)
        let (rows, cols) = (x.shape[0], x.shape[1])
        for i in 0..<rows {
            guard k > -rows - 1, k < cols + 1 else { break }
            let j = i + k
            if j >= 0 && j < cols {
                one.withUnsafeBytes { (dst + (i * cols + j) * size).copyMemory(from: $0.baseAddress!, byteCount: size) }
            }
        }
        return [out]
    }

    /// The little-endian bytes of 1 in `type`.
    static func one(_ type: DataType) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: type.byteSize)
        switch type {
        case .float32: withUnsafeBytes(of: Float(1).bitPattern.littleEndian) { bytes = Array($0) }
        case .float64: withUnsafeBytes(of: Double(1).bitPattern.littleEndian) { bytes = Array($0) }
        case .float16: bytes = [0x00, 0x3C]
        case .bfloat16: bytes = [0x80, 0x3F]
        default: if !bytes.isEmpty { bytes[0] = 1 }
        }
        return bytes
    }
}
