import Glibc
import HTTP
import Tensors

/// Builds JSON text into a byte buffer. Cheap to use per response; the caller keeps the structure
/// valid (keys only inside objects, commas via `comma()` or the helpers).
struct JSONWriter {
    private(set) var bytes: [UInt8] = []

    init(capacity: Int = 256) { bytes.reserveCapacity(capacity) }

    mutating func raw(_ s: String) { bytes.append(contentsOf: s.utf8) }
    mutating func byte(_ c: UInt8) { bytes.append(c) }

    mutating func string(_ s: String) { appendJSONString(s, to: &bytes) }

    mutating func key(_ k: String) {
        appendJSONString(k, to: &bytes)
        bytes.append(UInt8(ascii: ":"))
    }

    /// Writes `"key":"value"`.
    mutating func field(_ k: String, _ v: String) {
        key(k)
        string(v)
    }

    mutating func int(_ v: Int) { raw(String(v)) }

    mutating func bool(_ v: Bool) { raw(v ? "true" : "false") }

    /// Writes a float in the shortest form that reads back to the same value. JSON has no NaN or
    /// infinity; they are written as `NaN`, `Infinity` and `-Infinity`, as TF Serving and Python do.
    mutating func float(_ v: Float) {
        if v.isFinite { raw(v.description) } else { nonFinite(Double(v)) }
    }

    mutating func double(_ v: Double) {
        if v.isFinite { raw(v.description) } else { nonFinite(v) }
    }

    private mutating func nonFinite(_ v: Double) {
        raw(v.isNaN ? "NaN" : (v > 0 ? "Infinity" : "-Infinity"))
    }

    mutating func comma() { bytes.append(UInt8(ascii: ",")) }

    /// Writes `items` as a JSON array, each with `body`.
    mutating func array<S: Sequence>(_ items: S, _ body: (inout JSONWriter, S.Element) -> Void) {
        byte(UInt8(ascii: "["))
        var first = true
        for item in items {
            if !first { comma() }
            first = false
            body(&self, item)
        }
        byte(UInt8(ascii: "]"))
    }

    /// Writes the elements of `tensor` from `start` to `end` (flat indices) as a flat array.
    mutating func flatArray(_ tensor: Tensor, from start: Int = 0, to end: Int? = nil) {
        let end = end ?? tensor.count
        byte(UInt8(ascii: "["))
        for i in start..<end {
            if i > start { comma() }
            element(tensor, i)
        }
        byte(UInt8(ascii: "]"))
    }

    /// Writes the elements `start ..< start + product(shape)` of `tensor` as nested arrays of `shape`.
    mutating func nestedArray(_ tensor: Tensor, shape: ArraySlice<Int>, start: Int = 0) {
        guard let first = shape.first else {
            element(tensor, start)
            return
        }
        let inner = shape.dropFirst()
        let step = inner.reduce(1, *)
        byte(UInt8(ascii: "["))
        for i in 0..<first {
            if i > 0 { comma() }
            if inner.isEmpty { element(tensor, start + i) } else { nestedArray(tensor, shape: inner, start: start + i * step) }
        }
        byte(UInt8(ascii: "]"))
    }

    /// Writes element `i` of `tensor` as a JSON number or boolean.
    mutating func element(_ tensor: Tensor, _ i: Int) {
        switch tensor.dataType {
        case .float32: float(tensor.elements(as: Float.self)[i])
        case .float64: double(tensor.elements(as: Double.self)[i])
        case .int64: raw(String(tensor.elements(as: Int64.self)[i]))
        case .int32: raw(String(tensor.elements(as: Int32.self)[i]))
        case .int16: raw(String(tensor.elements(as: Int16.self)[i]))
        case .int8: raw(String(tensor.elements(as: Int8.self)[i]))
        case .uint8: raw(String(tensor.elements(as: UInt8.self)[i]))
        case .uint16: raw(String(tensor.elements(as: UInt16.self)[i]))
        case .uint32: raw(String(tensor.elements(as: UInt32.self)[i]))
        case .uint64: raw(String(tensor.elements(as: UInt64.self)[i]))
        case .bool: bool(tensor.elements(as: Bool.self)[i])
        case .float16: float16(tensor.elements(as: UInt16.self)[i])
        case .bfloat16: bfloat16(tensor.elements(as: UInt16.self)[i])
        case .string: raw("null")
        // A served model never has these (`StoreLoader.requireTensorIO`); written as their values.
        case .int4, .uint4, .int2, .uint2:
            raw(String(Int(NarrowConversion.value(ofElement: tensor.elements(as: UInt8.self)[i], format: tensor.dataType))))
        case .float8e4m3fn, .float8e4m3fnuz, .float8e5m2, .float8e5m2fnuz, .float8e8m0, .float4e2m1:
            float(NarrowConversion.float(fromCode: tensor.elements(as: UInt8.self)[i], format: tensor.dataType))
        }
    }

    /// Writes a float16 in the shortest form that reads back to the same float16.
    mutating func float16(_ bits: UInt16) {
        let v = Float16(bitPattern: bits)
        if v.isFinite { raw(v.description) } else { nonFinite(Double(Float(v))) }
    }

    /// Writes a bfloat16 in the shortest form that reads back to the same bfloat16 (at most 4
    /// significant digits for 8 bits of mantissa; 9, float32's, as a bound).
    mutating func bfloat16(_ bits: UInt16) {
        let v = HalfConversion.float(fromBFloat16: bits)
        guard v.isFinite else { return nonFinite(Double(v)) }
        if v == 0 { return raw(v.sign == .minus ? "-0.0" : "0") }  // "-0" would read back as the integer 0
        if v == v.rounded(), abs(v) < 1e6 {
            raw(String(Int(v)))
            return
        }
        var buffer = [CChar](repeating: 0, count: 40)
        for digits in 2...9 {
            let n = buffer.withUnsafeMutableBufferPointer { b in
                withVaList([Int32(digits), Double(v)]) { vsnprintf(b.baseAddress, b.count, "%.*g", $0) }
            }
            // Read back as the request parser reads a BF16 number: a double, rounded once.
            let parsed = buffer.withUnsafeBufferPointer { strtod($0.baseAddress!, nil) }
            if HalfConversion.bfloat16Bits(fromDouble: parsed) == bits || digits == 9 {
                bytes.append(contentsOf: buffer[0..<Int(n)].map { UInt8(bitPattern: $0) })
                return
            }
        }
    }
}
