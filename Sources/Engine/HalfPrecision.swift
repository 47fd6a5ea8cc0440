import Tensors

/// Runs float16 and bfloat16 models in float32: the load-time lowering and the conversions at a
/// session's edges (docs/architecture.md, "16-bit floats").
///
/// `lower` rewrites a model so that no value inside it is a 16-bit float: initializers and tensor
/// attributes are widened to float32 once, declared types of inputs, outputs, value_info and
/// subgraph interfaces become float32, `dtype`/`output_dtype` attributes asking for a 16-bit type
/// ask for float32, and a CastLike whose target is known to be 16-bit becomes a Cast to that type.
/// A Cast to FLOAT16/BFLOAT16 stays: its kernel rounds to the 16-bit value and keeps it as float32,
/// so a model that narrows on purpose computes what onnxruntime computes. A BitCast from or to a
/// 16-bit float is refused (`EngineError.unsupportedOperator`): those bits do not exist inside. `Edges` records the
/// declared 16-bit inputs and outputs of the top graph; the session widens the first on entry and
/// narrows the second on exit. A value type; the lowering is a pure function of the model.
struct HalfPrecision: Sendable {
    /// Declared 16-bit inputs and outputs of the model, by name.
    var inputs: [String: DataType] = [:]
    var outputs: [String: DataType] = [:]
    /// The 16-bit type of the model's float initializers when they have one (float16 or bfloat16,
    /// not both): packed weights are held in it (`PackedWeights.storage`).
    var weights: DataType?

    var isEmpty: Bool { inputs.isEmpty && outputs.isEmpty }

    /// The model with every 16-bit value held as float32, and its 16-bit edges.
    static func lower(_ model: GraphModel) throws -> (GraphModel, HalfPrecision) {
        var edges = HalfPrecision()
        for v in model.graph.inputs where v.kind == .tensor {
            if let t = v.dataType, HalfConversion.isHalf(t) { edges.inputs[v.name] = t }
        }
        for v in model.graph.outputs where v.kind == .tensor {
            if let t = v.dataType, HalfConversion.isHalf(t) { edges.outputs[v.name] = t }
        }
        let halfTypes = Set(model.graph.initializers.values.map(\.dataType).filter(HalfConversion.isHalf))
        edges.weights = halfTypes.count == 1 ? halfTypes.first : nil
        guard mentionsHalf(model.graph) else { return (model, edges) }
        var out = model
        out.graph = try lower(model.graph, outer: [:], opset: model.defaultOpset)
        return (out, edges)
    }

    /// `feeds` with the declared 16-bit inputs widened to float32. A feed of another type or shape
    /// for a 16-bit input is refused here, naming the declared type (the plan only knows float32).
    func widen(_ feeds: [String: Tensor], declared: [ValueInfo]) throws -> [String: Tensor] {
        var out = feeds
        for (name, type) in inputs {
            guard let t = feeds[name], t.container == nil else { continue }
            let info = declared.first { $0.name == name } ?? ValueInfo(name: name, dataType: type, shape: nil)
            let shapeFits = info.shape.map { dims in
                dims.count == t.rank && zip(dims, t.shape).allSatisfy { d, n in d.value == nil || d.value == n }
            } ?? true
            guard t.dataType == type, shapeFits else {
                throw EngineError.invalidInput(
                    "input '\(name)': expected \(Plan.describe(info)), got \(t.dataType.v2Name) \(t.shape); "
                        + "send the datatype and shape that GET /v2/models/{name} reports")
            }
            out[name] = try t.widenedToFloat32()
        }
        return out
    }

    /// `results` with the declared 16-bit outputs narrowed from the float32 the engine computed.
    func narrow(_ results: [String: Tensor]) throws -> [String: Tensor] {
        var out = results
        for (name, type) in outputs {
            guard let t = results[name], t.container == nil, t.dataType == .float32 else { continue }
            out[name] = try t.narrowed(to: type)
        }
        return out
    }

    // MARK: Lowering

    private static func mentionsHalf(_ g: Graph) -> Bool {
        let isHalf = { (t: DataType?) in t.map(HalfConversion.isHalf) ?? false }
        if (g.inputs + g.outputs + g.valueInfo).contains(where: { isHalf($0.dataType) }) { return true }
        if g.initializers.values.contains(where: { isHalf($0.dataType) }) { return true }
        for node in g.nodes {
            if ["Cast", "CastLike"].contains(node.opType) { return true }
            for a in node.attributes.values {
                switch a {
                case .tensor(let t) where isHalf(t.dataType): return true
                case .tensors(let ts) where ts.contains(where: { isHalf($0.dataType) }): return true
                case .int(let v) where v == Int(DataType.float16.rawValue) || v == Int(DataType.bfloat16.rawValue): return true
                case .graph(let sub) where mentionsHalf(sub): return true
                case .graphs(let subs) where subs.contains(where: mentionsHalf): return true
                default: continue
                }
            }
        }
        return false
    }

    private static func lower(_ g: Graph, outer: [String: DataType], opset: Int) throws -> Graph {
        let types = logicalTypes(g, outer: outer)
        var out = g
        out.inputs = g.inputs.map(widenedInfo)
        out.outputs = g.outputs.map(widenedInfo)
        out.valueInfo = g.valueInfo.map(widenedInfo)
        for (name, t) in g.initializers where HalfConversion.isHalf(t.dataType) {
            out.initializers[name] = try t.widenedToFloat32()
        }
        out.nodes = try g.nodes.map { try lower($0, types: types, opset: opset) }
        return out
    }

    private static func widenedInfo(_ v: ValueInfo) -> ValueInfo {
        guard let t = v.dataType, HalfConversion.isHalf(t) else { return v }
        var w = v
        w.dataType = .float32
        return w
    }

    private static func lower(_ node: Node, types: [String: DataType], opset: Int) throws -> Node {
        var n = node
        if node.opType == "BitCast", OperatorRegistry.isDefaultDomain(node.domain) {
            // A 16-bit float's bits do not exist inside (it is held as float32): refused at load
            // rather than reinterpreting the wrong bytes.
            var to: Int?
            if case .int(let raw)? = node.attributes["to"] { to = raw }
            if to.map(isHalfCode) == true || node.inputs.first.flatMap({ types[$0] }).map(HalfConversion.isHalf) == true {
                throw EngineError.unsupportedOperator(opType: "BitCast", domain: "", opset: opset, node: node.displayName)
            }
        }
        if node.opType == "CastLike", OperatorRegistry.isDefaultDomain(node.domain), node.inputs.count >= 2,
            let target = types[node.inputs[1]], HalfConversion.isHalf(target)
        {
            // The target is float32 at run time: the node must say which rounding it stands for.
            n = Node(
                name: node.name, opType: "Cast", domain: node.domain, inputs: [node.inputs[0]], outputs: node.outputs,
                attributes: ["to": .int(Int(target.rawValue))])
            for key in ["saturate", "round_mode"] { if let a = node.attributes[key] { n.attributes[key] = a } }
            return n
        }
        for (key, value) in node.attributes {
            switch value {
            case .tensor(let t) where HalfConversion.isHalf(t.dataType):
                n.attributes[key] = .tensor(try t.widenedToFloat32())
            case .tensors(let ts) where ts.contains(where: { HalfConversion.isHalf($0.dataType) }):
                n.attributes[key] = .tensors(try ts.map { HalfConversion.isHalf($0.dataType) ? try $0.widenedToFloat32() : $0 })
            case .int(let v) where (key == "dtype" || key == "output_dtype") && isHalfCode(v):
                n.attributes[key] = .int(Int(DataType.float32.rawValue))
            case .graph(let sub):
                n.attributes[key] = .graph(try lower(sub, outer: types, opset: opset))
            case .graphs(let subs):
                n.attributes[key] = .graphs(try subs.map { try lower($0, outer: types, opset: opset) })
            default: continue
            }
        }
        return n
    }

    private static func isHalfCode(_ v: Int) -> Bool {
        v == Int(DataType.float16.rawValue) || v == Int(DataType.bfloat16.rawValue)
    }

    /// Operators whose first output does not take the type of their first input.
    private static let typeChanging: Set<String> = [
        "Shape", "Size", "ArgMax", "ArgMin", "Equal", "Less", "LessOrEqual", "Greater", "GreaterOrEqual", "Not", "And",
        "Or", "Xor", "IsNaN", "IsInf", "NonZero", "ConstantOfShape", "EyeLike", "RandomUniformLike", "RandomNormalLike",
        "Multinomial", "Bernoulli", "OneHot", "Where", "QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear",
        "MatMulInteger", "ConvInteger", "QLinearConv", "QLinearMatMul", "BitCast", "If", "Loop", "Scan",
        "StringNormalizer", "Cast", "CastLike", "Constant",
    ]

    /// The element type each value of `g` has in the model as written (before lowering), as far as
    /// declarations, constants, Casts and type-preserving operators tell; CastLike needs it.
    static func logicalTypes(_ g: Graph, outer: [String: DataType]) -> [String: DataType] {
        var types = outer
        for v in g.inputs + g.outputs + g.valueInfo { if let t = v.dataType { types[v.name] = t } }
        for (name, t) in g.initializers { types[name] = t.dataType }
        for node in g.nodes {
            guard let out = node.outputs.first, !out.isEmpty, types[out] == nil else { continue }
            var t: DataType?
            switch node.opType {
            case "Cast":
                if case .int(let raw)? = node.attributes["to"] { t = DataType(rawValue: Int32(truncatingIfNeeded: raw)) }
            case "CastLike": t = node.inputs.count > 1 ? types[node.inputs[1]] : nil
            case "Constant":
                if case .tensor(let value)? = node.attributes["value"] { t = value.dataType }
                if node.attributes["value_float"] != nil || node.attributes["value_floats"] != nil { t = .float32 }
            case "Where": t = node.inputs.count > 1 ? types[node.inputs[1]] : nil
            case "DequantizeLinear": t = node.inputs.count > 1 ? types[node.inputs[1]] : nil
            case let op where typeChanging.contains(op): t = nil
            default: t = node.inputs.first.flatMap { types[$0] }
            }
            if let t { types[out] = t }
        }
        return types
    }
}
