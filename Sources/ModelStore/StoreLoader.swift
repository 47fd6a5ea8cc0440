import Batching
import Engine
import Logging
import ONNX
import Tensors
import Glibc

/// Turns one version's files into a servable: decode (mmap), apply the config's input/output
/// overrides, plan, warm up. Knows nothing of the registry; `StoreManager` drives it and records
/// the states.
///
/// Immutable; `loadServable` may be called from any thread (the manager calls it from its own).
public struct StoreLoader: Sendable {
    public let layout: StoreLayout
    /// The options every version's session starts from; `blasThreads` there is the engine's whole
    /// thread budget (`--threads`), which each version divides among its instances (`threads(total:instances:)`).
    public let sessionOptions: SessionOptions
    public let logger: Logger
    /// Command-line settings that override every model's batching configuration.
    public let batchingOverrides: BatchingOverrides
    /// Makes the scheduler for a loaded version; by default `SchedulerContext.makeDefaultScheduler`.
    public let makeScheduler: @Sendable (SchedulerContext) -> any InferenceScheduler
    /// Told when a version load ends: model, version, success, seconds (for metrics).
    public let loadFinished: @Sendable (String, Int, Bool, Double) -> Void
    /// Told when an unloaded version has ended (END: its last request finished): model, version
    /// (so that per-version state such as metrics goes with it).
    public let versionEnded: @Sendable (String, Int) -> Void
    /// Told when a version is evicted: model, version, reason (`memory` or `idle`).
    public let versionEvicted: @Sendable (String, Int, String) -> Void

    public init(
        layout: StoreLayout, sessionOptions: SessionOptions, logger: Logger,
        batchingOverrides: BatchingOverrides = BatchingOverrides(),
        makeScheduler: @escaping @Sendable (SchedulerContext) -> any InferenceScheduler = { $0.makeDefaultScheduler() },
        loadFinished: @escaping @Sendable (String, Int, Bool, Double) -> Void = { _, _, _, _ in },
        versionEnded: @escaping @Sendable (String, Int) -> Void = { _, _ in },
        versionEvicted: @escaping @Sendable (String, Int, String) -> Void = { _, _, _ in }
    ) {
        self.versionEvicted = versionEvicted
        self.versionEnded = versionEnded
        self.layout = layout
        self.sessionOptions = sessionOptions
        self.logger = logger
        self.batchingOverrides = batchingOverrides
        self.makeScheduler = makeScheduler
        self.loadFinished = loadFinished
    }

    /// Loads one version fully; throws with a message that names the file and the reason.
    public func loadServable(model: String, version: Int, config: ModelConfig) throws -> ServableVersion {
        let path = layout.modelPath(model, version: version)
        let started = monotonicSeconds()
        var graphModel = try ONNXLoader.load(path: path)
        try StoreLoader.requireTensorIO(graphModel.graph)
        graphModel.graph.inputs = try StoreLoader.apply(config.inputs, to: graphModel.graph.inputs, what: "input")
        graphModel.graph.outputs = try StoreLoader.apply(config.outputs, to: graphModel.graph.outputs, what: "output")
        let batching = batchingOverrides.apply(to: config.batching)
        // The version's own budget, after config.json: its instances run side by side, so each
        // run splits its steps over the total divided among them (4 instances of 2 threads on 8).
        var options = sessionOptions
        options.blasThreads = StoreLoader.threads(total: sessionOptions.blasThreads, instances: batching.instanceCount)
        let session = try InferenceSession(model: graphModel, options: options)
        try SchedulerContext.validate(batching, for: session)
        // A warm-up on declared shapes (every input's dims fixed, by the file or by config.json's
        // `input`) gates the load: requests of those shapes would fail the same way. One on made-up
        // shapes (symbolic dims = 1) only warns: the model may need other sizes (a traced sequence
        // length, an audio model's minimum number of samples) that requests will bring.
        let declared = StoreLoader.declaresEveryShape(session.inputs)
        var warning: String?
        do {
            if config.warmup.isEmpty {
                try StoreLoader.warmUp(session, path: path)
            } else {
                // Configured (model_warmup): it gates the load, whatever the shapes.
                try StoreLoader.runWarmup(
                    config.warmup, session, batching: batching, modelDirectory: "\(layout.root)/\(model)")
            }
        } catch where !declared && config.warmup.isEmpty {
            warning = "\(error)".replacing(
                "; give the inputs' real dims in config.json \"input\" (see docs/model-store.md)", with: "")
                + "; the version serves anyway (requests of other shapes may work): give the inputs' real dims "
                + "in config.json \"input\" to warm it up on them"
            logger.warning(
                "warm-up on made-up shapes failed; the version serves anyway",
                metadata: ["event": "warmup_failed", "model": "\(model)", "version": "\(version)", "error": "\(error)"])
        }
        let context = SchedulerContext(model: model, version: version, session: session, batching: batching)
        return ServableVersion(
            model: model, version: version, path: path, session: session, scheduler: makeScheduler(context),
            batching: batching, warning: warning, loadSeconds: monotonicSeconds() - started)
    }

    /// The threads one run of a version with `instances` instances may use when the engine has
    /// `total`: an equal share, at least one (more instances than threads run one thread each).
    public static func threads(total: Int, instances: Int) -> Int {
        max(1, max(1, total) / max(1, instances))
    }

    /// The protocols carry tensors: a model whose inputs or outputs are sequences, optionals or maps
    /// (inside the graph they are fine) cannot be served.
    static func requireTensorIO(_ graph: Graph) throws {
        for (what, values) in [("input", graph.inputs), ("output", graph.outputs)] {
            if let v = values.first(where: { $0.kind != .tensor && $0.kind != .unknown }) {
                throw EngineError.invalidModel(
                    "\(what) '\(v.name)' is a \(v.kind.rawValue); the inference protocols carry tensors only: "
                        + "export the model with tensor inputs and outputs (e.g. ConcatFromSequence at the end)")
            }
        }
    }

    /// Checks `config.json`'s `input`/`output` entries against the file and pins dims.
    static func apply(_ overrides: [TensorOverride], to declared: [ValueInfo], what: String) throws -> [ValueInfo] {
        var result = declared
        for o in overrides {
            guard let i = result.firstIndex(where: { $0.name == o.name }) else {
                throw StoreError.badConfig(
                    path: "config.json",
                    reason: "\(what) '\(o.name)' is not in the model; its \(what)s are: \(declared.map(\.name).joined(separator: ", "))")
            }
            if let type = o.dataType {
                if let fileType = result[i].dataType, fileType != type {
                    throw StoreError.badConfig(
                        path: "config.json",
                        reason: "\(what) '\(o.name)' is \(type.v2Name) in the config but \(fileType.v2Name) in the model; fix the config")
                }
                result[i].dataType = type
            }
            guard let dims = o.dims else { continue }
            let fileShape = result[i].shape ?? Array(repeating: .unknown, count: dims.count)
            guard fileShape.count == dims.count else {
                throw StoreError.badConfig(
                    path: "config.json",
                    reason: "\(what) '\(o.name)' has \(dims.count) dims in the config but rank \(fileShape.count) in the model")
            }
            result[i].shape = try zip(fileShape, dims).enumerated().map { axis, pair in
                let (fileDim, dim) = pair
                if dim == -1 { return fileDim }
                if let fixed = fileDim.value, fixed != dim {
                    throw StoreError.badConfig(
                        path: "config.json",
                        reason: "\(what) '\(o.name)' dim \(axis) is \(dim) in the config but \(fixed) in the model")
                }
                return .fixed(dim)
            }
        }
        return result
    }

    /// Whether every input has fixed dims (in the file, or pinned by config.json's `input`), so
    /// that the warm-up runs on declared shapes rather than made-up ones.
    static func declaresEveryShape(_ inputs: [ValueInfo]) -> Bool {
        inputs.allSatisfy { input in input.shape?.allSatisfy { $0.value != nil } == true }
    }

    /// Runs the model once on zeros (then ones, if zeros fail) of its declared shapes, variable
    /// dims = 1: kernels are exercised and lazily built state exists before the first request.
    static func warmUp(_ session: InferenceSession, path: String) throws {
        var shapes: [(ValueInfo, [Int])] = []
        for input in session.inputs {
            // Unknown rank or string inputs: nothing sensible to invent, serve without warm-up.
            guard let shape = input.shape, input.dataType != .string else { return }
            shapes.append((input, shape.map { $0.value ?? 1 }))
        }
        var firstError: (any Error)?
        // The made-up inputs count against the request limit, as a request's would: declared
        // dims of 2^62 fail the warm-up with the reason instead of trapping.
        let ledger = MemoryLedger(
            limit: session.options.maxRunMemory, purpose: "the warm-up's inputs", setting: "--max-request-memory")
        for value in [0, 1] {
            do {
                var feeds: [String: Tensor] = [:]
                try MemoryLedger.withCurrent(ledger) {
                    for (input, shape) in shapes {
                        feeds[input.name] = try filled(input.dataType ?? .float32, shape: shape, one: value == 1)
                    }
                }
                _ = try session.run(feeds)
                return
            } catch {
                firstError = firstError ?? error
            }
        }
        let described = shapes.map { "\($0.0.name)\($0.1)" }.joined(separator: ", ")
        throw StoreError.badConfig(
            path: path,
            reason: "warm-up inference on zeros and on ones of shapes \(described) failed: \(firstError.map { "\($0)" } ?? "?"); "
                + "give the inputs' real dims in config.json \"input\" (see docs/model-store.md)")
    }

    static func filled(_ type: DataType, shape: [Int], one: Bool) throws -> Tensor {
        let tensor = try Tensor(allocating: type, shape: shape, zeroed: true)
        guard one else { return tensor }
        let n = tensor.count
        switch type {
        case .float32: tensor.mutableElements(as: Float.self).update(repeating: 1)
        case .float64: tensor.mutableElements(as: Double.self).update(repeating: 1)
        case .int64: tensor.mutableElements(as: Int64.self).update(repeating: 1)
        case .int32: tensor.mutableElements(as: Int32.self).update(repeating: 1)
        case .int16: tensor.mutableElements(as: Int16.self).update(repeating: 1)
        case .uint16: tensor.mutableElements(as: UInt16.self).update(repeating: 1)
        case .uint32: tensor.mutableElements(as: UInt32.self).update(repeating: 1)
        case .uint64: tensor.mutableElements(as: UInt64.self).update(repeating: 1)
        case .float16: tensor.mutableElements(as: UInt16.self).update(repeating: HalfConversion.float16Bits(Float(1)))
        case .bfloat16: tensor.mutableElements(as: UInt16.self).update(repeating: HalfConversion.bfloat16Bits(Float(1)))
        default:
            if type.byteSize == 1 && n > 0 { tensor.mutableBytes.initializeMemory(as: UInt8.self, repeating: 1) }
        }
        return tensor
    }
}

func monotonicSeconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}
