import CKernels
import Synchronization
import Tensors

/// The convolution (x - x_zero_point) (*) (w - w_zero_point) of ConvInteger and QLinearConv: the
/// window geometry of `WindowAttributes` (as Conv), then per image and group one `QuantizedGemm`
/// (the `IntegerGemm` kernels) of the patches of x as rows times the group's weights as columns
/// (one per output channel, its zero point per column). Constant weights with a constant zero
/// point are prepared once at load.
///
/// Layout: a patch row is ordered [taps, channels], so it is built from x in channels-last order
/// with one copy of `channels` bytes per tap (a tap in the padding holds the zero point, which
/// counts as 0); the weights are permuted to the same order when prepared. x is transposed to
/// channels-last once per image and group (a 1x1 convolution with stride 1 and no padding reads
/// that copy as its patches); the product comes out channels-last and is transposed back to
/// [M, out...], after QLinearConv's requantization has run in the GEMM's epilogue (so 1 byte per
/// value is moved, not 4).
///
/// A value built by a kernel's init; immutable, shared by the kernel's concurrent runs.
struct IntegerConv: Sendable {
    let window: WindowAttributes
    let group: Int
    /// The weights' shape and their prepared groups, when the weights are constant.
    let prepared: (shape: [Int], groups: [QuantizedGemm])?

    /// What the convolution writes: the int32 sums (ConvInteger), or 8-bit values
    /// saturate(round((sum + bias[c]) * multipliers[c]) + zeroPoint) (QLinearConv).
    enum Output {
        case int32
        case quantized(type: DataType, multipliers: [Float], zeroPoint: Int32, bias: [Int32]?)
    }

    init(context: NodeContext, weightIndex: Int, weightZeroIndex: Int, zeroPointRequired: Bool) throws {
        window = try WindowAttributes(context: context)
        group = try context.int("group", default: 1)
        guard group >= 1 else { throw context.invalid("has group \(group); it must be 1 or more") }
        let zpKnown = !context.hasInput(weightZeroIndex) || context.constantInput(weightZeroIndex) != nil
        if let w = context.constantInput(weightIndex), zpKnown, w.rank >= 3,
            let zw = try? context.constantInput(weightZeroIndex).map({ try Quantized.int32s($0, "w_zero_point") }) ?? [0],
            let groups = try? Self.prepare(w, zeroPoints: zw, group: group)
        {
            prepared = (w.shape, groups)
        } else {
            prepared = nil
        }
    }

    /// The weights [M, C/g, k...] as `group` prepared matrices of [taps * C/g, M/g], each column
    /// (output channel) ordered [taps, channels] as the patch rows are.
    static func prepare(_ w: Tensor, zeroPoints: [Int32], group: Int) throws -> [QuantizedGemm] {
        guard let e = QuantizedGemm.Element(w.dataType) else {
            throw KernelError.failed("w has type \(w.dataType.v2Name); this kernel supports UINT8, INT8")
        }
        let m = w.shape[0]
        guard m % group == 0 else { throw KernelError.shape("weights of \(m) output channels do not split into \(group) groups") }
        guard zeroPoints.count == 1 || zeroPoints.count == m else {
            throw KernelError.shape("w_zero_point has \(zeroPoints.count) values; it takes 1 or one per output channel (\(m))")
        }
        let mg = m / group
        let cg = w.shape[1]
        let taps = w.shape[2...].reduce(1, *)
        let kc = cg * taps
        let pw = w.rawBytes.bindMemory(to: UInt8.self).baseAddress ?? UnsafePointer(bitPattern: 1)!
        var permuted = [UInt8](repeating: 0, count: max(1, mg * kc))
        return try (0..<group).map { g in
            let zp = zeroPoints.count == 1 ? zeroPoints : Array(zeroPoints[(g * mg)..<((g + 1) * mg)])
            permuted.withUnsafeMutableBufferPointer { dst in
                for j in 0..<mg {
                    let src = pw + (g * mg + j) * kc
                    let out = dst.baseAddress! + j * kc
                    for ch in 0..<cg {
                        for t in 0..<taps { out[t * cg + ch] = src[ch * taps + t] }
                    }
                }
            }
            return try permuted.withUnsafeBytes {
                try QuantizedGemm(b: $0.baseAddress!, element: e, k: kc, n: mg, transposed: true, zeroPoints: zp)
            }
        }
    }

    /// The convolution of x with weights `w` (nil: the prepared ones), [N, M, out...], as `output` says.
    func convolve(x: Tensor, xZeroPoint: Int32, w: Tensor?, wZeroPoints: [Int32], output: Output) throws -> Tensor {
        guard let ex = QuantizedGemm.Element(x.dataType) else {
            throw KernelError.failed("x has type \(x.dataType.v2Name); this kernel supports UINT8, INT8")
        }
        let groups: [QuantizedGemm]
        let wShape: [Int]
        if let w {
            guard w.rank >= 3 else { throw KernelError.shape("weights of shape \(w.shape) need rank 3 or more") }
            groups = try Self.prepare(w, zeroPoints: wZeroPoints, group: group)
            wShape = w.shape
        } else if let prepared {
            groups = prepared.groups
            wShape = prepared.shape
        } else {
            throw KernelError.failed("required input w is missing")
        }
        guard x.rank == wShape.count, x.rank >= 3 else {
            throw KernelError.shape("x of shape \(x.shape) does not match weights of shape \(wShape)")
        }
        let (batch, channels, m) = (x.shape[0], x.shape[1], wShape[0])
        guard channels == wShape[1] * group else {
            throw KernelError.shape("x has \(channels) channels; weights \(wShape) with group \(group) need \(wShape[1] * group)")
        }
        let geo = try window.resolve(spatial: Array(x.shape[2...]), kernel: Array(wShape[2...]))
        let outShape = [batch, m] + geo.outputSpatial
        guard let outCount = Tensor.checkedElementCount(outShape), let kc = Tensor.checkedElementCount(Array(wShape[1...])),
            let rowsCount = geo.outputSize.multipliedReportingOverflow(by: kc).overflow ? nil : geo.outputSize * kc,
            let inCount = Tensor.checkedElementCount([geo.inputSize, channels])
        else { throw KernelError.shape("the convolution's output \(outShape) is too large") }
        let outType: DataType
        if case .quantized(let type, let multipliers, _, let bias) = output {
            guard type == .uint8 || type == .int8 else {
                throw KernelError.failed("y_zero_point has type \(type.v2Name); expected UINT8 or INT8")
            }
            guard multipliers.count == m, bias.map({ $0.count == m }) ?? true else {
                throw KernelError.shape("B has \(bias?.count ?? 0) values for \(m) output channels")
            }
            outType = type
        } else {
            outType = .int32
        }
        let y = try Tensor(allocating: outType, shape: outShape)
        guard outCount > 0 else { return y }
        let cg = channels / group
        let mg = m / group
        let (outSize, inSize) = (geo.outputSize, geo.inputSize)
        let elementBytes = outType.byteSize
        // A 1x1 window with stride 1 and no padding: the channels-last copy is the patch matrix.
        let pointwise = geo.kernelSize == 1 && geo.strides.allSatisfy { $0 == 1 } && !geo.hasPadding
        let scratchBytes = max(1, inCount / max(group, 1) + (pointwise ? 0 : rowsCount) + outSize * mg * elementBytes)
        let px = x.rawBytes.bindMemory(to: UInt8.self).baseAddress!
        let py = y.mutableBytes.baseAddress!
        // One (image, group) pair: transposes, patches and GEMM in `scratch`.
        func one(_ item: Int, _ scratch: UnsafeMutableRawPointer) throws {
            let (b, g) = item.quotientAndRemainder(dividingBy: group)
            let channelsLast = scratch.assumingMemoryBound(to: UInt8.self)
            let patches = pointwise ? channelsLast : channelsLast + inSize * cg
            let product = UnsafeMutableRawPointer(patches + (pointwise ? inSize * cg : rowsCount))
            // [cg, inSize] -> [inSize, cg]
            Transpose.bytes(px + (b * channels + g * cg) * inSize, rows: cg, columns: inSize, into: channelsLast, elementSize: 1)
            if !pointwise {
                Self.patchRows(channelsLast, channels: cg, geo, pad: UInt8(truncatingIfNeeded: xZeroPoint), into: patches)
            }
            let gemm = groups[g]
            switch output {
            case .int32:
                try gemm.multiply(a: UnsafeRawPointer(patches), element: ex, m: outSize, lda: kc, aZeroPoints: [xZeroPoint],
                                  output: .int32(product.assumingMemoryBound(to: Int32.self), rowStride: mg))
            case .quantized(let type, let multipliers, let zeroPoint, let bias):
                try multipliers.withUnsafeBufferPointer { scales in
                    try (bias ?? []).withUnsafeBufferPointer { biasValues in
                        try gemm.multiply(
                            a: UnsafeRawPointer(patches), element: ex, m: outSize, lda: kc, aZeroPoints: [xZeroPoint],
                            output: .quantized(product, rowStride: mg, signed: type == .int8, scale: 1,
                                               columnScales: scales.baseAddress! + g * mg, zeroPoint: zeroPoint,
                                               bias: bias == nil ? nil : biasValues.baseAddress! + g * mg, range: nil))
                    }
                }
            }
            // [outSize, mg] -> the output's channels [mg, outSize].
            Transpose.bytes(UnsafePointer(product.assumingMemoryBound(to: UInt8.self)), rows: outSize, columns: mg,
                            into: (py + (b * m + g * mg) * outSize * elementBytes).assumingMemoryBound(to: UInt8.self),
                            elementSize: elementBytes)
        }
        let items = batch * group
        if items >= BLAS.threads && BLAS.threads > 1 {
            // Enough images (or groups) for every thread: each thread takes whole pairs, with its own
            // scratch, and the steps inside them run on it alone (the pool is busy, so nested
            // parallel loops run inline). Splitting each GEMM instead left the single-threaded
            // transposes and the GEMMs' joins on the critical path (batch 8 at 2 threads scaled 1.3x).
            let failure = Mutex<(any Error)?>(nil)
            Parallel.forEach(items, costPerItem: outSize * mg * kc, minimumWork: 0) { range in
                let scratch = UnsafeMutableRawPointer.allocate(byteCount: scratchBytes, alignment: 64)
                defer { scratch.deallocate() }
                do {
                    for item in range { try one(item, scratch) }
                } catch {
                    failure.withLock { if $0 == nil { $0 = error } }
                }
            }
            if let error = failure.withLock({ $0 }) { throw error }
        } else {
            let scratch = UnsafeMutableRawPointer.allocate(byteCount: scratchBytes, alignment: 64)
            defer { scratch.deallocate() }
            for item in 0..<items { try one(item, scratch) }
        }
        return y
    }

    /// Writes the [out positions, taps * channels] patch rows of a channels-last image `x`
    /// ([input positions, channels]) into `rows`: one copy of `channels` bytes per tap, the zero
    /// point `pad` for a tap in the padding (with dilation 1, a window row inside the image is one
    /// copy of kw * channels bytes). Output rows are split over the engine's threads.
    static func patchRows(_ x: UnsafePointer<UInt8>, channels: Int, _ g: WindowGeometry, pad: UInt8, into rows: UnsafeMutablePointer<UInt8>) {
        let (id, ih, iw) = (g.input[0], g.input[1], g.input[2])
        let (od, oh, ow) = (g.output[0], g.output[1], g.output[2])
        let (kd, kh, kw) = (g.kernel[0], g.kernel[1], g.kernel[2])
        let rowBytes = g.kernelSize * channels
        Parallel.forEach(od * oh, costPerItem: ow * rowBytes, minimumWork: 1 << 18) { range in
            for zy in range {
                let (z, y) = zy.quotientAndRemainder(dividingBy: oh)
                var dst = rows + zy * ow * rowBytes
                for xo in 0..<ow {
                    for a in 0..<kd {
                        let zi = z * g.strides[0] - g.padBegin[0] + a * g.dilations[0]
                        for b in 0..<kh {
                            let yi = y * g.strides[1] - g.padBegin[1] + b * g.dilations[1]
                            let rowInside = zi >= 0 && zi < id && yi >= 0 && yi < ih
                            let line = x + (zi * ih + yi) * iw * channels
                            let x0 = xo * g.strides[2] - g.padBegin[2]
                            if !rowInside {
                                dst.update(repeating: pad, count: kw * channels)
                                dst += kw * channels
                                continue
                            }
                            if g.dilations[2] == 1 && x0 >= 0 && x0 + kw <= iw {
                                // The row's kw taps are one run of kw * channels bytes, channels-last.
                                dst.update(from: line + x0 * channels, count: kw * channels)
                                dst += kw * channels
                                continue
                            }
                            for c in 0..<kw {
                                let xi = x0 + c * g.dilations[2]
                                if xi >= 0 && xi < iw {
                                    dst.update(from: line + xi * channels, count: channels)
                                } else {
                                    dst.update(repeating: pad, count: channels)
                                }
                                dst += channels
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Cache-blocked matrix transposes of raw elements (1, 2, 4 or 8 bytes).
enum Transpose {
    /// dst[c, r] = src[r, c] for a row-major [rows, columns] matrix of `elementSize`-byte elements:
    /// bytes in 16 x 16 SSE2 blocks (CKernels), wider elements in tiles of 32 x 32 split over the
    /// engine's threads from 1 MiB.
    static func bytes(
        _ src: UnsafePointer<UInt8>, rows: Int, columns: Int, into dst: UnsafeMutablePointer<UInt8>, elementSize: Int
    ) {
        switch elementSize {
        case 1: swerve_transpose_u8(src, rows, columns, columns, dst, rows)
        case 2: tiled(src, rows, columns, dst, UInt16.self)
        case 4: tiled(src, rows, columns, dst, UInt32.self)
        default: tiled(src, rows, columns, dst, UInt64.self)
        }
    }

    private static func tiled<T>(
        _ src: UnsafePointer<UInt8>, _ rows: Int, _ columns: Int, _ dst: UnsafeMutablePointer<UInt8>, _: T.Type
    ) {
        let s = UnsafeRawPointer(src).assumingMemoryBound(to: T.self)
        let d = UnsafeMutableRawPointer(dst).assumingMemoryBound(to: T.self)
        let tile = 32
        let rowTiles = (rows + tile - 1) / tile
        Parallel.forEach(rowTiles, costPerItem: tile * columns * MemoryLayout<T>.size, minimumWork: 1 << 20) { range in
            for rt in range {
                let r0 = rt * tile
                let r1 = min(rows, r0 + tile)
                var c0 = 0
                while c0 < columns {
                    let c1 = min(columns, c0 + tile)
                    for c in c0..<c1 {
                        let out = d + c * rows
                        for r in r0..<r1 { out[r] = s[r * columns + c] }
                    }
                    c0 = c1
                }
            }
        }
    }
}

/// ConvInteger (opset 10): int32 (x - x_zero_point) (*) (w - w_zero_point), u8/s8 in every
/// combination; x's zero point per tensor, w's per tensor or per output channel.
struct ConvIntegerKernel: Kernel, ConstantAbsorbingKernel {
    let conv: IntegerConv

    init(context: NodeContext) throws {
        try context.requireInputs(2, 4)
        conv = try IntegerConv(context: context, weightIndex: 1, weightZeroIndex: 3, zeroPointRequired: false)
    }

    var absorbedInputs: [Int] { conv.prepared == nil ? [] : [1] }

    func run(_ inputs: [Tensor?]) throws -> [Tensor] {
        let x = try Check.input(inputs, 0, "x")
        let w = inputs.count > 1 ? inputs[1] : nil
        let zx = try inputs.count > 2 && inputs[2] != nil ? Quantized.scalar(Quantized.int32s(inputs[2]!, "x_zero_point"), "x_zero_point") : 0
        let zw = try inputs.count > 3 && inputs[3] != nil ? Quantized.int32s(inputs[3]!, "w_zero_point") : [0]
        return [try conv.convolve(x: x, xZeroPoint: zx, w: w, wZeroPoints: zw, output: .int32)]
    }
}

/// QLinearConv (opset 10): y = saturate(round((conv(x - zx, w - zw) + B) * x_scale * w_scale / y_scale) + y_zero_point),
/// w_scale and w_zero_point per tensor or per output channel, B int32 per output channel. The
/// multiplier x_scale * w_scale / y_scale and its product with the int32 sum are float32, as
/// onnxruntime's requantization computes them (onnx's reference multiplies in double; the two differ
/// only where a value falls within float32 rounding of a tie).
struct QLinearConvKernel: Kernel, ConstantAbsorbingKernel {
    let conv: IntegerConv
    /// The requantization when every input it reads is a constant (scales, zero points, bias: as
    /// onnxruntime's quantizer writes them), computed once here instead of on every request.
    let constantOutput: IntegerConv.Output?

    init(context: NodeContext) throws {
        try context.requireInputs(8, 9)
        conv = try IntegerConv(context: context, weightIndex: 3, weightZeroIndex: 5, zeroPointRequired: true)
        let requantInputs = [1, 4, 6, 7] + (context.hasInput(8) ? [8] : [])
        if let m = conv.prepared?.shape[0], requantInputs.allSatisfy({ context.constantInput($0) != nil }) {
            constantOutput = try Self.output((0..<9).map(context.constantInput), outputChannels: m)
        } else {
            constantOutput = nil
        }
    }

    var absorbedInputs: [Int] { conv.prepared == nil ? [] : [3] }

    /// x_scale * w_scale / y_scale per output channel, y's zero point and type, and the int32 bias
    /// (inputs 1, 4, 6, 7 and 8 of the node).
    static func output(_ inputs: [Tensor?], outputChannels m: Int) throws -> IntegerConv.Output {
        let xScale = try Quantized.scalar(Quantized.floats(Check.input(inputs, 1, "x_scale"), "x_scale"), "x_scale")
        let wScales = try Quantized.floats(Check.input(inputs, 4, "w_scale"), "w_scale")
        let yScale = try Quantized.scalar(Quantized.floats(Check.input(inputs, 6, "y_scale"), "y_scale"), "y_scale")
        let yZeroTensor = try Check.input(inputs, 7, "y_zero_point")
        let yZero = try Quantized.scalar(Quantized.int32s(yZeroTensor, "y_zero_point"), "y_zero_point")
        let bias = try inputs.count > 8 && inputs[8] != nil ? Quantized.int32s(inputs[8]!, "B") : nil
        let multipliers = try Requantize.multipliers(xScale, wScales, m, divisor: yScale)
        return .quantized(type: yZeroTensor.dataType, multipliers: multipliers, zeroPoint: yZero, bias: bias)
    }

    func run(_ inputs: [Tensor?]) throws -> [Tensor] {
        let x = try Check.input(inputs, 0, "x")
        let zx = try Quantized.scalar(Quantized.int32s(Check.input(inputs, 2, "x_zero_point"), "x_zero_point"), "x_zero_point")
        let w = inputs.count > 3 ? inputs[3] : nil
        let zw = try Quantized.int32s(Check.input(inputs, 5, "w_zero_point"), "w_zero_point")
        let output = try constantOutput ?? Self.output(inputs, outputChannels: conv.prepared?.shape[0] ?? w?.shape.first ?? 0)
        return [try conv.convolve(x: x, xZeroPoint: zx, w: w, wZeroPoints: zw, output: output)]
    }
}
