import Engine
import Tensors

/// Decodes GraphProto, NodeProto and ValueInfoProto messages into the engine's graph types.
/// Subgraphs (attributes of If/Loop/Scan) recurse through `AttributeDecoder`, up to the context's
/// depth limit.
enum GraphDecoder {
    static func decodeGraph(_ r: inout ProtoReader, context: DecodeContext, depth: Int) throws -> Graph {
        guard depth <= context.maxGraphDepth else {
            throw DecodeFailure("malformed: \(r.label) is nested more than \(context.maxGraphDepth) graphs deep")
        }
        var name = ""
        var nodes: [Node] = []
        var inputs: [ValueInfo] = []
        var outputs: [ValueInfo] = []
        var valueInfo: [ValueInfo] = []
        var initializers: [String: Tensor] = [:]
        var initializerCount = 0
        while let f = try r.next() {
            switch f.number {
            case 1:
                let index = nodes.count
                let suffix = depth == 0 ? "" : " of \(r.label)"
                nodes.append(try r.nested(f, .node, nodeLabel(index, suffix: suffix)) {
                    try decodeNode(&$0, index: index, suffix: suffix, context: context, depth: depth)
                })
            case 2:
                name = try r.string(f)
                r.label = depth == 0 ? "graph \(quoted(name))" : "subgraph \(quoted(name))"
            case 5:
                let label = "initializer \(initializerCount) of \(r.label)"
                initializerCount += 1
                let (tensorName, tensor) = try r.nested(f, .tensor, label) {
                    try TensorDecoder.decode(&$0, context: context)
                }
                guard initializers.updateValue(tensor, forKey: tensorName) == nil else {
                    throw DecodeFailure("malformed: \(r.label) has two initializers named \(quoted(tensorName))")
                }
            case 11: inputs.append(try r.nested(f, .valueInfo, "input \(inputs.count) of \(r.label)", body: decodeValueInfo))
            case 12: outputs.append(try r.nested(f, .valueInfo, "output \(outputs.count) of \(r.label)", body: decodeValueInfo))
            case 13:
                valueInfo.append(
                    try r.nested(f, .valueInfo, "value_info \(valueInfo.count) of \(r.label)", body: decodeValueInfo))
            default: break
            }
        }
        // IR < 4 files list every weight as a graph input too; those are constants, not inputs.
        let realInputs = initializers.isEmpty ? inputs : inputs.filter { initializers[$0.name] == nil }
        return Graph(
            name: name, nodes: nodes, inputs: realInputs, outputs: outputs, initializers: initializers,
            valueInfo: valueInfo)
    }

    static func decodeNode(
        _ r: inout ProtoReader, index: Int, suffix: String, context: DecodeContext, depth: Int
    ) throws -> Node {
        var name = "", opType = "", domain = ""
        var inputs: [String] = [], outputs: [String] = []
        var attributes: [String: Attribute] = [:]
        var attributeCount = 0
        while let f = try r.next() {
            switch f.number {
            case 1: inputs.append(try r.string(f))
            case 2: outputs.append(try r.string(f))
            case 3:
                name = try r.string(f)
                r.label = nodeLabel(index, name: name, opType: opType, suffix: suffix)
            case 4:
                opType = try r.string(f)
                r.label = nodeLabel(index, name: name, opType: opType, suffix: suffix)
            case 5:
                let label = "attribute \(attributeCount) of \(r.label)"
                attributeCount += 1
                let (attrName, value) = try r.nested(f, .attribute, label) {
                    try AttributeDecoder.decode(&$0, context: context, depth: depth)
                }
                guard attributes.updateValue(value, forKey: attrName) == nil else {
                    throw DecodeFailure("malformed: \(r.label) has two attributes named \(quoted(attrName))")
                }
            case 7: domain = try r.string(f)
            default: break
            }
        }
        return Node(name: name, opType: opType, domain: domain, inputs: inputs, outputs: outputs, attributes: attributes)
    }

    /// "node 3 'conv1' (Conv)", plus " of subgraph ..." inside subgraphs.
    private static func nodeLabel(_ index: Int, name: String = "", opType: String = "", suffix: String) -> String {
        let n = name.isEmpty ? "" : " \(quoted(name))"
        let op = opType.isEmpty ? "" : " (\(quoted(opType, quote: "")))"
        return "node \(index)" + n + op + suffix
    }

    /// A ValueInfoProto. Non-tensor types (sequence, map, optional, sparse) and element types the
    /// engine does not know give a nil data type; a tensor type without a shape gives a nil shape.
    static func decodeValueInfo(_ r: inout ProtoReader) throws -> ValueInfo {
        var info = ValueInfo(name: "", dataType: nil, shape: nil, kind: .unknown)
        while let f = try r.next() {
            switch f.number {
            case 1:
                info.name = try r.string(f)
                r.label = "value \(quoted(info.name))"
            case 2:
                try r.nested(f, .typeProto, "type of \(r.label)") { t in
                    info.kind = try decodeType(&t, into: &info)
                }
            default: break
            }
        }
        return info
    }

    /// A TypeProto: tensor (its element type and shape go into `info`), sequence or optional of
    /// tensors (their element's type and shape go into `info`), or something else.
    private static func decodeType(_ t: inout ProtoReader, into info: inout ValueInfo) throws -> ValueKind {
        var kind = ValueKind.tensor
        while let tf = try t.next() {
            switch tf.number {
            case 1:
                try t.nested(tf, .tensorType, t.label) { tt in try decodeTensorType(&tt, into: &info) }
            case 4, 9:
                // sequence_type / optional_type: { elem_type: TypeProto }
                let inner = try t.nested(tf, .elementType, t.label) { e -> ValueKind in
                    var innerKind = ValueKind.other
                    while let ef = try e.next() {
                        guard ef.number == 1 else { continue }
                        innerKind = try e.nested(ef, .typeProto, e.label) { et in try decodeType(&et, into: &info) }
                    }
                    return innerKind
                }
                if tf.number == 4 {
                    kind = inner == .tensor ? .sequence : .other
                } else {
                    kind = inner == .tensor ? .optional : inner == .sequence ? .optionalSequence : .other
                }
            case 5, 8: kind = .other
            default: break
            }
        }
        return kind
    }

    private static func decodeTensorType(_ r: inout ProtoReader, into info: inout ValueInfo) throws {
        while let f = try r.next() {
            switch f.number {
            case 1:
                let elem = try r.int64(f)
                info.dataType = DataType(rawValue: Int32(truncatingIfNeeded: elem)).flatMap {
                    Int64($0.rawValue) == elem ? $0 : nil
                }
            case 2:
                var dims: [Dimension] = []
                try r.nested(f, .tensorShape, "shape of \(r.label)") { s in
                    while let sf = try s.next() {
                        guard sf.number == 1 else { continue }
                        dims.append(try s.nested(sf, .dimension, "dimension \(dims.count) of \(s.label)", body: decodeDimension))
                    }
                }
                info.shape = dims
            default: break
            }
        }
    }

    private static func decodeDimension(_ r: inout ProtoReader) throws -> Dimension {
        var dim = Dimension.unknown
        while let f = try r.next() {
            switch f.number {
            case 1:
                let v = try r.int64(f)
                dim = v >= 0 ? .fixed(Int(v)) : .unknown  // some exporters write -1 for "dynamic"
            case 2:
                let p = try r.string(f)
                dim = p.isEmpty ? .unknown : .symbolic(p)
            default: break
            }
        }
        return dim
    }
}
