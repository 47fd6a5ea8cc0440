#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Tensors

/// The Reduce* family: Sum, Mean, Max, Min, Prod, SumSquare, L1, L2, LogSum, LogSumExp over `axes`
/// (attribute before opset 13 for ReduceSum and 18 for the others, an optional input after, possibly
/// computed at run time), `keepdims` (default 1), `noop_with_empty_axes`. float32 and float64; every
/// op but LogSum and LogSumExp also every integer type (wrapping; integer Mean and L2 truncate);
/// Max and Min also bool. One pass over the input in memory order, accumulating into the output.
struct ReduceKernel: BufferedKernel {
    enum Op: String, Sendable {
        case sum = "ReduceSum", mean = "ReduceMean", max = "ReduceMax", min = "ReduceMin", prod = "ReduceProd"
        case sumSquare = "ReduceSumSquare", l1 = "ReduceL1", l2 = "ReduceL2", logSum = "ReduceLogSum"
        case logSumExp = "ReduceLogSumExp"
    }
    let op: Op
    let keepDims: Bool
    let noopWithEmptyAxes: Bool
    let attributeAxes: [Int]?
    let axesFromInput: Bool

    init(context: NodeContext, op: Op) throws {
        self.op = op
        axesFromInput = context.opset >= (op == .sum ? 13 : 18)
        try context.requireInputs(1, axesFromInput ? 2 : 1)
        attributeAxes = axesFromInput ? nil : try context.ints("axes")
        keepDims = try context.int("keepdims", default: 1) != 0
        noopWithEmptyAxes = try context.int("noop_with_empty_axes", default: 0) != 0
    }

    func run(_ inputs: [Tensor?], into output: Tensor?) throws -> [Tensor] {
        let x = try Check.input(inputs, 0, "data")
        guard var axes = try axes(inputs, rank: x.rank) else {
            // No-op: the input itself, or a copy of it in the plan's buffer (which must not alias it).
            guard let output else { return [x] }
            let out = try Output.tensor(output, x.dataType, x.shape)
            if x.byteCount > 0 { out.mutableBytes.baseAddress!.copyMemory(from: x.rawBytes.baseAddress!, byteCount: x.byteCount) }
            return [out]
        }
        axes.sort()
        var outShape = x.shape
        for a in axes { outShape[a] = 1 }
        let finalShape = keepDims ? outShape : x.shape.enumerated().filter { !axes.contains($0.offset) }.map(\.element)
        let reduced = axes.reduce(1) { $0 * x.shape[$1] }
        switch x.dataType {
        case .float32:
            let out = try Output.tensor(output, .float32, finalShape)
            floatReduce(x, outShape, reduced, into: out.mutableElements(as: Float.self).baseAddress!)
            return [out]
        case .bool where op == .max || op == .min:
            // Any / all, on the bytes (0 or 1).
            let out = try Output.tensor(output, .bool, finalShape)
            let s = x.rawBytes.baseAddress?.assumingMemoryBound(to: UInt8.self)
            let d = out.mutableBytes.baseAddress!.assumingMemoryBound(to: UInt8.self)
            if op == .max {
                Self.reduce(s, x.shape, outShape, UInt8(0), into: d) { Swift.max($0, $1) }
            } else {
                Self.reduce(s, x.shape, outShape, UInt8(1), into: d) { Swift.min($0, $1) }
            }
            return [out]
        default:
            let body = Reduction(kernel: self, x: x, outShape: outShape, finalShape: finalShape, reduced: reduced, output: output)
            guard let out = try x.dataType.dispatch(body) else {
                throw KernelError.unsupportedType(op.rawValue, x.dataType, supported: Self.types(op))
            }
            return [out]
        }
    }

    /// The element types an op implements.
    static func types(_ op: Op) -> [DataType] {
        switch op {
        case .logSum, .logSumExp: return [.float32, .float64]
        case .max, .min: return DataType.realNumbers + [.bool]
        default: return DataType.realNumbers
        }
    }

    /// The reduction on float64 or an integer type.
    private struct Reduction: NumericBody {
        let kernel: ReduceKernel
        let x: Tensor
        let outShape: [Int]
        let finalShape: [Int]
        let reduced: Int
        let output: Tensor?

        func integer<T: FixedWidthInteger & TensorElement>(_: T.Type) throws -> Tensor {
            guard ReduceKernel.types(kernel.op).contains(T.dataType) else {
                throw KernelError.unsupportedType(kernel.op.rawValue, T.dataType, supported: ReduceKernel.types(kernel.op))
            }
            let out = try Output.tensor(output, T.dataType, finalShape)
            kernel.intReduce(x, outShape, reduced, into: out.mutableElements(as: T.self).baseAddress!)
            return out
        }

        func float<T: FloatElement>(_: T.Type) throws -> Tensor {
            let out = try Output.tensor(output, T.dataType, finalShape)
            kernel.floatReduce(x, outShape, reduced, into: out.mutableElements(as: T.self).baseAddress!)
            return out
        }
    }

    /// The axes reduced for an input of rank `rank` (normalised), or nil when the op is a no-op
    /// (empty axes with `noop_with_empty_axes`).
    func axes(_ inputs: [Tensor?], rank: Int) throws -> [Int]? {
        let given = axesFromInput ? try IntInput.optional(inputs, 1, "\(op.rawValue)'s axes") : attributeAxes
        if let given, !given.isEmpty { return try IntInput.axes(given, rank: rank, op.rawValue) }
        return noopWithEmptyAxes ? nil : Array(0..<rank)
    }

    /// Reduces float `x` into `d` (as many values as `outShape` holds).
    fileprivate func floatReduce<T: FloatElement>(_ x: Tensor, _ outShape: [Int], _ reduced: Int, into d: UnsafeMutablePointer<T>) {
        let s = x.elements(as: T.self).baseAddress
        let count = Tensor.elementCount(outShape)
        switch op {
        case .sum, .mean, .logSum: Self.reduce(s, x.shape, outShape, T(0), into: d) { $0 + $1 }
        case .max: Self.reduce(s, x.shape, outShape, -T.infinity, into: d) { OpMax.apply($0, $1) }
        case .min: Self.reduce(s, x.shape, outShape, T.infinity, into: d) { OpMin.apply($0, $1) }
        case .prod: Self.reduce(s, x.shape, outShape, T(1), into: d) { $0 * $1 }
        case .sumSquare, .l2: Self.reduce(s, x.shape, outShape, T(0), into: d) { $0 + $1 * $1 }
        case .l1: Self.reduce(s, x.shape, outShape, T(0), into: d) { $0 + Swift.abs($1) }
        case .logSumExp:
            // Stable: max first, then sum of exp(x - max). The maxima and the shifted copy live in
            // scratch: [exp(x - max) (x.count) | max (count)].
            let n = x.count
            Self.withScratch(T.self, n + count) { scratch in
                let m = scratch + n
                Self.reduce(s, x.shape, outShape, -T.infinity, into: m) { OpMax.apply($0, $1) }
                if n > 0 {
                    // The maxima broadcast to x's shape, then exp(x - max) in place.
                    StridedCopy.copy(
                        UnsafeRawPointer(m), strides: Broadcast.strides(of: outShape, broadcastTo: x.shape),
                        shape: x.shape, to: UnsafeMutableRawPointer(scratch), elementSize: MemoryLayout<T>.stride)
                    for i in 0..<n { scratch[i] = (s![i] - scratch[i]).exponential() }
                }
                Self.reduce(UnsafePointer(scratch), x.shape, outShape, T(0), into: d) { $0 + $1 }
                for i in 0..<count { d[i] = d[i].logarithm() + (m[i].isInfinite ? 0 : m[i]) }
            }
            return
        }
        switch op {
        case .mean:
            let r = 1 / T(reduced)
            for i in 0..<count { d[i] *= r }
        case .l2: for i in 0..<count { d[i] = d[i].squareRoot() }
        case .logSum: for i in 0..<count { d[i] = d[i].logarithm() }
        default: break
        }
    }

    /// `count` values of scratch: this thread's float buffer for float32, a temporary one otherwise.
    @inline(__always)
    private static func withScratch<T: FloatElement>(_: T.Type, _ count: Int, _ body: (UnsafeMutablePointer<T>) -> Void) {
        if T.self == Float.self {
            ThreadScratch.withFloats(count) { body(UnsafeMutableRawPointer($0).assumingMemoryBound(to: T.self)) }
            return
        }
        let buffer = UnsafeMutablePointer<T>.allocate(capacity: count)
        defer { buffer.deallocate() }
        body(buffer)
    }

    /// Sum, Max, Min, Prod, Mean, SumSquare, L1 or L2 of integer `x` into `d` (wrapping; Mean and L2
    /// truncate toward zero).
    fileprivate func intReduce<T: FixedWidthInteger & TensorElement>(
        _ x: Tensor, _ outShape: [Int], _ reduced: Int, into d: UnsafeMutablePointer<T>
    ) {
        let s = x.elements(as: T.self).baseAddress
        let count = Tensor.elementCount(outShape)
        switch op {
        case .max: Self.reduce(s, x.shape, outShape, T.min, into: d) { Swift.max($0, $1) }
        case .min: Self.reduce(s, x.shape, outShape, T.max, into: d) { Swift.min($0, $1) }
        case .prod: Self.reduce(s, x.shape, outShape, T(1), into: d) { $0 &* $1 }
        case .sumSquare, .l2: Self.reduce(s, x.shape, outShape, T(0), into: d) { $0 &+ $1 &* $1 }
        case .l1: Self.reduce(s, x.shape, outShape, T(0), into: d) { $0 &+ ($1 < 0 ? 0 &- $1 : $1) }
        default: Self.reduce(s, x.shape, outShape, T(0), into: d) { $0 &+ $1 }
        }
        switch op {
        case .mean:
            guard let r = T(exactly: reduced), r != 0 else { break }
            for i in 0..<count { d[i] = d[i] / r }
        case .l2: for i in 0..<count { d[i] = T(Double(d[i]).squareRoot().rounded(.towardZero)) }
        default: break
        }
    }

    /// `reduce(_:_:_:into:_:)` into a new tensor of `outShape`.
    static func reduce<T: TensorElement>(_ x: Tensor, _ outShape: [Int], _ initial: T, _ combine: (T, T) -> T) -> Tensor {
        let out = Tensor(uninitialized: T.dataType, shape: outShape)  // no larger than x
        reduce(x.elements(as: T.self).baseAddress, x.shape, outShape, initial, into: out.mutableElements(as: T.self).baseAddress!, combine)
        return out
    }

    /// d[kept index] = combine(... combine(initial, x[i0]) ..., x[in]) over the reduced positions, in
    /// memory order, for `x` (`source`, nil when empty) of `inShape`. `outShape` is the input shape
    /// with reduced axes set to 1; `d` holds its element count.
    @inline(__always)
    static func reduce<T: TensorElement>(
        _ source: UnsafePointer<T>?, _ inShape: [Int], _ outShape: [Int], _ initial: T,
        into d: UnsafeMutablePointer<T>, _ combine: (T, T) -> T
    ) {
        d.update(repeating: initial, count: Tensor.elementCount(outShape))
        guard Tensor.elementCount(inShape) > 0, let s = source else { return }
        // Merge adjacent dimensions that are both kept or both reduced.
        var shape: [Int] = []
        var kept: [Bool] = []
        for (dim, o) in zip(inShape, outShape) where dim != 1 {
            let k = o != 1
            if let last = kept.last, last == k { shape[shape.count - 1] *= dim } else {
                shape.append(dim)
                kept.append(k)
            }
        }
        if shape.isEmpty {
            d[0] = combine(d[0], s[0])
            return
        }
        var ostrides = [Int](repeating: 0, count: shape.count)
        var running = 1
        for i in stride(from: shape.count - 1, through: 0, by: -1) where kept[i] {
            ostrides[i] = running
            running *= shape[i]
        }
        let inner = shape.count - 1
        let n = shape[inner]
        let innerKept = kept[inner]
        let outer = shape.dropLast().reduce(1, *)
        var index = [Int](repeating: 0, count: inner)
        var o = 0
        var p = s
        for _ in 0..<outer {
            let q = d + o
            if innerKept {
                for i in 0..<n { q[i] = combine(q[i], p[i]) }
            } else {
                var acc = q[0]
                for i in 0..<n { acc = combine(acc, p[i]) }
                q[0] = acc
            }
            p += n
            var k = inner - 1
            while k >= 0 {
                index[k] += 1
                o += ostrides[k]
                if index[k] < shape[k] { break }
                o -= ostrides[k] * shape[k]
                index[k] = 0
                k -= 1
            }
        }
    }
}
