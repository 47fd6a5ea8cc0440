import Tensors

/// The integer matrix product under every quantized operator (MatMulInteger, ConvInteger,
/// QLinearMatMul, QLinearConv, QGemm, MatMulIntegerToFloat, DynamicQuantizeMatMul):
///
///     C[i, j] = sum over p of (A[i, p] - za[i]) * (B[p, j] - zb[j])        (int32, wrapping)
///
/// with A and B 8-bit (u8 or s8), A's zero point per tensor or per row, B's per tensor or per column.
/// B is prepared once (`init`): for constant weights at load, so a request only reads A. The
/// products run on `IntegerGemm` (AVX-512 VNNI, AVX-VNNI, AVX2 or portable, chosen per call from the
/// CPU), whose int32 sums are exact for any depth below about 65 000 and wrap as onnxruntime's
/// int32 accumulators do, never trap.
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
    /// B packed for the integer kernels, with its zero points.
    private let weights: PackedInt8Weights

    /// Prepares B: `k` x `n` 8-bit values at `b`, stored row-major [k, n], or [n, k] when
    /// `transposed` (Gemm's transB, Conv's weights [M, C*kh*kw]). `zeroPoints` holds one value
    /// (per tensor) or `n` (per column), in B's type range.
    init(b: UnsafeRawPointer, element: Element, k: Int, n: Int, transposed: Bool, zeroPoints: [Int32]) throws {
        guard zeroPoints.count == 1 || zeroPoints.count == n else {
            throw KernelError.shape("B's zero point has \(zeroPoints.count) values for \(n) columns (needs 1 or \(n))")
        }
        guard Tensor.checkedElementCount([k, n]) != nil else {
            throw KernelError.shape("B of \(k) x \(n) is too large")
        }
        self.k = k
        self.n = n
        self.bElement = element
        weights = try PackedInt8Weights(
            b, k: k, n: n, layout: transposed ? .columnMajor : .rowMajor, signed: element == .int8, zeroPoints: zeroPoints)
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
        try multiply(a: a, element: element, m: m, lda: lda, aZeroPoints: aZeroPoints, output: .int32(c, rowStride: ldc))
    }

    /// The same product stored as `output` says (int32 sums, floats or requantized 8-bit values,
    /// computed in the kernels' epilogue).
    func multiply(
        a: UnsafeRawPointer, element: Element, m: Int, lda: Int, aZeroPoints: [Int32], output: IntegerGemm.Output
    ) throws {
        guard aZeroPoints.count == 1 || aZeroPoints.count == m else {
            throw KernelError.shape("A's zero point has \(aZeroPoints.count) values for \(m) rows (needs 1 or \(m))")
        }
        guard m > 0, n > 0 else { return }
        let signed = element == .int8
        if aZeroPoints.count == 1 {
            let activations = IntegerGemm.Activations(a, rows: m, k: k, rowStride: lda, signed: signed, zeroPoint: .tensor(aZeroPoints[0]))
            try IntegerGemm.multiply(activations, weights, output: output)
        } else {
            try aZeroPoints.withUnsafeBufferPointer { zeros in
                let activations = IntegerGemm.Activations(
                    a, rows: m, k: k, rowStride: lda, signed: signed, zeroPoint: .rows(zeros.baseAddress!))
                try IntegerGemm.multiply(activations, weights, output: output)
            }
        }
    }
}
