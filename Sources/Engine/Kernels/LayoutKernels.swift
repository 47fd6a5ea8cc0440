import Tensors

/// Transpose by `perm` (default: reversed axes). One strided copy.
struct TransposeKernel: BufferedKernel {
    let perm: [Int]?

    init(context: NodeContext) throws {
        try context.requireInputs(1)
        perm = try context.ints("perm")
    }

    func run(_ inputs: [Tensor?], into output: Tensor?) throws -> [Tensor] {
        let x = try Check.input(inputs, 0, "data")
        let p = perm ?? Array((0..<x.rank).reversed())
        guard p.count == x.rank, Set(p) == Set(0..<x.rank) else {
            throw KernelError.shape("Transpose's perm \(p) is not a permutation of the \(x.rank) axes of \(x.shape)")
        }
        let strides = Broadcast.contiguousStrides(x.shape)
        return [try StridedCopy.tensor(x, shape: p.map { x.shape[$0] }, strides: p.map { strides[$0] }, into: output)]
    }
}

/// Squeeze: axes from the attribute (opset < 13) or the optional input (13+, may be computed at run
/// time); none given removes every dimension of size 1. Zero-copy.
struct SqueezeKernel: Kernel {
    let attributeAxes: [Int]?
    let axesFromInput: Bool

    init(context: NodeContext) throws {
        axesFromInput = context.opset >= 13
        try context.requireInputs(1, axesFromInput ? 2 : 1)
        attributeAxes = axesFromInput ? nil : try context.ints("axes")
    }

    func run(_ inputs: [Tensor?]) throws -> [Tensor] {
        let x = try Check.input(inputs, 0, "data")
        let given = axesFromInput ? try IntInput.optional(inputs, 1, "Squeeze's axes") : attributeAxes
        guard let given else { return [x.reshaped(x.shape.filter { $0 != 1 })] }
        let axes = try IntInput.axes(given, rank: x.rank, "Squeeze")
        for a in axes where x.shape[a] != 1 {
            throw KernelError.shape("Squeeze axis \(a) of shape \(x.shape) has size \(x.shape[a]), not 1")
        }
        return [x.reshaped(x.shape.enumerated().filter { !axes.contains($0.offset) }.map(\.element))]
    }
}

/// Unsqueeze: inserts size-1 dimensions at `axes` (attribute before opset 13, input after). Zero-copy.
struct UnsqueezeKernel: Kernel {
    let attributeAxes: [Int]?

    init(context: NodeContext) throws {
        if context.opset >= 13 {
            try context.requireInputs(2)
            attributeAxes = nil
        } else {
            try context.requireInputs(1)
            guard let a = try context.ints("axes") else { throw context.invalid("has no 'axes' attribute") }
            attributeAxes = a
        }
    }

    func run(_ inputs: [Tensor?]) throws -> [Tensor] {
        let x = try Check.input(inputs, 0, "data")
        let given = try attributeAxes ?? IntInput.values(try Check.input(inputs, 1, "axes"), "Unsqueeze's axes")
        let rank = x.rank + given.count
        let axes = try IntInput.axes(given, rank: rank, "Unsqueeze")
        var shape: [Int] = []
        var next = 0
        for d in 0..<rank {
            if axes.contains(d) {
                shape.append(1)
            } else {
                shape.append(x.shape[next])
                next += 1
            }
        }
        return [x.reshaped(shape)]
    }
}

/// Concat along `axis` (any element type; inputs must share type and the other dimensions).
struct ConcatKernel: BufferedKernel {
    let axis: Int

    init(context: NodeContext) throws {
        guard context.inputCount >= 1 else { throw context.invalid("needs one or more inputs") }
        axis = try context.int("axis", default: context.opset < 4 ? 1 : Int.min)
        if axis == Int.min { throw context.invalid("has no 'axis' attribute") }
    }

    /// Concat along `axis` (ConcatFromSequence joins a sequence's elements with it).
    init(axis: Int) { self.axis = axis }

    func run(_ inputs: [Tensor?], into output: Tensor?) throws -> [Tensor] {
        let parts = try inputs.indices.map { try Check.input(inputs, $0, "input \($0)") }
        let first = parts[0]
        let a = try Check.axis(axis, rank: first.rank)
        var shape = first.shape
        shape[a] = 0
        for p in parts {
            guard p.dataType == first.dataType, p.rank == first.rank,
                (0..<p.rank).allSatisfy({ $0 == a || p.shape[$0] == first.shape[$0] })
            else {
                throw KernelError.shape(
                    "Concat on axis \(axis) needs inputs of one type and equal other dimensions, got "
                        + parts.map { "\($0.dataType.v2Name) \($0.shape)" }.joined(separator: ", "))
            }
            shape[a] += p.shape[a]
        }
        let out = try Output.tensor(output, first.dataType, shape)
        if out.count == 0 { return [out] }
        let size = first.dataType.byteSize
        let outer = shape[..<a].reduce(1, *)
        let inner = shape[(a + 1)...].reduce(1, *)
        let rowBytes = shape[a] * inner * size
        var column = 0
        let dst = out.mutableBytes.baseAddress!
        for p in parts {
            let block = p.shape[a] * inner * size
            if block > 0 {
                let src = p.rawBytes.baseAddress!
                for o in 0..<outer { (dst + o * rowBytes + column).copyMemory(from: src + o * block, byteCount: block) }
            }
            column += block
        }
        return [out]
    }
}

/// Split along `axis` into the node's outputs: sizes from `split` (attribute before opset 13, input
/// after), else equal parts (`num_outputs` from opset 18; the last part may be smaller).
struct SplitKernel: Kernel {
    let axis: Int
    let outputs: Int
    let attributeSplit: [Int]?

    init(context: NodeContext) throws {
        try context.requireInputs(1, 2)
        axis = try context.int("axis", default: 0)
        outputs = context.node.outputs.count
        attributeSplit = context.opset < 13 ? try context.ints("split") : nil
    }

    func run(_ inputs: [Tensor?]) throws -> [Tensor] {
        let x = try Check.input(inputs, 0, "input")
        let a = try Check.axis(axis, rank: x.rank)
        let n = x.shape[a]
        var sizes: [Int]
        if let given = try attributeSplit ?? IntInput.optional(inputs, 1, "Split's split") {
            sizes = given
            guard sizes.count == outputs, sizes.allSatisfy({ $0 >= 0 }), sizes.reduce(0, +) == n else {
                throw KernelError.shape("Split sizes \(sizes) do not add up to dimension \(a) (\(n)) of \(x.shape) in \(outputs) outputs")
            }
        } else {
            let part = (n + outputs - 1) / outputs
            sizes = (0..<outputs).map { i in max(0, min(part, n - i * part)) }
        }
        let strides = Broadcast.contiguousStrides(x.shape)
        var start = 0
        var out: [Tensor] = []
        for s in sizes {
            var shape = x.shape
            shape[a] = s
            out.append(try StridedCopy.tensor(x, shape: shape, strides: strides, elementOffset: start * strides[a]))
            start += s
        }
        return out
    }
}

/// Slice: `starts`, `ends`, `axes`, `steps` as inputs (opset 10+; may be computed at run time) or
/// attributes (before 10). Out-of-range bounds are clamped as numpy does; negative steps walk back.
struct SliceKernel: BufferedKernel {
    let attributes: (starts: [Int], ends: [Int], axes: [Int]?)?

    init(context: NodeContext) throws {
        if context.opset < 10 {
            try context.requireInputs(1)
            guard let s = try context.ints("starts"), let e = try context.ints("ends") else {
                throw context.invalid("needs 'starts' and 'ends' attributes")
            }
            attributes = (s, e, try context.ints("axes"))
        } else {
            try context.requireInputs(3, 5)
            attributes = nil
        }
    }

    func run(_ inputs: [Tensor?], into output: Tensor?) throws -> [Tensor] {
        let x = try Check.input(inputs, 0, "data")
        let starts: [Int]
        let ends: [Int]
        let givenAxes: [Int]?
        var steps: [Int]? = nil
        if let attributes {
            (starts, ends, givenAxes) = attributes
        } else {
            starts = try IntInput.values(try Check.input(inputs, 1, "starts"), "Slice's starts")
            ends = try IntInput.values(try Check.input(inputs, 2, "ends"), "Slice's ends")
            givenAxes = try IntInput.optional(inputs, 3, "Slice's axes")
            steps = try IntInput.optional(inputs, 4, "Slice's steps")
        }
        let axes = try IntInput.axes(givenAxes ?? Array(0..<starts.count), rank: x.rank, "Slice")
        let st = steps ?? [Int](repeating: 1, count: starts.count)
        guard ends.count == starts.count, axes.count == starts.count, st.count == starts.count else {
            throw KernelError.shape("Slice's starts \(starts), ends \(ends), axes and steps differ in length")
        }
        let base = Broadcast.contiguousStrides(x.shape)
        var shape = x.shape
        var strides = base
        var offset = 0
        for (i, a) in axes.enumerated() {
            let dim = x.shape[a]
            let step = st[i]
            guard step != 0 else { throw KernelError.shape("Slice step on axis \(a) is 0") }
            var s = starts[i] < 0 ? starts[i] + dim : starts[i]
            var e = ends[i] < 0 ? ends[i] + dim : ends[i]
            if step > 0 {
                s = min(max(s, 0), dim)
                e = min(max(e, 0), dim)
                shape[a] = e > s ? (e - s + step - 1) / step : 0
            } else {
                s = min(max(s, -1), dim - 1)
                e = min(max(e, -1), dim - 1)
                shape[a] = s > e ? (s - e - step - 1) / -step : 0
            }
            strides[a] = base[a] * step
            if shape[a] > 0 { offset += s * base[a] }
        }
        return [try StridedCopy.tensor(x, shape: shape, strides: strides, elementOffset: offset, into: output)]
    }
}

/// Expand: broadcasts the input to `shape` (bidirectionally, numpy rules); shape may be computed at
/// run time.
struct ExpandKernel: BufferedKernel {
    init(context: NodeContext) throws { try context.requireInputs(2) }

    func run(_ inputs: [Tensor?], into output: Tensor?) throws -> [Tensor] {
        let x = try Check.input(inputs, 0, "input")
        let requested = try IntInput.values(try Check.input(inputs, 1, "shape"), "Expand's shape")
        guard requested.allSatisfy({ $0 >= 0 }), let shape = Broadcast.shape([x.shape, requested]) else {
            throw KernelError.shape("Expand cannot broadcast \(x.shape) to \(requested)")
        }
        try Check.computedShape(shape, "Expand")
        return [try StridedCopy.tensor(x, shape: shape, strides: Broadcast.strides(of: x.shape, broadcastTo: shape), into: output)]
    }
}

/// Tile: repeats the input `repeats[d]` times along each axis (a strided copy through an interleaved
/// [r0, d0, r1, d1, ...] view).
struct TileKernel: BufferedKernel {
    init(context: NodeContext) throws { try context.requireInputs(2) }

    func run(_ inputs: [Tensor?], into output: Tensor?) throws -> [Tensor] {
        let x = try Check.input(inputs, 0, "input")
        let repeats = try IntInput.values(try Check.input(inputs, 1, "repeats"), "Tile's repeats")
        guard repeats.count == x.rank, repeats.allSatisfy({ $0 >= 0 }) else {
            throw KernelError.shape("Tile needs \(x.rank) non-negative repeats for \(x.shape), got \(repeats)")
        }
        let base = Broadcast.contiguousStrides(x.shape)
        var viewShape: [Int] = []
        var viewStrides: [Int] = []
        for d in 0..<x.rank {
            viewShape += [repeats[d], x.shape[d]]
            viewStrides += [0, base[d]]
        }
        try Check.computedShape(viewShape, "Tile")
        let out = try Output.tensor(output, x.dataType, (0..<x.rank).map { repeats[$0] * x.shape[$0] })
        if out.count > 0 {
            StridedCopy.copy(
                x.rawBytes.baseAddress!, strides: viewStrides, shape: viewShape, to: out.mutableBytes.baseAddress!,
                elementSize: x.dataType.byteSize)
        }
        return [out]
    }
}
