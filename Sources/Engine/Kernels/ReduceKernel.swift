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
struct ReduceKernel: Kernel {
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

    func run(_ inputs: [Tensor?]) throws -> [Tensor] {
        let x = try Check.input(inputs, 0, "data")
        guard var axes = try axes(inputs, rank: x.rank) else { return [x] }
        axes.sort()
        var outShape = x.shape
        for a in axes { outShape[a] = 1 }
        let finalShape = keepDims ? outShape : x.shape.enumerated().filter { !axes.contains($0.offset) }.map(\.element)
        let reduced = axes.reduce(1) { $0 * x.shape[$1] }
        switch x.dataType {
        case .float32:
            let out = try floatReduce(x, outShape, reduced)
            return [out.reshaped(finalShape)]
        case .int64: return [try intReduce(Int64.self, x, outShape).reshaped(finalShape)]
        case .int32: return [try intReduce(Int32.self, x, outShape).reshaped(finalShape)]
        case .bool where op == .max || op == .min:
            // Any / all, on the bytes (0 or 1).
            let bytes = Tensor(dataType: .uint8, shape: x.shape, storage: x.storage, byteOffset: x.byteOffset)
            let r = op == .max
                ? Self.reduce(bytes, outShape, UInt8(0)) { Swift.max($0, $1) }
                : Self.reduce(bytes, outShape, UInt8(1)) { Swift.min($0, $1) }
            return [Tensor(dataType: .bool, shape: finalShape, storage: r.storage)]
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

    private func floatReduce(_ x: Tensor, _ outShape: [Int], _ reduced: Int) throws -> Tensor {
        let out: Tensor
        switch op {
        case .sum, .mean, .logSum: out = Self.reduce(x, outShape, Float(0)) { $0 + $1 }
        case .max: out = Self.reduce(x, outShape, -Float.infinity) { OpMax.apply($0, $1) }
        case .min: out = Self.reduce(x, outShape, Float.infinity) { OpMin.apply($0, $1) }
        case .prod: out = Self.reduce(x, outShape, Float(1)) { $0 * $1 }
        case .sumSquare, .l2: out = Self.reduce(x, outShape, Float(0)) { $0 + $1 * $1 }
        case .l1: out = Self.reduce(x, outShape, Float(0)) { $0 + Swift.abs($1) }
        case .logSumExp:
            // Stable: max first, then sum of exp(x - max).
            let m = Self.reduce(x, outShape, -Float.infinity) { OpMax.apply($0, $1) }
            let shifted = try BinaryLoop<FloatSub>.run(x, m)
            let e = shifted.mutableElements(as: Float.self)
            for i in 0..<e.count { e[i] = expf(e[i]) }
            out = Self.reduce(shifted, outShape, Float(0)) { $0 + $1 }
            let d = out.mutableElements(as: Float.self)
            let mv = m.elements(as: Float.self)
            for i in 0..<d.count { d[i] = logf(d[i]) + (mv[i].isInfinite ? 0 : mv[i]) }
            return out
        }
        let d = out.mutableElements(as: Float.self)
        switch op {
        case .mean:
            let r = 1 / Float(reduced)
            for i in 0..<d.count { d[i] *= r }
        case .l2: for i in 0..<d.count { d[i] = d[i].squareRoot() }
        case .logSum: for i in 0..<d.count { d[i] = logf(d[i]) }
        default: break
        }
        return out
    }

    private func intReduce<T: FixedWidthInteger & TensorElement>(_: T.Type, _ x: Tensor, _ outShape: [Int]) throws -> Tensor {
        switch op {
        case .sum: return Self.reduce(x, outShape, T(0)) { $0 &+ $1 }
        case .max: return Self.reduce(x, outShape, T.min) { Swift.max($0, $1) }
        case .min: return Self.reduce(x, outShape, T.max) { Swift.min($0, $1) }
        case .prod: return Self.reduce(x, outShape, T(1)) { $0 &* $1 }
        default: throw KernelError.failed("\(op.rawValue) supports FP32 only, got \(x.dataType.v2Name)")
        }
    }

    /// out[kept index] = combine(... combine(initial, x[i0]) ..., x[in]) over the reduced positions, in
    /// memory order. `outShape` is the input shape with reduced axes set to 1.
    @inline(__always)
    static func reduce<T: TensorElement>(_ x: Tensor, _ outShape: [Int], _ initial: T, _ combine: (T, T) -> T) -> Tensor {
        let out = Tensor(uninitialized: T.dataType, shape: outShape)
        let d = out.mutableElements(as: T.self).baseAddress!
        d.update(repeating: initial, count: out.count)
        if x.count == 0 { return out }
        let s = x.elements(as: T.self).baseAddress!
        // Merge adjacent dimensions that are both kept or both reduced.
        var shape: [Int] = []
        var kept: [Bool] = []
        for (dim, o) in zip(x.shape, outShape) where dim != 1 {
            let k = o != 1
            if let last = kept.last, last == k { shape[shape.count - 1] *= dim } else {
                shape.append(dim)
                kept.append(k)
            }
        }
        if shape.isEmpty {
            d[0] = combine(d[0], s[0])
            return out
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
        return out
    }
}
