import Tensors

/// DeformConv (opset 19+), float32, 1 to 3 spatial dimensions: a convolution whose every kernel tap
/// samples X at its regular position plus a learned offset (input 2, per offset group, tap and
/// output position), bilinearly (linearly per spatial dimension), with zero outside X, optionally
/// scaled by a mask (input 4), then adds the bias (input 3). Groups, offset groups, strides,
/// dilations and pads as in Conv (no `auto_pad`: DeformConv has none).
///
/// The work is split in blocks of output positions per image and group. For each block, the
/// deformable im2col fills a [C/group * kernel, block] column matrix: a table of the sampling
/// corners and their weights (mask included) is built once per offset group and tap, then every
/// channel of that offset group reads its plane through it. One sgemm per block multiplies the
/// group's weights [M/group, C/group * kernel] by the columns into the output, which holds the bias
/// first. Blocks run in parallel over the thread budget, each with its own buffers.
struct DeformConvKernel: BufferedKernel {
    let window: WindowAttributes
    let group: Int
    let offsetGroup: Int

    init(context: NodeContext) throws {
        try context.requireInputs(3, 5)
        window = try WindowAttributes(context: context)
        group = try context.int("group", default: 1)
        offsetGroup = try context.int("offset_group", default: 1)
        guard group >= 1, offsetGroup >= 1 else {
            throw context.invalid("has group \(group) and offset_group \(offsetGroup); both must be 1 or more")
        }
    }

    func run(_ inputs: [Tensor?], into output: Tensor?) throws -> [Tensor] {
        let x = try Check.input(inputs, 0, "X")
        let w = try Check.input(inputs, 1, "W")
        let offset = try Check.input(inputs, 2, "offset")
        let b = inputs.count > 3 ? inputs[3] : nil
        let mask = inputs.count > 4 ? inputs[4] : nil
        for (t, what) in [(x, "X"), (w, "W"), (offset, "offset")] { try Check.dataType(t, [.float32], what) }
        if let b { try Check.dataType(b, [.float32], "B") }
        if let mask { try Check.dataType(mask, [.float32], "mask") }
        guard x.rank >= 3, w.rank == x.rank else {
            throw KernelError.shape(
                "DeformConv needs X [N, C, ...] and W [M, C/group, ...] of one rank, got X \(x.shape) and W \(w.shape)")
        }
        let (n, c, m) = (x.shape[0], x.shape[1], w.shape[0])
        let kernel = Array(w.shape[2...])
        guard c % group == 0, m % group == 0, w.shape[1] == c / group else {
            throw KernelError.shape(
                "DeformConv with group \(group): X \(x.shape) and W \(w.shape) do not fit "
                    + "(W needs [M, C/group, ...] with M divisible by group)")
        }
        guard c % offsetGroup == 0 else {
            throw KernelError.shape("DeformConv's \(c) input channels do not divide into offset_group \(offsetGroup)")
        }
        if let ks = window.kernelShape, ks != kernel {
            throw KernelError.shape("DeformConv's kernel_shape \(ks) differs from the weights' \(kernel)")
        }
        let geo = try window.resolve(spatial: Array(x.shape[2...]), kernel: kernel)
        let r = geo.spatialRank
        let expectedOffset = [n, offsetGroup * geo.kernelSize * r] + geo.outputSpatial
        guard offset.shape == expectedOffset else {
            throw KernelError.shape(
                "DeformConv's offset is \(offset.shape); X \(x.shape), W \(w.shape), offset_group \(offsetGroup), "
                    + "strides, dilations and pads need \(expectedOffset)")
        }
        if let mask {
            let expected = [n, offsetGroup * geo.kernelSize] + geo.outputSpatial
            guard mask.shape == expected else {
                throw KernelError.shape("DeformConv's mask is \(mask.shape); with this offset it must be \(expected)")
            }
        }
        if let b, b.count != m {
            throw KernelError.shape("DeformConv's bias has \(b.count) values for \(m) output channels")
        }
        guard geo.inputSize < Int(Int32.max) else {
            throw KernelError.shape("DeformConv's input planes of \(geo.inputSize) values are too large (2^31 at most)")
        }
        let out = try Output.tensor(output, .float32, [n, m] + geo.outputSpatial)
        if out.count == 0 { return [out] }
        let py = out.mutableElements(as: Float.self).baseAddress!
        let bias = b?.elements(as: Float.self).baseAddress
        if geo.inputSize == 0 || c == 0 {
            // Nothing to sample: every tap reads zero.
            for i in 0..<(n * m) { (py + i * geo.outputSize).update(repeating: bias?[i % m] ?? 0, count: geo.outputSize) }
            return [out]
        }
        let sampler = DeformableSampler(
            geo: geo, offsets: offset.elements(as: Float.self).baseAddress!,
            mask: mask?.elements(as: Float.self).baseAddress, offsetGroups: offsetGroup)
        let px = x.elements(as: Float.self).baseAddress!
        let pw = w.elements(as: Float.self).baseAddress!
        let (cg, mg, group, outSize) = (c / group, m / group, self.group, geo.outputSize)
        let rows = cg * geo.kernelSize
        let channelsPerOffsetGroup = c / offsetGroup
        // About 128 KiB of columns per block (at least 64 positions), so they stay in L2 for the sgemm.
        let blockLength = min(outSize, max(64, 32_768 / rows))
        let blocks = (outSize + blockLength - 1) / blockLength
        let cost = 2 * mg * rows * blockLength + 2 * rows * blockLength * sampler.corners
        Parallel.forEach(n * group * blocks, costPerItem: cost) { items in
            let columns = UnsafeMutablePointer<Float>.allocate(capacity: rows * blockLength)
            let table = DeformableSampler.Table(capacity: geo.kernelSize * blockLength * sampler.corners)
            defer {
                columns.deallocate()
                table.deallocate()
            }
            for item in items {
                let (img, g, block) = (item / (group * blocks), item / blocks % group, item % blocks)
                let first = block * blockLength
                let length = min(blockLength, outSize - first)
                var tableGroup = -1
                for ci in 0..<cg {
                    let channel = g * cg + ci
                    let og = channel / channelsPerOffsetGroup
                    if og != tableGroup {
                        sampler.fill(table, image: img, offsetGroup: og, positions: first..<(first + length))
                        tableGroup = og
                    }
                    sampler.gather(
                        px + (img * c + channel) * geo.inputSize, table, taps: geo.kernelSize, length: length,
                        into: columns + ci * geo.kernelSize * length)
                }
                let yg = py + (img * m + g * mg) * outSize + first
                for mi in 0..<mg { (yg + mi * outSize).update(repeating: bias?[g * mg + mi] ?? 0, count: length) }
                BLAS.gemm(
                    transA: false, transB: false, m: mg, n: length, k: rows, alpha: 1, a: pw + g * mg * rows, lda: rows,
                    b: columns, ldb: length, beta: 1, c: yg, ldc: outSize)
            }
        }
        return [out]
    }
}
