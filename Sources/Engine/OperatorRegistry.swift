import Tensors

/// Builds the kernel for one node. Reads attributes and opset from the context and throws
/// `EngineError.invalidModel` (via `context.invalid`) or `.unsupportedOperator` when it cannot.
public typealias KernelFactory = @Sendable (NodeContext) throws -> any Kernel

/// The table of operators the engine can run: ONNX op type (qualified by its domain outside the
/// default one, `ai.onnx.preview.FlexAttention`) -> its `OperatorRecord` (kernel factory, opsets, element types, output shape, batch rows, fusion role).
///
/// Registering an operator is adding its record: `registry.add(OperatorRecord("Relu", types: ...,
/// shape: .fromInputShapes, rows: .rowwise) { try UnaryKernel(context: $0, op: .relu) })`.
/// Factories get the node's opset and choose the matching semantics themselves. A value type; the
/// shared `OperatorRegistry.cpu` is immutable and safe to read from any thread.
public struct OperatorRegistry: Sendable {
    private var records: [String: OperatorRecord] = [:]

    /// An empty registry (see `cpu` for the engine's operators).
    public init() {}

    /// Adds or replaces the record of `record.qualifiedName`.
    mutating func add(_ record: OperatorRecord) {
        records[record.qualifiedName] = record
    }

    /// Adds or replaces `opType` with a bare factory (tests and experiments): every opset, every
    /// element type, an output shape the planner does not know in advance, no batch splitting, no
    /// fusion.
    public mutating func register(_ opType: String, _ factory: @escaping KernelFactory) {
        add(OperatorRecord(opType, types: DataType.allNumeric, shape: .fromValues, rows: .mixes, firstOpset: 1, factory: factory))
    }

    /// The record of `opType` (default domain), nil when it is not implemented.
    public func record(_ opType: String) -> OperatorRecord? { records[opType] }

    /// The record of `opType` in `domain`.
    public func record(_ opType: String, domain: String) -> OperatorRecord? {
        Self.isDefaultDomain(domain) ? records[opType] : records["\(domain).\(opType)"]
    }

    /// Whether `opType` is implemented (default domain).
    public func supports(_ opType: String) -> Bool { records[opType] != nil }

    /// The op types this registry implements (qualified outside the default domain), sorted.
    public var supportedOperators: [String] { records.keys.sorted() }

    /// Every record, sorted by op type.
    public var allRecords: [OperatorRecord] { records.keys.sorted().map { records[$0]! } }
    /// The newest opset whose operator definitions the engine knows (`OperatorVersions`, generated
    /// from the onnx release the conformance cases come from).
    public static var newestOpset: Int { OperatorVersions.newestOpset }
    /// That onnx release, for messages.
    public static var onnxRelease: String { OperatorVersions.onnxRelease }

    /// The opsets at which `opType`'s definition changed (its "since versions", oldest first), nil
    /// for an operator ONNX does not define. A kernel implements every version from the first to
    /// `newestOpset`: it reads the model's opset and follows that version's definition.
    public static func opsetChanges(of opType: String) -> [Int]? { OperatorVersions.since[opType] }

    /// Whether `domain` names the default ONNX domain (other domains' operators are records with
    /// their `domain`: ai.onnx.preview).
    public static func isDefaultDomain(_ domain: String) -> Bool { domain.isEmpty || domain == "ai.onnx" }

    /// Builds the kernel for `context.node`, or throws `.unsupportedOperator` when the op type (or
    /// its domain) is not implemented.
    public func kernel(for context: NodeContext) throws -> any Kernel {
        guard let record = record(context.opType, domain: context.node.domain), record.opsets.contains(context.opset)
        else {
            throw context.unsupported()
        }
        return try record.factory(context)
    }

    /// The CPU operators of this engine (OperatorRegistry+CPU.swift).
    public static let cpu: OperatorRegistry = makeCPU()
}
