import Engine
import Tensors

/// Decodes an AttributeProto into an `Attribute`, subgraphs included (recursively, one level
/// deeper). Sparse tensors and type protos become `.unsupported(kind:)`.
enum AttributeDecoder {
    /// AttributeProto.AttributeType numbers.
    private enum Kind {
        static let float = 1, int = 2, string = 3, tensor = 4, graph = 5, floats = 6, ints = 7, strings = 8
        static let tensors = 9, graphs = 10, sparseTensor = 11, sparseTensors = 12, typeProto = 13, typeProtos = 14
    }

    static func decode(_ r: inout ProtoReader, context: DecodeContext, depth: Int) throws -> (String, Attribute) {
        let position = r.label
        var name = ""
        var declared: Int64?
        var f: Float?, i: Int?, s: [UInt8]?, t: Tensor?, g: Graph?
        var floats: [Float] = [], ints: [Int] = [], strings: [[UInt8]] = []
        var tensors: [Tensor] = [], graphs: [Graph] = []
        var sawOther: Int?  // the kind of a sparse tensor / type proto field seen

        while let field = try r.next() {
            switch field.number {
            case 1:
                name = try r.string(field)
                let owner = position.firstRange(of: " of ").map { position[$0.lowerBound...] } ?? ""
                r.label = "attribute \(quoted(name))\(owner)"
            case 2: f = try r.float(field)
            case 3: i = try r.int(field)
            case 4: s = Array(try r.bytes(field))
            case 5: t = try r.nested(field, .tensor, "tensor of \(r.label)") { try TensorDecoder.decode(&$0, context: context).tensor }
            case 6: g = try subgraph(field, r, context: context, depth: depth)
            case 7: try r.forEachFixed(field, width: 4) { floats.append(Float(bitPattern: UInt32(truncatingIfNeeded: $0))) }
            case 8: try r.forEachVarint(field) { ints.append(Int(Int64(bitPattern: $0))) }
            case 9: strings.append(Array(try r.bytes(field)))
            case 10:
                tensors.append(try r.nested(field, .tensor, "tensor \(tensors.count) of \(r.label)") {
                    try TensorDecoder.decode(&$0, context: context).tensor
                })
            case 11: graphs.append(try subgraph(field, r, context: context, depth: depth))
            case 14: sawOther = Kind.typeProto
            case 15: sawOther = Kind.typeProtos
            case 20: declared = try r.int64(field)
            case 22: sawOther = Kind.sparseTensor
            case 23: sawOther = Kind.sparseTensors
            default: break
            }
        }
        let label = r.label
        func missing(_ what: String) -> DecodeFailure {
            DecodeFailure("malformed: \(label) is declared \(what) but has no value")
        }
        let kind: Int
        if let declared {
            kind = Int(truncatingIfNeeded: declared)
        } else if f != nil { kind = Kind.float } else if i != nil { kind = Kind.int } else if s != nil { kind = Kind.string }
        else if t != nil { kind = Kind.tensor } else if g != nil { kind = Kind.graph }
        else if !floats.isEmpty { kind = Kind.floats } else if !ints.isEmpty { kind = Kind.ints }
        else if !strings.isEmpty { kind = Kind.strings } else if !tensors.isEmpty { kind = Kind.tensors }
        else if !graphs.isEmpty { kind = Kind.graphs } else { kind = sawOther ?? 0 }

        let value: Attribute
        switch kind {
        case Kind.float: value = .float(f ?? 0)
        case Kind.int: value = .int(i ?? 0)
        case Kind.string: value = .string(s ?? [])
        case Kind.tensor:
            guard let t else { throw missing("a TENSOR") }
            value = .tensor(t)
        case Kind.graph:
            guard let g else { throw missing("a GRAPH") }
            value = .graph(g)
        case Kind.floats: value = .floats(floats)
        case Kind.ints: value = .ints(ints)
        case Kind.strings: value = .strings(strings)
        case Kind.tensors: value = .tensors(tensors)
        case Kind.graphs: value = .graphs(graphs)
        default: value = .unsupported(kind: kind)
        }
        return (name, value)
    }

    private static func subgraph(_ field: ProtoField, _ r: ProtoReader, context: DecodeContext, depth: Int) throws -> Graph {
        try r.nested(field, .graph, "subgraph of \(r.label)") {
            try GraphDecoder.decodeGraph(&$0, context: context, depth: depth + 1)
        }
    }
}
