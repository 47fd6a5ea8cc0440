import Tensors

/// ONNX MatMul with numpy `matmul` semantics, float32, float64 (dgemm) and INT32/INT64/UINT32/UINT64
/// (wrapping integer products): N-D operands with broadcast batch dimensions;
/// a 1-D A is promoted to [1, K] and a 1-D B to [K, 1], and the added dimension is removed from the
/// result. One sgemm per batch matrix, or a single sgemm when B is 2-D (A's batch folds into M).
///
/// After `GraphOptimizer`'s fusions it may also add a bias row `__bias` [N] and apply an activation
/// epilogue to the result.
struct MatMulKernel: BufferedKernel, ConstantAbsorbingKernel {
    let bias: Tensor?
    let epilogue: Epilogue
    /// A constant float32 2-D B packed once for `PackedGemm`; the plan then passes nil for B.
    let packed: PackedColumns?

    init(context: NodeContext) throws {
        try context.requireInputs(2)
        bias = try context.tensor(GraphOptimizer.biasAttribute)
        epilogue = try Epilogue(context: context)
        if let b = context.constantInput(1), b.dataType == .float32, b.rank == 2, b.count > 0 {
            packed = PackedColumns(b.elements(as: Float.self).baseAddress!, k: b.shape[0], n: b.shape[1], transposed: false)
        } else {
            packed = nil
        }
    }

    var absorbedInputs: [Int] { packed == nil ? [] : [1] }

    func run(_ inputs: [Tensor?], into output: Tensor?) throws -> [Tensor] {
        let (out, finished) = try product(inputs, into: output)
        if finished || (bias == nil && epilogue.kind == .none) { return out }
        let y = out[0]
        let n = y.shape.last ?? 1
        guard y.count > 0 else { return out }
        if y.dataType == .float64 && bias == nil {
            epilogue.apply(y.mutableElements(as: Double.self).baseAddress!, count: y.count)
            return out
        }
        if bias == nil {
            switch y.dataType {
            case .int32: try epilogue.apply(y.mutableElements(as: Int32.self).baseAddress!, count: y.count)
            case .int64: try epilogue.apply(y.mutableElements(as: Int64.self).baseAddress!, count: y.count)
            case .uint32: try epilogue.apply(y.mutableElements(as: UInt32.self).baseAddress!, count: y.count)
            case .uint64: try epilogue.apply(y.mutableElements(as: UInt64.self).baseAddress!, count: y.count)
            default: break
            }
            if y.dataType != .float32 { return out }
        }
        guard y.dataType == .float32 else {
            throw KernelError.failed("MatMul's fused bias is float32 only, got \(y.dataType.v2Name)")
        }
        let p = y.mutableElements(as: Float.self).baseAddress!
        if let bias {
            guard bias.count == n, y.rank >= 1 else {
                throw KernelError.shape("MatMul's fused bias has \(bias.count) values for an output of shape \(y.shape)")
            }
            let pb = bias.elements(as: Float.self).baseAddress!
            let rows = y.count / n
            for r in 0..<rows {
                let row = p + r * n
                for j in 0..<n { row[j] += pb[j] }
                epilogue.apply(row, count: n)
            }
        } else {
            epilogue.apply(p, count: y.count)
        }
        return out
    }

    /// The product, and whether it already holds the fused bias and activation (the packed path
    /// starts C from the bias and its tasks apply the activation to their own blocks).
    private func product(_ inputs: [Tensor?], into output: Tensor?) throws -> ([Tensor], Bool) {
        let a = try Check.input(inputs, 0, "A")
        // B is nil when the plan passes the packed copy instead (`absorbedInputs`).
        let b = inputs.count > 1 ? inputs[1] : nil
        let usePacked = b == nil ? packed : nil
        if b == nil && usePacked == nil { _ = try Check.input(inputs, 1, "B") }
        let bStored = b?.shape ?? [usePacked!.k, usePacked!.n]
        try Check.dataType(a, Self.types, "A")
        if let b { try Check.dataType(b, [a.dataType], "B") }
        guard a.rank >= 1, bStored.count >= 1 else {
            throw KernelError.shape("MatMul needs operands of rank 1 or more, got \(a.shape) and \(bStored)")
        }
        let aShape = a.rank == 1 ? [1, a.shape[0]] : a.shape
        let bShape = bStored.count == 1 ? [bStored[0], 1] : bStored
        let m = aShape[aShape.count - 2]
        let k = aShape[aShape.count - 1]
        let n = bShape[bShape.count - 1]
        guard bShape[bShape.count - 2] == k else {
            throw KernelError.shape(
                "MatMul inner dimensions differ: A \(a.shape) has \(k) columns, B \(bStored) has "
                    + "\(bShape[bShape.count - 2]) rows")
        }
        let aBatch = Array(aShape.dropLast(2))
        let bBatch = Array(bShape.dropLast(2))
        guard let batch = Broadcast.shape([aBatch, bBatch]) else {
            throw KernelError.shape("MatMul batch dimensions do not broadcast: A \(a.shape), B \(bStored)")
        }
        var outShape = batch
        if a.rank > 1 { outShape.append(m) }
        if bStored.count > 1 { outShape.append(n) }
        let out = try Output.tensor(output, a.dataType, outShape)
        let batchCount = Tensor.elementCount(batch)
        if batchCount * m * n == 0 { return ([out], false) }
        let shapes = (m: m, n: n, k: k, batch: batch, aBatch: aBatch, bBatch: bBatch)
        if a.dataType != .float32 {
            guard let b else { throw KernelError.failed("MatMul needs inputs of one type, got \(a.dataType.v2Name) and FP32") }
            switch a.dataType {
            case .float64: Self.multiply(a, b, Double.self, shapes, into: out)
            case .int32: Self.multiply(a, b, Int32.self, shapes, into: out)
            case .int64: Self.multiply(a, b, Int64.self, shapes, into: out)
            case .uint32: Self.multiply(a, b, UInt32.self, shapes, into: out)
            default: Self.multiply(a, b, UInt64.self, shapes, into: out)
            }
            return ([out], false)
        }

        let pa = a.elements(as: Float.self).baseAddress!
        let pc = out.mutableElements(as: Float.self).baseAddress!
        if let usePacked {
            // B is one constant matrix: A's batch folds into M; the kernel accumulates onto C, which
            // starts as the fused bias in every row when there is one (no pass to add it after),
            // else as zeros.
            if let bias {
                guard bias.count == n else {
                    throw KernelError.shape("MatMul's fused bias has \(bias.count) values for an output of shape \(outShape)")
                }
                let pb = bias.elements(as: Float.self).baseAddress!
                for r in 0..<(batchCount * m) { (pc + r * n).update(from: pb, count: n) }
            } else {
                pc.update(repeating: 0, count: batchCount * m * n)
            }
            PackedGemm.multiply(a: pa, lda: k, m: batchCount * m, usePacked, c: pc, ldc: n, epilogue: epilogue)
            return ([out], true)
        }
        Self.multiply(a, b!, Float.self, shapes, into: out)
        return ([out], false)
    }

    /// A times B with BLAS (no packed weights), one GEMM when B is a single matrix, else one per
    /// batch matrix, split over the thread budget.
    /// The element types of A and B (the spec's, float16/bfloat16 held as float32).
    static let types: [DataType] = [.float32, .float64, .int32, .int64, .uint32, .uint64]

    private static func multiply<T: MatrixElement>(
        _ a: Tensor, _ b: Tensor, _: T.Type,
        _ shapes: (m: Int, n: Int, k: Int, batch: [Int], aBatch: [Int], bBatch: [Int]), into out: Tensor
    ) {
        let (m, n, k, batch) = (shapes.m, shapes.n, shapes.k, shapes.batch)
        let batchCount = Tensor.elementCount(batch)
        let pa = a.elements(as: T.self).baseAddress!
        let pb = b.elements(as: T.self).baseAddress!
        let pc = out.mutableElements(as: T.self).baseAddress!
        let bMatrices = Tensor.elementCount(shapes.bBatch)
        if bMatrices == 1 {
            // B is one matrix: A's batch folds into M (A is contiguous, its batch count = batchCount).
            T.gemm(transA: false, transB: false, m: batchCount * m, n: n, k: k, a: pa, lda: k, b: pb, ldb: n, c: pc, ldc: n)
            return
        }
        let aStrides = Broadcast.strides(of: shapes.aBatch, broadcastTo: batch)
        let bStrides = Broadcast.strides(of: shapes.bBatch, broadcastTo: batch)
        // The batch's matrices split over the thread budget (OpenBLAS runs on one thread each).
        Parallel.forEach(batchCount, costPerItem: 2 * m * n * k) { range in
            // Odometer over the batch index, started at the range's first matrix; offsets count matrices.
            var index = [Int](repeating: 0, count: batch.count)
            var rest = range.lowerBound
            var aOffset = 0
            var bOffset = 0
            for d in stride(from: batch.count - 1, through: 0, by: -1) {
                index[d] = rest % batch[d]
                rest /= batch[d]
                aOffset += index[d] * aStrides[d]
                bOffset += index[d] * bStrides[d]
            }
            for i in range {
                T.gemm(
                    transA: false, transB: false, m: m, n: n, k: k, a: pa + aOffset * m * k, lda: k,
                    b: pb + bOffset * k * n, ldb: n, c: pc + i * m * n, ldc: n)
                var d = batch.count - 1
                while d >= 0 {
                    index[d] += 1
                    aOffset += aStrides[d]
                    bOffset += bStrides[d]
                    if index[d] < batch[d] { break }
                    aOffset -= aStrides[d] * batch[d]
                    bOffset -= bStrides[d] * batch[d]
                    index[d] = 0
                    d -= 1
                }
            }
        }
    }
}
