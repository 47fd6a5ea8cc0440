/// Builds the kernel for one node. Reads attributes and opset from the context and throws
/// `EngineError.invalidModel` (via `context.invalid`) or `.unsupportedOperator` when it cannot.
public typealias KernelFactory = @Sendable (NodeContext) throws -> any Kernel

/// The table of operators the engine can run: ONNX op type (default domain) -> kernel factory.
///
/// Registering an operator is one line: `registry.register("Relu") { _ in UnaryKernel(.relu) }`.
/// Factories get the node's opset and choose the matching semantics themselves. A value type; the
/// shared `OperatorRegistry.cpu` is immutable and safe to read from any thread.
public struct OperatorRegistry: Sendable {
    private var factories: [String: KernelFactory] = [:]

    /// An empty registry (see `cpu` for the engine's operators).
    public init() {}

    /// Adds or replaces the factory for `opType`.
    public mutating func register(_ opType: String, _ factory: @escaping KernelFactory) {
        factories[opType] = factory
    }

    /// Whether `opType` is implemented (default domain).
    public func supports(_ opType: String) -> Bool { factories[opType] != nil }

    /// The op types this registry implements, sorted (for `swerve check --list-ops`).
    public var supportedOperators: [String] { factories.keys.sorted() }

    /// The domains whose operators this engine implements: the default ONNX domain only.
    public static func isDefaultDomain(_ domain: String) -> Bool { domain.isEmpty || domain == "ai.onnx" }

    /// Builds the kernel for `context.node`, or throws `.unsupportedOperator` when the op type (or
    /// its domain) is not implemented.
    public func kernel(for context: NodeContext) throws -> any Kernel {
        guard Self.isDefaultDomain(context.node.domain), let factory = factories[context.opType] else {
            throw context.unsupported()
        }
        return try factory(context)
    }

    /// The CPU operators of this engine.
    public static let cpu: OperatorRegistry = {
        var r = OperatorRegistry()
        r.register("Gemm") { try GemmKernel(context: $0) }
        r.register("MatMul") { try MatMulKernel(context: $0) }
        r.register("Add") { try BinaryKernel(context: $0, op: .add) }
        r.register("Sub") { try BinaryKernel(context: $0, op: .sub) }
        r.register("Mul") { try BinaryKernel(context: $0, op: .mul) }
        r.register("Div") { try BinaryKernel(context: $0, op: .div) }
        r.register("Relu") { try UnaryKernel(context: $0, op: .relu) }
        r.register("Sigmoid") { try UnaryKernel(context: $0, op: .sigmoid) }
        r.register("Tanh") { try UnaryKernel(context: $0, op: .tanh) }
        r.register("Softmax") { try SoftmaxKernel(context: $0) }
        r.register("Flatten") { try FlattenKernel(context: $0) }
        r.register("Reshape") { try ReshapeKernel(context: $0) }
        r.register("Identity") { try IdentityKernel(context: $0) }
        r.register("Dropout") { try DropoutKernel(context: $0) }
        r.register("Constant") { try ConstantKernel(context: $0) }
        r.register("ArgMax") { try ArgMaxKernel(context: $0) }
        return r
    }()
}
