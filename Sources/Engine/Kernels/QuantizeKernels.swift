import CKernels
import Tensors

/// What the quantized operators share: the integer types they hold, reading zero points and scales,
/// where a per-tensor, per-axis or blocked parameter applies, and rounding to a quantized value
/// (round half to even, then saturate, as ONNX's QuantizeLinear defines it).
enum Quantized {
    /// The integer element types the integer kernels take.
    static let types: [DataType] = [.uint8, .int8, .uint16, .int16, .int32]

    /// The narrow integer types (held one per byte: int4/int2 as Int8, uint4/uint2 as UInt8).
    static let narrowIntegers: [DataType] = [.int4, .uint4, .int2, .uint2]

    /// The float8 formats QuantizeLinear / DequantizeLinear take (their zero point must be 0) and
    /// float4 E2M1 (whose zero point QuantizeLinear adds as a float and DequantizeLinear ignores,
    /// as onnx's reference does).
    static let narrowFloats: [DataType] = [.float8e4m3fn, .float8e4m3fnuz, .float8e5m2, .float8e5m2fnuz, .float4e2m1]

    /// Every type DequantizeLinear reads and QuantizeLinear writes (QuantizeLinear: not int32).
    static let linearTypes: [DataType] = types + narrowIntegers + narrowFloats

    /// The values a quantized type holds.
    static func range(_ type: DataType) -> (lo: Float, hi: Float)? {
        switch type {
        case .uint8: return (0, 255)
        case .int8: return (-128, 127)
        case .uint16: return (0, 65535)
        case .int16: return (-32768, 32767)
        case .int4, .uint4, .int2, .uint2:
            let r = NarrowConversion.integerRange(type)
            return (Float(r.lowerBound), Float(r.upperBound))
        default: return nil
        }
    }

    /// The values of an integer tensor (a zero point, usually one or a few values) as Int32.
    static func int32s(_ t: Tensor, _ what: String) throws -> [Int32] {
        switch t.dataType {
        case .uint8, .uint4, .uint2: return t.rawBytes.bindMemory(to: UInt8.self).map { Int32($0) }
        case .int8, .int4, .int2: return t.rawBytes.bindMemory(to: Int8.self).map { Int32($0) }
        case .uint16: return t.elements(as: UInt16.self).map { Int32($0) }
        case .int16: return t.elements(as: Int16.self).map { Int32($0) }
        case .int32: return Array(t.elements(as: Int32.self))
        default:
            throw KernelError.failed("\(what) has type \(t.dataType.v2Name); expected UINT8, INT8, UINT16, INT16 or INT32")
        }
    }

    /// The values of a float tensor (a scale) as Float (16-bit floats are held as float32).
    static func floats(_ t: Tensor, _ what: String) throws -> [Float] {
        switch t.dataType {
        case .float32: return Array(t.elements(as: Float.self))
        case .float64: return t.elements(as: Double.self).map { Float($0) }
        default: throw KernelError.failed("\(what) has type \(t.dataType.v2Name); expected FP32")
        }
    }

    /// The one value of a scalar (or one-element) parameter.
    /// The float values of a float8/float4 zero point. A float8 one must be 0 (the spec's rule); a
    /// float4 one is added as a float.
    static func narrowFloatZeroPoints(_ t: Tensor, _ what: String) throws -> [Float] {
        let values = t.rawBytes.map { NarrowConversion.float(fromCode: $0, format: t.dataType) }
        if t.dataType != .float4e2m1, values.contains(where: { $0 != 0 }) {
            throw KernelError.failed("\(what) of a \(t.dataType.v2Name) output must be zero; pass 0 or leave it out")
        }
        return values
    }

    static func scalar(_ values: [Float], _ what: String) throws -> Float {
        guard values.count == 1, let v = values.first else {
            throw KernelError.shape("\(what) must hold one value (per tensor), it has \(values.count)")
        }
        return v
    }

    static func scalar(_ values: [Int32], _ what: String) throws -> Int32 {
        guard values.count == 1, let v = values.first else {
            throw KernelError.shape("\(what) must hold one value (per tensor), it has \(values.count)")
        }
        return v
    }

    /// round-half-even(v), saturated to [lo, hi]; NaN gives lo (as onnx's reference).
    @inline(__always)
    static func saturate(_ v: Float, _ lo: Float, _ hi: Float) -> Float {
        let r = v.rounded(.toNearestOrEven)
        if r.isNaN { return lo }
        return r < lo ? lo : (r > hi ? hi : r)
    }

    /// The same in double precision, for requantizing int32 sums (as onnx's reference computes them).
    @inline(__always)
    static func saturate(_ v: Double, _ lo: Float, _ hi: Float) -> Float {
        let r = v.rounded(.toNearestOrEven)
        if r.isNaN { return lo }
        return r < Double(lo) ? lo : (r > Double(hi) ? hi : Float(r))
    }

    /// Writes `count` float values (already integral and in range) into an integer tensor's storage.
    @inline(__always)
    static func store(_ v: Float, _ out: UnsafeMutableRawPointer, _ i: Int, _ type: DataType) {
        switch type {
        case .uint8, .uint4, .uint2: out.assumingMemoryBound(to: UInt8.self)[i] = UInt8(v)
        case .int8, .int4, .int2: out.assumingMemoryBound(to: Int8.self)[i] = Int8(v)
        case .uint16: out.assumingMemoryBound(to: UInt16.self)[i] = UInt16(v)
        case .int16: out.assumingMemoryBound(to: Int16.self)[i] = Int16(v)
        default: out.assumingMemoryBound(to: Int32.self)[i] = Int32(v)
        }
    }

    /// `count` floats quantized to 8 bits with one scale and zero point: saturate(round_half_even(x /
    /// scale), lo - zp, hi - zp) + zp, NaN to lo - zp, as `saturate` computes it, in a loop the
    /// compiler vectorizes (no traps, no calls): clamping first is exact because the bounds are
    /// integers, and adding 1.5 * 2^23 rounds a value below 2^22 half to even, leaving the integer
    /// in the low bits of the sum's bit pattern, to which the zero point is added as an integer.
    /// (Swift's SIMD types are not used: their generic operations are calls here, 8x slower.)
    static func quantize8(
        _ x: UnsafePointer<Float>, _ count: Int, scale: Float, zeroPoint z: Float, lo: Float, hi: Float,
        into out: UnsafeMutableRawPointer, signed: Bool
    ) {
        let (l, h) = (lo - z, hi - z)
        let zi = UInt32(bitPattern: Int32(z))
        let o = out.assumingMemoryBound(to: UInt8.self)
        for i in 0..<count {
            var v = x[i] / scale
            v = v >= l ? v : l
            v = v <= h ? v : h
            o[i] = UInt8(truncatingIfNeeded: (v + 12_582_912).bitPattern &+ zi)
        }
    }

    /// `count` 8-bit values dequantized with one scale and zero point, (x - zp) * scale.
    static func dequantize8(
        _ x: UnsafeRawPointer, _ count: Int, scale: Float, zeroPoint: Int, into out: UnsafeMutablePointer<Float>, signed: Bool
    ) {
        let z = Int32(zeroPoint)
        if signed {
            let s = x.assumingMemoryBound(to: Int8.self)
            for i in 0..<count { out[i] = Float(Int32(s[i]) &- z) * scale }
        } else {
            let s = x.assumingMemoryBound(to: UInt8.self)
            for i in 0..<count { out[i] = Float(Int32(s[i]) &- z) * scale }
        }
    }

    /// Element `i` of an integer tensor's storage as Int.
    @inline(__always)
    static func load(_ p: UnsafeRawPointer, _ i: Int, _ type: DataType) -> Int {
        switch type {
        case .uint8, .uint4, .uint2: return Int(p.assumingMemoryBound(to: UInt8.self)[i])
        case .int8, .int4, .int2: return Int(p.assumingMemoryBound(to: Int8.self)[i])
        case .uint16: return Int(p.assumingMemoryBound(to: UInt16.self)[i])
        case .int16: return Int(p.assumingMemoryBound(to: Int16.self)[i])
        default: return Int(p.assumingMemoryBound(to: Int32.self)[i])
        }
    }
}

/// Where the scale and zero point of QuantizeLinear / DequantizeLinear apply to an input of a given
/// shape: one for all (per tensor), one per index of `axis` (per axis, a 1-D parameter), or one per
/// block of `blockSize` along `axis` (blocked, opset 21: the parameter has the input's rank with
/// ceil(d / blockSize) on `axis`). The input is seen as [outer, dim, inner].
struct QuantizationLayout {
    let outer: Int
    let dim: Int
    let inner: Int
    private let mode: Mode
    private enum Mode { case tensor, axis, blocked(size: Int, blocks: Int) }

    init(input: [Int], parameter: [Int], axis: Int, blockSize: Int) throws {
        let count = Tensor.elementCount(parameter)
        if input.isEmpty || (count == 1 && blockSize == 0) {
            (outer, dim, inner, mode) = (1, 1, Tensor.elementCount(input), .tensor)
            guard count == 1 else { throw KernelError.shape("a scalar input takes a scalar scale, got shape \(parameter)") }
            return
        }
        let a = try Check.axis(axis, rank: input.count)
        outer = input[..<a].reduce(1, *)
        dim = input[a]
        inner = input[(a + 1)...].reduce(1, *)
        if blockSize > 0 {
            let blocks = (dim + blockSize - 1) / blockSize
            var want = input
            want[a] = blocks
            guard parameter == want else {
                throw KernelError.shape(
                    "blocked quantization of \(input) along axis \(axis) in blocks of \(blockSize) needs a scale of shape "
                        + "\(want), got \(parameter)")
            }
            mode = .blocked(size: blockSize, blocks: blocks)
        } else if count == 1 {
            mode = .tensor
        } else {
            guard parameter.count == 1, parameter[0] == dim else {
                throw KernelError.shape(
                    "per-axis quantization of \(input) along axis \(axis) needs a 1-D scale of \(dim) values, got shape \(parameter)")
            }
            mode = .axis
        }
    }

    /// The parameter index of element (o, d, r) is `base + step * r`.
    @inline(__always)
    func parameter(_ o: Int, _ d: Int) -> (base: Int, step: Int) {
        switch mode {
        case .tensor: return (0, 0)
        case .axis: return (d, 0)
        case .blocked(let size, let blocks): return ((o * blocks + d / size) * inner, 1)
        }
    }
}

/// QuantizeLinear (opsets 10-25): y = saturate(round_half_even(x / y_scale) + y_zero_point), per
/// tensor, per axis or blocked. The output type is the zero point's, else `output_dtype` (21), else
/// uint8. To float8, y = cast(x / y_scale) (the zero point must be 0), saturating to the largest
/// finite value unless `saturate` is 0; to float4 E2M1, y = cast(x / y_scale + y_zero_point), which
/// always saturates. int4/uint4/int2/uint2 saturate to their ranges like the 8- and 16-bit types.
struct QuantizeLinearKernel: Kernel {
    let axis: Int
    let blockSize: Int
    let outputType: DataType?
    let saturate: Bool

    init(context: NodeContext) throws {
        try context.requireInputs(2, 3)
        axis = try context.int("axis", default: 1)
        blockSize = try context.int("block_size", default: 0)
        guard blockSize >= 0 else { throw context.invalid("has a negative block_size \(blockSize)") }
        let code = try context.int("output_dtype", default: 0)
        if code == 0 {
            outputType = nil
        } else if let t = DataType(rawValue: Int32(truncatingIfNeeded: code)), Quantized.linearTypes.contains(t), t != .int32 {
            outputType = t
        } else {
            throw context.unsupported()
        }
        saturate = try context.int("saturate", default: 1) != 0
    }

    func run(_ inputs: [Tensor?]) throws -> [Tensor] {
        let x = try Check.input(inputs, 0, "x")
        let scaleTensor = try Check.input(inputs, 1, "y_scale")
        try Check.dataType(x, [.float32], "x")
        let zpTensor = inputs.count > 2 ? inputs[2] : nil
        let type = zpTensor?.dataType ?? outputType ?? .uint8
        if let zpTensor, let outputType, zpTensor.dataType != outputType {
            throw KernelError.failed(
                "y_zero_point is \(zpTensor.dataType.v2Name) but output_dtype asks for \(outputType.v2Name); they must agree")
        }
        let isFloat = Quantized.narrowFloats.contains(type)
        guard let (lo, hi) = Quantized.range(type) ?? (isFloat ? (0, 0) : nil) else {
            throw KernelError.failed(
                "QuantizeLinear to \(type.v2Name) is not supported (UINT8, INT8, UINT16, INT16, INT4, UINT4, INT2, UINT2, "
                    + "FLOAT8E4M3FN, FLOAT8E4M3FNUZ, FLOAT8E5M2, FLOAT8E5M2FNUZ, FLOAT4E2M1)")
        }
        let layout = try QuantizationLayout(input: x.shape, parameter: scaleTensor.shape, axis: axis, blockSize: blockSize)
        let scales = try Quantized.floats(scaleTensor, "y_scale")
        var zeros = [Float](repeating: 0, count: scales.count)
        if let zpTensor {
            // One value each may be a scalar and a [1] (onnxruntime's quantizer writes both).
            guard zpTensor.shape == scaleTensor.shape || (zpTensor.count == 1 && scaleTensor.count == 1) else {
                throw KernelError.shape("y_zero_point's shape \(zpTensor.shape) differs from y_scale's \(scaleTensor.shape)")
            }
            zeros = try isFloat ? Quantized.narrowFloatZeroPoints(zpTensor, "y_zero_point") : Quantized.int32s(zpTensor, "y_zero_point").map { Float($0) }
        }
        let y = try Tensor(allocating: type, shape: x.shape)
        guard x.count > 0 else { return [y] }
        let px = x.elements(as: Float.self).baseAddress!
        let py = y.mutableBytes.baseAddress!
        let inner = layout.inner
        if isFloat {
            let saturate = self.saturate
            let codes = py.assumingMemoryBound(to: UInt8.self)
            Parallel.forEach(layout.outer * layout.dim, costPerItem: 16 * inner, minimumWork: 262_144) { range in
                for od in range {
                    let (o, d) = od.quotientAndRemainder(dividingBy: layout.dim)
                    let (base, step) = layout.parameter(o, d)
                    let start = od * inner
                    for r in 0..<inner {
                        let p = base + step * r
                        let v = px[start + r] / scales[p] + zeros[p]
                        codes[start + r] = NarrowConversion.code(Double(v), format: type, saturate: saturate)
                    }
                }
            }
            return [y]
        }
        Parallel.forEach(layout.outer * layout.dim, costPerItem: 4 * inner, minimumWork: 262_144) { range in
            for od in range {
                let (o, d) = od.quotientAndRemainder(dividingBy: layout.dim)
                let (base, step) = layout.parameter(o, d)
                let start = od * inner
                if step == 0, type == .uint8 || type == .int8 {
                    // One scale for the row: 16 values at a time (the same arithmetic).
                    Quantized.quantize8(px + start, inner, scale: scales[base], zeroPoint: zeros[base], lo: lo, hi: hi,
                                        into: py + start, signed: type == .int8)
                    continue
                }
                for r in 0..<inner {
                    let p = base + step * r
                    let v = Quantized.saturate(px[start + r] / scales[p], lo - zeros[p], hi - zeros[p]) + zeros[p]
                    Quantized.store(v, py, start + r, type)
                }
            }
        }
        return [y]
    }
}

/// DequantizeLinear (opsets 10-25): y = (x - x_zero_point) * x_scale, per tensor, per axis or
/// blocked, from uint8, int8, uint16, int16, int32 (whose zero point is 0), int4, uint4, int2,
/// uint2, float8 (whose zero point must be 0) or float4 E2M1 (whose zero point is ignored, as in
/// onnx's reference). The output is float32
/// (`output_dtype` 23 asks for a float type, and 16-bit floats are held as float32).
struct DequantizeLinearKernel: Kernel {
    let axis: Int
    let blockSize: Int

    init(context: NodeContext) throws {
        try context.requireInputs(2, 3)
        axis = try context.int("axis", default: 1)
        blockSize = try context.int("block_size", default: 0)
        guard blockSize >= 0 else { throw context.invalid("has a negative block_size \(blockSize)") }
        let code = try context.int("output_dtype", default: 0)
        guard code == 0 || [DataType.float32, .float16, .bfloat16].contains(DataType(rawValue: Int32(truncatingIfNeeded: code))) else {
            throw context.unsupported()
        }
    }

    func run(_ inputs: [Tensor?]) throws -> [Tensor] {
        let x = try Check.input(inputs, 0, "x")
        let scaleTensor = try Check.input(inputs, 1, "x_scale")
        try Check.dataType(x, Quantized.linearTypes, "x")
        let layout = try QuantizationLayout(input: x.shape, parameter: scaleTensor.shape, axis: axis, blockSize: blockSize)
        let scales = try Quantized.floats(scaleTensor, "x_scale")
        var zeros = [Int](repeating: 0, count: scales.count)
        let isFloat = Quantized.narrowFloats.contains(x.dataType)
        if isFloat, x.dataType != .float4e2m1, inputs.count > 2, let zpTensor = inputs[2] {
            guard zpTensor.rawBytes.allSatisfy({ $0 == 0 }) else {
                throw KernelError.failed("x_zero_point of a \(x.dataType.v2Name) input must be zero; pass 0 or leave it out")
            }
        } else if !isFloat, inputs.count > 2, let zpTensor = inputs[2] {
            guard zpTensor.dataType == x.dataType else {
                throw KernelError.failed("x_zero_point is \(zpTensor.dataType.v2Name) but x is \(x.dataType.v2Name); they must agree")
            }
            // One value each may be a scalar and a [1] (onnxruntime's quantizer writes both).
            guard zpTensor.shape == scaleTensor.shape || (zpTensor.count == 1 && scaleTensor.count == 1) else {
                throw KernelError.shape("x_zero_point's shape \(zpTensor.shape) differs from x_scale's \(scaleTensor.shape)")
            }
            zeros = try Quantized.int32s(zpTensor, "x_zero_point").map { Int($0) }
        }
        let y = try Tensor(allocating: .float32, shape: x.shape)
        guard x.count > 0 else { return [y] }
        let px = x.rawBytes.baseAddress!
        let py = y.mutableElements(as: Float.self).baseAddress!
        let type = x.dataType
        let inner = layout.inner
        if isFloat {
            let table = (0..<256).map { NarrowConversion.float(fromCode: UInt8($0), format: type) }
            let codes = px.assumingMemoryBound(to: UInt8.self)
            Parallel.forEach(layout.outer * layout.dim, costPerItem: 2 * inner, minimumWork: 262_144) { range in
                for od in range {
                    let (o, d) = od.quotientAndRemainder(dividingBy: layout.dim)
                    let (base, step) = layout.parameter(o, d)
                    let start = od * inner
                    for r in 0..<inner { py[start + r] = table[Int(codes[start + r])] * scales[base + step * r] }
                }
            }
            return [y]
        }
        Parallel.forEach(layout.outer * layout.dim, costPerItem: 2 * inner, minimumWork: 262_144) { range in
            for od in range {
                let (o, d) = od.quotientAndRemainder(dividingBy: layout.dim)
                let (base, step) = layout.parameter(o, d)
                let start = od * inner
                if step == 0, type == .uint8 || type == .int8 {
                    Quantized.dequantize8(px + start, inner, scale: scales[base], zeroPoint: zeros[base], into: py + start,
                                          signed: type == .int8)
                    continue
                }
                for r in 0..<inner {
                    let p = base + step * r
                    py[start + r] = Float(Quantized.load(px, start + r, type) - zeros[p]) * scales[p]
                }
            }
        }
        return [y]
    }
}

/// DynamicQuantizeLinear (opset 11): x's range widened to hold 0, scale = range / 255 (1 when the
/// range is empty, as onnxruntime; onnx's reference takes 1 / 255 there, no conformance case covers it), zero point = saturate(round(-min / scale)), y = saturate(round(x / scale) + zp)
/// as uint8; outputs y, y_scale, y_zero_point.
struct DynamicQuantizeLinearKernel: Kernel {
    init(context: NodeContext) throws { try context.requireInputs(1) }

    /// The scale and zero point of `count` floats at `x`, as DynamicQuantizeLinear computes them.
    /// The range (which includes 0) is taken over up to the thread budget's chunks of at least
    /// `parallelElements / 2` values each, then combined: min and max do not depend on the order.
    static func parameters(_ x: UnsafePointer<Float>, count: Int) -> (scale: Float, zeroPoint: Float) {
        var lo: Float = 0
        var hi: Float = 0
        let chunks = Parallel.chunks(work: count, minimumWork: parallelElements)
        if chunks <= 1 {
            swerve_range_f32(x, count, &lo, &hi)
        } else {
            var ranges = [Float](repeating: 0, count: 2 * chunks)
            ranges.withUnsafeMutableBufferPointer { r in
                let r = r.baseAddress!
                Parallel.forEach(chunks, costPerItem: count / chunks, minimumWork: 0) { range in
                    for c in range {
                        let start = count * c / chunks
                        swerve_range_f32(x + start, count * (c + 1) / chunks - start, r + 2 * c, r + 2 * c + 1)
                    }
                }
            }
            for c in 0..<chunks { (lo, hi) = (min(lo, ranges[2 * c]), max(hi, ranges[2 * c + 1])) }
        }
        let scale = hi == lo ? 1 : (hi - lo) / 255
        let zp = Quantized.saturate(0 - lo / scale, 0, 255)
        return (scale, zp)
    }

    /// Quantizes `count` floats to uint8 with `scale` and `zeroPoint`.
    /// Split between threads as `parameters` is (each value is quantized on its own).
    static func quantize(_ x: UnsafePointer<Float>, count: Int, scale: Float, zeroPoint: Float, into y: UnsafeMutablePointer<UInt8>) {
        Parallel.forEach(count, costPerItem: 1, minimumWork: parallelElements) { r in
            Quantized.quantize8(
                x + r.lowerBound, r.count, scale: scale, zeroPoint: zeroPoint, lo: 0, hi: 255,
                into: UnsafeMutableRawPointer(y + r.lowerBound), signed: false)
        }
    }

    /// Below this many values a pass stays on one thread (a memory-bound pass of 256 KiB of floats
    /// takes about 20 us, what waking and joining a worker costs).
    static let parallelElements = 65_536

    func run(_ inputs: [Tensor?]) throws -> [Tensor] {
        let x = try Check.input(inputs, 0, "x")
        try Check.dataType(x, [.float32], "x")
        let y = try Tensor(allocating: .uint8, shape: x.shape)
        var (scale, zp): (Float, Float) = (1, 0)
        if x.count > 0 {
            let px = x.elements(as: Float.self).baseAddress!
            (scale, zp) = Self.parameters(px, count: x.count)
            Self.quantize(px, count: x.count, scale: scale, zeroPoint: zp, into: y.mutableElements(as: UInt8.self).baseAddress!)
        }
        return [y, Tensor(scalar: scale), Tensor(scalar: UInt8(zp))]
    }
}
