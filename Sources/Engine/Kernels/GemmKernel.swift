import Tensors

/// ONNX Gemm: `Y = alpha * op(A) * op(B) + beta * C`, float32, float64 (dgemm) and INT32, INT64,
/// UINT32, UINT64 (`integer`). A and B are 2-D; C (optional from
/// opset 11) broadcasts unidirectionally to (M, N): a scalar, [N], [1, N], [M, 1], [M, N], [1], [1, 1].
struct GemmKernel: BufferedKernel, ConstantAbsorbingKernel {
    let alpha: Float
    let beta: Float
    let transA: Bool
    let transB: Bool
    /// Fused activation applied after the sgemm (see `GraphOptimizer`).
    let epilogue: Epilogue
    /// A constant float32 B packed once for `PackedGemm` (when A is not transposed and alpha is 1),
    /// with B's stored shape; the plan then passes nil for B.
    let packed: (shape: [Int], columns: PackedColumns)?

    init(context: NodeContext) throws {
        epilogue = try Epilogue(context: context)
        try context.requireInputs(context.opset >= 11 ? 2 : 3, 3)
        alpha = try context.float("alpha", default: 1)
        beta = try context.float("beta", default: 1)
        transA = try context.int("transA", default: 0) != 0
        transB = try context.int("transB", default: 0) != 0
        if !transA, alpha == 1, let b = context.constantInput(1), b.dataType == .float32, b.rank == 2, b.count > 0 {
            let (k, n) = transB ? (b.shape[1], b.shape[0]) : (b.shape[0], b.shape[1])
            packed = (b.shape, PackedColumns(b.elements(as: Float.self).baseAddress!, k: k, n: n, transposed: transB))
        } else {
            packed = nil
        }
    }

    var absorbedInputs: [Int] { packed == nil ? [] : [1] }

    /// The element types of A, B and C (the spec's, float16/bfloat16 held as float32).
    static let types: [DataType] = [.float32, .float64, .int32, .int64, .uint32, .uint64]

    func run(_ inputs: [Tensor?], into output: Tensor?) throws -> [Tensor] {
        let a = try Check.input(inputs, 0, "A")
        // B is nil when the plan passes the packed copy instead (`absorbedInputs`).
        let b = inputs.count > 1 ? inputs[1] : nil
        let usePacked = b == nil ? packed : nil
        if b == nil && usePacked == nil { _ = try Check.input(inputs, 1, "B") }
        let bShape = b?.shape ?? usePacked!.shape
        let c = inputs.count > 2 ? inputs[2] : nil
        if a.dataType == .float64, let b { return [try double(a, b, c, into: output)] }
        if a.dataType != .float32, let b {
            switch a.dataType {
            case .int32: return [try integer(a, b, c, Int32.self, into: output)]
            case .int64: return [try integer(a, b, c, Int64.self, into: output)]
            case .uint32: return [try integer(a, b, c, UInt32.self, into: output)]
            case .uint64: return [try integer(a, b, c, UInt64.self, into: output)]
            default: break
            }
        }
        try Check.dataType(a, Self.types, "A")
        if let b { try Check.dataType(b, [.float32], "B") }
        guard a.rank == 2, bShape.count == 2 else {
            throw KernelError.shape("Gemm needs 2-D A and B, got A \(a.shape) and B \(bShape)")
        }
        let (m, ka) = transA ? (a.shape[1], a.shape[0]) : (a.shape[0], a.shape[1])
        let (kb, n) = transB ? (bShape[1], bShape[0]) : (bShape[0], bShape[1])
        guard ka == kb else {
            throw KernelError.shape(
                "Gemm inner dimensions differ: op(A) is [\(m), \(ka)] and op(B) is [\(kb), \(n)] "
                    + "(A \(a.shape), B \(bShape), transA=\(transA ? 1 : 0), transB=\(transB ? 1 : 0))")
        }
        let out = try Output.tensor(output, .float32, [m, n])
        let y = out.mutableElements(as: Float.self)
        var blasBeta: Float = 0
        if let c, beta != 0 {
            try Check.dataType(c, [.float32], "C")
            try fillBias(y, m: m, n: n, c: c)
            blasBeta = 1
        } else if m * n > 0 {
            y.initialize(repeating: 0)
        }
        let pa = a.elements(as: Float.self).baseAddress!
        if let usePacked {
            // Accumulates onto the bias (or the zeros) already in y.
            if m * n > 0 { PackedGemm.multiply(a: pa, lda: a.shape[1], m: m, usePacked.columns, c: y.baseAddress!, ldc: n) }
        } else if let b {
            BLAS.gemm(
                transA: transA, transB: transB, m: m, n: n, k: ka, alpha: alpha, a: pa, lda: a.shape[1],
                b: b.elements(as: Float.self).baseAddress!, ldb: b.shape[1], beta: blasBeta, c: y.baseAddress!, ldc: n)
        }
        if m * n > 0 { epilogue.apply(y.baseAddress!, count: m * n) }
        return [out]
    }

    /// Gemm on float64: the product with dgemm, then alpha and beta * C (broadcast) applied after.
    private func double(_ a: Tensor, _ b: Tensor, _ c: Tensor?, into output: Tensor?) throws -> Tensor {
        try Check.dataType(b, [.float64], "B")
        guard a.rank == 2, b.rank == 2 else { throw KernelError.shape("Gemm needs 2-D A and B, got A \(a.shape) and B \(b.shape)") }
        let (m, ka) = transA ? (a.shape[1], a.shape[0]) : (a.shape[0], a.shape[1])
        let (kb, n) = transB ? (b.shape[1], b.shape[0]) : (b.shape[0], b.shape[1])
        guard ka == kb else {
            throw KernelError.shape("Gemm inner dimensions differ: op(A) is [\(m), \(ka)] and op(B) is [\(kb), \(n)]")
        }
        let out = try Output.tensor(output, .float64, [m, n])
        if m * n == 0 { return out }
        let y = out.mutableElements(as: Double.self).baseAddress!
        Double.gemm(
            transA: transA, transB: transB, m: m, n: n, k: ka, a: a.elements(as: Double.self).baseAddress!, lda: a.shape[1],
            b: b.elements(as: Double.self).baseAddress!, ldb: b.shape[1], c: y, ldc: n)
        let alpha = Double(self.alpha)
        if alpha != 1 { for i in 0..<(m * n) { y[i] *= alpha } }
        defer { epilogue.apply(y, count: m * n) }
        guard let c, beta != 0 else { return out }
        try Check.dataType(c, [.float64], "C")
        let strides = try biasStrides(c, m, n)
        let pc = c.elements(as: Double.self).baseAddress!
        let beta = Double(self.beta)
        for i in 0..<m {
            for j in 0..<n { y[i * n + j] += beta * pc[i * strides[0] + j * strides[1]] }
        }
        return out
    }

    /// Gemm on the integer types: the product with wrapping arithmetic (`IntegerMatrixElement`),
    /// then `beta * C`. With alpha 1 and beta 1 (or no C) the result is exact in T, C added with
    /// wrapping. Other alpha or beta scale in double and truncate toward zero, as the ONNX
    /// reference does (numpy `astype`), saturating where that is undefined.
    private func integer<T: IntegerMatrixElement>(
        _ a: Tensor, _ b: Tensor, _ c: Tensor?, _: T.Type, into output: Tensor?
    ) throws -> Tensor {
        try Check.dataType(b, [a.dataType], "B")
        guard a.rank == 2, b.rank == 2 else { throw KernelError.shape("Gemm needs 2-D A and B, got A \(a.shape) and B \(b.shape)") }
        let (m, ka) = transA ? (a.shape[1], a.shape[0]) : (a.shape[0], a.shape[1])
        let (kb, n) = transB ? (b.shape[1], b.shape[0]) : (b.shape[0], b.shape[1])
        guard ka == kb else {
            throw KernelError.shape("Gemm inner dimensions differ: op(A) is [\(m), \(ka)] and op(B) is [\(kb), \(n)]")
        }
        let out = try Output.tensor(output, a.dataType, [m, n])
        if m * n == 0 { return out }
        let y = out.mutableElements(as: T.self).baseAddress!
        T.gemm(
            transA: transA, transB: transB, m: m, n: n, k: ka, a: a.elements(as: T.self).baseAddress!, lda: a.shape[1],
            b: b.elements(as: T.self).baseAddress!, ldb: b.shape[1], c: y, ldc: n)
        var bias: (p: UnsafePointer<T>, rowStride: Int, colStride: Int)?
        if let c, beta != 0 {
            try Check.dataType(c, [a.dataType], "C")
            let strides = try biasStrides(c, m, n)
            bias = (c.elements(as: T.self).baseAddress!, strides[0], strides[1])
        }
        if alpha == 1 && (bias == nil || beta == 1) {
            if let bias {
                for i in 0..<m {
                    for j in 0..<n { y[i * n + j] &+= bias.p[i * bias.rowStride + j * bias.colStride] }
                }
            }
        } else {
            let (alpha, beta) = (Double(self.alpha), Double(self.beta))
            for i in 0..<m {
                for j in 0..<n {
                    var v = alpha * Double(y[i * n + j])
                    if let bias { v += beta * Double(bias.p[i * bias.rowStride + j * bias.colStride]) }
                    y[i * n + j] = T.saturating(v)
                }
            }
        }
        try epilogue.apply(y, count: m * n)
        return out
    }

    /// The strides (row, column) at which C is read for output (i, j), when C broadcasts to (m, n).
    private func biasStrides(_ c: Tensor, _ m: Int, _ n: Int) throws -> [Int] {
        guard c.rank <= 2, Broadcast.shape([c.shape, [m, n]]) == [m, n] else { throw biasError(c.shape, m, n) }
        return Broadcast.strides(of: c.shape, broadcastTo: [m, n])
    }

    /// Writes `beta * C` broadcast to (m, n) into `y`.
    private func fillBias(_ y: UnsafeMutableBufferPointer<Float>, m: Int, n: Int, c: Tensor) throws {
        let s = c.shape
        let cs = c.elements(as: Float.self)
        // Row stride / column stride of C as read at (i, j).
        var rowStride = 0
        var colStride = 0
        switch s.count {
        case 0: break
        case 1:
            guard s[0] == n || s[0] == 1 else { throw biasError(s, m, n) }
            colStride = s[0] == 1 ? 0 : 1
        case 2:
            guard s[0] == m || s[0] == 1, s[1] == n || s[1] == 1 else { throw biasError(s, m, n) }
            rowStride = s[0] == 1 ? 0 : s[1]
            colStride = s[1] == 1 ? 0 : 1
        default: throw biasError(s, m, n)
        }
        if cs.isEmpty {
            if m * n == 0 { return }
            throw biasError(s, m, n)
        }
        let beta = self.beta
        for i in 0..<m {
            let row = y.baseAddress! + i * n
            let cRow = cs.baseAddress! + i * rowStride
            if colStride == 1 {
                for j in 0..<n { row[j] = beta * cRow[j] }
            } else {
                let v = beta * cRow[0]
                for j in 0..<n { row[j] = v }
            }
        }
    }

    private func biasError(_ s: [Int], _ m: Int, _ n: Int) -> KernelError {
        .shape("Gemm's C of shape \(s) does not broadcast to the output shape [\(m), \(n)]")
    }
}
