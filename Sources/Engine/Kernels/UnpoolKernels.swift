import Tensors

/// MaxUnpool (float32 X, int64 indices, 1 to 3 spatial dimensions): zeros of the size the pooling
/// came from, `(in - 1) * stride - pad_begin - pad_end + kernel` per spatial dimension, with each X
/// element written at its flat index (MaxPool's Indices, row-major). With the optional
/// `output_shape` input, that result sits at the start of a larger zero tensor of that shape, as
/// onnx's reference places it.
struct MaxUnpoolKernel: Kernel {
    let kernelShape: [Int]
    let strides: [Int]?
    let pads: [Int]?

    init(context: NodeContext) throws {
        try context.requireInputs(2, 3)
        guard let k = try context.ints("kernel_shape") else { throw context.invalid("has no 'kernel_shape'") }
        kernelShape = k
        strides = try context.ints("strides")
        pads = try context.ints("pads")
        if k.contains(where: { $0 < 1 }) || strides?.contains(where: { $0 < 1 }) == true {
            throw context.invalid("has a kernel_shape or stride below 1")
        }
        if pads?.contains(where: { $0 < 0 }) == true { throw context.invalid("has negative pads") }
    }

    func run(_ inputs: [Tensor?]) throws -> [Tensor] {
        let x = try Check.input(inputs, 0, "X")
        let indices = try Check.input(inputs, 1, "I")
        try Check.dataType(x, [.float32], "X")
        try Check.dataType(indices, [.int64], "I")
        let r = kernelShape.count
        guard x.rank == r + 2, (1...3).contains(r), indices.shape == x.shape else {
            throw KernelError.shape(
                "MaxUnpool with kernel_shape \(kernelShape) needs X [N, C, ...] of rank \(r + 2) and I of its shape, got X \(x.shape) and I \(indices.shape)")
        }
        let s = strides ?? [Int](repeating: 1, count: r)
        let p = pads ?? [Int](repeating: 0, count: 2 * r)
        guard s.count == r, p.count == 2 * r else {
            throw KernelError.shape("MaxUnpool's strides \(s) or pads \(p) do not match kernel_shape \(kernelShape)")
        }
        var inferred = Array(x.shape[..<2])
        for i in 0..<r {
            let (stretched, overflow) = (x.shape[i + 2] - 1).multipliedReportingOverflow(by: s[i])
            let size = stretched - p[i] - p[i + r] + kernelShape[i]
            guard !overflow, size >= 0 else { throw KernelError.shape("MaxUnpool's output for X \(x.shape) has no valid size") }
            inferred.append(size)
        }
        var shape = inferred
        if inputs.count > 2, let requested = inputs[2] {
            try Check.dataType(requested, [.int64], "output_shape")
            shape = requested.scalars(as: Int64.self).map { Int($0) }
            guard shape.count == inferred.count, zip(shape, inferred).allSatisfy({ $0 >= $1 }) else {
                throw KernelError.shape("MaxUnpool's output_shape \(shape) is smaller than the unpooled shape \(inferred)")
            }
        }
        let out = try Tensor(allocating: .float32, shape: shape, zeroed: true)
        guard let total = Tensor.checkedElementCount(inferred), x.count > 0 else { return [out] }
        let px = x.elements(as: Float.self).baseAddress!
        let pi = indices.elements(as: Int64.self).baseAddress!
        let py = out.mutableElements(as: Float.self).baseAddress!
        let same = shape == inferred
        for j in 0..<x.count {
            let index = Int(pi[j])
            guard index >= 0, index < total else {
                throw KernelError.shape("MaxUnpool's index \(index) is outside the unpooled shape \(inferred)")
            }
            if same {
                py[index] = px[j]
                continue
            }
            // The same coordinates in the larger output.
            var rest = index
            var flat = 0
            var step = 1
            for d in stride(from: inferred.count - 1, through: 0, by: -1) {
                flat += rest % inferred[d] * step
                rest /= inferred[d]
                step *= shape[d]
            }
            py[flat] = px[j]
        }
        return [out]
    }
}

/// Col2Im (float32, 1 to 3 spatial dimensions): the inverse of im2col. The input [N, C * block, L]
/// holds, per channel and block position, one value per sliding window (L windows over the padded
/// image); each adds into the image at window position * stride - pad + block position * dilation
/// (`ConvTransposeKernel.col2im`, the scatter ConvTranspose ends with).
struct Col2ImKernel: Kernel {
    let strides: [Int]?
    let dilations: [Int]?
    let pads: [Int]?

    init(context: NodeContext) throws {
        try context.requireInputs(3)
        strides = try context.ints("strides")
        dilations = try context.ints("dilations")
        pads = try context.ints("pads")
        for v in [strides, dilations].compactMap({ $0 }) where v.contains(where: { $0 < 1 }) {
            throw context.invalid("has a stride or dilation below 1")
        }
        if pads?.contains(where: { $0 < 0 }) == true { throw context.invalid("has negative pads") }
    }

    func run(_ inputs: [Tensor?]) throws -> [Tensor] {
        let x = try Check.input(inputs, 0, "input")
        let imageTensor = try Check.input(inputs, 1, "image_shape")
        let blockTensor = try Check.input(inputs, 2, "block_shape")
        try Check.dataType(x, [.float32], "input")
        try Check.dataType(imageTensor, [.int64], "image_shape")
        try Check.dataType(blockTensor, [.int64], "block_shape")
        let image = imageTensor.scalars(as: Int64.self).map { Int($0) }
        let block = blockTensor.scalars(as: Int64.self).map { Int($0) }
        let r = image.count
        guard (1...3).contains(r), block.count == r, x.rank == 3 else {
            throw KernelError.shape(
                "Col2Im needs input [N, C * block, L] and image_shape, block_shape of 1 to 3 values each, got input \(x.shape), image_shape \(image), block_shape \(block)")
        }
        guard image.allSatisfy({ $0 >= 0 }), block.allSatisfy({ $0 >= 1 }) else {
            throw KernelError.shape("Col2Im's image_shape \(image) or block_shape \(block) has a size out of range")
        }
        let s = strides ?? [Int](repeating: 1, count: r)
        let d = dilations ?? [Int](repeating: 1, count: r)
        let p = pads ?? [Int](repeating: 0, count: 2 * r)
        guard s.count == r, d.count == r, p.count == 2 * r else {
            throw KernelError.shape("Col2Im's strides \(s), dilations \(d) or pads \(p) do not match \(r) spatial dimensions")
        }
        guard let blockSize = Tensor.checkedElementCount(block), x.shape[1] % blockSize == 0 else {
            throw KernelError.shape("Col2Im's input \(x.shape) has no whole number of blocks \(block) along dimension 1")
        }
        var windows = [Int](repeating: 0, count: r)
        for i in 0..<r {
            let (span, overflow) = (block[i] - 1).multipliedReportingOverflow(by: d[i])
            let room = image[i] + p[i] + p[i + r] - span - 1
            guard !overflow, room >= 0 else {
                throw KernelError.shape("Col2Im's block \(block) with dilations \(d) does not fit image \(image) with pads \(p)")
            }
            windows[i] = room / s[i] + 1
        }
        guard let count = Tensor.checkedElementCount(windows), count == x.shape[2] else {
            throw KernelError.shape("Col2Im's input has \(x.shape[2]) windows; image \(image) with block \(block) has \(windows)")
        }
        let n = x.shape[0]
        let c = x.shape[1] / blockSize
        let out = try Tensor(allocating: .float32, shape: [n, c] + image, zeroed: true)
        if out.count == 0 || x.count == 0 { return [out] }
        let pad3 = { (v: [Int], fill: Int) in [Int](repeating: fill, count: 3 - r) + v }
        let geo = WindowGeometry(
            input: pad3(windows, 1), output: pad3(image, 1), kernel: pad3(block, 1), strides: pad3(s, 1),
            dilations: pad3(d, 1), padBegin: pad3(Array(p[..<r]), 0), padEnd: pad3(Array(p[r...]), 0), spatialRank: r)
        let px = x.elements(as: Float.self).baseAddress!
        let py = out.mutableElements(as: Float.self).baseAddress!
        let planeIn = blockSize * count
        let planeOut = geo.outputSize
        Parallel.forEach(n * c, costPerItem: planeIn) { range in
            for plane in range { ConvTransposeKernel.col2im(px + plane * planeIn, py + plane * planeOut, geo) }
        }
        return [out]
    }
}
