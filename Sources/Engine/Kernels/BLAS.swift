import Glibc
import COpenBLAS
import Tensors
import Synchronization

/// Thin wrappers over OpenBLAS for row-major float32 matrices, and the engine's thread budget.
enum BLAS {
    private static let budget = Atomic<Int>(1)

    /// Sets the engine's thread budget (process-wide): the chunks `Parallel` splits a step into,
    /// run on `WorkerPool`. OpenBLAS itself is kept at one thread: its own spinning threads and the
    /// pool's would compete for the same cores (measured: tiny BERT at 2 threads alternated between
    /// 1.6 and 2.6 ms); the few OpenBLAS calls left (MatMul of two computed operands, Conv or Gemm
    /// with computed weights) are split by the engine instead where they come in batches.
    static func setThreads(_ n: Int) {
        budget.store(max(1, n), ordering: .relaxed)
        openblas_set_num_threads(1)
    }

    /// The budget of the run in progress on this thread (`withThreads`), stored as the pointer
    /// value; nil outside a session's run.
    private static let runBudget: pthread_key_t = {
        var key = pthread_key_t()
        let created = pthread_key_create(&key, nil)
        precondition(created == 0, "pthread_key_create failed: \(created)")
        return key
    }()

    /// The thread budget: the running session's (`withThreads`) on this thread, else the last one
    /// set (`setThreads`). Used by `Parallel` and `PackedGemm`.
    static var threads: Int {
        if let own = pthread_getspecific(runBudget) { return Int(bitPattern: own) }
        return budget.load(ordering: .relaxed)
    }

    /// Runs `body` with this thread's budget set to `n`, so that a session's runs use its own
    /// `blasThreads` whatever sessions were built since (the process-wide value is the last one set).
    static func withThreads<R>(_ n: Int, _ body: () throws -> R) rethrows -> R {
        let previous = pthread_getspecific(runBudget)
        pthread_setspecific(runBudget, UnsafeRawPointer(bitPattern: max(1, n)))
        defer { pthread_setspecific(runBudget, previous) }
        return try body()
    }

    /// `C[m,n] = alpha * op(A)[m,k] * op(B)[k,n] + beta * C`, all row-major. `lda`/`ldb` are the row
    /// lengths of A and B as stored. Uses sgemv when `m == 1` (much faster for single rows). The caller
    /// guarantees the buffers are large enough.
    static func gemm(
        transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float,
        a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
        beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        if m == 0 || n == 0 { return }
        if k == 0 {
            // op(A)*op(B) is all zeros: C = beta * C.
            for i in 0..<m {
                let row = c + i * ldc
                for j in 0..<n { row[j] = beta == 0 ? 0 : beta * row[j] }
            }
            return
        }
        if m == 1 {
            // The single row of op(A) is a vector: element p is at a[p] (no transpose) or a[p*lda].
            let incX = transA ? lda : 1
            // Never rely on beta = 0 ignoring what C holds (it may be a reused arena buffer).
            if beta == 0 { c.update(repeating: 0, count: n) }
            if transB {
                // B is stored [n, k]: y = B x.
                cblas_sgemv(
                    CblasRowMajor, CblasNoTrans, blasint(n), blasint(k), alpha, b, blasint(ldb), a,
                    blasint(incX), beta, c, 1)
            } else {
                // B is stored [k, n]: y = B^T x.
                cblas_sgemv(
                    CblasRowMajor, CblasTrans, blasint(k), blasint(n), alpha, b, blasint(ldb), a,
                    blasint(incX), beta, c, 1)
            }
            return
        }
        cblas_sgemm(
            CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
            blasint(m), blasint(n), blasint(k), alpha, a, blasint(max(lda, 1)), b, blasint(max(ldb, 1)),
            beta, c, blasint(max(ldc, 1)))
    }
}

/// Element types a matrix product is written for: `C = op(A) * op(B)`, C fully written.
protocol MatrixElement: TensorElement {
    static func gemm(
        transA: Bool, transB: Bool, m: Int, n: Int, k: Int, a: UnsafePointer<Self>, lda: Int,
        b: UnsafePointer<Self>, ldb: Int, c: UnsafeMutablePointer<Self>, ldc: Int)
}

/// The float types BLAS multiplies (sgemm, dgemm), so that a kernel's unpacked GEMM path is written
/// once for float32 and float64.
protocol BLASElement: FloatElement, MatrixElement {}

/// The integer types ONNX's MatMul allows (INT32, INT64, UINT32, UINT64): a plain triple loop with
/// wrapping arithmetic (two's complement, as numpy's integer matmul), rows of C accumulated from
/// rows of B so the inner loop is contiguous.
protocol IntegerMatrixElement: FixedWidthInteger, MatrixElement {}

extension IntegerMatrixElement {
    static func gemm(
        transA: Bool, transB: Bool, m: Int, n: Int, k: Int, a: UnsafePointer<Self>, lda: Int,
        b: UnsafePointer<Self>, ldb: Int, c: UnsafeMutablePointer<Self>, ldc: Int
    ) {
        for i in 0..<m {
            let row = c + i * ldc
            row.update(repeating: 0, count: n)
            for p in 0..<k {
                let av = transA ? a[p * lda + i] : a[i * lda + p]
                if av == 0 { continue }
                if transB {
                    for j in 0..<n { row[j] &+= av &* b[j * ldb + p] }
                } else {
                    let brow = b + p * ldb
                    for j in 0..<n { row[j] &+= av &* brow[j] }
                }
            }
        }
    }
}

extension FixedWidthInteger {
    /// `v` truncated toward zero and saturated to the type's range (NaN gives 0): numpy's
    /// float-to-integer `astype` where that is defined, and the nearest bound where it is not.
    static func saturating(_ v: Double) -> Self {
        if v.isNaN { return 0 }
        if v <= Double(Self.min) { return Self.min }
        if v >= Double(Self.max) { return Self.max }
        return Self(v.rounded(.towardZero))
    }
}

extension Int32: IntegerMatrixElement {}
extension Int64: IntegerMatrixElement {}
extension UInt32: IntegerMatrixElement {}
extension UInt64: IntegerMatrixElement {}

extension Float: BLASElement {
    @inline(__always)
    static func gemm(
        transA: Bool, transB: Bool, m: Int, n: Int, k: Int, a: UnsafePointer<Float>, lda: Int,
        b: UnsafePointer<Float>, ldb: Int, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        BLAS.gemm(
            transA: transA, transB: transB, m: m, n: n, k: k, alpha: 1, a: a, lda: lda, b: b, ldb: ldb, beta: 0, c: c,
            ldc: ldc)
    }
}

extension Double: BLASElement {
    /// `C = op(A) * op(B)` with dgemm (C fully written, whatever it held).
    static func gemm(
        transA: Bool, transB: Bool, m: Int, n: Int, k: Int, a: UnsafePointer<Double>, lda: Int,
        b: UnsafePointer<Double>, ldb: Int, c: UnsafeMutablePointer<Double>, ldc: Int
    ) {
        if m == 0 || n == 0 { return }
        for i in 0..<m { (c + i * ldc).update(repeating: 0, count: n) }
        if k == 0 { return }
        cblas_dgemm(
            CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
            blasint(m), blasint(n), blasint(k), 1, a, blasint(max(lda, 1)), b, blasint(max(ldb, 1)),
            0, c, blasint(max(ldc, 1)))
    }
}
