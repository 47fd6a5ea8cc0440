import Tensors

/// Shape: the input's shape as INT64, optionally sliced by `start`/`end` (opset 15).
struct ShapeKernel: Kernel {
    let start: Int
    let end: Int?

    init(context: NodeContext) throws {
        try context.requireInputs(1)
        start = try context.int("start", default: 0)
        end = try context.int("end")
    }

    func run(_ inputs: [Tensor?]) throws -> [Tensor] {
        let x = try Check.input(inputs, 0, "data")
        let r = x.rank
        let clamp = { (v: Int) in min(max(v < 0 ? v + r : v, 0), r) }
        let s = clamp(start)
        let e = clamp(end ?? r)
        return [IntInput.tensor(e > s ? Array(x.shape[s..<e]) : [])]
    }
}

/// Size: the number of elements as an INT64 scalar.
struct SizeKernel: Kernel {
    init(context: NodeContext) throws { try context.requireInputs(1) }

    func run(_ inputs: [Tensor?]) throws -> [Tensor] {
        [Tensor(scalar: Int64(try Check.input(inputs, 0, "data").count))]
    }
}

/// ConstantOfShape: a tensor of the shape given by the (INT64) input, filled with `value` (a
/// one-element tensor attribute; default float32 0).
struct ConstantOfShapeKernel: Kernel {
    let value: Tensor

    init(context: NodeContext) throws {
        try context.requireInputs(1)
        value = try context.tensor("value") ?? Tensor(scalar: Float(0))
        guard value.count == 1 else { throw context.invalid("has a 'value' with \(value.count) elements (needs 1)") }
    }

    func run(_ inputs: [Tensor?]) throws -> [Tensor] {
        let shape = try IntInput.values(try Check.input(inputs, 0, "input"), "ConstantOfShape's shape")
        try Check.computedShape(shape, "ConstantOfShape")
        return [try StridedCopy.tensor(value, shape: shape, strides: [Int](repeating: 0, count: shape.count))]
    }
}

/// Range(start, limit, delta): scalars of float32, float64, int64, int32 or int16 (the spec's types);
/// ceil((limit - start) / delta) values.
struct RangeKernel: Kernel {
    static let types: [DataType] = [.float32, .float64, .int64, .int32, .int16]
    init(context: NodeContext) throws { try context.requireInputs(3) }

    func run(_ inputs: [Tensor?]) throws -> [Tensor] {
        let start = try Check.input(inputs, 0, "start")
        let limit = try Check.input(inputs, 1, "limit")
        let delta = try Check.input(inputs, 2, "delta")
        guard start.dataType == limit.dataType, start.dataType == delta.dataType, start.count == 1, limit.count == 1,
            delta.count == 1
        else { throw KernelError.failed("Range needs three scalars of one type") }
        switch start.dataType {
        case .float32:
            let s = start.elements(as: Float.self)[0]
            let d = delta.elements(as: Float.self)[0]
            let n = try count(Double(s), Double(limit.elements(as: Float.self)[0]), Double(d))
            let out = try Tensor(allocating: .float32, shape: [n])
            let p = out.mutableElements(as: Float.self)
            for i in 0..<n { p[i] = s + Float(i) * d }
            return [out]
        case .float64:
            let s = start.elements(as: Double.self)[0]
            let d = delta.elements(as: Double.self)[0]
            let n = try count(s, limit.elements(as: Double.self)[0], d)
            let out = try Tensor(allocating: .float64, shape: [n])
            let p = out.mutableElements(as: Double.self)
            for i in 0..<n { p[i] = s + Double(i) * d }
            return [out]
        case .int64: return [try integer(Int64.self, start, limit, delta)]
        case .int32: return [try integer(Int32.self, start, limit, delta)]
        case .int16: return [try integer(Int16.self, start, limit, delta)]
        default: throw KernelError.unsupportedType("Range", start.dataType, supported: Self.types)
        }
    }

    private func integer<T: FixedWidthInteger & TensorElement>(_: T.Type, _ a: Tensor, _ b: Tensor, _ c: Tensor) throws -> Tensor {
        let s = Int(a.elements(as: T.self)[0])
        let d = Int(c.elements(as: T.self)[0])
        let n = try count(Double(s), Double(b.elements(as: T.self)[0]), Double(d))
        let out = try Tensor(allocating: T.dataType, shape: [n])
        let p = out.mutableElements(as: T.self)
        for i in 0..<n { p[i] = T(truncatingIfNeeded: s + i * d) }
        return out
    }

    private func count(_ s: Double, _ l: Double, _ d: Double) throws -> Int {
        guard d != 0 else { throw KernelError.failed("Range's delta is 0") }
        let n = ((l - s) / d).rounded(.up)
        guard n.isFinite else { throw KernelError.failed("Range(\(s), \(l), \(d)) is not finite") }
        guard n < 1e9 else { throw KernelError.shape("Range(\(s), \(l), \(d)) would have \(n) elements") }
        return max(0, Int(n))
    }
}

/// Cast between float32, float64, every integer type and bool (`to` attribute). Float to integer
/// truncates toward zero, NaN and out-of-range values saturating instead of trapping; integer to
/// integer keeps the low bits (two's complement, as numpy's astype); anything to bool is `!= 0`.
/// A Cast to FLOAT16 or BFLOAT16 rounds to the nearest 16-bit value (ties to even) and keeps it
/// as float32: the engine holds 16-bit floats as float32 (`HalfPrecision`), and the session
/// narrows declared 16-bit outputs on exit. A 16-bit source (only a kernel called outside a
/// session sees one) is widened first.
///
/// The narrow types (`NarrowConversion`): a float8/float4 source is widened to float32 exactly, an
/// int4/int2 source read as the INT8/UINT8 it is held as; a float8/float4 target rounds to nearest
/// even with the `saturate` attribute's overflow rules (FLOAT8E8M0 as `round_mode` says), an
/// int4/int2 target takes the low bits of the integer (floats rounded to nearest even first).
struct CastKernel: BufferedKernel {
    let to: DataType
    let saturate: Bool
    let roundMode: NarrowConversion.E8M0Rounding
    static let narrowTypes: [DataType] = [
        .float8e4m3fn, .float8e4m3fnuz, .float8e5m2, .float8e5m2fnuz, .float8e8m0, .float4e2m1, .int4, .uint4, .int2, .uint2,
    ]
    static let supported: Set<DataType> = Set(DataType.realNumbers + [.bool, .float16, .bfloat16] + narrowTypes)

    init(context: NodeContext) throws {
        try context.requireInputs(1)
        guard let raw = try context.int("to"), let t = DataType(rawValue: Int32(truncatingIfNeeded: raw)) else {
            throw context.invalid("has no valid 'to' attribute")
        }
        guard Self.supported.contains(t) else { throw context.unsupported() }
        to = t
        (saturate, roundMode) = try Self.roundingAttributes(context)
    }

    /// The `saturate` and `round_mode` attributes (Cast and CastLike).
    static func roundingAttributes(_ context: NodeContext) throws -> (Bool, NarrowConversion.E8M0Rounding) {
        let mode = try context.string("round_mode", default: "up")
        guard let rounding = NarrowConversion.E8M0Rounding(rawValue: mode) else {
            throw context.invalid("has round_mode '\(mode)'; use up, down or nearest")
        }
        return (try context.int("saturate", default: 1) != 0, rounding)
    }

    func run(_ inputs: [Tensor?], into output: Tensor?) throws -> [Tensor] {
        [try Self.convert(try Check.input(inputs, 0, "input"), to: to, saturate: saturate, roundMode: roundMode, into: output)]
    }

    /// `x` converted to `to`, into `output` when given (a slice of the shape plan's arena), else
    /// into a new tensor; `x` itself when it already has that type and no output is given.
    /// `saturate` and `roundMode` apply to float8 targets only.
    static func convert(
        _ x: Tensor, to: DataType, saturate: Bool = true, roundMode: NarrowConversion.E8M0Rounding = .up,
        into output: Tensor? = nil
    ) throws -> Tensor {
        if x.dataType == to {
            guard let output else { return x }
            let out = try Output.tensor(output, to, x.shape)
            if x.byteCount > 0 { out.mutableBytes.baseAddress!.copyMemory(from: x.rawBytes.baseAddress!, byteCount: x.byteCount) }
            return out
        }
        if HalfConversion.isHalf(x.dataType) {
            return try convert(try x.widenedToFloat32(), to: to, saturate: saturate, roundMode: roundMode, into: output)
        }
        if x.dataType.isNarrow {
            // int4/int2 are held as INT8, uint4/uint2 as UINT8 values; float8/float4 widen exactly.
            let wide: Tensor
            switch x.dataType {
            case .int4, .int2: wide = Tensor(dataType: .int8, shape: x.shape, storage: x.storage, byteOffset: x.byteOffset)
            case .uint4, .uint2: wide = Tensor(dataType: .uint8, shape: x.shape, storage: x.storage, byteOffset: x.byteOffset)
            default: wide = try x.narrowWidenedToFloat32()
            }
            return try convert(wide, to: to, saturate: saturate, roundMode: roundMode, into: output)
        }
        if to.isNarrow {
            return try convertToNarrow(x, to: to, saturate: saturate, roundMode: roundMode, into: output)
        }
        if HalfConversion.isHalf(to) {
            let out = try Output.tensor(output, .float32, x.shape)
            _ = try convert(x, to: .float32, into: out)
            if out.count > 0 {
                HalfConversion.roundInPlace(
                    out.mutableBytes.baseAddress!.assumingMemoryBound(to: Float.self), count: out.count, to: to)
            }
            return out
        }
        guard supported.contains(to) else { throw KernelError.failed("Cast to \(to.v2Name) is not supported") }
        let out = try Output.tensor(output, to, x.shape)
        // A bool is one byte holding 0 or 1: read as UInt8.
        let source = x.dataType == .bool ? DataType.uint8 : x.dataType
        guard try source.dispatch(Source(x: x, out: out)) != nil else {
            throw KernelError.failed("Cast from \(x.dataType.v2Name) is not supported")
        }
        return out
    }

    /// A float32, float64, integer or bool tensor converted to a narrow type.
    private static func convertToNarrow(
        _ x: Tensor, to: DataType, saturate: Bool, roundMode: NarrowConversion.E8M0Rounding, into output: Tensor?
    ) throws -> Tensor {
        let out = try Output.tensor(output, to, x.shape)
        let n = x.count
        guard n > 0 else { return out }
        let d = out.mutableBytes.baseAddress!.assumingMemoryBound(to: UInt8.self)
        if NarrowConversion.isNarrowFloat(to) {
            // Integers and bools through float64 (exact below 2^53; beyond, the value overflows
            // every float8 anyway), so that the one rounding is to the narrow format.
            let wide = x.dataType == .float32 || x.dataType == .float64 ? x : try convert(x, to: .float64)
            if wide.dataType == .float32 {
                let s = wide.elements(as: Float.self)
                for i in 0..<n { d[i] = NarrowConversion.code(Double(s[i]), format: to, saturate: saturate, roundMode: roundMode) }
            } else {
                let s = wide.elements(as: Double.self)
                for i in 0..<n { d[i] = NarrowConversion.code(s[i], format: to, saturate: saturate, roundMode: roundMode) }
            }
            return out
        }
        switch x.dataType {
        case .float32:
            let s = x.elements(as: Float.self)
            for i in 0..<n { d[i] = NarrowConversion.wrapped(Double(s[i]), to: to) }
        case .float64:
            let s = x.elements(as: Double.self)
            for i in 0..<n { d[i] = NarrowConversion.wrapped(s[i], to: to) }
        case .uint64:
            // Above Int64.max the low bits are the same read as signed.
            let s = x.elements(as: UInt64.self)
            for i in 0..<n { d[i] = NarrowConversion.wrapped(Int64(bitPattern: s[i]), to: to) }
        default:
            // Every other integer type and bool fits Int64.
            let wide = try convert(x, to: .int64)
            let s = wide.elements(as: Int64.self)
            for i in 0..<n { d[i] = NarrowConversion.wrapped(s[i], to: to) }
        }
        return out
    }

    /// Reads the source type, then converts to the target's.
    private struct Source: NumericBody {
        let x: Tensor
        let out: Tensor

        func integer<S: FixedWidthInteger & TensorElement>(_: S.Type) throws {
            let s = UnsafeBufferPointer(start: x.rawBytes.baseAddress?.assumingMemoryBound(to: S.self), count: x.count)
            try target(FromInteger(source: s, out: out))
        }

        func float<S: FloatElement>(_: S.Type) throws {
            try target(FromFloat(source: x.elements(as: S.self), out: out))
        }

        private func target<B: NumericBody & CastSource>(_ body: B) throws where B.Result == Void {
            if out.dataType == .bool {
                body.toBool(out.mutableElements(as: Bool.self))
            } else {
                _ = try out.dataType.dispatch(body)
            }
        }
    }

    private struct FromInteger<S: FixedWidthInteger>: NumericBody, CastSource {
        let source: UnsafeBufferPointer<S>
        let out: Tensor

        func integer<T: FixedWidthInteger & TensorElement>(_: T.Type) throws {
            let d = out.mutableElements(as: T.self)
            for i in 0..<source.count { d[i] = T(truncatingIfNeeded: source[i]) }
        }

        func float<T: FloatElement>(_: T.Type) throws {
            let d = out.mutableElements(as: T.self)
            for i in 0..<source.count { d[i] = T(source[i]) }
        }

        func toBool(_ d: UnsafeMutableBufferPointer<Bool>) {
            for i in 0..<source.count { d[i] = source[i] != 0 }
        }
    }

    private struct FromFloat<S: FloatElement>: NumericBody, CastSource {
        let source: UnsafeBufferPointer<S>
        let out: Tensor

        func integer<T: FixedWidthInteger & TensorElement>(_: T.Type) throws {
            let d = out.mutableElements(as: T.self)
            // T.max may round up in S (Int64.max to 2^63): values at or past it saturate.
            let top = S(T.max)
            let bottom = S(T.min)
            for i in 0..<source.count {
                let v = source[i]
                d[i] = v.isNaN ? T.min : (v >= top ? T.max : (v <= bottom ? T.min : T(v.rounded(.towardZero))))
            }
        }

        func float<T: FloatElement>(_: T.Type) throws {
            let d = out.mutableElements(as: T.self)
            for i in 0..<source.count { d[i] = T(source[i]) }
        }

        func toBool(_ d: UnsafeMutableBufferPointer<Bool>) {
            for i in 0..<source.count { d[i] = source[i] != 0 }
        }
    }
}

/// A Cast source that can also write bools.
private protocol CastSource { func toBool(_ d: UnsafeMutableBufferPointer<Bool>) }

/// CastLike: casts input 0 to the element type of input 1.
struct CastLikeKernel: BufferedKernel {
    let saturate: Bool
    let roundMode: NarrowConversion.E8M0Rounding

    init(context: NodeContext) throws {
        try context.requireInputs(2)
        (saturate, roundMode) = try CastKernel.roundingAttributes(context)
    }

    func run(_ inputs: [Tensor?], into output: Tensor?) throws -> [Tensor] {
        // A 16-bit target here is a real 16-bit tensor (a kernel called outside a session); in a
        // session the lowering has turned a CastLike to a 16-bit type into a Cast.
        let target = try Check.input(inputs, 1, "target_type").dataType
        guard CastKernel.supported.contains(target) else {
            throw KernelError.failed("CastLike to \(target.v2Name) is not supported")
        }
        return [
            try CastKernel.convert(
                try Check.input(inputs, 0, "input"), to: target, saturate: saturate, roundMode: roundMode, into: output)
        ]
    }
}
