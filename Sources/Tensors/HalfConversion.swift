/// Conversions between float32 and the two 16-bit float formats, IEEE 754 binary16 (`float16`) and
/// bfloat16 (the upper half of a float32). The engine holds both as float32 (docs/architecture.md,
/// "16-bit floats"): weights are widened once at load, inputs on entry, declared outputs narrowed on
/// exit, and a Cast to a 16-bit type rounds through it in place.
///
/// Narrowing rounds to nearest, ties to even, in both formats; NaN stays NaN (quiet, sign kept),
/// infinities stay infinities, values past the largest finite 16-bit value become infinity, and
/// float16 subnormals are produced and read exactly. float16 goes through Swift's `Float16`, which
/// the x86-64-v3 build compiles to F16C's `vcvtph2ps`/`vcvtps2ph` (eight lanes per instruction);
/// bfloat16 is bit manipulation on SIMD8 lanes. Stateless; any thread.
public enum HalfConversion {
    /// Whether `type` is one of the 16-bit float formats these functions convert.
    public static func isHalf(_ type: DataType) -> Bool { type == .float16 || type == .bfloat16 }

    // MARK: Scalars

    /// The float32 value of the float16 with bit pattern `bits` (exact).
    @inline(__always)
    public static func float(fromFloat16 bits: UInt16) -> Float { Float(Float16(bitPattern: bits)) }

    /// The float16 nearest to `value` (ties to even), as a bit pattern.
    @inline(__always)
    public static func float16Bits(_ value: Float) -> UInt16 { Float16(value).bitPattern }

    /// The float32 value of the bfloat16 with bit pattern `bits` (exact).
    @inline(__always)
    public static func float(fromBFloat16 bits: UInt16) -> Float { Float(bitPattern: UInt32(bits) << 16) }

    /// The bfloat16 nearest to `value` (ties to even), as a bit pattern; NaN becomes a quiet NaN.
    @inline(__always)
    public static func bfloat16Bits(_ value: Float) -> UInt16 {
        let bits = value.bitPattern
        if bits & 0x7FFF_FFFF > 0x7F80_0000 { return UInt16(truncatingIfNeeded: bits >> 16) | 0x0040 }
        // Adding 0x7FFF plus the lowest kept bit rounds to nearest with ties to even; a carry out of
        // the mantissa moves to the next binade (or to infinity), which is the right result.
        return UInt16(truncatingIfNeeded: (bits &+ 0x7FFF &+ ((bits >> 16) & 1)) >> 16)
    }

    /// The float16 nearest to `value` with one rounding (JSON numbers are read as doubles).
    @inline(__always)
    public static func float16Bits(fromDouble value: Double) -> UInt16 { Float16(value).bitPattern }

    /// The bfloat16 nearest to `value` with one rounding: the double is first rounded to float32
    /// with round-to-odd (24 bits, two more than bfloat16 needs), so that the second rounding
    /// cannot be a double rounding.
    public static func bfloat16Bits(fromDouble value: Double) -> UInt16 {
        var f = Float(value)
        if f.isFinite, Double(f) != value, f.bitPattern & 1 == 0 {
            f = Double(f) < value ? f.nextUp : f.nextDown
        }
        return bfloat16Bits(f)
    }

    /// The value of the 16-bit `format` nearest to `value`, back as a float32 (what a Cast to
    /// `format` and back computes).
    @inline(__always)
    public static func rounded(_ value: Float, to format: DataType) -> Float {
        format == .bfloat16 ? float(fromBFloat16: bfloat16Bits(value)) : Float(Float16(value))
    }

    // MARK: Buffers

    /// Widens `count` 16-bit values of `format` at `source` to float32 at `destination`.
    public static func widen(
        _ source: UnsafePointer<UInt16>, format: DataType, into destination: UnsafeMutablePointer<Float>, count: Int
    ) {
        precondition(isHalf(format), "\(format) is not a 16-bit float format")
        let s = UnsafeRawPointer(source)
        let d = UnsafeMutableRawPointer(destination)
        var i = 0
        if format == .float16 {
            while i + 8 <= count {
                let v = s.loadUnaligned(fromByteOffset: 2 * i, as: SIMD8<Float16>.self)
                d.storeBytes(of: SIMD8<Float>(v), toByteOffset: 4 * i, as: SIMD8<Float>.self)
                i += 8
            }
            while i < count {
                destination[i] = float(fromFloat16: source[i])
                i += 1
            }
        } else {
            while i + 8 <= count {
                let v = SIMD8<UInt32>(truncatingIfNeeded: s.loadUnaligned(fromByteOffset: 2 * i, as: SIMD8<UInt16>.self))
                d.storeBytes(of: v &<< 16, toByteOffset: 4 * i, as: SIMD8<UInt32>.self)
                i += 8
            }
            while i < count {
                destination[i] = float(fromBFloat16: source[i])
                i += 1
            }
        }
    }

    /// Narrows `count` float32 values at `source` to `format` at `destination` (ties to even).
    public static func narrow(
        _ source: UnsafePointer<Float>, format: DataType, into destination: UnsafeMutablePointer<UInt16>, count: Int
    ) {
        precondition(isHalf(format), "\(format) is not a 16-bit float format")
        let s = UnsafeRawPointer(source)
        let d = UnsafeMutableRawPointer(destination)
        var i = 0
        if format == .float16 {
            while i + 8 <= count {
                let v = s.loadUnaligned(fromByteOffset: 4 * i, as: SIMD8<Float>.self)
                d.storeBytes(of: SIMD8<Float16>(v), toByteOffset: 2 * i, as: SIMD8<Float16>.self)
                i += 8
            }
            while i < count {
                destination[i] = float16Bits(source[i])
                i += 1
            }
            return
        }
        while i + 8 <= count {
            let r = bfloat16Lanes(s.loadUnaligned(fromByteOffset: 4 * i, as: SIMD8<UInt32>.self))
            d.storeBytes(of: SIMD8<UInt16>(truncatingIfNeeded: r), toByteOffset: 2 * i, as: SIMD8<UInt16>.self)
            i += 8
        }
        while i < count {
            destination[i] = bfloat16Bits(source[i])
            i += 1
        }
    }

    /// Rounds `count` float32 values in place to the nearest value of `format` (a Cast to
    /// `format` of a value the engine holds as float32).
    public static func roundInPlace(_ values: UnsafeMutablePointer<Float>, count: Int, to format: DataType) {
        precondition(isHalf(format), "\(format) is not a 16-bit float format")
        let p = UnsafeMutableRawPointer(values)
        var i = 0
        while i + 8 <= count {
            if format == .float16 {
                let v = p.loadUnaligned(fromByteOffset: 4 * i, as: SIMD8<Float>.self)
                p.storeBytes(of: SIMD8<Float>(SIMD8<Float16>(v)), toByteOffset: 4 * i, as: SIMD8<Float>.self)
            } else {
                let r = bfloat16Lanes(p.loadUnaligned(fromByteOffset: 4 * i, as: SIMD8<UInt32>.self))
                p.storeBytes(of: r &<< 16, toByteOffset: 4 * i, as: SIMD8<UInt32>.self)
            }
            i += 8
        }
        while i < count {
            values[i] = rounded(values[i], to: format)
            i += 1
        }
    }

    /// `bfloat16Bits` of eight float32 bit patterns, in the low halves of the lanes. Selects the
    /// quiet NaN with arithmetic rather than a lane comparison, which Swift's SIMD types would
    /// build lane by lane; LLVM turns this into one compare and one blend.
    @inline(__always)
    static func bfloat16Lanes(_ v: SIMD8<UInt32>) -> SIMD8<UInt32> {
        // All ones in the lanes whose magnitude is above infinity's (NaN): the subtraction wraps.
        let nan = SIMD8<UInt32>(repeating: 0) &- ((SIMD8<UInt32>(repeating: 0x7F80_0000) &- (v & 0x7FFF_FFFF)) &>> 31)
        let rounded = (v &+ 0x7FFF &+ ((v &>> 16) & 1)) &>> 16
        let quiet = (v &>> 16) | 0x0040
        return rounded ^ ((rounded ^ quiet) & nan)
    }
}

extension Tensor {
    /// A float32 copy of this float16 or bfloat16 tensor, charged to the current memory budget.
    public func widenedToFloat32() throws(MemoryLimitError) -> Tensor {
        precondition(HalfConversion.isHalf(dataType), "\(dataType) is not a 16-bit float type")
        let out = try Tensor(allocating: .float32, shape: shape)
        if count > 0 {
            HalfConversion.widen(
                rawBytes.baseAddress!.assumingMemoryBound(to: UInt16.self), format: dataType,
                into: out.mutableBytes.baseAddress!.assumingMemoryBound(to: Float.self), count: count)
        }
        return out
    }

    /// A `format` (float16 or bfloat16) copy of this float32 tensor, rounded to nearest even,
    /// charged to the current memory budget.
    public func narrowed(to format: DataType) throws(MemoryLimitError) -> Tensor {
        precondition(dataType == .float32, "\(dataType) is not float32")
        let out = try Tensor(allocating: format, shape: shape)
        if count > 0 {
            HalfConversion.narrow(
                rawBytes.baseAddress!.assumingMemoryBound(to: Float.self), format: format,
                into: out.mutableBytes.baseAddress!.assumingMemoryBound(to: UInt16.self), count: count)
        }
        return out
    }
}
