import Tensors

/// The int32 convolution (x - x_zero_point) (*) (w - w_zero_point) of ConvInteger and QLinearConv:
/// the window geometry of `WindowAttributes` (as Conv), then per image and group one
/// `QuantizedGemm`: the patches of x as rows (im2row, padding holding the zero point so that it
/// counts as 0) times the group's weights as columns (one per output channel, its zero point per
/// column). Constant weights with a constant zero point are prepared once at load.
///
/// A value built by a kernel's init; immutable, shared by the kernel's concurrent runs.
struct IntegerConv: Sendable {
    let window: WindowAttributes
    let group: Int
    /// The weights' shape and their prepared groups, when the weights are constant.
    let prepared: (shape: [Int], groups: [QuantizedGemm])?

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

    /// The weights [M, C/g, k...] as `group` prepared matrices of [C/g * k..., M/g] (transposed storage).
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
        let kc = w.count / max(m, 1)
        let pw = w.rawBytes.baseAddress ?? UnsafeRawPointer(bitPattern: 1)!
        return try (0..<group).map { g in
            let zp = zeroPoints.count == 1 ? zeroPoints : Array(zeroPoints[(g * mg)..<((g + 1) * mg)])
            return try QuantizedGemm(b: pw + g * mg * kc, element: e, k: kc, n: mg, transposed: true, zeroPoints: zp)
        }
    }

    /// The int32 result [N, M, out...] of x with weights `w` (nil: the prepared ones).
    func convolve(x: Tensor, xZeroPoint: Int32, w: Tensor?, wZeroPoints: [Int32]) throws -> Tensor {
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
            let rowsCount = geo.outputSize.multipliedReportingOverflow(by: kc).overflow ? nil : geo.outputSize * kc
        else { throw KernelError.shape("the convolution's output \(outShape) is too large") }
        let y = try Tensor(allocating: .int32, shape: outShape)
        guard outCount > 0 else { return y }
        let cg = channels / group
        let mg = m / group
        let outSize = geo.outputSize
        let patches = UnsafeMutableRawPointer.allocate(byteCount: max(rowsCount, 1), alignment: 64)
        defer { patches.deallocate() }
        let product = UnsafeMutablePointer<Int32>.allocate(capacity: max(outSize * mg, 1))
        defer { product.deallocate() }
        let px = x.rawBytes.baseAddress!
        let py = y.mutableElements(as: Int32.self).baseAddress!
        let inSize = geo.inputSize
        for b in 0..<batch {
            for g in 0..<group {
                let src = px + (b * channels + g * cg) * inSize
                switch ex {
                case .uint8:
                    Self.im2row(src.assumingMemoryBound(to: UInt8.self), channels: cg, geo, pad: UInt8(truncatingIfNeeded: xZeroPoint),
                                patches.assumingMemoryBound(to: UInt8.self))
                case .int8:
                    Self.im2row(src.assumingMemoryBound(to: Int8.self), channels: cg, geo, pad: Int8(truncatingIfNeeded: xZeroPoint),
                                patches.assumingMemoryBound(to: Int8.self))
                }
                try groups[g].multiply(a: patches, element: ex, m: outSize, lda: kc, aZeroPoints: [xZeroPoint], into: product, ldc: mg)
                // [outSize, mg] -> the output's channels [mg, outSize].
                let dst = py + (b * m + g * mg) * outSize
                for o in 0..<outSize {
                    let row = product + o * mg
                    for c in 0..<mg { dst[c * outSize + o] = row[c] }
                }
            }
        }
        return y
    }

    /// Writes the [out positions, channels * kd * kh * kw] patch rows of `x` into `rows`; a tap in the
    /// padding reads `pad` (the zero point, so that it contributes 0).
    static func im2row<T>(_ x: UnsafePointer<T>, channels: Int, _ g: WindowGeometry, pad: T, _ rows: UnsafeMutablePointer<T>) {
        let (id, ih, iw) = (g.input[0], g.input[1], g.input[2])
        let (od, oh, ow) = (g.output[0], g.output[1], g.output[2])
        let (kd, kh, kw) = (g.kernel[0], g.kernel[1], g.kernel[2])
        var dst = rows
        for z in 0..<od {
            for y in 0..<oh {
                for xo in 0..<ow {
                    for ch in 0..<channels {
                        let xc = x + ch * id * ih * iw
                        for a in 0..<kd {
                            let zi = z * g.strides[0] - g.padBegin[0] + a * g.dilations[0]
                            for b in 0..<kh {
                                let yi = y * g.strides[1] - g.padBegin[1] + b * g.dilations[1]
                                let rowInside = zi >= 0 && zi < id && yi >= 0 && yi < ih
                                let line = xc + (zi * ih + yi) * iw
                                for c in 0..<kw {
                                    let xi = xo * g.strides[2] - g.padBegin[2] + c * g.dilations[2]
                                    dst.pointee = rowInside && xi >= 0 && xi < iw ? line[xi] : pad
                                    dst += 1
                                }
                            }
                        }
                    }
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
        return [try conv.convolve(x: x, xZeroPoint: zx, w: w, wZeroPoints: zw)]
    }
}

/// QLinearConv (opset 10): y = saturate(round((conv(x - zx, w - zw) + B) * x_scale * w_scale / y_scale) + y_zero_point),
/// w_scale and w_zero_point per tensor or per output channel, B int32 per output channel. The
/// multiplier x_scale * w_scale / y_scale and its product with the int32 sum are float32, as
/// onnxruntime's requantization computes them (onnx's reference multiplies in double; the two differ
/// only where a value falls within float32 rounding of a tie).
struct QLinearConvKernel: Kernel, ConstantAbsorbingKernel {
    let conv: IntegerConv

    init(context: NodeContext) throws {
        try context.requireInputs(8, 9)
        conv = try IntegerConv(context: context, weightIndex: 3, weightZeroIndex: 5, zeroPointRequired: true)
    }

    var absorbedInputs: [Int] { conv.prepared == nil ? [] : [3] }

    func run(_ inputs: [Tensor?]) throws -> [Tensor] {
        let x = try Check.input(inputs, 0, "x")
        let xScale = try Quantized.scalar(Quantized.floats(Check.input(inputs, 1, "x_scale"), "x_scale"), "x_scale")
        let zx = try Quantized.scalar(Quantized.int32s(Check.input(inputs, 2, "x_zero_point"), "x_zero_point"), "x_zero_point")
        let w = inputs.count > 3 ? inputs[3] : nil
        let wScales = try Quantized.floats(Check.input(inputs, 4, "w_scale"), "w_scale")
        let zw = try Quantized.int32s(Check.input(inputs, 5, "w_zero_point"), "w_zero_point")
        let yScale = try Quantized.scalar(Quantized.floats(Check.input(inputs, 6, "y_scale"), "y_scale"), "y_scale")
        let yZeroTensor = try Check.input(inputs, 7, "y_zero_point")
        let yZero = try Quantized.scalar(Quantized.int32s(yZeroTensor, "y_zero_point"), "y_zero_point")
        let acc = try conv.convolve(x: x, xZeroPoint: zx, w: w, wZeroPoints: zw)
        let m = acc.shape[1]
        let bias = try inputs.count > 8 && inputs[8] != nil ? Quantized.int32s(inputs[8]!, "B") : nil
        if let bias, bias.count != m { throw KernelError.shape("B has \(bias.count) values for \(m) output channels") }
        let multipliers = try Requantize.multipliers(xScale, wScales, m, divisor: yScale)
        guard let (lo, hi) = Quantized.range(yZeroTensor.dataType) else {
            throw KernelError.failed("y_zero_point has type \(yZeroTensor.dataType.v2Name); expected UINT8 or INT8")
        }
        let y = try Tensor(allocating: yZeroTensor.dataType, shape: acc.shape)
        guard y.count > 0 else { return [y] }
        let plane = y.count / (acc.shape[0] * m)
        let pa = acc.elements(as: Int32.self).baseAddress!
        let py = y.mutableBytes.baseAddress!
        let type = y.dataType
        let z = Float(yZero)
        for i in 0..<y.count {
            let c = (i / plane) % m
            let v = Float(pa[i] &+ (bias?[c] ?? 0)) * multipliers[c]
            Quantized.store(Quantized.saturate(v, lo - z, hi - z) + z, py, i, type)
        }
        return [y]
    }
}
