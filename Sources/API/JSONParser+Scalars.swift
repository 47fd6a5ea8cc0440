import Glibc

/// Powers of ten that are exact in a double (10^0 ... 10^22).
private let exactPowersOfTen: [Double] = (0...22).map { e in (0..<e).reduce(1.0) { acc, _ in acc * 10 } }

extension JSONParser {
    /// A string starting at the opening quote.
    mutating func parseString() throws(JSONSyntaxError) -> String {
        i += 1
        let start = i
        // Fast path: no escapes.
        while i < bytes.count {
            let c = bytes[i]
            if c == UInt8(ascii: "\"") {
                guard let s = String(validating: bytes[start..<i], as: UTF8.self) else {
                    throw fail("invalid UTF-8 in string", at: start)
                }
                i += 1
                return s
            }
            if c == UInt8(ascii: "\\") { break }
            if c < 0x20 { throw fail("control character 0x\(String(c, radix: 16)) in string") }
            i += 1
        }
        var out = Array(bytes[start..<i])
        while i < bytes.count {
            let c = bytes[i]
            if c == UInt8(ascii: "\"") {
                i += 1
                guard let s = String(validating: out, as: UTF8.self) else { throw fail("invalid UTF-8 in string", at: start) }
                return s
            }
            if c < 0x20 { throw fail("control character 0x\(String(c, radix: 16)) in string") }
            if c != UInt8(ascii: "\\") {
                out.append(c)
                i += 1
                continue
            }
            i += 1
            guard i < bytes.count else { break }
            let e = bytes[i]
            i += 1
            switch e {
            case UInt8(ascii: "\""): out.append(0x22)
            case UInt8(ascii: "\\"): out.append(0x5C)
            case UInt8(ascii: "/"): out.append(0x2F)
            case UInt8(ascii: "b"): out.append(0x08)
            case UInt8(ascii: "f"): out.append(0x0C)
            case UInt8(ascii: "n"): out.append(0x0A)
            case UInt8(ascii: "r"): out.append(0x0D)
            case UInt8(ascii: "t"): out.append(0x09)
            case UInt8(ascii: "u"):
                var scalar = try hex4()
                if (0xD800...0xDBFF).contains(scalar) {
                    guard i + 1 < bytes.count, bytes[i] == UInt8(ascii: "\\"), bytes[i + 1] == UInt8(ascii: "u") else {
                        throw fail("invalid Unicode '\\u\(String(scalar, radix: 16))'")
                    }
                    i += 2
                    let low = try hex4()
                    guard (0xDC00...0xDFFF).contains(low) else { throw fail("invalid Unicode '\\u\(String(scalar, radix: 16))'") }
                    scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                } else if (0xDC00...0xDFFF).contains(scalar) {
                    throw fail("invalid Unicode '\\u\(String(scalar, radix: 16))'")
                }
                if scalar == 0 { throw fail("\\u0000 is not allowed") }
                appendUTF8(scalar, to: &out)
            default:
                throw fail("invalid escape")
            }
        }
        throw fail("premature end of input")
    }

    private mutating func hex4() throws(JSONSyntaxError) -> UInt32 {
        guard i + 4 <= bytes.count else { throw fail("invalid escape") }
        var v: UInt32 = 0
        for _ in 0..<4 {
            let c = bytes[i]
            let d: UInt32
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): d = UInt32(c - 48)
            case UInt8(ascii: "a")...UInt8(ascii: "f"): d = UInt32(c - 87)
            case UInt8(ascii: "A")...UInt8(ascii: "F"): d = UInt32(c - 55)
            default: throw fail("invalid escape")
            }
            v = v << 4 | d
            i += 1
        }
        return v
    }

    private func appendUTF8(_ scalar: UInt32, to out: inout [UInt8]) {
        switch scalar {
        case 0..<0x80: out.append(UInt8(scalar))
        case 0x80..<0x800:
            out.append(UInt8(0xC0 | (scalar >> 6)))
            out.append(UInt8(0x80 | (scalar & 0x3F)))
        case 0x800..<0x10000:
            out.append(UInt8(0xE0 | (scalar >> 12)))
            out.append(UInt8(0x80 | ((scalar >> 6) & 0x3F)))
            out.append(UInt8(0x80 | (scalar & 0x3F)))
        default:
            out.append(UInt8(0xF0 | (scalar >> 18)))
            out.append(UInt8(0x80 | ((scalar >> 12) & 0x3F)))
            out.append(UInt8(0x80 | ((scalar >> 6) & 0x3F)))
            out.append(UInt8(0x80 | (scalar & 0x3F)))
        }
    }

    /// A number (RFC 8259 grammar): integers that fit in 64 bits stay exact, the rest are doubles
    /// rounded correctly (exact fast path, else `strtod`).
    mutating func parseNumber() throws(JSONSyntaxError) -> JSONNode {
        let start = i
        var negative = false
        if bytes[i] == UInt8(ascii: "-") {
            negative = true
            i += 1
        }
        func isDigit(_ k: Int) -> Bool { k < bytes.count && bytes[k] >= 48 && bytes[k] <= 57 }
        guard isDigit(i) else { throw fail("invalid token", at: start) }
        var mantissa: UInt64 = 0
        var significant = 0  // significant digits taken into the mantissa
        var dropped = 0  // integer digits beyond 19 (scale by 10 each)
        var fractionDigits = 0
        if bytes[i] == UInt8(ascii: "0") {
            i += 1
            if isDigit(i) { throw fail("invalid token", at: start) }
        } else {
            while isDigit(i) {
                if significant < 19 {
                    mantissa = mantissa &* 10 &+ UInt64(bytes[i] - 48)
                    significant += 1
                } else {
                    dropped += 1
                }
                i += 1
            }
        }
        var isInteger = true
        if i < bytes.count, bytes[i] == UInt8(ascii: ".") {
            isInteger = false
            i += 1
            guard isDigit(i) else { throw fail("invalid token", at: start) }
            while isDigit(i) {
                if significant < 19 {
                    if mantissa != 0 || bytes[i] != 48 { significant += 1 }
                    mantissa = mantissa &* 10 &+ UInt64(bytes[i] - 48)
                    fractionDigits += 1
                } else if bytes[i] != 48 {
                    significant = 20  // more precision than the fast path handles
                }
                i += 1
            }
        }
        var exponent = 0
        if i < bytes.count, bytes[i] == UInt8(ascii: "e") || bytes[i] == UInt8(ascii: "E") {
            isInteger = false
            i += 1
            var expNegative = false
            if i < bytes.count, bytes[i] == UInt8(ascii: "+") || bytes[i] == UInt8(ascii: "-") {
                expNegative = bytes[i] == UInt8(ascii: "-")
                i += 1
            }
            guard isDigit(i) else { throw fail("invalid token", at: start) }
            while isDigit(i) {
                if exponent < 100_000 { exponent = exponent * 10 + Int(bytes[i] - 48) }
                i += 1
            }
            if expNegative { exponent = -exponent }
        }
        if isInteger {
            if dropped == 0 && significant <= 19 {
                if !negative, mantissa <= UInt64(Int64.max) { return .int(Int64(mantissa)) }
                if negative, mantissa <= UInt64(Int64.max) + 1 { return .int(mantissa == UInt64(Int64.max) + 1 ? .min : -Int64(mantissa)) }
            }
            throw fail(negative ? "too big negative integer" : "too big integer", at: start)
        }
        let e10 = exponent + dropped - fractionDigits
        if significant <= 15 && e10 >= -22 && e10 <= 22 {
            var value = Double(mantissa)
            value = e10 >= 0 ? value * exactPowersOfTen[e10] : value / exactPowersOfTen[-e10]
            return .double(negative ? -value : value)
        }
        let value = slowDouble(start..<i)
        if value.isInfinite { throw fail("real number overflow", at: start) }
        return .double(value)
    }

    /// `strtod` on the token (the C locale: this process never calls setlocale).
    private func slowDouble(_ range: Range<Int>) -> Double {
        var text = [CChar](repeating: 0, count: range.count + 1)
        for (k, b) in bytes[range].enumerated() { text[k] = CChar(bitPattern: b) }
        return strtod(text, nil)
    }
}
