import Tensors

/// The integer matrix product under every quantized operator (MatMulInteger, ConvInteger,
/// QLinearMatMul, QLinearConv, QGemm, MatMulIntegerToFloat, DynamicQuantizeMatMul):
///
///     C[i, j] = sum over p of (A[i, p] - za[i]) * (B[p, j] - zb[j])        (int32, wrapping)
///
/// with A and B 8-bit (u8 or s8), A's zero point per tensor or per row, B's per tensor or per column.
/// B is prepared once (`init`): for constant weights at load, so a request only reads A. The
/// portable path keeps B transposed as int16 with its zero points subtracted (column j is `k`
/// contiguous values), widens 4 rows of A at a time to int16 with theirs subtracted, and sums int32
/// products 4 rows by 1 column at a time, in parallel over blocks of rows. Every product fits in
/// int32 (|255 * 255| < 2^16); sums wrap as onnxruntime's int32 accumulators do, never trap.
///
/// This is the one place a faster kernel (the AVX2 / AVX-512 VNNI `IntegerGemm` of Sources/CKernels)
/// plugs in: `multiply` is the whole interface the operators use.
///
/// A value; immutable after `init`, safe to share between threads (kernels hold one per constant B).
struct QuantizedGemm: Sendable {
    /// The 8-bit element types of the operands.
    enum Element: Sendable {
        case uint8, int8

        init?(_ type: DataType) {
            switch type {
            case .uint8: self = .uint8
            case .int8: self = .int8
            default: return nil
            }
        }

        var dataType: DataType { self == .uint8 ? .uint8 : .int8 }
    }

    let k: Int
    let n: Int
    let bElement: Element
    /// B's zero point of each column (n values; a per-tensor zero point repeated).
    let bZeroPoints: [Int32]
    /// (B - zb) transposed: column j at `j * k`.
    private let columns: [Int16]

    /// Prepares B: `k` x `n` 8-bit values at `b`, stored row-major [k, n], or [n, k] when
    /// `transposed` (Gemm's transB, Conv's weights [M, C*kh*kw]). `zeroPoints` holds one value
    /// (per tensor) or `n` (per column).
    init(b: UnsafeRawPointer, element: Element, k: Int, n: Int, transposed: Bool, zeroPoints: [Int32]) throws {
        guard zeroPoints.count == 1 || zeroPoints.count == n else {
            throw KernelError.shape("B's zero point has \(zeroPoints.count) values for \(n) columns (needs 1 or \(n))")
        }
        guard let count = Tensor.checkedElementCount([k, n]) else {
            throw KernelError.shape("B of \(k) x \(n) is too large")
        }
        self.k = k
        self.n = n
        self.bElement = element
        let zb = zeroPoints.count == 1 ? [Int32](repeating: zeroPoints[0], count: n) : zeroPoints
        self.bZeroPoints = zb
        var cols = [Int16](repeating: 0, count: count)
        cols.withUnsafeMutableBufferPointer { dst in
            @inline(__always) func fill<T: BinaryInteger>(_ src: UnsafePointer<T>) {
                for j in 0..<n {
                    let z = Int(zb[j])
                    let col = dst.baseAddress! + j * k
                    if transposed {
                        let s = src + j * k
                        for p in 0..<k { col[p] = Int16(truncatingIfNeeded: Int(s[p]) - z) }
                    } else {
                        for p in 0..<k { col[p] = Int16(truncatingIfNeeded: Int(src[p * n + j]) - z) }
                    }
                }
            }
            switch element {
            case .uint8: fill(b.assumingMemoryBound(to: UInt8.self))
            case .int8: fill(b.assumingMemoryBound(to: Int8.self))
            }
        }
        columns = cols
    }

    /// Prepares a B held in a tensor (u8 or s8, rank 2 [k, n] or [n, k] when `transposed`).
    init(b: Tensor, transposed: Bool, zeroPoints: [Int32]) throws {
        guard let e = Element(b.dataType), b.rank == 2 else {
            throw KernelError.failed("B must be a 2-D uint8 or int8 tensor, got \(b.dataType.v2Name) \(b.shape)")
        }
        let (k, n) = transposed ? (b.shape[1], b.shape[0]) : (b.shape[0], b.shape[1])
        try self.init(b: b.rawBytes.baseAddress ?? UnsafeRawPointer(bitPattern: 1)!, element: e, k: k, n: n,
                      transposed: transposed, zeroPoints: zeroPoints)
    }

    /// C = (A - za) (B - zb) for `m` rows of A (8-bit, `k` values each, rows `lda` elements apart);
    /// `aZeroPoints` holds one value (per tensor) or `m` (per row). Row i of C starts at `c + i * ldc`.
    func multiply(
        a: UnsafeRawPointer, element: Element, m: Int, lda: Int, aZeroPoints: [Int32],
        into c: UnsafeMutablePointer<Int32>, ldc: Int
    ) throws {
        guard aZeroPoints.count == 1 || aZeroPoints.count == m else {
            throw KernelError.shape("A's zero point has \(aZeroPoints.count) values for \(m) rows (needs 1 or \(m))")
        }
        guard m > 0, n > 0 else { return }
        if k == 0 {
            for i in 0..<m { (c + i * ldc).update(repeating: 0, count: n) }
            return
        }
        let blocks = (m + 3) / 4
        columns.withUnsafeBufferPointer { colBuffer in
            let cols = colBuffer.baseAddress!
            Parallel.forEach(blocks, costPerItem: 8 * k * n) { range in
                let rows = UnsafeMutablePointer<Int16>.allocate(capacity: 4 * k)
                defer { rows.deallocate() }
                for block in range {
                    let first = block * 4
                    let count = min(4, m - first)
                    // Widen this block's rows, zero points subtracted; missing rows are zeros.
                    for r in 0..<4 {
                        let dst = rows + r * k
                        guard r < count else { dst.update(repeating: 0, count: k); continue }
                        let i = first + r
                        let z = Int(aZeroPoints.count == 1 ? aZeroPoints[0] : aZeroPoints[i])
                        switch element {
                        case .uint8:
                            let s = a.assumingMemoryBound(to: UInt8.self) + i * lda
                            for p in 0..<k { dst[p] = Int16(truncatingIfNeeded: Int(s[p]) - z) }
                        case .int8:
                            let s = a.assumingMemoryBound(to: Int8.self) + i * lda
                            for p in 0..<k { dst[p] = Int16(truncatingIfNeeded: Int(s[p]) - z) }
                        }
                    }
                    Self.block4(rows, cols, k: k, n: n, c: c + first * ldc, ldc: ldc, rows: count)
                }
            }
        }
    }

    /// Dot products of 4 widened rows with every column; writes the first `rows` rows of C.
    @inline(__always)
    private static func block4(
        _ a: UnsafeMutablePointer<Int16>, _ cols: UnsafePointer<Int16>, k: Int, n: Int,
        c: UnsafeMutablePointer<Int32>, ldc: Int, rows: Int
    ) {
        let (a0, a1, a2, a3) = (a, a + k, a + 2 * k, a + 3 * k)
        for j in 0..<n {
            let b = cols + j * k
            var s0: Int32 = 0
            var s1: Int32 = 0
            var s2: Int32 = 0
            var s3: Int32 = 0
            for p in 0..<k {
                let bv = Int32(b[p])
                s0 &+= Int32(a0[p]) &* bv
                s1 &+= Int32(a1[p]) &* bv
                s2 &+= Int32(a2[p]) &* bv
                s3 &+= Int32(a3[p]) &* bv
            }
            c[j] = s0
            if rows > 1 { c[ldc + j] = s1 }
            if rows > 2 { c[2 * ldc + j] = s2 }
            if rows > 3 { c[3 * ldc + j] = s3 }
        }
    }
}
