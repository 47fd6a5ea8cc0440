#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Tensors

/// Copies of strided views into contiguous outputs, for any element type (moved as raw 1/2/4/8-byte
/// words): Transpose, Expand, Tile, Slice, Concat and Split are all one call of `copy`.
enum StridedCopy {
    /// Writes the view of `src` with `shape` and element strides `strides` (0 repeats an element,
    /// negative steps backwards) into `dst`, contiguous and row-major. `src` points at the view's first
    /// element. Adjacent dimensions are merged where the strides allow; a contiguous innermost
    /// dimension is copied with `memcpy`.
    static func copy(
        _ src: UnsafeRawPointer, strides fullStrides: [Int], shape fullShape: [Int],
        to dst: UnsafeMutableRawPointer, elementSize: Int
    ) {
        let total = fullShape.reduce(1, *)
        if total == 0 { return }
        var shape: [Int] = []
        var strides: [Int] = []
        for d in 0..<fullShape.count where fullShape[d] != 1 {
            if let last = shape.indices.last, strides[last] == fullStrides[d] * fullShape[d] {
                shape[last] *= fullShape[d]
                strides[last] = fullStrides[d]
            } else {
                shape.append(fullShape[d])
                strides.append(fullStrides[d])
            }
        }
        if shape.isEmpty {
            memcpy(dst, src, elementSize)
            return
        }
        switch elementSize {
        case 1: walk(src, strides, shape, dst, UInt8.self)
        case 2: walk(src, strides, shape, dst, UInt16.self)
        case 4: walk(src, strides, shape, dst, UInt32.self)
        default: walk(src, strides, shape, dst, UInt64.self)
        }
    }

    private static func walk<W>(
        _ src: UnsafeRawPointer, _ strides: [Int], _ shape: [Int], _ dst: UnsafeMutableRawPointer, _: W.Type
    ) {
        let s = src.assumingMemoryBound(to: W.self)
        let d = dst.assumingMemoryBound(to: W.self)
        let inner = shape.count - 1
        let n = shape[inner]
        let step = strides[inner]
        // Rows split between threads from 1M elements (Transpose of attention heads at batch 32).
        Odometer(shape: Array(shape.dropLast()), strides: [Array(strides.dropLast())]).forEachRow(rowLength: n) {
            row, offsets in
            let p = s + offsets[0]
            let q = d + row * n
            if step == 1 {
                memcpy(q, p, n * MemoryLayout<W>.stride)
            } else if step == 0 {
                q.update(repeating: p[0], count: n)
            } else {
                for i in 0..<n { q[i] = p[i * step] }
            }
        }
    }

    /// Copies `x` laid out with `shape`/`strides` (element units, relative to `x`'s first element plus
    /// `elementOffset`) into `output` when given (a slice of the shape plan's arena; checked against
    /// the type and shape), else into a new contiguous tensor charged to the run's memory budget.
    static func tensor(
        _ x: Tensor, shape: [Int], strides: [Int], elementOffset: Int = 0, into output: Tensor? = nil
    ) throws
        -> Tensor
    {
        let out = try Output.tensor(output, x.dataType, shape)
        if out.count > 0 {
            copy(
                x.rawBytes.baseAddress! + elementOffset * x.dataType.byteSize, strides: strides, shape: shape,
                to: out.mutableBytes.baseAddress!, elementSize: x.dataType.byteSize)
        }
        return out
    }
}

/// Reading small integer inputs (shapes, axes, pads, starts) whatever their integer type.
enum IntInput {
    /// The values of an int64 or int32 tensor.
    static func values(_ t: Tensor, _ what: String) throws -> [Int] {
        switch t.dataType {
        case .int64: return t.elements(as: Int64.self).map { Int($0) }
        case .int32: return t.elements(as: Int32.self).map { Int($0) }
        default: throw KernelError.failed("\(what) must be INT64 or INT32, got \(t.dataType.v2Name)")
        }
    }

    /// Values of optional input `index`, nil when it is omitted.
    static func optional(_ inputs: [Tensor?], _ index: Int, _ what: String) throws -> [Int]? {
        guard index < inputs.count, let t = inputs[index] else { return nil }
        return try values(t, what)
    }

    /// An int64 vector tensor.
    static func tensor(_ values: [Int]) -> Tensor { Tensor(values.map { Int64($0) }, shape: [values.count]) }

    /// Normalises and checks a list of axes for `rank`; duplicates are an error.
    static func axes(_ axes: [Int], rank: Int, _ op: String) throws -> [Int] {
        var out: [Int] = []
        for a in axes {
            let n = try Check.axis(a, rank: rank, "\(op) axis")
            guard !out.contains(n) else { throw KernelError.failed("\(op) lists axis \(a) twice") }
            out.append(n)
        }
        return out
    }
}
