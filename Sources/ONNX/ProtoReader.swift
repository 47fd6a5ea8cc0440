/// Why a model file could not be decoded, in words; `ONNXLoader` prefixes the file's path.
struct DecodeFailure: Error {
    var message: String
    init(_ message: String) { self.message = message }
}

/// `s` quoted for an error message: control characters replaced, at most 80 characters kept (names
/// in a corrupt file can be anything).
func quoted(_ s: String, quote: String = "'") -> String {
    var out = ""
    for (i, ch) in s.unicodeScalars.enumerated() {
        if i == 80 {
            out += "..."
            break
        }
        out.unicodeScalars.append(ch.value < 0x20 || ch.value == 0x7f ? "?" : ch)
    }
    return quote + out + quote
}

/// One field of a protobuf message, as the wire format gives it.
struct ProtoField {
    var number: Int
    var wireType: Int
    /// The value of a varint (0), fixed64 (1) or fixed32 (5) field.
    var value: UInt64
    /// For a length-delimited (2) field: the payload's start and end offsets in the file. `end` is
    /// clamped to the enclosing message; `declaredEnd` is where the length says it ends.
    var start: Int
    var end: Int
    var declaredEnd: Int

    var isTruncated: Bool { declaredEnd != end }
}

/// A cursor over one protobuf message inside a mapped file: the protobuf wire format (varint,
/// fixed64, length-delimited, fixed32), bounds-checked everywhere.
///
/// A length-delimited field that runs past its enclosing message is returned clamped
/// (`isTruncated`) so that a nested decoder can report the innermost problem first; callers check
/// it with `bytes(_:)`, `nested(_:_:_:body:)` or `requireComplete(_:)`. A value type used on one
/// thread; the file it reads must outlive it.
struct ProtoReader {
    let file: UnsafeRawBufferPointer
    private(set) var position: Int
    let limit: Int
    let message: ProtoMessage
    /// What this message is, for errors: "tensor 'fc.weight'", "node 3 (Conv)", "model".
    var label: String

    init(file: UnsafeRawBufferPointer, start: Int, end: Int, message: ProtoMessage, label: String) {
        self.file = file
        self.position = start
        self.limit = end
        self.message = message
        self.label = label
    }

    /// The next field, or nil at the end of the message.
    mutating func next() throws -> ProtoField? {
        guard position < limit else { return nil }
        let keyOffset = position
        let key = try readVarint(field: 0, role: "key")
        let number = key >> 3
        let wire = Int(key & 7)
        guard number > 0, number <= 536_870_911 else {
            throw DecodeFailure("malformed: invalid field number \(number) at offset \(keyOffset) in \(label)")
        }
        var field = ProtoField(number: Int(number), wireType: wire, value: 0, start: 0, end: 0, declaredEnd: 0)
        switch wire {
        case 0:
            field.value = try readVarint(field: field.number, role: "value")
        case 1:
            try requireBytes(8, field: field.number)
            field.value = file.loadUnaligned(fromByteOffset: position, as: UInt64.self).littleEndian
            position += 8
        case 5:
            try requireBytes(4, field: field.number)
            field.value = UInt64(file.loadUnaligned(fromByteOffset: position, as: UInt32.self).littleEndian)
            position += 4
        case 2:
            let length = try readVarint(field: field.number, role: "length")
            field.start = position
            let available = UInt64(limit - position)
            if length <= available {
                field.end = position + Int(length)
                field.declaredEnd = field.end
            } else {
                field.end = limit
                field.declaredEnd = length > UInt64(Int.max - position) ? Int.max : position + Int(length)
            }
            position = field.end
        case 3, 4:
            throw DecodeFailure(
                "malformed: \(fieldText(field.number)) at offset \(keyOffset) uses the protobuf group encoding, "
                    + "which ONNX files never use")
        default:
            throw DecodeFailure("malformed: \(fieldText(field.number)) at offset \(keyOffset) has invalid wire type \(wire)")
        }
        return field
    }

    // MARK: Field values

    /// "field 9 (raw_data) of tensor 'x'".
    func fieldText(_ number: Int) -> String {
        if let name = message.fieldName(number) { return "field \(number) (\(name)) of \(label)" }
        return "field \(number) of \(label)"
    }

    func requireWire(_ f: ProtoField, _ wire: Int) throws {
        guard f.wireType == wire else {
            throw DecodeFailure(
                "malformed: \(fieldText(f.number)) has wire type \(f.wireType), expected \(wire)")
        }
    }

    /// Throws if a length-delimited field runs past its enclosing message.
    func requireComplete(_ f: ProtoField) throws {
        guard f.isTruncated else { return }
        let need = f.declaredEnd == Int.max ? "more than \(Int.max - f.start)" : String(f.declaredEnd - f.start)
        if limit == file.count {
            throw DecodeFailure(
                "truncated: \(fieldText(f.number)) needs \(need) bytes at offset \(f.start) "
                    + "but the file ends at \(file.count)")
        }
        throw DecodeFailure(
            "malformed: \(fieldText(f.number)) needs \(need) bytes at offset \(f.start) "
                + "but its enclosing message ends at \(limit)")
    }

    /// The payload of a complete length-delimited field.
    func bytes(_ f: ProtoField) throws -> UnsafeRawBufferPointer {
        try requireWire(f, 2)
        try requireComplete(f)
        return UnsafeRawBufferPointer(rebasing: file[f.start..<f.end])
    }

    func string(_ f: ProtoField) throws -> String {
        String(decoding: try bytes(f), as: UTF8.self)
    }

    func int64(_ f: ProtoField) throws -> Int64 {
        try requireWire(f, 0)
        return Int64(bitPattern: f.value)
    }

    func int(_ f: ProtoField) throws -> Int { Int(try int64(f)) }

    func float(_ f: ProtoField) throws -> Float {
        try requireWire(f, 5)
        return Float(bitPattern: UInt32(truncatingIfNeeded: f.value))
    }

    /// Decodes a nested message with `body`, then reports the field itself if it was truncated (so a
    /// problem found inside is reported first: it names the innermost thing).
    func nested<T>(
        _ f: ProtoField, _ message: ProtoMessage, _ label: String, body: (inout ProtoReader) throws -> T
    ) throws -> T {
        try requireWire(f, 2)
        var sub = ProtoReader(file: file, start: f.start, end: f.end, message: message, label: label)
        let result = try body(&sub)
        try requireComplete(f)
        return result
    }

    /// Each value of a repeated varint field, packed (wire type 2) or not (wire type 0).
    func forEachVarint(_ f: ProtoField, _ body: (UInt64) throws -> Void) throws {
        if f.wireType == 0 { return try body(f.value) }
        let payload = try bytes(f)
        var sub = ProtoReader(file: file, start: f.start, end: f.start + payload.count, message: message, label: label)
        while sub.position < sub.limit { try body(try sub.readVarint(field: f.number, role: "packed value")) }
    }

    /// Each value of a repeated fixed-size field (4 or 8 bytes), packed or not.
    func forEachFixed(_ f: ProtoField, width: Int, _ body: (UInt64) throws -> Void) throws {
        if f.wireType == (width == 4 ? 5 : 1) { return try body(f.value) }
        let payload = try bytes(f)
        guard payload.count % width == 0 else {
            throw DecodeFailure(
                "malformed: packed \(fieldText(f.number)) has \(payload.count) bytes, not a multiple of \(width)")
        }
        var i = 0
        while i < payload.count {
            if width == 4 {
                try body(UInt64(payload.loadUnaligned(fromByteOffset: i, as: UInt32.self).littleEndian))
            } else {
                try body(payload.loadUnaligned(fromByteOffset: i, as: UInt64.self).littleEndian)
            }
            i += width
        }
    }

    /// Number of values a repeated field holds (for reserving capacity).
    func valueCount(_ f: ProtoField, width: Int) -> Int {
        f.wireType == 2 ? (f.end - f.start) / max(width, 1) : 1
    }

    // MARK: Wire primitives

    /// Reads a varint; `role` and `field` say what it is in errors ("key", "value", "length", ...).
    private mutating func readVarint(field: Int, role: StaticString) throws -> UInt64 {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        var p = position
        while true {
            guard p < limit else {
                let end = limit == file.count ? "the file ends" : "its enclosing message ends"
                throw DecodeFailure(
                    "\(limit == file.count ? "truncated" : "malformed"): \(varintText(field, role)) at offset \(position) "
                        + "is cut off: \(end) at \(limit)")
            }
            let byte = file[p]
            p += 1
            result |= UInt64(byte & 0x7f) << shift
            if byte < 0x80 { break }
            shift += 7
            if shift >= 70 {
                throw DecodeFailure("malformed: \(varintText(field, role)) at offset \(position) is a varint longer than 10 bytes")
            }
        }
        position = p
        return result
    }

    private func varintText(_ field: Int, _ role: StaticString) -> String {
        field == 0 ? "a field key of \(label)" : "the \(role) of \(fieldText(field))"
    }

    private func requireBytes(_ n: Int, field: Int) throws {
        guard limit - position >= n else {
            let f = ProtoField(number: field, wireType: 2, value: 0, start: position, end: limit, declaredEnd: position + n)
            try requireComplete(f)
            return
        }
    }
}
