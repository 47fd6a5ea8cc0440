import Tensors
import Testing

/// The float16/bfloat16 conversions, against definitions written from the formats' bit layouts.
@Suite struct HalfConversionTests {
    /// binary16 decoded by hand: sign, 5-bit exponent (bias 15), 10-bit mantissa; subnormals.
    static func referenceFloat16(_ bits: UInt16) -> Float {
        let sign: Float = bits & 0x8000 != 0 ? -1 : 1
        let exponent = Int((bits >> 10) & 0x1F)
        let mantissa = Float(bits & 0x3FF)
        switch exponent {
        case 0: return sign * mantissa * Float(sign: .plus, exponent: -24, significand: 1)
        case 31: return mantissa == 0 ? sign * .infinity : .nan
        default: return sign * (1 + mantissa / 1024) * Float(sign: .plus, exponent: exponent - 15, significand: 1)
        }
    }

    @Test func everyFloat16BitPatternWidensExactlyAndRoundTrips() {
        let all = (0...0xFFFF).map { UInt16($0) }
        var wide = [Float](repeating: 0, count: all.count)
        var back = [UInt16](repeating: 0, count: all.count)
        all.withUnsafeBufferPointer { a in
            wide.withUnsafeMutableBufferPointer { w in
                HalfConversion.widen(a.baseAddress!, format: .float16, into: w.baseAddress!, count: a.count)
            }
        }
        wide.withUnsafeBufferPointer { w in
            back.withUnsafeMutableBufferPointer { b in
                HalfConversion.narrow(w.baseAddress!, format: .float16, into: b.baseAddress!, count: w.count)
            }
        }
        var bad = 0
        for bits in all {
            let expected = Self.referenceFloat16(bits)
            let got = wide[Int(bits)]
            let scalar = HalfConversion.float(fromFloat16: bits)
            if expected.isNaN {
                // NaN stays NaN with its sign (F16C quiets a signalling NaN).
                if !got.isNaN || !scalar.isNaN || got.sign != (bits & 0x8000 != 0 ? .minus : .plus) { bad += 1 }
                if back[Int(bits)] & 0x7C00 != 0x7C00 || back[Int(bits)] & 0x3FF == 0 { bad += 1 }
            } else {
                if got.bitPattern != expected.bitPattern || scalar.bitPattern != expected.bitPattern { bad += 1 }
                if back[Int(bits)] != bits || HalfConversion.float16Bits(got) != bits { bad += 1 }
            }
        }
        #expect(bad == 0)
    }

    @Test func float16RoundsToNearestEven() {
        let ulp1 = Float(sign: .plus, exponent: -10, significand: 1)  // float16's ulp at 1
        #expect(HalfConversion.float16Bits(1 + ulp1 / 2) == 0x3C00)  // tie: down to even 1.0
        #expect(HalfConversion.float16Bits(1 + 3 * ulp1 / 2) == 0x3C02)  // tie: up to even
        #expect(HalfConversion.float16Bits((1 + ulp1 / 2).nextUp) == 0x3C01)
        #expect(HalfConversion.float16Bits(65504) == 0x7BFF)
        #expect(HalfConversion.float16Bits(65519.99) == 0x7BFF)
        #expect(HalfConversion.float16Bits(65520) == 0x7C00)  // tie past the largest: infinity
        #expect(HalfConversion.float16Bits(-.infinity) == 0xFC00)
        #expect(HalfConversion.float16Bits(Float(sign: .plus, exponent: -25, significand: 1)) == 0x0000)  // tie to 0
        #expect(HalfConversion.float16Bits(Float(sign: .plus, exponent: -25, significand: 1.5)) == 0x0001)
        #expect(HalfConversion.float16Bits(Float(sign: .plus, exponent: -24, significand: 1.5)) == 0x0002)  // tie to even
        #expect(HalfConversion.float16Bits(-0.0) == 0x8000)
        #expect(HalfConversion.float16Bits(Float.nan) & 0x7E00 == 0x7E00)
        // Random floats: the result is a nearest float16, and the even one on a tie.
        var state: UInt64 = 12345
        for _ in 0..<200_000 {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            let x = Float(bitPattern: UInt32(truncatingIfNeeded: state >> 32) & 0x477F_FFFF | (UInt32(state & 1) << 31))
            let h = HalfConversion.float16Bits(x)
            let v = HalfConversion.float(fromFloat16: h)
            let magnitude = h & 0x7FFF
            if magnitude == 0x7C00 {
                #expect(abs(x) >= 65520)  // past the largest finite float16 by half an ulp or more
                continue
            }
            let up = HalfConversion.float(fromFloat16: magnitude == 0x7BFF ? h : h &+ 1)
            let down = HalfConversion.float(fromFloat16: magnitude == 0 ? h : h &- 1)
            let d = abs(Double(v) - Double(x))
            #expect(d <= abs(Double(up) - Double(x)) && d <= abs(Double(down) - Double(x)))
            if d == abs(Double(up) - Double(x)) && up != v || d == abs(Double(down) - Double(x)) && down != v {
                #expect(h & 1 == 0)
            }
        }
    }

    @Test func bfloat16RoundsToNearestEvenAndKeepsSpecials() {
        #expect(HalfConversion.bfloat16Bits(Float(bitPattern: 0x3F80_8000)) == 0x3F80)  // tie: down to even
        #expect(HalfConversion.bfloat16Bits(Float(bitPattern: 0x3F81_8000)) == 0x3F82)  // tie: up to even
        #expect(HalfConversion.bfloat16Bits(Float(bitPattern: 0x3F80_8001)) == 0x3F81)
        #expect(HalfConversion.bfloat16Bits(Float(bitPattern: 0x3F80_7FFF)) == 0x3F80)
        #expect(HalfConversion.bfloat16Bits(.greatestFiniteMagnitude) == 0x7F80)  // rounds up to infinity
        #expect(HalfConversion.bfloat16Bits(-.infinity) == 0xFF80)
        #expect(HalfConversion.bfloat16Bits(Float(bitPattern: 0x7F80_0001)) == 0x7FC0)  // signalling NaN: quiet
        #expect(HalfConversion.bfloat16Bits(Float(bitPattern: 0xFFC0_0000)) == 0xFFC0)
        #expect(HalfConversion.bfloat16Bits(Float(bitPattern: 0x0000_8000)) == 0x0000)  // subnormal tie to even
        #expect(HalfConversion.bfloat16Bits(Float(bitPattern: 0x0001_8000)) == 0x0002)
        for bits in 0...0xFFFF {
            let b = UInt16(bits)
            let v = HalfConversion.float(fromBFloat16: b)
            #expect(v.bitPattern == UInt32(b) << 16)
            if !v.isNaN { #expect(HalfConversion.bfloat16Bits(v) == b) }
        }
    }

    @Test func bfloat16FromDoubleRoundsOnce() {
        // 1 + 2^-8 + 2^-40: above the tie between 0x3F80 and 0x3F81, though float32 rounds it onto the tie.
        let d = 1 + 0x1p-8 + 0x1p-40
        #expect(Float(d).bitPattern == 0x3F80_8000)
        #expect(HalfConversion.bfloat16Bits(fromDouble: d) == 0x3F81)
        #expect(HalfConversion.bfloat16Bits(fromDouble: 1 + 0x1p-8) == 0x3F80)
        #expect(HalfConversion.bfloat16Bits(fromDouble: -(1 + 0x1p-8 + 0x1p-40)) == 0xBF81)
        #expect(HalfConversion.bfloat16Bits(fromDouble: 1e300) == 0x7F80)
        #expect(HalfConversion.float16Bits(fromDouble: 1 + 0x1p-11 + 0x1p-40) == 0x3C01)
    }

    @Test func vectorLoopsMatchTheScalarConversions() {
        // 8-lane bodies and scalar tails: a length that is not a multiple of 8, with the specials.
        var values: [Float] = [0, -0.0, 1, -1, .infinity, -.infinity, .nan, Float(bitPattern: 0x7F80_0001),
            Float(bitPattern: 0x3F80_8000), Float(bitPattern: 0x3F81_8000), .greatestFiniteMagnitude, Float(bitPattern: 0x0001_16C2), 65520]
        var state: UInt32 = 7
        for _ in 0..<1000 {
            state = state &* 1_664_525 &+ 1_013_904_223
            values.append(Float(bitPattern: state))
        }
        for format in [DataType.float16, .bfloat16] {
            var narrow = [UInt16](repeating: 0, count: values.count)
            var rounded = values
            values.withUnsafeBufferPointer { v in
                narrow.withUnsafeMutableBufferPointer { n in
                    HalfConversion.narrow(v.baseAddress!, format: format, into: n.baseAddress!, count: v.count)
                }
            }
            rounded.withUnsafeMutableBufferPointer { r in
                HalfConversion.roundInPlace(r.baseAddress!, count: r.count, to: format)
            }
            for (i, x) in values.enumerated() {
                let scalar = format == .float16 ? HalfConversion.float16Bits(x) : HalfConversion.bfloat16Bits(x)
                let back = HalfConversion.rounded(x, to: format)
                if x.isNaN {
                    #expect(rounded[i].isNaN && back.isNaN)
                    #expect((format == .float16 ? HalfConversion.float(fromFloat16: narrow[i]) : HalfConversion.float(fromBFloat16: narrow[i])).isNaN)
                } else {
                    #expect(narrow[i] == scalar, "\(format) \(x)")
                    #expect(rounded[i].bitPattern == back.bitPattern, "\(format) \(x)")
                }
            }
        }
    }

    @Test func tensorsWidenAndNarrow() throws {
        let t = Tensor([Float(0.1), 2.5, -3, 65504], shape: [2, 2])
        for format in [DataType.float16, .bfloat16] {
            let narrow = try t.narrowed(to: format)
            #expect(narrow.dataType == format && narrow.shape == [2, 2])
            let wide = try narrow.widenedToFloat32()
            #expect(wide.scalars(as: Float.self) == t.scalars(as: Float.self).map { HalfConversion.rounded($0, to: format) })
            #expect(narrow.doubleValues() == wide.scalars(as: Float.self).map(Double.init))
        }
    }
}
