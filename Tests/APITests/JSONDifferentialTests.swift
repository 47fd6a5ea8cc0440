@testable import API
import Testing

/// The request parser (`JSONDocument`) against jansson (`JanssonDocument`), the reference: both
/// must accept and reject the same inputs and, when they accept, build the same values.
@Suite struct JSONDifferentialTests {
    struct Rng {
        var state: UInt64
        mutating func next() -> UInt64 {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            var x = state
            x ^= x >> 33
            x = x &* 0xff51afd7ed558ccd
            x ^= x >> 33
            return x
        }
        mutating func below(_ n: Int) -> Int { Int(next() % UInt64(n)) }
        mutating func pick<T>(_ items: [T]) -> T { items[below(items.count)] }
    }

    enum Outcome: Equatable {
        case accepted(JSONNode)
        case rejected
    }

    func ours(_ bytes: [UInt8]) -> Outcome {
        guard let d = try? JSONDocument(parsing: bytes) else { return .rejected }
        return .accepted(d.root)
    }

    func jansson(_ bytes: [UInt8]) -> Outcome {
        guard let d = try? JanssonDocument(parsing: bytes) else { return .rejected }
        return .accepted(d.node)
    }

    static let numbers = [
        "0", "-0", "1", "-1", "42", "9007199254740993", "9223372036854775807", "-9223372036854775808",
        "9223372036854775808", "-9223372036854775809", "123456789012345678901234567890", "0.5", "-0.0",
        "0.8125", "0.1", "3.14159265358979323846", "1e10", "1E-10", "1e+2", "2.5e-3", "1e308", "1e309", "-1e309",
        "1e-400", "4.9e-324", "2.2250738585072014e-308", "0.30000000000000004", "123.456e-7",
        "0.000000000000000000000000000001", "1.7976931348623157e308", "100000000000000000000000.5",
        "0.1234567890123456789", "7.0", "1.00000000000000000000001", "99999999999999999999e-5",
    ]
    static let strings = [
        "\"\"", "\"plain\"", "\"quote \\\" slash \\\\ \\/\"", "\"\\b\\f\\n\\r\\t\"", "\"\\u00e9\\u4e2d\"",
        "\"\\ud83d\\ude00\"", "\"caf\u{e9} \u{4e2d}\u{1F600}\"", "\"\\u0041\\u005A\"",
    ]

    func randomValue(_ r: inout Rng, depth: Int) -> String {
        let space = r.pick(["", " ", "\n", "\t ", "\r\n  "])
        switch r.below(depth > 3 ? 4 : 7) {
        case 0: return r.pick(Self.numbers)
        case 1: return r.pick(Self.strings)
        case 2: return r.pick(["true", "false", "null"])
        case 3: return String(Double(Int64(bitPattern: r.next()) % 1_000_000) / Double(r.pick([1, 10, 16, 1000, 7])))
        case 4, 5:
            let n = r.below(5)
            return "[" + space + (0..<n).map { _ in randomValue(&r, depth: depth + 1) }.joined(separator: "," + space) + space + "]"
        default:
            let n = r.below(4)
            let keys = (0..<n).map { "\"k\($0)\(r.below(3) == 0 ? "\\u00e9" : "")\"" }
            return "{" + space + keys.map { "\($0)" + space + ":" + randomValue(&r, depth: depth + 1) }.joined(separator: ",") + "}"
        }
    }

    @Test func randomValidDocumentsAgree() {
        var r = Rng(state: 1)
        for _ in 0..<3000 {
            let doc = r.below(2) == 0 ? "[" + randomValue(&r, depth: 1) + "]" : "{\"a\":" + randomValue(&r, depth: 1) + "}"
            let bytes = Array(doc.utf8)
            let expected = jansson(bytes)
            #expect(ours(bytes) == expected, "\(doc)")
        }
    }

    @Test func mutatedDocumentsAgree() {
        var r = Rng(state: 2)
        // NUL bytes are left out: jansson's buffer reader drops some of them (it accepts "[1\0]");
        // ours rejects them everywhere, as RFC 8259 says (see `nulBytesAreRejected`).
        let alphabet = Array("{}[],:\"\\0123456789.-+eEtrufalsn u\n\u{1}\u{7f}".utf8) + [0xC3, 0xA9, 0xFF]
        for _ in 0..<6000 {
            var bytes = Array(("[" + randomValue(&r, depth: 1) + "]").utf8)
            for _ in 0..<(1 + r.below(3)) {
                switch r.below(3) {
                case 0 where !bytes.isEmpty: bytes[r.below(bytes.count)] = r.pick(alphabet)
                case 1 where !bytes.isEmpty: bytes.remove(at: r.below(bytes.count))
                default: bytes.insert(r.pick(alphabet), at: r.below(bytes.count + 1))
                }
            }
            let expected = jansson(bytes)
            #expect(ours(bytes) == expected, "\(String(decoding: bytes, as: UTF8.self).debugDescription)")
        }
    }

    @Test(arguments: [
        "[1,]", "[01]", "[1.]", "[.5]", "[1e]", "[-]", "[+1]", "[0x10]", "[NaN]", "[Infinity]", "{\"a\":1,\"a\":2}",
        "{\"a\" 1}", "{1:2}", "[\"\\x\"]", "[\"\\ud800\"]", "[\"\\udc00\"]", "[\"\\u0000\"]", "[\"a\nb\"]", "[1] x",
        "1", "\"s\"", "[", "]", "{", "[\"\\u12\"]", "[tru]", "[nul]", "[] ", " \n[1]\n ", "[1e400]", "[-1e400]",
        "[9223372036854775808]", "[\"\u{80}\"]",
    ])
    func edgeCasesAgree(text: String) {
        let bytes = Array(text.utf8)
        #expect(ours(bytes) == jansson(bytes), "\(text.debugDescription)")
    }

    @Test func invalidUTF8AndDeepNestingAgree() {
        for bytes: [UInt8] in [[0x5B, 0x22, 0xFF, 0x22, 0x5D], [0x5B, 0x22, 0xC3, 0x22, 0x5D], [0x5B, 0x22, 0xED, 0xA0, 0x80, 0x22, 0x5D]] {
            #expect(ours(bytes) == jansson(bytes))
        }
        for depth in [2047, 2048, 2049, 5000] {
            let bytes = Array((String(repeating: "[", count: depth) + String(repeating: "]", count: depth)).utf8)
            #expect(ours(bytes) == jansson(bytes), "depth \(depth)")
        }
    }

    @Test func nulBytesAreRejected() {
        for text in ["[1\u{0}]", "[1]\u{0}", "[\"a\u{0}b\"]", "\u{0}[1]"] {
            #expect(ours(Array(text.utf8)) == .rejected, "\(text.debugDescription)")
        }
    }

    @Test func tensorPayloadAgreesBitForBit() {
        var r = Rng(state: 3)
        var text = "{\"inputs\":[{\"name\":\"x\",\"shape\":[1,784],\"datatype\":\"FP32\",\"data\":["
        text += (0..<784).map { _ in String(Float(bitPattern: UInt32(truncatingIfNeeded: r.next()) & 0x3FFF_FFFF | 0x3000_0000)) }
            .joined(separator: ",")
        text += "]}]}"
        #expect(ours(Array(text.utf8)) == jansson(Array(text.utf8)))
    }
}
