import Batching
import Engine
import Logging
import ONNX
import Tensors
import Glibc

/// Loads the models of a store into a registry: scans, applies each model's version policy,
/// decodes and plans each selected version. A model or version that fails is recorded as FAILED
/// with its error and does not stop the others.
///
/// Used from one thread at a time (startup, later the poller).
public struct StoreLoader: Sendable {
    public let layout: StoreLayout
    public let registry: ModelRegistry
    public let sessionOptions: SessionOptions
    public let logger: Logger
    /// Command-line settings that override every model's batching configuration.
    public let batchingOverrides: BatchingOverrides
    /// Makes the scheduler for a loaded version; by default `SchedulerContext.makeDefaultScheduler`.
    public let makeScheduler: @Sendable (SchedulerContext) -> any InferenceScheduler
    /// Told when a version load ends: model, version, success, seconds (for metrics).
    public let loadFinished: @Sendable (String, Int, Bool, Double) -> Void

    public init(
        layout: StoreLayout, registry: ModelRegistry, sessionOptions: SessionOptions, logger: Logger,
        batchingOverrides: BatchingOverrides = BatchingOverrides(),
        makeScheduler: @escaping @Sendable (SchedulerContext) -> any InferenceScheduler = { $0.makeDefaultScheduler() },
        loadFinished: @escaping @Sendable (String, Int, Bool, Double) -> Void = { _, _, _, _ in }
    ) {
        self.layout = layout
        self.registry = registry
        self.sessionOptions = sessionOptions
        self.logger = logger
        self.batchingOverrides = batchingOverrides
        self.makeScheduler = makeScheduler
        self.loadFinished = loadFinished
    }

    /// Scans the store and loads every model. Throws only when the store itself cannot be read.
    public func loadAll() throws {
        let models = try layout.scan()
        if models.isEmpty {
            logger.warning("the model store holds no models", metadata: ["event": "store_empty", "path": "\(layout.root)"])
        }
        for model in models { load(model) }
    }

    /// Loads the versions of one model that its policy selects.
    public func load(_ entry: StoreLayout.ModelEntry) {
        var config = ModelConfig()
        if let path = entry.configPath {
            do {
                config = try ModelConfig.parse(try readFile(path), path: path)
            } catch {
                logger.error(
                    "model config rejected; the model is not loaded until the file is fixed",
                    metadata: ["event": "config_failed", "model": "\(entry.name)", "error": "\(error)"])
                registry.update(entry.name) { $0?.error = "\(error)" }
                return
            }
        }
        config.batching = batchingOverrides.apply(to: config.batching)
        let selected = config.versionPolicy.select(from: entry.versions)
        if selected.isEmpty {
            let reason = entry.versions.isEmpty
                ? "no version directory with a model.onnx (expected \(layout.root)/\(entry.name)/<version>/model.onnx)"
                : "the version policy selects none of the versions \(entry.versions)"
            logger.warning("model has nothing to serve", metadata: ["event": "no_versions", "model": "\(entry.name)", "reason": "\(reason)"])
            registry.update(entry.name) { $0?.error = reason }
            return
        }
        registry.update(entry.name) { $0?.error = nil }
        for version in selected { load(model: entry.name, version: version, config: config) }
    }

    /// Loads one version; records AVAILABLE or FAILED.
    public func load(model: String, version: Int, config: ModelConfig = ModelConfig()) {
        let path = layout.modelPath(model, version: version)
        registry.setVersion(model, VersionStatus(version: version, state: .loading))
        let started = monotonicSeconds()
        do {
            let graphModel = try ONNXLoader.load(path: path)
            let session = try InferenceSession(model: graphModel, options: sessionOptions)
            try SchedulerContext.validate(config.batching, for: session)
            let context = SchedulerContext(model: model, version: version, session: session, batching: config.batching)
            let servable = ServableVersion(
                model: model, version: version, path: path, session: session, scheduler: makeScheduler(context),
                batching: config.batching)
            registry.setVersion(model, VersionStatus(version: version, state: .available, servable: servable))
            loadFinished(model, version, true, monotonicSeconds() - started)
            logger.info(
                "model version loaded",
                metadata: [
                    "event": "model_loaded", "model": "\(model)", "version": "\(version)",
                    "device": "\(sessionOptions.device)", "nodes": "\(graphModel.graph.nodes.count)",
                    "duration_ms": "\(Int((monotonicSeconds() - started) * 1000))",
                ])
        } catch {
            registry.setVersion(model, VersionStatus(version: version, state: .failed, error: "\(error)"))
            loadFinished(model, version, false, monotonicSeconds() - started)
            logger.error(
                "model version failed to load; other models keep serving",
                metadata: [
                    "event": "model_failed", "model": "\(model)", "version": "\(version)", "error": "\(error)",
                    "duration_ms": "\(Int((monotonicSeconds() - started) * 1000))",
                ])
        }
    }
}

func monotonicSeconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}
