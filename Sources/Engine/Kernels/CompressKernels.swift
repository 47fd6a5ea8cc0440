import Tensors

/// Compress(input, condition): the slices along `axis` (the elements of the flattened input when
/// there is no axis) whose entry of the BOOL vector `condition` is true. A shorter condition drops
/// the slices past its end; the entries of a longer one past the last slice are ignored (as
/// onnxruntime does; numpy refuses true ones). Any element type (byte copies).
struct CompressKernel: Kernel {
    let axis: Int?

    init(context: NodeContext) throws {
        try context.requireInputs(2)
        axis = try context.int("axis")
    }

    func run(_ inputs: [Tensor?]) throws -> [Tensor] {
        let x = try Check.input(inputs, 0, "input")
        let condition = try Check.input(inputs, 1, "condition")
        try Check.dataType(condition, [.bool], "Compress's condition")
        guard condition.rank == 1 else { throw KernelError.shape("Compress's condition must be a vector, got \(condition.shape)") }
        let (outer, n, inner): (Int, Int, Int)
        var a = 0
        if let axis {
            a = try Check.axis(axis, rank: x.rank)
            (outer, n, inner) = (x.shape[..<a].reduce(1, *), x.shape[a], x.shape[(a + 1)...].reduce(1, *))
        } else {
            (outer, n, inner) = (1, x.count, 1)
        }
        let flags = condition.elements(as: Bool.self)
        let kept = (0..<min(n, flags.count)).filter { flags[$0] }
        var shape = [kept.count]
        if axis != nil {
            shape = x.shape
            shape[a] = kept.count
        }
        let out = try Tensor(allocating: x.dataType, shape: shape)
        if out.count == 0 { return [out] }
        let row = inner * x.dataType.byteSize
        let src = x.rawBytes.baseAddress!
        let dst = out.mutableBytes.baseAddress!
        for o in 0..<outer {
            for (p, i) in kept.enumerated() {
                (dst + (o * kept.count + p) * row).copyMemory(from: src + (o * n + i) * row, byteCount: row)
            }
        }
        return [out]
    }
}

/// ReverseSequence(input, sequence_lens): for each index b of `batch_axis`, the first
/// sequence_lens[b] entries along `time_axis` in reverse order, the rest as they are. The two axes
/// are 0 and 1 in either order; lengths must be in [0, time steps]. Any element type (byte copies).
struct ReverseSequenceKernel: BufferedKernel {
    let batchAxis: Int
    let timeAxis: Int

    init(context: NodeContext) throws {
        try context.requireInputs(2)
        batchAxis = try context.int("batch_axis", default: 1)
        timeAxis = try context.int("time_axis", default: 0)
        guard (batchAxis == 0 && timeAxis == 1) || (batchAxis == 1 && timeAxis == 0) else {
            throw context.invalid("has batch_axis \(batchAxis) and time_axis \(timeAxis); they must be 0 and 1, in either order")
        }
    }

    func run(_ inputs: [Tensor?], into output: Tensor?) throws -> [Tensor] {
        let x = try Check.input(inputs, 0, "input")
        let lensTensor = try Check.input(inputs, 1, "sequence_lens")
        let lens = try IntInput.values(lensTensor, "ReverseSequence's sequence_lens")
        guard x.rank >= 2, lensTensor.rank == 1, lens.count == x.shape[batchAxis] else {
            throw KernelError.shape(
                "ReverseSequence needs an input of rank 2 or more and one length per batch entry, got \(x.shape) and \(lensTensor.shape)")
        }
        let steps = x.shape[timeAxis]
        for l in lens where l < 0 || l > steps {
            throw KernelError.shape("ReverseSequence's sequence length \(l) is outside [0, \(steps)]")
        }
        let out = try Output.tensor(output, x.dataType, x.shape)
        if out.count == 0 { return [out] }
        let row = x.shape[2...].reduce(1, *) * x.dataType.byteSize
        let batches = x.shape[batchAxis]
        let src = x.rawBytes.baseAddress!
        let dst = out.mutableBytes.baseAddress!
        // Rows in output order: (batch, time) pairs with axis 0 outermost.
        let (first, second) = batchAxis == 0 ? (batches, steps) : (steps, batches)
        for i in 0..<first {
            for j in 0..<second {
                let (b, t) = batchAxis == 0 ? (i, j) : (j, i)
                let from = t < lens[b] ? lens[b] - 1 - t : t
                let source = batchAxis == 0 ? b * steps + from : from * batches + b
                (dst + (i * second + j) * row).copyMemory(from: src + source * row, byteCount: row)
            }
        }
        return [out]
    }
}
