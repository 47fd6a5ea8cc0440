import Tensors
import Testing

/// The narrow types' conversions against the definitions in onnx's Cast spec and technical notes
/// (float8.md, float4.md, int4.md), and FLOAT8E8M0 against what onnxruntime 1.32 computes.
@Suite struct NarrowConversionTests {
    static let floatFormats: [DataType] = [.float8e4m3fn, .float8e4m3fnuz, .float8e5m2, .float8e5m2fnuz, .float4e2m1]

    static func codes(_ format: DataType) -> [UInt8] {
        format == .float4e2m1 ? Array(0...15) : Array(0...255)
    }

    @Test(arguments: floatFormats + [.float8e8m0])
    func everyValueRoundTripsToItsCode(_ format: DataType) {
        for c in Self.codes(format) {
            let v = NarrowConversion.float(fromCode: c, format: format)
            if v.isNaN { continue }
            if v.isInfinite {
                // Only E5M2 has infinities; they survive a non-saturating conversion.
                #expect(format == .float8e5m2)
                #expect(NarrowConversion.code(Double(v), format: format, saturate: false) == c)
                continue
            }
            #expect(NarrowConversion.code(Double(v), format: format) == c, "\(format) code \(c) value \(v)")
        }
    }

    @Test func valuesFromTheSpecTables() {
        // Largest values, smallest subnormals and NaN codes (float8.md, float4.md).
        #expect(NarrowConversion.float(fromCode: 0x7E, format: .float8e4m3fn) == 448)
        #expect(NarrowConversion.float(fromCode: 0x7F, format: .float8e4m3fn).isNaN)
        #expect(NarrowConversion.float(fromCode: 0x01, format: .float8e4m3fn) == 0x1p-9)
        #expect(NarrowConversion.float(fromCode: 0x7F, format: .float8e4m3fnuz) == 240)
        #expect(NarrowConversion.float(fromCode: 0x80, format: .float8e4m3fnuz).isNaN)
        #expect(NarrowConversion.float(fromCode: 0x01, format: .float8e4m3fnuz) == 0x1p-10)
        #expect(NarrowConversion.float(fromCode: 0x7B, format: .float8e5m2) == 57344)
        #expect(NarrowConversion.float(fromCode: 0x7C, format: .float8e5m2) == .infinity)
        #expect(NarrowConversion.float(fromCode: 0x01, format: .float8e5m2) == 0x1p-16)
        #expect(NarrowConversion.float(fromCode: 0x7F, format: .float8e5m2fnuz) == 57344)
        #expect(NarrowConversion.float(fromCode: 0x01, format: .float8e5m2fnuz) == 0x1p-17)
        #expect((0...7).map { NarrowConversion.float(fromCode: UInt8($0), format: .float4e2m1) } == [0, 0.5, 1, 1.5, 2, 3, 4, 6])
        #expect(NarrowConversion.float(fromCode: 0xF, format: .float4e2m1) == -6)
        #expect(NarrowConversion.float(fromCode: 0, format: .float8e8m0) == 0x1p-127)
        #expect(NarrowConversion.float(fromCode: 254, format: .float8e8m0) == 0x1p127)
        #expect(NarrowConversion.float(fromCode: 255, format: .float8e8m0).isNaN)
        for format in Self.floatFormats + [.float8e8m0] {
            let finite = Self.codes(format).map { NarrowConversion.float(fromCode: $0, format: format) }.filter(\.isFinite)
            #expect(finite.max() == NarrowConversion.largestFinite(format), "\(format)")
        }
    }

    @Test(arguments: floatFormats)
    func midpointsRoundToEven(_ format: DataType) {
        // Positive finite codes in order; the code's lowest bit is the mantissa's.
        let positive = Self.codes(format).filter { c in
            let v = NarrowConversion.float(fromCode: c, format: format)
            return v.isFinite && v.sign == .plus && (v > 0 || c == 0)
        }
        for (a, b) in zip(positive, positive.dropFirst()) {
            let low = Double(NarrowConversion.float(fromCode: a, format: format))
            let high = Double(NarrowConversion.float(fromCode: b, format: format))
            let mid = (low + high) / 2
            #expect(NarrowConversion.code(mid, format: format) == (a % 2 == 0 ? a : b), "\(format) tie \(mid)")
            #expect(NarrowConversion.code(mid.nextUp, format: format) == b)
            #expect(NarrowConversion.code(mid.nextDown, format: format) == a)
            #expect(NarrowConversion.code(-mid.nextUp, format: format) == NarrowConversion.code(-high, format: format))
        }
    }

    @Test func saturationTables() {
        func value(_ x: Double, _ f: DataType, saturate: Bool) -> Float {
            NarrowConversion.float(fromCode: NarrowConversion.code(x, format: f, saturate: saturate), format: f)
        }
        for f in [DataType.float8e4m3fn, .float8e4m3fnuz, .float8e5m2, .float8e5m2fnuz] {
            let max = NarrowConversion.largestFinite(f)
            // Saturating (the default): infinities and overflow to the largest value, signs kept.
            #expect(value(.infinity, f, saturate: true) == max)
            #expect(value(-.infinity, f, saturate: true) == -max)
            #expect(value(1e6, f, saturate: true) == max)
            #expect(value(-1e6, f, saturate: true) == -max)
            #expect(value(.nan, f, saturate: true).isNaN)
            // Not saturating: infinity for E5M2, NaN for the others.
            let overflow = value(1e6, f, saturate: false)
            let negativeInfinity = value(-.infinity, f, saturate: false)
            if f == .float8e5m2 {
                #expect(overflow == .infinity && negativeInfinity == -.infinity)
            } else {
                #expect(overflow.isNaN && negativeInfinity.isNaN)
            }
            // Zeros: the UZ formats have no negative zero.
            let negativeZero = NarrowConversion.code(-0.0, format: f)
            #expect(negativeZero == (f == .float8e4m3fnuz || f == .float8e5m2fnuz ? 0 : 0x80))
            #expect(NarrowConversion.code(-1e-30, format: f) == negativeZero)
        }
        // E4M3FN: 464 is the tie between 448 and 480 (not a value): to 448; past it, overflow.
        #expect(value(464, .float8e4m3fn, saturate: false) == 448)
        #expect(value(465, .float8e4m3fn, saturate: false).isNaN)
        // float4 has no NaN or infinity: always saturates; NaN gives zero (the conformance data).
        #expect(value(.infinity, .float4e2m1, saturate: false) == 6)
        #expect(value(-100, .float4e2m1, saturate: false) == -6)
        #expect(value(.nan, .float4e2m1, saturate: true) == 0)
        #expect(value(0.25, .float4e2m1, saturate: true) == 0)  // tie between 0 and 0.5
        #expect(value(0.75, .float4e2m1, saturate: true) == 1)  // tie between 0.5 and 1
    }

    /// Cast to FLOAT8E8M0 as onnxruntime 1.32 computed it (Cast then Cast back to FLOAT).
    @Test func e8m0AsOnnxruntimeRoundsIt() {
        let inputs: [Double] = [0, 1e-45, 0x1p-127, 0x1.8p-127, 1.5, 3, 1e38, 3.4e38, .infinity, .nan, -2, 0x1.8p127, 1.25, 1.75]
        let nan = Float.nan
        let expected: [(Bool, NarrowConversion.E8M0Rounding, [Float])] = [
            (true, .up, [0x1p-127, 0x1p-127, 0x1p-127, 0x1p-126, 2, 4, 0x1p127, 0x1p127, 0x1p127, nan, 0x1p-127, 0x1p127, 2, 2]),
            (true, .down, [0x1p-127, 0x1p-127, 0x1p-127, 0x1p-127, 1, 2, 0x1p126, 0x1p127, 0x1p127, nan, 0x1p-127, 0x1p127, 1, 1]),
            (true, .nearest, [0x1p-127, 0x1p-127, 0x1p-127, 0x1p-126, 2, 4, 0x1p126, 0x1p127, 0x1p127, nan, 0x1p-127, 0x1p127, 1, 2]),
            (false, .up, [nan, nan, 0x1p-127, 0x1p-126, 2, 4, 0x1p127, nan, nan, nan, nan, nan, 2, 2]),
            (false, .down, [nan, nan, 0x1p-127, 0x1p-127, 1, 2, 0x1p126, nan, nan, nan, nan, nan, 1, 1]),
            (false, .nearest, [nan, nan, 0x1p-127, 0x1p-126, 2, 4, 0x1p126, nan, nan, nan, nan, nan, 1, 2]),
        ]
        for (saturate, mode, want) in expected {
            let got = inputs.map { x in
                NarrowConversion.float(
                    fromCode: NarrowConversion.code(x, format: .float8e8m0, saturate: saturate, roundMode: mode),
                    format: .float8e8m0)
            }
            let same = zip(got, want).allSatisfy { $0 == $1 || ($0.isNaN && $1.isNaN) }
            #expect(same, "saturate \(saturate) \(mode): \(got)")
        }
    }

    @Test func integersWrapAndRoundToEven() {
        func int4(_ v: Double) -> Int8 { Int8(bitPattern: NarrowConversion.wrapped(v, to: .int4)) }
        // The conformance data: -9...15 wrap (two's complement low bits).
        #expect((-9...15).map { int4(Double($0)) } == [7, -8, -7, -6, -5, -4, -3, -2, -1, 0, 1, 2, 3, 4, 5, 6, 7, -8, -7, -6, -5, -4, -3, -2, -1])
        // int4.md: round to nearest even, then truncate to the low bits.
        #expect([2.5, -2.5, 3.5, 3.7, 0.5, 1.5, 7.5].map(int4) == [2, -2, 4, 4, 0, 2, -8])
        #expect([Double.nan, .infinity, -.infinity, 1e30].map(int4) == [0, 0, 0, 0])
        #expect(NarrowConversion.wrapped(Int64(-1), to: .uint4) == 15)
        #expect(NarrowConversion.wrapped(Int64(5), to: .int2) == UInt8(bitPattern: 1))
        #expect(NarrowConversion.wrapped(Int64(2), to: .int2) == UInt8(bitPattern: -2))
        #expect(NarrowConversion.wrapped(Int64(-3), to: .uint2) == 1)
        // QuantizeLinear's saturation: clamped instead of wrapped.
        #expect(Int8(bitPattern: NarrowConversion.saturated(9.6, to: .int4)) == 7)
        #expect(Int8(bitPattern: NarrowConversion.saturated(-20, to: .int4)) == -8)
        #expect(NarrowConversion.saturated(-1, to: .uint2) == 0)
        #expect(NarrowConversion.saturated(2.5, to: .uint2) == 2)
    }

    @Test(arguments: [DataType.int4, .uint4, .float4e2m1, .int2, .uint2])
    func packingRoundTrips(_ type: DataType) {
        for count in [0, 1, 2, 3, 5, 8, 9] {
            let range = type == .float4e2m1 ? 0...15 : NarrowConversion.integerRange(type)
            let held = (0..<count).map { i in UInt8(truncatingIfNeeded: range.lowerBound + (i * 7) % range.count) }
            let bytes = NarrowConversion.packedByteCount(count, type)!
            #expect(bytes == (count * type.bitWidth + 7) / 8)
            var packed = [UInt8](repeating: 0xAA, count: bytes)
            held.withUnsafeBufferPointer { h in
                packed.withUnsafeMutableBytes { NarrowConversion.pack(h.baseAddress!, type: type, count: count, into: $0) }
            }
            var back = [UInt8](repeating: 0, count: count)
            packed.withUnsafeBytes { p in
                back.withUnsafeMutableBufferPointer { NarrowConversion.unpack(p, type: type, count: count, into: $0.baseAddress!) }
            }
            #expect(back == held, "\(type) count \(count)")
        }
        // The first element is in the lowest bits (onnx.proto).
        var packed: [UInt8] = [0]
        let held: [UInt8] = type.bitWidth == 4 ? [1, 2] : [1, 0, 1, 1]
        held.withUnsafeBufferPointer { h in
            packed.withUnsafeMutableBytes { NarrowConversion.pack(h.baseAddress!, type: type, count: held.count, into: $0) }
        }
        #expect(packed == [type.bitWidth == 4 ? 0x21 : 0b0101_0001])
    }

    @Test func tensorsWidenAndNarrow() throws {
        let x = Tensor([Float(0.3), -500, 1, .nan], shape: [2, 2])
        let f8 = try x.narrowed(toFloat: .float8e4m3fn)
        #expect(f8.dataType == .float8e4m3fn && f8.shape == [2, 2] && f8.byteCount == 4)
        let back = try f8.narrowWidenedToFloat32().scalars(as: Float.self)
        #expect(back[0] == 0.3125 && back[1] == -448 && back[2] == 1 && back[3].isNaN)
        let doubles = try Tensor([0.3, -500.0], shape: [2]).narrowed(toFloat: .float8e5m2, saturate: false)
        #expect(doubles.doubleValues() == [0.3125, -512])
    }
}
