/// A tiny protobuf encoder for building valid and deliberately malformed test inputs by hand.
struct ProtoWriter {
    var bytes: [UInt8] = []

    mutating func rawVarint(_ value: UInt64) {
        var v = value
        while v >= 0x80 {
            bytes.append(UInt8(v & 0x7f) | 0x80)
            v >>= 7
        }
        bytes.append(UInt8(v))
    }

    mutating func key(_ field: Int, _ wire: Int) { rawVarint(UInt64(field << 3 | wire)) }

    mutating func varint(_ field: Int, _ value: Int64) {
        key(field, 0)
        rawVarint(UInt64(bitPattern: value))
    }

    mutating func bytes(_ field: Int, _ payload: [UInt8]) {
        key(field, 2)
        rawVarint(UInt64(payload.count))
        bytes += payload
    }

    mutating func string(_ field: Int, _ s: String) { bytes(field, Array(s.utf8)) }

    mutating func message(_ field: Int, _ m: ProtoWriter) { bytes(field, m.bytes) }

    mutating func fixed32(_ field: Int, _ value: UInt32) {
        key(field, 5)
        withUnsafeBytes(of: value.littleEndian) { bytes += $0 }
    }
}

/// A TensorProto with raw data.
func tensorProto(name: String, dims: [Int64], dataType: Int64, raw: [UInt8]) -> ProtoWriter {
    var t = ProtoWriter()
    for d in dims { t.varint(1, d) }
    t.varint(2, dataType)
    t.string(8, name)
    t.bytes(9, raw)
    return t
}

/// A TensorProto whose data lives in an external file.
func externalTensorProto(name: String, dims: [Int64], location: String, offset: Int, length: Int) -> ProtoWriter {
    var t = ProtoWriter()
    for d in dims { t.varint(1, d) }
    t.varint(2, 1)
    t.string(8, name)
    for (k, v) in [("location", location), ("offset", String(offset)), ("length", String(length))] {
        var e = ProtoWriter()
        e.string(1, k)
        e.string(2, v)
        t.message(13, e)
    }
    t.varint(14, 1)
    return t
}

/// A ModelProto around `graph` (IR 8, default opset 17).
func modelProto(graph: ProtoWriter, irVersion: Int64 = 8) -> [UInt8] {
    var m = ProtoWriter()
    m.varint(1, irVersion)
    m.string(2, "test")
    m.message(7, graph)
    var opset = ProtoWriter()
    opset.string(1, "")
    opset.varint(2, 17)
    m.message(8, opset)
    return m.bytes
}

/// A graph with one Identity node over initializer `tensor`.
func graphWithInitializer(_ tensor: ProtoWriter) -> ProtoWriter {
    var g = ProtoWriter()
    var n = ProtoWriter()
    n.string(1, "w")
    n.string(2, "y")
    n.string(4, "Identity")
    g.message(1, n)
    g.string(2, "g")
    g.message(5, tensor)
    return g
}
