import Tensors

/// What an operator factory sees of one node while the plan is built: the node, the opset version of
/// its domain, typed attribute getters with defaults, which optional inputs and outputs are present, and
/// the values of inputs that are already known (initializers and Constant outputs).
///
/// A value type built by `Plan` for one factory call; not kept afterwards.
public struct NodeContext: Sendable {
    public let node: Node
    /// Operator-set version of the node's domain in this model.
    public let opset: Int
    /// Tensors known at plan time, by input position (nil where the input is computed or omitted).
    public let constantInputs: [Tensor?]
    /// The model's opsets by domain and the registry the plan is built with: what a control-flow
    /// operator (If, Loop, Scan) needs to build the plans of its subgraphs.
    let opsets: [String: Int]
    let registry: OperatorRegistry?

    public init(node: Node, opset: Int, constantInputs: [Tensor?] = []) {
        self.init(node: node, opset: opset, constantInputs: constantInputs, opsets: ["": opset], registry: nil)
    }

    init(node: Node, opset: Int, constantInputs: [Tensor?], opsets: [String: Int], registry: OperatorRegistry?) {
        self.node = node
        self.opset = opset
        self.constantInputs = constantInputs
        self.opsets = opsets
        self.registry = registry
    }

    public var opType: String { node.opType }
    public var name: String { node.displayName }

    // MARK: Inputs and outputs

    /// Number of input positions the node lists (omitted optional inputs included).
    public var inputCount: Int { node.inputs.count }
    /// Whether input `index` is given (listed with a non-empty name).
    public func hasInput(_ index: Int) -> Bool { index < node.inputs.count && !node.inputs[index].isEmpty }
    /// Whether output `index` is requested (listed with a non-empty name).
    public func hasOutput(_ index: Int) -> Bool { index < node.outputs.count && !node.outputs[index].isEmpty }
    /// The tensor of input `index` when it is known at plan time.
    public func constantInput(_ index: Int) -> Tensor? {
        index < constantInputs.count ? constantInputs[index] : nil
    }

    /// Fails with `.invalidModel` unless the node has between `min` and `max` inputs listed.
    public func requireInputs(_ min: Int, _ max: Int? = nil) throws {
        let upper = max ?? min
        guard node.inputs.count >= min, node.inputs.count <= upper, (0..<min).allSatisfy(hasInput) else {
            let want = min == upper ? "\(min)" : "\(min) to \(upper)"
            throw invalid("has \(node.inputs.count) inputs, \(opType) takes \(want) (the first \(min) required)")
        }
    }

    // MARK: Attributes

    public func has(_ name: String) -> Bool { node.attributes[name] != nil }

    public func int(_ name: String) throws -> Int? {
        switch node.attributes[name] {
        case nil: return nil
        case .int(let v)?: return v
        case let other?: throw wrongKind(name, "int", other)
        }
    }
    public func int(_ name: String, default value: Int) throws -> Int { try int(name) ?? value }

    public func float(_ name: String) throws -> Float? {
        switch node.attributes[name] {
        case nil: return nil
        case .float(let v)?: return v
        case let other?: throw wrongKind(name, "float", other)
        }
    }
    public func float(_ name: String, default value: Float) throws -> Float { try float(name) ?? value }

    public func ints(_ name: String) throws -> [Int]? {
        switch node.attributes[name] {
        case nil: return nil
        case .ints(let v)?: return v
        case let other?: throw wrongKind(name, "ints", other)
        }
    }
    public func ints(_ name: String, default value: [Int]) throws -> [Int] { try ints(name) ?? value }

    public func floats(_ name: String) throws -> [Float]? {
        switch node.attributes[name] {
        case nil: return nil
        case .floats(let v)?: return v
        case let other?: throw wrongKind(name, "floats", other)
        }
    }
    public func floats(_ name: String, default value: [Float]) throws -> [Float] { try floats(name) ?? value }

    public func string(_ name: String) throws -> String? {
        switch node.attributes[name] {
        case nil: return nil
        case .string(let v)?: return String(decoding: v, as: UTF8.self)
        case let other?: throw wrongKind(name, "string", other)
        }
    }
    public func string(_ name: String, default value: String) throws -> String { try string(name) ?? value }

    public func tensor(_ name: String) throws -> Tensor? {
        switch node.attributes[name] {
        case nil: return nil
        case .tensor(let v)?: return v
        case let other?: throw wrongKind(name, "tensor", other)
        }
    }

    // MARK: Errors

    /// An `.invalidModel` error naming this node.
    public func invalid(_ message: String) -> EngineError {
        .invalidModel("node '\(name)' (\(opType)) \(message); fix or re-export the model")
    }

    /// The `.unsupportedOperator` error for this node (for factories that reject an attribute or opset).
    public func unsupported() -> EngineError {
        .unsupportedOperator(opType: opType, domain: node.domain, opset: opset, node: name)
    }

    private func wrongKind(_ name: String, _ expected: String, _ got: Attribute) -> EngineError {
        invalid("has attribute '\(name)' of kind \(Self.kindName(got)), expected \(expected)")
    }

    static func kindName(_ a: Attribute) -> String {
        switch a {
        case .float: return "float"
        case .int: return "int"
        case .string: return "string"
        case .tensor: return "tensor"
        case .graph: return "graph"
        case .floats: return "floats"
        case .ints: return "ints"
        case .strings: return "strings"
        case .tensors: return "tensors"
        case .graphs: return "graphs"
        case .unsupported(let kind): return "unsupported (\(kind))"
        }
    }
}
