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

    /// The newest opset whose operator definitions the engine knows (`OperatorVersions`, generated
    /// from the onnx release the conformance cases come from).
    public static var newestOpset: Int { OperatorVersions.newestOpset }
    /// That onnx release, for messages.
    public static var onnxRelease: String { OperatorVersions.onnxRelease }

    /// The opsets at which `opType`'s definition changed (its "since versions", oldest first), nil
    /// for an operator ONNX does not define. A kernel implements every version from the first to
    /// `newestOpset`: it reads the model's opset and follows that version's definition.
    public static func opsetChanges(of opType: String) -> [Int]? { OperatorVersions.since[opType] }

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
        for op in [UnaryKernel.Op.relu, .sigmoid, .tanh, .leakyRelu, .hardSigmoid, .hardSwish, .elu, .selu, .softplus,
            .gelu, .erf, .exp, .log, .sqrt, .reciprocal, .neg, .abs, .floor, .ceil, .sin, .cos, .tan, .sign, .round,
            .softsign, .thresholdedRelu, .celu, .mish, .shrink]
        {
            r.register(op.rawValue) { try UnaryKernel(context: $0, op: op) }
        }
        for op in [PredicateKernel.Op.isNaN, .isInf, .not] {
            r.register(op.rawValue) { try PredicateKernel(context: $0, op: op) }
        }
        for op in [CompareKernel.Op.equal, .less, .lessEqual, .greater, .greaterEqual, .and, .or, .xor] {
            r.register(op.rawValue) { try CompareKernel(context: $0, op: op) }
        }
        for op in [VariadicKernel.Op.sum, .mean, .max, .min] {
            r.register(op.rawValue) { try VariadicKernel(context: $0, op: op) }
        }
        for op in [ReduceKernel.Op.sum, .mean, .max, .min, .prod, .sumSquare, .l1, .l2, .logSum, .logSumExp] {
            r.register(op.rawValue) { try ReduceKernel(context: $0, op: op) }
        }
        for op in [SoftmaxKernel.Op.softmax, .logSoftmax, .hardmax] {
            r.register(op.rawValue) { try SoftmaxKernel(context: $0, op: op) }
        }
        r.register("Pow") { try PowModKernel(context: $0, isPow: true) }
        r.register("Mod") { try PowModKernel(context: $0, isPow: false) }
        r.register("Clip") { try ClipKernel(context: $0) }
        r.register("Where") { try WhereKernel(context: $0) }
        r.register("Cast") { try CastKernel(context: $0) }
        // Layout and shapes.
        r.register("Flatten") { try FlattenKernel(context: $0) }
        r.register("Reshape") { try ReshapeKernel(context: $0) }
        r.register("Transpose") { try TransposeKernel(context: $0) }
        r.register("Squeeze") { try SqueezeKernel(context: $0) }
        r.register("Unsqueeze") { try UnsqueezeKernel(context: $0) }
        r.register("Concat") { try ConcatKernel(context: $0) }
        r.register("Split") { try SplitKernel(context: $0) }
        r.register("Slice") { try SliceKernel(context: $0) }
        r.register("Expand") { try ExpandKernel(context: $0) }
        r.register("Tile") { try TileKernel(context: $0) }
        r.register("Pad") { try PadKernel(context: $0) }
        r.register("Gather") { try GatherKernel(context: $0) }
        r.register("GatherElements") { try GatherElementsKernel(context: $0) }
        r.register("GatherND") { try GatherNDKernel(context: $0) }
        r.register("Shape") { try ShapeKernel(context: $0) }
        r.register("Size") { try SizeKernel(context: $0) }
        r.register("ConstantOfShape") { try ConstantOfShapeKernel(context: $0) }
        r.register("Range") { try RangeKernel(context: $0) }
        r.register("Identity") { try IdentityKernel(context: $0) }
        r.register("Dropout") { try DropoutKernel(context: $0) }
        r.register("Constant") { try ConstantKernel(context: $0) }
        r.register("ArgMax") { try ArgMaxKernel(context: $0) }
        r.register("ArgMin") { try ArgMaxKernel(context: $0, isMin: true) }
        r.register("PRelu") { try PReluKernel(context: $0) }
        r.register("CastLike") { try CastLikeKernel(context: $0) }
        // Convolution, pooling, normalisation.
        r.register("Conv") { try ConvKernel(context: $0) }
        r.register("MaxPool") { try PoolKernel(context: $0, isMax: true) }
        r.register("AveragePool") { try PoolKernel(context: $0, isMax: false) }
        r.register("GlobalAveragePool") { try GlobalPoolKernel(context: $0, isMax: false) }
        r.register("GlobalMaxPool") { try GlobalPoolKernel(context: $0, isMax: true) }
        r.register("BatchNormalization") { try BatchNormalizationKernel(context: $0) }
        r.register("InstanceNormalization") { try InstanceNormalizationKernel(context: $0) }
        r.register("LayerNormalization") { try LayerNormalizationKernel(context: $0) }
        r.register("LRN") { try LRNKernel(context: $0) }
        r.register("Einsum") { try EinsumKernel(context: $0) }
        return r
    }()
}
