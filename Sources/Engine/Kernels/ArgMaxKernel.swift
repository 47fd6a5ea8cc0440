import Tensors

/// ArgMax (and ArgMin) along `axis` (default 0), `keepdims` (default 1), `select_last_index` (default 0, opset 12+).
/// Output INT64. Inputs float32, float64 or any integer type. NaN never wins against a number.
struct ArgMaxKernel: BufferedKernel {
    /// ArgMin when true (the same scan on the other order).
    let isMin: Bool
    let axis: Int
    let keepDims: Bool
    let selectLast: Bool

    init(context: NodeContext, isMin: Bool = false) throws {
        try context.requireInputs(1)
        self.isMin = isMin
        axis = try context.int("axis", default: 0)
        keepDims = try context.int("keepdims", default: 1) != 0
        selectLast = try context.int("select_last_index", default: 0) != 0
    }

    func run(_ inputs: [Tensor?], into output: Tensor?) throws -> [Tensor] {
        let x = try Check.input(inputs, 0, "data")
        let a = try Check.axis(axis, rank: x.rank)
        let n = x.shape[a]
        var outShape = x.shape
        if keepDims { outShape[a] = 1 } else { outShape.remove(at: a) }
        let out = try Output.tensor(output, .int64, outShape)
        if out.count == 0 { return [out] }
        guard n > 0 else { throw KernelError.shape("ArgMax over an empty axis \(axis) of shape \(x.shape)") }
        let outer = x.shape[..<a].reduce(1, *)
        let inner = x.shape[(a + 1)...].reduce(1, *)
        let dst = out.mutableElements(as: Int64.self).baseAddress!
        if x.dataType == .float32 {
            scan(x.elements(as: Float.self).baseAddress!, dst, outer, n, inner)
        } else if try x.dataType.dispatch(Scan(kernel: self, x: x, dst: dst, outer: outer, n: n, inner: inner)) == nil {
            throw KernelError.unsupportedType(isMin ? "ArgMin" : "ArgMax", x.dataType, supported: DataType.realNumbers)
        }
        return [out]
    }

    private struct Scan: ComparableBody {
        typealias Result = Void
        let kernel: ArgMaxKernel
        let x: Tensor
        let dst: UnsafeMutablePointer<Int64>
        let outer: Int
        let n: Int
        let inner: Int

        func run<T: Comparable & TensorElement>(_: T.Type) throws {
            kernel.scan(x.elements(as: T.self).baseAddress!, dst, outer, n, inner)
        }
    }

    fileprivate func scan<T: Comparable>(
        _ src: UnsafePointer<T>, _ dst: UnsafeMutablePointer<Int64>, _ outer: Int, _ n: Int, _ inner: Int
    ) {
        for o in 0..<outer {
            for j in 0..<inner {
                let base = o * n * inner + j
                var best = src[base]
                var bestIndex = 0
                for i in 1..<max(n, 1) {
                    let v = src[base + i * inner]
                    // A NaN best is replaced by the next value, so NaN wins only when every value is NaN.
                    let better = isMin ? v < best : v > best
                    let tie = v == best
                    if selectLast ? (better || tie || !(best == best)) : (better || (!(best == best) && v == v)) {
                        best = v
                        bestIndex = i
                    }
                }
                dst[o * inner + j] = Int64(bestIndex)
            }
        }
    }
}
