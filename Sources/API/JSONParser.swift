import Glibc

/// A JSON value: the tree the request parser builds.
enum JSONNode: Equatable {
    case object([(String, JSONNode)])
    case array([JSONNode])
    case string(String)
    /// A number written without fraction or exponent that fits in 64 bits.
    case int(Int64)
    case double(Double)
    case bool(Bool)
    case null

    static func == (a: JSONNode, b: JSONNode) -> Bool {
        switch (a, b) {
        case (.object(let x), .object(let y)):
            return x.count == y.count && zip(x, y).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
        case (.array(let x), .array(let y)): return x == y
        case (.string(let x), .string(let y)): return x == y
        case (.int(let x), .int(let y)): return x == y
        case (.double(let x), .double(let y)): return x == y || (x.isNaN && y.isNaN)
        case (.bool(let x), .bool(let y)): return x == y
        case (.null, .null): return true
        default: return false
        }
    }
}

/// A parsed request body. Accepts exactly what jansson accepts with `JSON_REJECT_DUPLICATES`
/// (an object or array at the top, strict RFC 8259 numbers and strings, valid UTF-8, no NUL in
/// strings, nesting up to 2048, no duplicate keys) and builds the same values; this is checked by
/// differential tests against `JanssonDocument`. It exists because tensor data is the hot path:
/// numbers are parsed in one pass with an exact fast path (Clinger's: up to 15 significant digits
/// and a power of ten up to 22 are exact in a double, so one multiplication or division rounds
/// correctly), falling back to `strtod` for the rest.
final class JSONDocument {
    let root: JSONNode

    init(parsing bytes: [UInt8]) throws(APIError) {
        if bytes.isEmpty { throw APIError.badRequest("the request body is empty; send a JSON object") }
        var parser = JSONParser(bytes: bytes)
        do {
            root = try parser.parseDocument()
        } catch {
            throw APIError.badRequest(
                "the request body is not valid JSON: \(error.message) (line \(error.line), column \(error.column)); send a JSON object")
        }
    }

    var rootValue: JSONValue { JSONValue(node: root) }
}

/// A read-only view of a node, with the accessors the protocol code uses.
struct JSONValue {
    let node: JSONNode

    enum Kind { case object, array, string, integer, real, bool, null }

    var kind: Kind {
        switch node {
        case .object: return .object
        case .array: return .array
        case .string: return .string
        case .int: return .integer
        case .double: return .real
        case .bool: return .bool
        case .null: return .null
        }
    }

    var isObject: Bool { if case .object = node { true } else { false } }
    var isArray: Bool { if case .array = node { true } else { false } }

    /// A member of an object; nil when absent or when this is not an object.
    subscript(key: String) -> JSONValue? {
        guard case .object(let members) = node, let hit = members.first(where: { $0.0 == key }) else { return nil }
        return JSONValue(node: hit.1)
    }

    var members: [(String, JSONValue)] {
        guard case .object(let members) = node else { return [] }
        return members.map { ($0.0, JSONValue(node: $0.1)) }
    }

    var count: Int { if case .array(let items) = node { items.count } else { 0 } }

    subscript(index: Int) -> JSONValue {
        guard case .array(let items) = node else { preconditionFailure("not an array") }
        return JSONValue(node: items[index])
    }

    var elements: [JSONValue] {
        guard case .array(let items) = node else { return [] }
        return items.map { JSONValue(node: $0) }
    }

    @inline(never)
    var string: String? { if case .string(let s) = node { s } else { nil } }

    // The accessors below are kept out of line: inlined into the large request decoders they
    // crash Swift 6.3.1's optimizer (CopyPropagation's ownership verifier on the enum switch).

    /// An integer, or a real with an integral value.
    @inline(never)
    var int: Int64? {
        switch node {
        case .int(let i): return i
        case .double(let d): return d.rounded() == d && abs(d) < 9.2e18 ? Int64(d) : nil
        default: return nil
        }
    }

    @inline(never)
    var double: Double? {
        switch node {
        case .int(let i): return Double(i)
        case .double(let d): return d
        default: return nil
        }
    }

    @inline(never)
    var bool: Bool? { if case .bool(let b) = node { b } else { nil } }

    var typeName: String {
        switch kind {
        case .object: return "an object"
        case .array: return "an array"
        case .string: return "a string"
        case .integer, .real: return "a number"
        case .bool: return "a boolean"
        case .null: return "null"
        }
    }
}

struct JSONSyntaxError: Error {
    let message: String
    let line: Int
    let column: Int
}

/// The recursive-descent parser over the body's bytes.
struct JSONParser {
    static let maxDepth = 2048
    let bytes: [UInt8]
    var i = 0
    var depth = 0

    init(bytes: [UInt8]) { self.bytes = bytes }

    func fail(_ message: String, at position: Int? = nil) -> JSONSyntaxError {
        let end = min(position ?? i, bytes.count)
        var line = 1, column = 1
        for b in bytes[0..<end] {
            if b == 10 { line += 1; column = 1 } else { column += 1 }
        }
        return JSONSyntaxError(message: message, line: line, column: column)
    }

    mutating func skipSpace() {
        while i < bytes.count, bytes[i] == 32 || bytes[i] == 10 || bytes[i] == 13 || bytes[i] == 9 { i += 1 }
    }

    mutating func parseDocument() throws(JSONSyntaxError) -> JSONNode {
        skipSpace()
        guard i < bytes.count, bytes[i] == UInt8(ascii: "{") || bytes[i] == UInt8(ascii: "[") else {
            throw fail("'[' or '{' expected")
        }
        let value = try parseValue()
        skipSpace()
        guard i == bytes.count else { throw fail("end of file expected") }
        return value
    }

    mutating func parseValue() throws(JSONSyntaxError) -> JSONNode {
        skipSpace()
        guard i < bytes.count else { throw fail("unexpected end of input") }
        switch bytes[i] {
        case UInt8(ascii: "{"): return try parseObject()
        case UInt8(ascii: "["): return try parseArray()
        case UInt8(ascii: "\""): return .string(try parseString())
        case UInt8(ascii: "t"): try literal("true"); return .bool(true)
        case UInt8(ascii: "f"): try literal("false"); return .bool(false)
        case UInt8(ascii: "n"): try literal("null"); return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try parseNumber()
        default: throw fail("invalid token")
        }
    }

    mutating func literal(_ word: StaticString) throws(JSONSyntaxError) {
        let n = word.utf8CodeUnitCount
        guard i + n <= bytes.count else { throw fail("invalid token") }
        for k in 0..<n where bytes[i + k] != word.utf8Start[k] { throw fail("invalid token") }
        i += n
    }

    mutating func enter() throws(JSONSyntaxError) {
        depth += 1
        if depth > JSONParser.maxDepth { throw fail("maximum parsing depth reached") }
    }

    mutating func parseObject() throws(JSONSyntaxError) -> JSONNode {
        try enter()
        defer { depth -= 1 }
        i += 1
        var members: [(String, JSONNode)] = []
        skipSpace()
        if i < bytes.count, bytes[i] == UInt8(ascii: "}") {
            i += 1
            return .object(members)
        }
        while true {
            skipSpace()
            guard i < bytes.count, bytes[i] == UInt8(ascii: "\"") else { throw fail("string or '}' expected") }
            let keyStart = i
            let key = try parseString()
            if members.contains(where: { $0.0 == key }) { throw fail("duplicate object key", at: keyStart) }
            skipSpace()
            guard i < bytes.count, bytes[i] == UInt8(ascii: ":") else { throw fail("':' expected") }
            i += 1
            members.append((key, try parseValue()))
            skipSpace()
            guard i < bytes.count else { throw fail("'}' expected") }
            if bytes[i] == UInt8(ascii: ",") { i += 1; continue }
            if bytes[i] == UInt8(ascii: "}") { i += 1; return .object(members) }
            throw fail("'}' expected")
        }
    }

    mutating func parseArray() throws(JSONSyntaxError) -> JSONNode {
        try enter()
        defer { depth -= 1 }
        i += 1
        var items: [JSONNode] = []
        skipSpace()
        if i < bytes.count, bytes[i] == UInt8(ascii: "]") {
            i += 1
            return .array(items)
        }
        while true {
            items.append(try parseValue())
            skipSpace()
            guard i < bytes.count else { throw fail("']' expected") }
            if bytes[i] == UInt8(ascii: ",") { i += 1; continue }
            if bytes[i] == UInt8(ascii: "]") { i += 1; return .array(items) }
            throw fail("']' expected")
        }
    }
}
