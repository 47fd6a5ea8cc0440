import Tensors

/// Everything the engine knows about one operator, in one declaration: how to build its kernel,
/// which opsets and element types it implements, how its output shape is known, how it treats the
/// rows of a batch, and what role it plays in fusion. The registry holds one per operator; the
/// planner (`ShapePlan`), batch splitting (`BatchSplit`), the optimizer, `swerve check` and the
/// generated operator table in the docs all read it, so adding an operator is adding a record and
/// its kernel (docs/adding-an-op.md). `problems` says what a record leaves incomplete, and a test
/// fails on any registered record with a problem.
///
/// A value; immutable and safe to share between threads.
public struct OperatorRecord: Sendable {
    /// How an operator's output shapes are known before it runs, for a given input-shape signature.
    public enum OutputShape: String, Sendable, CaseIterable {
        /// From the input shapes alone (and attributes): elementwise ops, Conv, MatMul, Concat, ...
        case fromInputShapes = "input shapes"
        /// From input 0's shape and the values of the other inputs: Reshape, Slice, Reduce*, ...
        case fromFirstShapeAndValues = "input 0's shape, other inputs' values"
        /// From the values of its inputs: Range, ConstantOfShape, Constant.
        case fromValues = "input values"
    }

    /// How an operator treats the rows of axis 0, for running a batch in slices (`BatchSplit`).
    public enum BatchRows: String, Sendable, CaseIterable {
        /// Row i of the output depends on row i of input 0 only (other inputs constant).
        case rowwise
        /// Elementwise with broadcasting: rows kept apart when every operand either has the rows
        /// or is a constant broadcast along the other axes.
        case broadcasting
        /// Reinterprets the shape in row-major order (constant target shape).
        case reshaping
        /// Gemm: rows kept when A is not transposed and B, C are constant.
        case gemm
        /// MatMul: rows kept when A carries them and B is constant (or batched alike).
        case matMul
        /// Reduce*: rows kept when axis 0 is not reduced.
        case reduce
        /// Transpose: rows kept when axis 0 stays first.
        case transpose
        /// Concat: rows kept when it joins along another axis.
        case concat
        /// Softmax, LogSoftmax, Hardmax, LayerNormalization: rows kept when their axis is not 0.
        case axisNotZero = "axis not 0"
        /// May mix rows (or produces values of no batch): a batch through it is not split.
        case mixes
    }

    /// What the optimizer may do with the operator.
    public enum FusionRole: String, Sendable, CaseIterable {
        case none
        /// Conv, Gemm, MatMul: takes a following activation as its epilogue.
        case producer
        /// Fuses into the producer before it as an epilogue (`OperatorRecord.epilogue`).
        case activation
        /// Passes its input through at inference (Identity, Dropout): removed.
        case passThrough = "pass-through"
        /// BatchNormalization: folded into the Conv or Gemm before it.
        case foldsIntoProducer = "folds into producer"
        /// Add of a constant vector after MatMul: becomes the MatMul's bias.
        case bias
    }

    public let opType: String
    /// The operator's domain: "" for the default ONNX domain, else e.g. `ai.onnx.preview`.
    public let domain: String
    /// Opsets of the operator's domain whose definition of the operator the kernel follows.
    public let opsets: ClosedRange<Int>
    /// Element types of the operator's main input (its type T) that the kernel accepts; float16 and
    /// bfloat16 wherever float32 is (a session holds them as float32).
    public let elementTypes: [DataType]
    public let outputShape: OutputShape
    public let batchRows: BatchRows
    public let fusion: FusionRole
    /// Its outputs differ from run to run (random generators, Dropout in training mode): never
    /// folded into a constant, even when every input is one.
    public let random: Bool
    let factory: KernelFactory
    /// For `.activation`: the epilogue equivalent to a node, nil when its attributes or inputs
    /// do not allow one. The context carries the node's constant inputs.
    let epilogue: (@Sendable (NodeContext) -> Epilogue?)?

    /// A record for an ONNX operator. In the default domain `firstOpset` defaults to the opset that
    /// introduced it (`OperatorVersions`) and every record runs up to `OperatorRegistry.newestOpset`;
    /// an operator of another domain gives that domain's opsets it implements (`domainOpsets`).
    init(
        _ opType: String, domain: String = "", domainOpsets: ClosedRange<Int>? = nil, types: [DataType],
        shape: OutputShape, rows: BatchRows, fusion: FusionRole = .none,
        firstOpset: Int? = nil, random: Bool = false, epilogue: (@Sendable (NodeContext) -> Epilogue?)? = nil,
        factory: @escaping KernelFactory
    ) {
        self.opType = opType
        self.domain = OperatorRegistry.isDefaultDomain(domain) ? "" : domain
        let first = firstOpset ?? OperatorVersions.since[opType]?.first ?? 1
        self.opsets = domainOpsets ?? first...max(first, OperatorVersions.newestOpset)
        // float16 and bfloat16 values are held as float32 inside a session (`HalfPrecision`), so an
        // operator that implements float32 runs them too.
        var all = types
        if types.contains(.float32) { for t in [DataType.float16, .bfloat16] where !all.contains(t) { all.append(t) } }
        self.elementTypes = all
        self.outputShape = shape
        self.batchRows = rows
        self.fusion = fusion
        self.random = random
        self.factory = factory
        self.epilogue = epilogue
    }

    /// The name a model's node uses: `Relu`, or `ai.onnx.preview.FlexAttention` in another domain.
    public var qualifiedName: String { domain.isEmpty ? opType : "\(domain).\(opType)" }

    /// What this record leaves incomplete or inconsistent; empty when it is complete.
    public var problems: [String] {
        var found: [String] = []
        if !domain.isEmpty {
            // Another domain's versions are not in OperatorVersions: the record states them.
            if opsets.lowerBound < 1 { found.append("opsets start below 1") }
            return (found + typeProblems).map { "\(qualifiedName): \($0)" }
        }
        guard let since = OperatorVersions.since[opType] else {
            return ["'\(opType)' is not an operator of the default ONNX domain (onnx \(OperatorVersions.onnxRelease))"]
        }
        if opsets.lowerBound < since[0] {
            found.append("opsets start at \(opsets.lowerBound), before ONNX defined '\(opType)' (opset \(since[0]))")
        }
        if opsets.upperBound != OperatorVersions.newestOpset {
            found.append("opsets end at \(opsets.upperBound), not at the newest opset \(OperatorVersions.newestOpset)")
        }
        return (found + typeProblems).map { "\(opType): \($0)" }
    }

    /// The problems of the element types and fusion role, whatever the domain.
    private var typeProblems: [String] {
        var found: [String] = []
        if elementTypes.isEmpty { found.append("no element types") }
        if elementTypes.contains(.string) { found.append("string tensors are not supported by the engine") }
        if Set(elementTypes).count != elementTypes.count { found.append("an element type is listed twice") }
        if (fusion == .activation) != (epilogue != nil) {
            found.append(fusion == .activation ? "an activation without an epilogue" : "an epilogue without the activation role")
        }
        return found
    }
}

extension DataType {
    /// Every element type the engine can hold (all but strings).
    public static let allNumeric: [DataType] = [
        .float32, .float64, .float16, .bfloat16, .int64, .int32, .int16, .int8, .uint64, .uint32, .uint16, .uint8, .bool,
    ]
}
