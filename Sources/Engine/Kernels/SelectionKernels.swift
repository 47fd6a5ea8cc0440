import Tensors

/// TopK along `axis` (default -1): the `k` largest (or smallest, `largest` = 0, opset 11) values
/// and their INT64 indices. `k` is an attribute in opset 1 and a one-element input from opset 10.
/// Outputs are always sorted (for `sorted` = 0 the spec leaves the order open); equal values keep
/// the lower index first. NaN counts as larger than every number (first when largest, last when
/// smallest). FP32, FP64 and every integer type. Each slice keeps a heap of its best `k` candidates: O(n log k).
struct TopKKernel: Kernel {
    let axis: Int
    let largest: Bool
    /// Opset 1's attribute; nil from opset 10 on (k is input 1).
    let attributeK: Int?

    init(context: NodeContext) throws {
        if context.opset < 10 {
            try context.requireInputs(1)
            guard let k = try context.int("k") else { throw context.invalid("has no 'k' attribute") }
            attributeK = k
        } else {
            try context.requireInputs(2)
            attributeK = nil
        }
        axis = try context.int("axis", default: -1)
        largest = context.opset < 11 ? true : try context.int("largest", default: 1) != 0
    }

    func run(_ inputs: [Tensor?]) throws -> [Tensor] {
        let x = try Check.input(inputs, 0, "X")
        let k: Int
        if let attributeK {
            k = attributeK
        } else {
            let kt = try Check.input(inputs, 1, "K")
            let values = try IntInput.values(kt, "TopK's K")
            guard values.count == 1 else { throw KernelError.shape("TopK's K must hold one value, got \(values.count)") }
            k = values[0]
        }
        let a = try Check.axis(axis, rank: x.rank)
        let n = x.shape[a]
        guard k >= 0, k <= n else {
            throw KernelError.shape("TopK's k = \(k) is out of range for axis \(axis) of size \(n) (shape \(x.shape))")
        }
        var outShape = x.shape
        outShape[a] = k
        let values = try Tensor(allocating: x.dataType, shape: outShape)
        let indices = try Tensor(allocating: .int64, shape: outShape)
        if values.count == 0 { return [values, indices] }
        let outer = x.shape[..<a].reduce(1, *)
        let inner = x.shape[(a + 1)...].reduce(1, *)
        let dst = indices.mutableElements(as: Int64.self).baseAddress!
        let body = Selection(kernel: self, x: x, values: values, indices: dst, outer: outer, n: n, inner: inner, k: k)
        if try x.dataType.dispatch(body) == nil {
            throw KernelError.unsupportedType("TopK", x.dataType, supported: DataType.realNumbers)
        }
        return [values, indices]
    }

    private struct Selection: ComparableBody {
        typealias Result = Void
        let kernel: TopKKernel
        let x: Tensor
        let values: Tensor
        let indices: UnsafeMutablePointer<Int64>
        let outer: Int
        let n: Int
        let inner: Int
        let k: Int

        func run<T: Comparable & TensorElement>(_: T.Type) throws {
            kernel.select(
                x.elements(as: T.self).baseAddress!, values.mutableElements(as: T.self).baseAddress!, indices, outer, n,
                inner, k)
        }
    }

    /// Whether (v, i) comes before (w, j) in the output order.
    @inline(__always)
    private func precedes<T: Comparable>(_ v: T, _ i: Int, _ w: T, _ j: Int) -> Bool {
        let vNaN = v != v
        let wNaN = w != w
        if vNaN || wNaN {
            if vNaN && wNaN { return i < j }
            return largest ? vNaN : wNaN
        }
        if v == w { return i < j }
        return largest ? v > w : v < w
    }

    fileprivate func select<T: Comparable>(
        _ src: UnsafePointer<T>, _ vals: UnsafeMutablePointer<T>, _ idx: UnsafeMutablePointer<Int64>,
        _ outer: Int, _ n: Int, _ inner: Int, _ k: Int
    ) {
        // A max-heap of the kept candidates by `precedes` reversed: its root is the worst kept one.
        var heap = [Int](repeating: 0, count: k)
        for o in 0..<outer {
            for j in 0..<inner {
                let base = o * n * inner + j
                @inline(__always) func value(_ i: Int) -> T { src[base + i * inner] }
                // `worse(a, b)`: candidate a comes after b in the output order.
                @inline(__always) func worse(_ a: Int, _ b: Int) -> Bool { precedes(value(b), b, value(a), a) }
                func siftDown(_ start: Int, _ count: Int) {
                    var p = start
                    while true {
                        let l = 2 * p + 1
                        if l >= count { return }
                        var c = l
                        if l + 1 < count && worse(heap[l + 1], heap[l]) { c = l + 1 }
                        if !worse(heap[c], heap[p]) { return }
                        heap.swapAt(c, p)
                        p = c
                    }
                }
                for i in 0..<k { heap[i] = i }
                var s = k / 2
                while s > 0 {
                    s -= 1
                    siftDown(s, k)
                }
                if k < n {
                    for i in k..<n where worse(heap[0], i) {
                        heap[0] = i
                        siftDown(0, k)
                    }
                }
                // Pop the worst to the back: the heap's array ends sorted best first.
                var end = k
                while end > 1 {
                    end -= 1
                    heap.swapAt(0, end)
                    siftDown(0, end)
                }
                let outBase = o * k * inner + j
                for r in 0..<k {
                    vals[outBase + r * inner] = value(heap[r])
                    idx[outBase + r * inner] = Int64(heap[r])
                }
            }
        }
    }
}

/// NonZero: the INT64 indices of the non-zero elements, shape [rank, count], in row-major order
/// (a scalar gives [0, count]). Any element type; float zero and negative zero are zero, NaN is
/// not.
struct NonZeroKernel: Kernel {
    init(context: NodeContext) throws { try context.requireInputs(1) }

    func run(_ inputs: [Tensor?]) throws -> [Tensor] {
        let x = try Check.input(inputs, 0, "X")
        let flags: [Bool]
        switch x.dataType {
        case .float32: flags = x.elements(as: Float.self).map { $0 != 0 }
        case .float64: flags = x.elements(as: Double.self).map { $0 != 0 }
        case .float16, .bfloat16: flags = x.elements(as: UInt16.self).map { $0 & 0x7FFF != 0 }
        case .int64, .uint64: flags = x.elements(as: UInt64.self).map { $0 != 0 }
        case .int32, .uint32: flags = x.elements(as: UInt32.self).map { $0 != 0 }
        case .int16, .uint16: flags = x.elements(as: UInt16.self).map { $0 != 0 }
        case .int8, .uint8: flags = x.elements(as: UInt8.self).map { $0 != 0 }
        case .bool: flags = x.elements(as: Bool.self).map { $0 }
        case .string: throw KernelError.failed("NonZero does not support string tensors")
        case .float8e4m3fn, .float8e4m3fnuz, .float8e5m2, .float8e5m2fnuz, .float8e8m0, .float4e2m1, .int4, .uint4, .int2,
            .uint2:
            flags = x.doubleValues().map { $0 != 0 }
        }
        var count = 0
        for f in flags where f { count += 1 }
        let rank = x.rank
        let out = try Tensor(allocating: .int64, shape: [rank, count])
        if out.count == 0 { return [out] }
        let d = out.mutableElements(as: Int64.self)
        var index = [Int](repeating: 0, count: rank)
        var c = 0
        for flat in 0..<flags.count {
            if flags[flat] {
                for r in 0..<rank { d[r * count + c] = Int64(index[r]) }
                c += 1
            }
            var r = rank - 1
            while r >= 0 {
                index[r] += 1
                if index[r] < x.shape[r] { break }
                index[r] = 0
                r -= 1
            }
        }
        return [out]
    }
}
