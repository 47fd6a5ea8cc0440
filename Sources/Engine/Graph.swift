import Tensors

/// One dimension of a declared tensor shape: a number, a named symbol (`batch`), or nothing known.
public enum Dimension: Sendable, Hashable, CustomStringConvertible {
    case fixed(Int)
    case symbolic(String)
    case unknown

    /// The number, or nil for a symbolic or unknown dimension.
    public var value: Int? {
        if case .fixed(let v) = self { return v }
        return nil
    }

    public var description: String {
        switch self {
        case .fixed(let v): return String(v)
        case .symbolic(let s): return s
        case .unknown: return "?"
        }
    }
}

/// A named value of a graph with what is declared about it (graph inputs, outputs, value_info).
public struct ValueInfo: Sendable, Hashable {
    public var name: String
    /// nil when the model does not say (or the type is not a tensor type the engine knows).
    public var dataType: DataType?
    /// nil when the model declares no shape at all (rank unknown).
    public var shape: [Dimension]?
    /// What the value is: a tensor (the default, also when the model does not say), a sequence
    /// of tensors, an optional, or another ONNX type (map, sparse tensor) the engine does not run.
    /// For sequences and optionals `dataType` and `shape` describe the elements when declared.
    public var kind: ValueKind

    public init(name: String, dataType: DataType?, shape: [Dimension]?, kind: ValueKind = .tensor) {
        self.name = name
        self.dataType = dataType
        self.shape = shape
        self.kind = kind
    }
}

/// The ONNX type family of a graph value (`ValueInfo.kind`).
public enum ValueKind: String, Sendable, Hashable {
    case tensor
    case sequence
    /// An optional of a tensor (`optionalSequence` for an optional of a sequence).
    case optional
    case optionalSequence = "optional sequence"
    /// A map or sparse tensor.
    case other = "map or sparse tensor"
    /// Not declared (a subgraph input without a type, an outer-scope value): anything goes.
    case unknown = "value"
}

/// A node attribute, as ONNX's AttributeProto holds it.
public enum Attribute: Sendable {
    case float(Float)
    case int(Int)
    case string([UInt8])
    case tensor(Tensor)
    case graph(Graph)
    case floats([Float])
    case ints([Int])
    case strings([[UInt8]])
    case tensors([Tensor])
    case graphs([Graph])
    /// An attribute kind the engine does not use (sparse tensors, type protos); kept so that errors
    /// can name it.
    case unsupported(kind: Int)
}

/// One operator application. Inputs and outputs name graph values; an empty name is an omitted
/// optional input or output, as in ONNX.
public struct Node: Sendable {
    public var name: String
    public var opType: String
    /// Operator domain; "" and "ai.onnx" are both the default ONNX domain.
    public var domain: String
    public var inputs: [String]
    public var outputs: [String]
    public var attributes: [String: Attribute]

    public init(
        name: String, opType: String, domain: String = "", inputs: [String], outputs: [String],
        attributes: [String: Attribute] = [:]
    ) {
        self.name = name
        self.opType = opType
        self.domain = domain
        self.inputs = inputs
        self.outputs = outputs
        self.attributes = attributes
    }

    /// The name to use in messages: the node's own name, else its first output.
    public var displayName: String { name.isEmpty ? (outputs.first ?? opType) : name }
}

/// A dataflow graph: nodes in the order the file lists them, constants, and declared interface.
public struct Graph: Sendable {
    public var name: String
    public var nodes: [Node]
    /// Real inputs: graph inputs that have no initializer (IR<4 files list weights as inputs too;
    /// the decoder moves those to `initializers`).
    public var inputs: [ValueInfo]
    public var outputs: [ValueInfo]
    /// Constant tensors by value name (weights). May borrow memory-mapped bytes of the model file.
    public var initializers: [String: Tensor]
    /// Declared types and shapes of intermediate values, when the file has them.
    public var valueInfo: [ValueInfo]

    public init(
        name: String = "", nodes: [Node], inputs: [ValueInfo], outputs: [ValueInfo],
        initializers: [String: Tensor] = [:], valueInfo: [ValueInfo] = []
    ) {
        self.name = name
        self.nodes = nodes
        self.inputs = inputs
        self.outputs = outputs
        self.initializers = initializers
        self.valueInfo = valueInfo
    }
}

/// A whole decoded model: the graph plus what the file says about where it came from.
public struct GraphModel: Sendable {
    public var graph: Graph
    /// Operator-set version per domain ("" is the default ONNX domain).
    public var opsets: [String: Int]
    public var irVersion: Int
    public var producerName: String
    public var producerVersion: String

    public init(
        graph: Graph, opsets: [String: Int], irVersion: Int, producerName: String = "",
        producerVersion: String = ""
    ) {
        self.graph = graph
        self.opsets = opsets
        self.irVersion = irVersion
        self.producerName = producerName
        self.producerVersion = producerVersion
    }

    /// The opset of the default ONNX domain ("" or "ai.onnx").
    public var defaultOpset: Int { opsets[""] ?? opsets["ai.onnx"] ?? 1 }
}
