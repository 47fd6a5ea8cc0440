/// Conversions for the narrow element types: float8 (E4M3FN, E4M3FNUZ, E5M2, E5M2FNUZ, E8M0),
/// float4 (E2M1), int4/uint4 and int2/uint2 (docs/architecture.md, "Narrow element types").
///
/// Representation: the engine holds one element per byte. A float8 element is its 8-bit code; a
/// float4 element is its 4-bit code in the low nibble (0-15); int4 and int2 are sign-extended
/// `Int8` values (-8...7, -2...1) and uint4/uint2 `UInt8` values (0...15, 0...3), so a kernel reads
/// them as INT8/UINT8 without a conversion. Only ONNX files pack the sub-byte types (`pack`,
/// `unpack`: first element in the lowest bits). Stateless; any thread.
///
/// Rounding (the Cast spec): to a float format, round to nearest, ties to even, with the spec's
/// saturation table; to an integer format, round to nearest, ties to even, then keep the low bits
/// (two's complement), as for any integer Cast. Widening is exact.
public enum NarrowConversion {
    /// How a conversion to FLOAT8E8M0 rounds (Cast's `round_mode`): `up` away from zero, `down`
    /// toward zero, `nearest` to the nearer power of two, ties (a significand of 1.5) up.
    public enum E8M0Rounding: String, Sendable, CaseIterable {
        case up, down, nearest
    }

    /// The layout of a small IEEE-like float format.
    struct MiniFloat: Sendable {
        let exponentBits: Int
        let mantissaBits: Int
        let bias: Int
        /// `ieee`: all-ones exponent is infinity (mantissa 0) or NaN; `fn`: no infinity, NaN is the
        /// all-ones code; `fnuz`: no infinity, no negative zero, NaN is 0x80; `finite`: no
        /// infinity or NaN at all (float4).
        enum Specials { case ieee, fn, fnuz, finite }
        let specials: Specials

        var signShift: Int { exponentBits + mantissaBits }
        var minNormalExponent: Int { 1 - bias }
    }

    static func layout(_ format: DataType) -> MiniFloat? {
        switch format {
        case .float8e4m3fn: return MiniFloat(exponentBits: 4, mantissaBits: 3, bias: 7, specials: .fn)
        case .float8e4m3fnuz: return MiniFloat(exponentBits: 4, mantissaBits: 3, bias: 8, specials: .fnuz)
        case .float8e5m2: return MiniFloat(exponentBits: 5, mantissaBits: 2, bias: 15, specials: .ieee)
        case .float8e5m2fnuz: return MiniFloat(exponentBits: 5, mantissaBits: 2, bias: 16, specials: .fnuz)
        case .float4e2m1: return MiniFloat(exponentBits: 2, mantissaBits: 1, bias: 1, specials: .finite)
        default: return nil
        }
    }

    /// Whether `format` is one of the narrow float formats (float8, float4).
    public static func isNarrowFloat(_ format: DataType) -> Bool { format == .float8e8m0 || layout(format) != nil }

    /// Whether `format` is int4, uint4, int2 or uint2.
    public static func isNarrowInteger(_ format: DataType) -> Bool {
        format == .int4 || format == .uint4 || format == .int2 || format == .uint2
    }

    /// The values an int4/uint4/int2/uint2 element can hold (QuantizeLinear saturates to these).
    public static func integerRange(_ format: DataType) -> ClosedRange<Int> {
        switch format {
        case .int4: return -8...7
        case .uint4: return 0...15
        case .int2: return -2...1
        case .uint2: return 0...3
        default: preconditionFailure("\(format) is not a narrow integer type")
        }
    }

    // MARK: Float formats, one element

    /// The float32 value of the element with code `code` in `format` (exact; NaN for NaN codes).
    @inline(__always)
    public static func float(fromCode code: UInt8, format: DataType) -> Float {
        decodeTables.table(format)[Int(code)]
    }

    /// The largest finite value of a narrow float `format` (448 for E4M3FN, 2^127 for E8M0).
    public static func largestFinite(_ format: DataType) -> Float {
        switch format {
        case .float8e4m3fn: return 448
        case .float8e4m3fnuz: return 240
        case .float8e5m2, .float8e5m2fnuz: return 57344
        case .float4e2m1: return 6
        case .float8e8m0: return 0x1p127
        default: preconditionFailure("\(format) is not a narrow float format")
        }
    }

    /// The code of `format` for `value`, rounded to nearest even, overflow and infinities going
    /// to the largest finite value when `saturate` (the Cast default) and to infinity (E5M2) or
    /// NaN (the others) when not; NaN to NaN. float4 always saturates and writes zero for NaN (it
    /// has no NaN; the onnx reference writes zero, its technical note says 6). FLOAT8E8M0 rounds
    /// as `roundMode` says; a value below its smallest one (2^-127: zero, negative values) gives the
    /// smallest when saturating, NaN when not, as onnxruntime does.
    public static func code(
        _ value: Double, format: DataType, saturate: Bool = true, roundMode: E8M0Rounding = .up
    ) -> UInt8 {
        if format == .float8e8m0 { return e8m0Code(value, saturate: saturate, roundMode: roundMode) }
        guard let f = layout(format) else { preconditionFailure("\(format) is not a narrow float format") }
        let negative = value.sign == .minus
        let signBit = UInt8(negative ? 1 : 0) << f.signShift
        let saturate = saturate || f.specials == .finite
        let mantissaMask = UInt8((1 << f.mantissaBits) - 1)
        let allOnesExponent = UInt8((1 << f.exponentBits) - 1)
        let nan: UInt8
        switch f.specials {
        case .ieee: nan = signBit | (allOnesExponent << f.mantissaBits) | (1 << (f.mantissaBits - 1))
        case .fn: nan = signBit | (allOnesExponent << f.mantissaBits) | mantissaMask
        case .fnuz: nan = 0x80
        case .finite: nan = 0
        }
        if value.isNaN { return nan }
        let largest = Double(largestFinite(format))
        let largestCode = encode(largest, f)
        let overflow: UInt8
        if saturate {
            overflow = signBit | largestCode
        } else {
            overflow = f.specials == .ieee ? signBit | (allOnesExponent << f.mantissaBits) : nan
        }
        let magnitude = value.magnitude
        if magnitude.isInfinite { return overflow }
        if magnitude == 0 { return f.specials == .fnuz ? 0 : signBit }
        // Round to the format's precision: the quantum of `magnitude`'s binade, or of the
        // subnormal range below the smallest normal. Both divisions by powers of two are exact.
        let e = max(magnitude.exponent, f.minNormalExponent)
        let quantum = Double(sign: .plus, exponent: e - f.mantissaBits, significand: 1)
        let rounded = (magnitude / quantum).rounded(.toNearestOrEven) * quantum
        if rounded > largest { return overflow }
        if rounded == 0 { return f.specials == .fnuz ? 0 : signBit }
        return signBit | encode(rounded, f)
    }

    /// The code of a positive value exactly representable in `f`.
    private static func encode(_ r: Double, _ f: MiniFloat) -> UInt8 {
        let e = r.exponent
        if e < f.minNormalExponent {
            let mantissa = r / Double(sign: .plus, exponent: f.minNormalExponent - f.mantissaBits, significand: 1)
            return UInt8(mantissa)
        }
        let significand = r / Double(sign: .plus, exponent: e - f.mantissaBits, significand: 1)
        let mantissa = Int(significand) - (1 << f.mantissaBits)
        return UInt8((e + f.bias) << f.mantissaBits | mantissa)
    }

    /// FLOAT8E8M0 holds 2^(code - 127) for codes 0...254; 255 is NaN. The sign is not kept.
    private static func e8m0Code(_ value: Double, saturate: Bool, roundMode: E8M0Rounding) -> UInt8 {
        let smallest = 0x1p-127
        let largest = 0x1p127
        if value.isNaN { return 0xFF }
        if value < smallest || value == 0 { return saturate ? 0 : 0xFF }
        if value > largest { return saturate ? 0xFE : 0xFF }
        var e = value.exponent
        let significand = value.significand
        switch roundMode {
        case .up: if significand > 1 { e += 1 }
        case .down: break
        case .nearest: if significand >= 1.5 { e += 1 }
        }
        // value <= 2^127 means e = 127 only with significand 1: no rounding past the largest.
        return UInt8(min(e + 127, 254))
    }

    /// Decoding tables of the narrow float formats, built once (256 entries each; float4 uses 16).
    struct DecodeTables: Sendable {
        let e4m3fn: [Float]
        let e4m3fnuz: [Float]
        let e5m2: [Float]
        let e5m2fnuz: [Float]
        let e2m1: [Float]
        let e8m0: [Float]

        @inline(__always)
        func table(_ format: DataType) -> [Float] {
            switch format {
            case .float8e4m3fn: return e4m3fn
            case .float8e4m3fnuz: return e4m3fnuz
            case .float8e5m2: return e5m2
            case .float8e5m2fnuz: return e5m2fnuz
            case .float4e2m1: return e2m1
            case .float8e8m0: return e8m0
            default: preconditionFailure("\(format) is not a narrow float format")
            }
        }

        init() {
            func build(_ format: DataType) -> [Float] {
                let f = NarrowConversion.layout(format)!
                return (0..<256).map { c in NarrowConversion.decode(UInt8(c), f) }
            }
            e4m3fn = build(.float8e4m3fn)
            e4m3fnuz = build(.float8e4m3fnuz)
            e5m2 = build(.float8e5m2)
            e5m2fnuz = build(.float8e5m2fnuz)
            e2m1 = build(.float4e2m1)
            e8m0 = (0..<256).map { c in c == 255 ? Float.nan : Float(sign: .plus, exponent: c - 127, significand: 1) }
        }
    }

    static let decodeTables = DecodeTables()

    /// The value of `code` in `f` (bits above the format's width ignored).
    static func decode(_ code: UInt8, _ f: MiniFloat) -> Float {
        let width = f.signShift + 1
        let c = width < 8 ? code & UInt8((1 << width) - 1) : code
        let negative = (c >> f.signShift) & 1 == 1
        let exponent = Int(c >> f.mantissaBits) & ((1 << f.exponentBits) - 1)
        let mantissa = Int(c) & ((1 << f.mantissaBits) - 1)
        let allOnes = (1 << f.exponentBits) - 1
        switch f.specials {
        case .fnuz where c == 0x80: return .nan
        case .ieee where exponent == allOnes: return mantissa == 0 ? (negative ? -.infinity : .infinity) : .nan
        case .fn where exponent == allOnes && mantissa == (1 << f.mantissaBits) - 1: return .nan
        default: break
        }
        let magnitude: Float
        if exponent == 0 {
            magnitude = Float(mantissa) * Float(sign: .plus, exponent: f.minNormalExponent - f.mantissaBits, significand: 1)
        } else {
            magnitude = Float(sign: .plus, exponent: exponent - f.bias, significand: 1 + Float(mantissa) / Float(1 << f.mantissaBits))
        }
        return negative ? -magnitude : magnitude
    }

    // MARK: Integer formats, one element

    /// The int4/uint4/int2/uint2 element (its byte) for an integer: the low bits, two's complement
    /// (sign-extended for int4/int2), as Cast keeps the low bits of any integer.
    @inline(__always)
    public static func wrapped(_ value: Int64, to format: DataType) -> UInt8 {
        let bits = format.bitWidth
        let low = UInt8(truncatingIfNeeded: value) & UInt8((1 << bits) - 1)
        if format == .int4 || format == .int2 {
            return UInt8(bitPattern: Int8(bitPattern: low << (8 - bits)) >> (8 - bits))
        }
        return low
    }

    /// The int4/uint4/int2/uint2 element for a float: rounded to nearest (ties to even), then
    /// wrapped (onnx's int4 note); NaN, infinities and values past Int64 give 0 (their low bits).
    @inline(__always)
    public static func wrapped(_ value: Double, to format: DataType) -> UInt8 {
        let r = value.rounded(.toNearestOrEven)
        guard r.isFinite, r.magnitude < 0x1p63 else { return 0 }
        return wrapped(Int64(r), to: format)
    }

    /// The int4/uint4/int2/uint2 element nearest to `value` within the type's range (QuantizeLinear's
    /// saturation): rounded to nearest even, then clamped; NaN gives 0.
    @inline(__always)
    public static func saturated(_ value: Double, to format: DataType) -> UInt8 {
        let range = integerRange(format)
        let r = value.rounded(.toNearestOrEven)
        guard !r.isNaN else { return 0 }
        let clamped = Int(min(max(r, Double(range.lowerBound)), Double(range.upperBound)))
        return UInt8(truncatingIfNeeded: clamped)
    }

    /// The value of one held element of any narrow type, as a Double (exact).
    @inline(__always)
    public static func value(ofElement byte: UInt8, format: DataType) -> Double {
        switch format {
        case .int4, .int2: return Double(Int8(bitPattern: byte))
        case .uint4, .uint2: return Double(byte)
        default: return Double(float(fromCode: byte, format: format))
        }
    }

    // MARK: Packing (ONNX files)

    /// Bytes that `count` elements of `type` take packed in an ONNX file (ceil(count x bits / 8)).
    /// nil when that overflows.
    public static func packedByteCount(_ count: Int, _ type: DataType) -> Int? {
        let (bits, overflow) = count.multipliedReportingOverflow(by: type.bitWidth)
        if overflow { return nil }
        return bits / 8 + (bits % 8 == 0 ? 0 : 1)
    }

    /// Unpacks `count` elements of a 4- or 2-bit `type` from `packed` (first element in the lowest
    /// bits) into one byte each, sign-extending int4/int2. `packed` holds at least
    /// `packedByteCount(count, type)` bytes.
    public static func unpack(
        _ packed: UnsafeRawBufferPointer, type: DataType, count: Int, into out: UnsafeMutablePointer<UInt8>
    ) {
        let bits = type.bitWidth
        precondition(bits == 4 || bits == 2, "\(type) is not packed")
        let perByte = 8 / bits
        let signed = type == .int4 || type == .int2
        let mask = UInt8((1 << bits) - 1)
        for i in 0..<count {
            let byte = packed[i / perByte]
            let v = (byte >> UInt8((i % perByte) * bits)) & mask
            out[i] = signed ? UInt8(bitPattern: Int8(bitPattern: v << UInt8(8 - bits)) >> UInt8(8 - bits)) : v
        }
    }

    /// Packs `count` held elements of a 4- or 2-bit `type` into `out` (the inverse of `unpack`;
    /// padding bits zero). `out` holds `packedByteCount(count, type)` bytes.
    public static func pack(
        _ elements: UnsafePointer<UInt8>, type: DataType, count: Int, into out: UnsafeMutableRawBufferPointer
    ) {
        let bits = type.bitWidth
        precondition(bits == 4 || bits == 2, "\(type) is not packed")
        let perByte = 8 / bits
        let mask = UInt8((1 << bits) - 1)
        for j in 0..<out.count { out[j] = 0 }
        for i in 0..<count {
            out[i / perByte] |= (elements[i] & mask) << UInt8((i % perByte) * bits)
        }
    }
}

extension Tensor {
    /// A float32 copy of this narrow-type tensor (exact), charged to the current memory budget.
    public func narrowWidenedToFloat32() throws(MemoryLimitError) -> Tensor {
        precondition(dataType.isNarrow, "\(dataType) is not a narrow type")
        let out = try Tensor(allocating: .float32, shape: shape)
        let n = count
        guard n > 0 else { return out }
        let s = rawBytes.baseAddress!.assumingMemoryBound(to: UInt8.self)
        let d = out.mutableBytes.baseAddress!.assumingMemoryBound(to: Float.self)
        switch dataType {
        case .int4, .int2: for i in 0..<n { d[i] = Float(Int8(bitPattern: s[i])) }
        case .uint4, .uint2: for i in 0..<n { d[i] = Float(s[i]) }
        default:
            let table = NarrowConversion.decodeTables.table(dataType)
            for i in 0..<n { d[i] = table[Int(s[i])] }
        }
        return out
    }

    /// A copy of this float32 or float64 tensor as the narrow float `format` (float8, float4),
    /// rounded as `NarrowConversion.code` says, charged to the current memory budget.
    public func narrowed(
        toFloat format: DataType, saturate: Bool = true, roundMode: NarrowConversion.E8M0Rounding = .up
    ) throws(MemoryLimitError) -> Tensor {
        precondition(NarrowConversion.isNarrowFloat(format), "\(format) is not a narrow float format")
        precondition(dataType == .float32 || dataType == .float64, "\(dataType) is not float32 or float64")
        let out = try Tensor(allocating: format, shape: shape)
        let n = count
        guard n > 0 else { return out }
        let d = out.mutableBytes.baseAddress!.assumingMemoryBound(to: UInt8.self)
        if dataType == .float32 {
            let s = elements(as: Float.self)
            for i in 0..<n { d[i] = NarrowConversion.code(Double(s[i]), format: format, saturate: saturate, roundMode: roundMode) }
        } else {
            let s = elements(as: Double.self)
            for i in 0..<n { d[i] = NarrowConversion.code(s[i], format: format, saturate: saturate, roundMode: roundMode) }
        }
        return out
    }
}
