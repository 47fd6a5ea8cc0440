import CJansson

/// A JSON document parsed by jansson: the reference the request parser (`JSONDocument`) is
/// differential-tested against. Owns the tree.
final class JanssonDocument {
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

    /// The whole tree converted to `JSONNode`, for comparison with the request parser.
    var node: JSONNode { JanssonValue(pointer: root, document: self).node }
}

/// A node inside a `JanssonDocument`.
struct JanssonValue {
    let pointer: UnsafeMutablePointer<json_t>
    let document: JanssonDocument

    var node: JSONNode {
        switch swerve_json_typeof(pointer) {
        case 0: return .object(members.map { ($0.0, $0.1.node) })
        case 1: return .array(elements.map(\.node))
        case 2:
            let bytes = UnsafeRawBufferPointer(start: json_string_value(pointer), count: json_string_length(pointer))
            return .string(String(decoding: bytes, as: UTF8.self))
        case 3: return .int(Int64(json_integer_value(pointer)))
        case 4: return .double(json_real_value(pointer))
        case 5: return .bool(true)
        case 6: return .bool(false)
        default: return .null
        }
    }

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

    /// A member of an object; nil when absent or when this is not an object.
    subscript(key: String) -> JanssonValue? {
        guard kind == .object, let child = json_object_get(pointer, key) else { return nil }
        return JanssonValue(pointer: child, document: document)
    }

    /// Object members (jansson keeps insertion order).
    var members: [(String, JanssonValue)] {
        guard kind == .object else { return [] }
        var out: [(String, JanssonValue)] = []
        var iter = json_object_iter(pointer)
        while let i = iter {
            let key = String(cString: json_object_iter_key(i))
            out.append((key, JanssonValue(pointer: json_object_iter_value(i), document: document)))
            iter = json_object_iter_next(pointer, i)
        }
        return out
    }

    var count: Int { kind == .array ? json_array_size(pointer) : 0 }

    subscript(index: Int) -> JanssonValue {
        JanssonValue(pointer: json_array_get(pointer, index), document: document)
    }

    var elements: [JanssonValue] { (0..<count).map { self[$0] } }



    var double: Double? {
        switch kind {
        case .integer: return Double(json_integer_value(pointer))
        case .real: return json_real_value(pointer)
        default: return nil
        }
    }


}
