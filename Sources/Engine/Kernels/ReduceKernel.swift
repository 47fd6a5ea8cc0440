#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Tensors

/// The Reduce* family: Sum, Mean, Max, Min, Prod, SumSquare, L1, L2, LogSum, LogSumExp over `axes`
/// (attribute before opset 13 for ReduceSum and 18 for the others, an optional input after, possibly
/// computed at run time), `keepdims` (default 1), `noop_with_empty_axes`. float32; Sum, Max, Min and
/// Prod also int64 and int32. One pass over the input in memory order, accumulating into the output.
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
        case .int64 where op == .sum || op == .max || op == .min || op == .prod:
            let out = try Output.tensor(output, .int64, finalShape)
            intReduce(x, outShape, into: out.mutableElements(as: Int64.self).baseAddress!)
            return [out]
        case .int32 where op == .sum || op == .max || op == .min || op == .prod:
            let out = try Output.tensor(output, .int32, finalShape)
            intReduce(x, outShape, into: out.mutableElements(as: Int32.self).baseAddress!)
            return [out]
        case .int64, .int32: throw KernelError.failed("\(op.rawValue) supports FP32 only, got \(x.dataType.v2Name)")
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
        default: throw KernelError.failed("\(op.rawValue) supports FP32, INT64 and INT32, got \(x.dataType.v2Name)")
        }
    }

    /// The axes reduced for an input of rank `rank` (normalised), or nil when the op is a no-op
    /// (empty axes with `noop_with_empty_axes`).
    func axes(_ inputs: [Tensor?], rank: Int) throws -> [Int]? {
        let given = axesFromInput ? try IntInput.optional(inputs, 1, "\(op.rawValue)'s axes") : attributeAxes
        if let given, !given.isEmpty { return try IntInput.axes(given, rank: rank, op.rawValue) }
        return noopWithEmptyAxes ? nil : Array(0..<rank)
    }

    /// Reduces float32 `x` into `d` (as many floats as `outShape` holds).
    private func floatReduce(_ x: Tensor, _ outShape: [Int], _ reduced: Int, into d: UnsafeMutablePointer<Float>) {
        let s = x.elements(as: Float.self).baseAddress
        let count = Tensor.elementCount(outShape)
        switch op {
        case .sum, .mean, .logSum: Self.reduce(s, x.shape, outShape, Float(0), into: d) { $0 + $1 }
        case .max: Self.reduce(s, x.shape, outShape, -Float.infinity, into: d) { OpMax.apply($0, $1) }
        case .min: Self.reduce(s, x.shape, outShape, Float.infinity, into: d) { OpMin.apply($0, $1) }
        case .prod: Self.reduce(s, x.shape, outShape, Float(1), into: d) { $0 * $1 }
        case .sumSquare, .l2: Self.reduce(s, x.shape, outShape, Float(0), into: d) { $0 + $1 * $1 }
        case .l1: Self.reduce(s, x.shape, outShape, Float(0), into: d) { $0 + Swift.abs($1) }
        case .logSumExp:
            // Stable: max first, then sum of exp(x - max). The maxima and the shifted copy live in this
            // thread's scratch: [exp(x - max) (x.count) | max (count)].
            let n = x.count
            ThreadScratch.withFloats(n + count) { scratch in
                let m = scratch + n
                Self.reduce(s, x.shape, outShape, -Float.infinity, into: m) { OpMax.apply($0, $1) }
                if n > 0 {
                    // The maxima broadcast to x's shape, then exp(x - max) in place.
                    StridedCopy.copy(
                        UnsafeRawPointer(m), strides: Broadcast.strides(of: outShape, broadcastTo: x.shape),
                        shape: x.shape, to: UnsafeMutableRawPointer(scratch), elementSize: 4)
                    for i in 0..<n { scratch[i] = expf(s![i] - scratch[i]) }
                }
                Self.reduce(UnsafePointer(scratch), x.shape, outShape, Float(0), into: d) { $0 + $1 }
                for i in 0..<count { d[i] = logf(d[i]) + (m[i].isInfinite ? 0 : m[i]) }
            }
            return
        }
        switch op {
        case .mean:
            let r = 1 / Float(reduced)
            for i in 0..<count { d[i] *= r }
        case .l2: for i in 0..<count { d[i] = d[i].squareRoot() }
        case .logSum: for i in 0..<count { d[i] = logf(d[i]) }
        default: break
        }
    }

    /// Sum, Max, Min or Prod of integer `x` into `d`.
    private func intReduce<T: FixedWidthInteger & TensorElement>(_ x: Tensor, _ outShape: [Int], into d: UnsafeMutablePointer<T>) {
        let s = x.elements(as: T.self).baseAddress
        switch op {
        case .max: Self.reduce(s, x.shape, outShape, T.min, into: d) { Swift.max($0, $1) }
        case .min: Self.reduce(s, x.shape, outShape, T.max, into: d) { Swift.min($0, $1) }
        case .prod: Self.reduce(s, x.shape, outShape, T(1), into: d) { $0 &* $1 }
        default: Self.reduce(s, x.shape, outShape, T(0), into: d) { $0 &+ $1 }
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
