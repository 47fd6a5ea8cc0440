import CJansson

/// A parsed JSON document (jansson). Owns the tree; `JSONValue`s read from it keep it alive.
///
/// Read-only after parsing; safe to read from one thread at a time (the request's).
final class JSONDocument {
    let root: UnsafeMutablePointer<json_t>

    /// Parses `bytes`. The error says where the syntax breaks.
    init(parsing bytes: [UInt8]) throws(APIError) {
        var error = json_error_t()
        let parsed: UnsafeMutablePointer<json_t>? = bytes.withUnsafeBufferPointer { buffer in
            buffer.baseAddress!.withMemoryRebound(to: CChar.self, capacity: max(buffer.count, 1)) { chars in
                json_loadb(chars, buffer.count, Int(JSON_REJECT_DUPLICATES), &error)
            }
        }
        guard let parsed else {
            let text = withUnsafeBytes(of: error.text) { raw in
                String(cString: raw.baseAddress!.assumingMemoryBound(to: CChar.self))
            }
            if bytes.isEmpty { throw APIError.badRequest("the request body is empty; send a JSON object") }
            throw APIError.badRequest(
                "the request body is not valid JSON: \(text) (line \(error.line), column \(error.column)); "
                    + "send a JSON object")
        }
        root = parsed
    }

    deinit { swerve_json_decref(root) }

    var rootValue: JSONValue { JSONValue(pointer: root, document: self) }
}

/// A node inside a `JSONDocument`.
struct JSONValue {
    let pointer: UnsafeMutablePointer<json_t>
    let document: JSONDocument

    enum Kind { case object, array, string, integer, real, bool, null }

    var kind: Kind {
        switch swerve_json_typeof(pointer) {
        case 0: return .object
        case 1: return .array
        case 2: return .string
        case 3: return .integer
        case 4: return .real
        case 5, 6: return .bool
        default: return .null
        }
    }

    var isObject: Bool { kind == .object }
    var isArray: Bool { kind == .array }
    var isNumber: Bool { kind == .integer || kind == .real }

    /// A member of an object; nil when absent or when this is not an object.
    subscript(key: String) -> JSONValue? {
        guard kind == .object, let child = json_object_get(pointer, key) else { return nil }
        return JSONValue(pointer: child, document: document)
    }

    /// Object members in document order.
    var members: [(String, JSONValue)] {
        guard kind == .object else { return [] }
        var out: [(String, JSONValue)] = []
        var iter = json_object_iter(pointer)
        while let i = iter {
            let key = String(cString: json_object_iter_key(i))
            out.append((key, JSONValue(pointer: json_object_iter_value(i), document: document)))
            iter = json_object_iter_next(pointer, i)
        }
        return out
    }

    var count: Int { kind == .array ? json_array_size(pointer) : 0 }

    subscript(index: Int) -> JSONValue {
        JSONValue(pointer: json_array_get(pointer, index), document: document)
    }

    var elements: [JSONValue] { (0..<count).map { self[$0] } }

    var string: String? {
        guard kind == .string else { return nil }
        return String(cString: json_string_value(pointer))
    }

    /// An integer, or a real with an integral value.
    var int: Int64? {
        switch kind {
        case .integer: return Int64(json_integer_value(pointer))
        case .real:
            let d = json_real_value(pointer)
            return d.rounded() == d && abs(d) < 9.2e18 ? Int64(d) : nil
        default: return nil
        }
    }

    var double: Double? {
        switch kind {
        case .integer: return Double(json_integer_value(pointer))
        case .real: return json_real_value(pointer)
        default: return nil
        }
    }

    var bool: Bool? {
        switch swerve_json_typeof(pointer) {
        case 5: return true
        case 6: return false
        default: return nil
        }
    }

    /// A short description of the node's type, for error messages.
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
