import Tensors

/// Options for building a session.
public struct SessionOptions: Sendable {
    public var device: Device
    /// The engine's thread budget: the chunks its parallel steps (GEMMs, planes, rows) are split
    /// into, run on `WorkerPool` (OpenBLAS itself stays at one thread). Default 1. The name is
    /// historical.
    public var blasThreads: Int
    /// Most bytes one run (one request or one batch) may allocate at once: outputs, activations, its
    /// arena. Beyond it the run fails with `EngineError.memoryLimit` before allocating. Default: a
    /// quarter of the machine's (or cgroup's) memory; the daemon sets `--max-request-memory`.
    public var maxRunMemory: Int
    /// Most bytes a load may allocate: folded constants and weights in the kernels' layouts.
    /// Default: three quarters of the machine's (or cgroup's) memory.
    public var maxLoadMemory: Int

    public init(
        device: Device = .cpu, blasThreads: Int = 1, maxRunMemory: Int = MemoryLimits.defaultRequestBytes,
        maxLoadMemory: Int = MemoryLimits.defaultLoadBytes
    ) {
        self.device = device
        self.blasThreads = blasThreads
        self.maxRunMemory = maxRunMemory
        self.maxLoadMemory = maxLoadMemory
    }
}

/// A model ready to run: kernels chosen, plan built. Immutable and safe to call from any thread.
///
/// Owned by whoever loaded the model (the model store keeps one per servable version); `run` may be
/// called concurrently from any number of threads, each call working on its own values.
public final class InferenceSession: Sendable {
    /// The model's description (inputs, outputs, nodes, opsets) without its initializers: the
    /// plan holds the weights it needs, in the layout its kernels use, and only those.
    public let model: GraphModel
    public let options: SessionOptions
    /// The executable plan built from `model`.
    public let plan: Plan
    /// The declared float16/bfloat16 inputs and outputs: the plan computes in float32, so feeds are
    /// widened on entry and these outputs narrowed on exit (`HalfPrecision`).
    let halfEdges: HalfPrecision
    /// The load's ledger: after `init` it holds what the plan kept of the load's allocations
    /// (packed weights, folded constants); the version's memory account reads it.
    let loadLedger: MemoryLedger

    /// Declared real inputs and outputs of the model.
    public var inputs: [ValueInfo] { model.graph.inputs }
    public var outputs: [ValueInfo] { model.graph.outputs }

    /// Builds the plan; throws `EngineError.unsupportedOperator` / `.invalidModel` when it cannot.
    public convenience init(model: GraphModel, options: SessionOptions = SessionOptions()) throws {
        try self.init(model: model, options: options, registry: .cpu)
    }

    /// Builds the plan with the operators of `registry` (tests and experiments; the daemon uses `.cpu`).
    public init(model: GraphModel, options: SessionOptions, registry: OperatorRegistry) throws {
        // Subgraphs' reads of outer values become explicit inputs of their nodes first, so that
        // ordering, dead-node removal and the optimizer see them (ControlFlow.exposeOuterScope).
        var model = model
        model.graph = ControlFlow.exposeOuterScope(model.graph)
        var described = model
        described.graph.initializers = [:]
        self.model = described
        self.options = options
        switch options.device {
        case .cpu: break
        }
        // The process-wide default (and OpenBLAS kept at one thread); each run also sets its own
        // budget on its thread (`run`), so sessions with different budgets can coexist.
        BLAS.setThreads(options.blasThreads)
        let ledger = MemoryLedger(
            limit: options.maxLoadMemory, purpose: MemoryLedger.loadPurpose, setting: "the load limit, 3/4 of memory")
        self.loadLedger = ledger
        do {
            // 16-bit floats are held as float32 from here on: weights widened once (HalfPrecision).
            let (plan, edges) = try MemoryLedger.withCurrent(ledger) {
                let (lowered, edges) = try HalfPrecision.lower(model)
                // A 16-bit model's packed weights stay 16-bit (half the memory; PackedWeights).
                let plan = try PackedWeights.$storage.withValue(edges.weights) {
                    try Plan(model: GraphOptimizer.optimize(lowered, registry: registry), registry: registry)
                }
                return (plan, edges)
            }
            self.plan = plan
            self.halfEdges = edges
        } catch let error as MemoryLimitError {
            throw EngineError.memoryLimit(error)
        }
        // The kernels have copied the weights they repack (Conv, Gemm, MatMul) and the load-time
        // passes have folded others into new tensors, yet the file pages those reads touched stay
        // resident: drop them (a mapped file's pages only; weights a kernel still reads from the
        // file come back on its first run). resnet18: about 40 MB less resident.
        for tensor in model.graph.initializers.values { tensor.releaseResidentPages() }
    }

    /// The operator types this engine can run (for `swerve check --list-ops`).
    public static var supportedOperators: [String] { OperatorRegistry.cpu.supportedOperators }

    /// Runs the model. `feeds` maps input names to tensors; every declared input is required and
    /// must match its declared type and fixed dimensions (`EngineError.invalidInput` otherwise).
    /// Returns every graph output by name, of its declared type (float16/bfloat16 inputs and
    /// outputs are converted to and from the float32 the plan computes in).
    public func run(_ feeds: [String: Tensor]) throws -> [String: Tensor] {
        try run(feeds, profile: nil)
    }

    /// `run`, adding each step's time to `profile` (runs that build a shape plan are not timed).
    public func run(_ feeds: [String: Tensor], profile: StepProfile?) throws -> [String: Tensor] {
        let ledger = MemoryLedger(
            limit: options.maxRunMemory, purpose: MemoryLedger.requestPurpose, setting: "--max-request-memory")
        do {
            return try MemoryLedger.withCurrent(ledger) {
                try BLAS.withThreads(options.blasThreads) {
                    if halfEdges.isEmpty { return try plan.run(feeds, profile: profile) }
                    let widened = try halfEdges.widen(feeds, declared: inputs)
                    return try halfEdges.narrow(try plan.run(widened, profile: profile))
                }
            }
        } catch let error as MemoryLimitError {
            throw EngineError.memoryLimit(error)
        }
    }
}
