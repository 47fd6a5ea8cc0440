import Tensors

/// Index checks shared by the gathers: a possibly negative index into a dimension of `size`.
enum IndexCheck {
    @inline(__always) static func normalize(_ i: Int, _ size: Int, _ op: String) throws -> Int {
        let j = i < 0 ? i + size : i
        guard j >= 0, j < size else {
            throw KernelError.shape("\(op) index \(i) is out of range for a dimension of size \(size)")
        }
        return j
    }

    /// GatherElements' and ScatterElements' walk: for each position `flat` of `indices` (shape
    /// `shape`, row-major), the element offset in data of strides `strides` that the index names
    /// along `axis` (the other coordinates are the position's own), checked against `size`.
    @inline(__always)
    static func forEachElement(
        _ indices: [Int], shape: [Int], strides: [Int], axis: Int, size: Int, _ op: String,
        _ body: (_ offset: Int, _ flat: Int) -> Void
    ) throws {
        var index = [Int](repeating: 0, count: shape.count)
        for flat in 0..<indices.count {
            var offset = 0
            for d in 0..<shape.count where d != axis { offset += index[d] * strides[d] }
            offset += try normalize(indices[flat], size, op) * strides[axis]
            body(offset, flat)
            var d = shape.count - 1
            while d >= 0 {
                index[d] += 1
                if index[d] < shape[d] { break }
                index[d] = 0
                d -= 1
            }
        }
    }
}

/// Gather along `axis`: out[outer, idx..., inner] = data[outer, indices[idx...], inner]. Any element
/// type; int64 or int32 indices, negative ones count from the end.
struct GatherKernel: BufferedKernel {
    let axis: Int

    init(context: NodeContext) throws {
        try context.requireInputs(2)
        axis = try context.int("axis", default: 0)
    }

    func run(_ inputs: [Tensor?], into output: Tensor?) throws -> [Tensor] {
        let x = try Check.input(inputs, 0, "data")
        let idxTensor = try Check.input(inputs, 1, "indices")
        let indices = try IntInput.values(idxTensor, "Gather's indices")
        let a = try Check.axis(axis, rank: x.rank)
        let n = x.shape[a]
        let outShape = Array(x.shape[..<a]) + idxTensor.shape + Array(x.shape[(a + 1)...])
        let out = try Output.tensor(output, x.dataType, outShape)
        if out.count == 0 { return [out] }
        let size = x.dataType.byteSize
        let outer = x.shape[..<a].reduce(1, *)
        let block = x.shape[(a + 1)...].reduce(1, *) * size
        let src = x.rawBytes.baseAddress!
        let dst = out.mutableBytes.baseAddress!
        let normalized = try indices.map { try IndexCheck.normalize($0, n, "Gather") }
        var o = 0
        for i in 0..<outer {
            let row = src + i * n * block
            for j in normalized {
                (dst + o).copyMemory(from: row + j * block, byteCount: block)
                o += block
            }
        }
        return [out]
    }
}

/// GatherElements: out[i...] = data[i... with index on `axis` replaced by indices[i...]].
struct GatherElementsKernel: BufferedKernel {
    let axis: Int

    init(context: NodeContext) throws {
        try context.requireInputs(2)
        axis = try context.int("axis", default: 0)
    }

    func run(_ inputs: [Tensor?], into output: Tensor?) throws -> [Tensor] {
        let x = try Check.input(inputs, 0, "data")
        let idxTensor = try Check.input(inputs, 1, "indices")
        let indices = try IntInput.values(idxTensor, "GatherElements' indices")
        let a = try Check.axis(axis, rank: x.rank)
        guard idxTensor.rank == x.rank,
            (0..<x.rank).allSatisfy({ $0 == a || idxTensor.shape[$0] <= x.shape[$0] })
        else {
            throw KernelError.shape("GatherElements' indices \(idxTensor.shape) do not fit data \(x.shape) on axis \(axis)")
        }
        let out = try Output.tensor(output, x.dataType, idxTensor.shape)
        if out.count == 0 { return [out] }
        let size = x.dataType.byteSize
        let xs = Broadcast.contiguousStrides(x.shape)
        let shape = idxTensor.shape
        let src = x.rawBytes.baseAddress!
        let dst = out.mutableBytes.baseAddress!
        try IndexCheck.forEachElement(indices, shape: shape, strides: xs, axis: a, size: x.shape[a], "GatherElements") {
            offset, flat in (dst + flat * size).copyMemory(from: src + offset * size, byteCount: size)
        }
        return [out]
    }
}

/// GatherND with `batch_dims`: each index tuple (last dimension of indices) selects a slice of data.
struct GatherNDKernel: BufferedKernel {
    let batchDims: Int

    init(context: NodeContext) throws {
        try context.requireInputs(2)
        batchDims = try context.int("batch_dims", default: 0)
    }

    func run(_ inputs: [Tensor?], into output: Tensor?) throws -> [Tensor] {
        let x = try Check.input(inputs, 0, "data")
        let idxTensor = try Check.input(inputs, 1, "indices")
        let indices = try IntInput.values(idxTensor, "GatherND's indices")
        let b = batchDims
        guard idxTensor.rank >= 1, b >= 0, b < min(x.rank, idxTensor.rank),
            Array(x.shape[..<b]) == Array(idxTensor.shape[..<b])
        else { throw KernelError.shape("GatherND cannot index data \(x.shape) with indices \(idxTensor.shape), batch_dims \(b)") }
        let k = idxTensor.shape[idxTensor.rank - 1]
        guard k >= 1, b + k <= x.rank else {
            throw KernelError.shape("GatherND index tuples of length \(k) do not fit data \(x.shape) with batch_dims \(b)")
        }
        let outShape = Array(idxTensor.shape.dropLast()) + Array(x.shape[(b + k)...])
        let out = try Output.tensor(output, x.dataType, outShape)
        if out.count == 0 { return [out] }
        let size = x.dataType.byteSize
        let xs = Broadcast.contiguousStrides(x.shape)
        let sliceBytes = x.shape[(b + k)...].reduce(1, *) * size
        let batch = x.shape[..<b].reduce(1, *)
        let batchBytes = x.shape[b...].reduce(1, *) * size
        let tuplesPerBatch = idxTensor.shape[b..<(idxTensor.rank - 1)].reduce(1, *)
        let src = x.rawBytes.baseAddress!
        let dst = out.mutableBytes.baseAddress!
        var o = 0
        for bi in 0..<batch {
            for t in 0..<tuplesPerBatch {
                let tuple = (bi * tuplesPerBatch + t) * k
                var offset = 0
                for j in 0..<k {
                    offset += try IndexCheck.normalize(indices[tuple + j], x.shape[b + j], "GatherND") * xs[b + j]
                }
                (dst + o).copyMemory(from: src + bi * batchBytes + offset * size, byteCount: sliceBytes)
                o += sliceBytes
            }
        }
        return [out]
    }
}

/// Where(condition, X, Y) with three-way numpy broadcasting; any element type for X and Y. The
/// operands are read through their broadcast strides (no broadcast copies).
struct WhereKernel: BufferedKernel {
    init(context: NodeContext) throws { try context.requireInputs(3) }

    func run(_ inputs: [Tensor?], into output: Tensor?) throws -> [Tensor] {
        let c = try Check.input(inputs, 0, "condition")
        let x = try Check.input(inputs, 1, "X")
        let y = try Check.input(inputs, 2, "Y")
        try Check.dataType(c, [.bool], "condition")
        guard x.dataType == y.dataType else {
            throw KernelError.failed("Where needs X and Y of one type, got \(x.dataType.v2Name) and \(y.dataType.v2Name)")
        }
        guard let shape = Broadcast.shape([c.shape, x.shape, y.shape]) else {
            throw KernelError.shape("Where's shapes \(c.shape), \(x.shape) and \(y.shape) do not broadcast")
        }
        let out = try Output.tensor(output, x.dataType, shape)
        if out.count == 0 { return [out] }
        let strides = [c, x, y].map { Broadcast.strides(of: $0.shape, broadcastTo: shape) }
        switch x.dataType.byteSize {
        case 1: select(c, x, y, out, strides, UInt8.self)
        case 2: select(c, x, y, out, strides, UInt16.self)
        case 4: select(c, x, y, out, strides, UInt32.self)
        default: select(c, x, y, out, strides, UInt64.self)
        }
        return [out]
    }

    /// out[i] = c[i] ? x[i] : y[i] over `out`'s shape, each operand read at its `strides` (0 on a
    /// broadcast dimension): an odometer over the outer dimensions, a plain loop over the innermost.
    private func select<W>(_ c: Tensor, _ x: Tensor, _ y: Tensor, _ out: Tensor, _ strides: [[Int]], _: W.Type) {
        let cp = c.elements(as: Bool.self).baseAddress!
        let xp = x.rawBytes.baseAddress!.assumingMemoryBound(to: W.self)
        let yp = y.rawBytes.baseAddress!.assumingMemoryBound(to: W.self)
        let d = out.mutableBytes.baseAddress!.assumingMemoryBound(to: W.self)
        // Merge adjacent dimensions that are contiguous for all three operands (same shapes: one loop).
        var shape: [Int] = []
        var sc: [Int] = []
        var sx: [Int] = []
        var sy: [Int] = []
        for (k, dim) in out.shape.enumerated() where dim != 1 {
            let (c1, x1, y1) = (strides[0][k], strides[1][k], strides[2][k])
            if let last = shape.indices.last, sc[last] == c1 * dim, sx[last] == x1 * dim, sy[last] == y1 * dim {
                shape[last] *= dim
                (sc[last], sx[last], sy[last]) = (c1, x1, y1)
            } else {
                shape.append(dim)
                sc.append(c1)
                sx.append(x1)
                sy.append(y1)
            }
        }
        if shape.isEmpty {
            d[0] = cp[0] ? xp[0] : yp[0]
            return
        }
        let inner = shape.count - 1
        let n = shape[inner]
        let (ic, ix, iy) = (sc[inner], sx[inner], sy[inner])
        let walk = Odometer(shape: Array(shape.dropLast()), strides: [sc.dropLast(), sx.dropLast(), sy.dropLast()].map(Array.init))
        walk.forEachRow(rowLength: n) { row, offsets in
            Self.selectRow(
                n, cp + offsets[0], ic, xp + offsets[1], ix, yp + offsets[2], iy, d + row * n)
        }
    }

    /// One row of `n` outputs: `d[i] = c[i * cs] ? x[i * xs] : y[i * ys]`. A condition constant over
    /// the row is a copy or fill; a contiguous one with contiguous or scalar operands (the
    /// attention masks of BERT exports) a loop the compiler vectorises.
    @inline(__always)
    static func selectRow<W>(
        _ n: Int, _ c: UnsafePointer<Bool>, _ cs: Int, _ x: UnsafePointer<W>, _ xs: Int, _ y: UnsafePointer<W>,
        _ ys: Int, _ d: UnsafeMutablePointer<W>
    ) {
        if cs == 0 {
            let (src, step) = c[0] ? (x, xs) : (y, ys)
            if step == 1 {
                d.update(from: src, count: n)
            } else if step == 0 {
                d.update(repeating: src[0], count: n)
            } else {
                for i in 0..<n { d[i] = src[i * step] }
            }
            return
        }
        var i = 0
        if cs == 1 {
            // Plain loops per stride pattern: the compiler vectorises them (widened condition
            // bytes, a compare and a blend).
            let cb = UnsafeRawPointer(c).assumingMemoryBound(to: UInt8.self)
            switch (xs, ys) {
            case (1, 1): for j in 0..<n { d[j] = cb[j] != 0 ? x[j] : y[j] }
            case (1, 0):
                let yv = y[0]
                for j in 0..<n { d[j] = cb[j] != 0 ? x[j] : yv }
            case (0, 1):
                let xv = x[0]
                for j in 0..<n { d[j] = cb[j] != 0 ? xv : y[j] }
            case (0, 0):
                let (xv, yv) = (x[0], y[0])
                for j in 0..<n { d[j] = cb[j] != 0 ? xv : yv }
            default: break
            }
            if xs <= 1 && ys <= 1 { i = n }
        }
        while i < n {
            d[i] = c[i * cs] ? x[i * xs] : y[i * ys]
            i += 1
        }
    }
}
