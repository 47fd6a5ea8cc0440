import Dispatch
import Engine
import HTTP
import Logging
import ModelStore
import Operations
import Synchronization

/// What `GET /v2` reports about this server.
public struct ServerInfo: Sendable {
    public var name = "swerve"
    public var version = "0.1.0"
    /// V2 protocol extensions implemented.
    public var extensions = ["model_configuration"]
    public init() {}
}

/// The inference port: KServe V2 / Open Inference Protocol (with Triton's `config`), and the
/// TF Serving REST API, over one registry.
///
/// Immutable after init apart from the readiness flag; handles requests from any HTTP thread.
public final class InferenceAPI: HTTPHandler {
    enum Endpoint: Sendable {
        case live, ready, serverMetadata
        case modelMetadata, modelReady, modelConfig, modelInfer
        case v1Status, v1Metadata, v1Predict
        case metrics, stats, statusPage, statusJSON
    }

    let registry: ModelRegistry
    let info: ServerInfo
    let logger: Logger
    let router: Router<Endpoint>
    private let storeLoaded = Atomic<Bool>(false)
    /// Operations (MetricsEndpoints.swift, StatusPage.swift): nil when metrics are off.
    let metrics: ServerMetrics?
    let accessLog: Bool
    let accessLogger: Logger
    let startedAt = monotonicNow()
    let draining = Atomic<Bool>(false)
    /// Loads an on-demand model for a request that found it not loaded (`StoreManager.acquire`):
    /// model, version (nil = default), completion. Nil: no on-demand loading.
    public typealias DemandLoader = @Sendable (
        String, Int?, @escaping @Sendable (Result<ServableVersion, LoadFailure>) -> Void
    ) -> Void
    let demandLoader: DemandLoader?
    /// The version an on-demand load handed to the request being dispatched again: `resolve`
    /// answers with it, so the request runs on what it waited for.
    @TaskLocal static var loadedForRequest: ServableVersion?

    public init(
        registry: ModelRegistry, info: ServerInfo = ServerInfo(), logger: Logger, metrics: ServerMetrics? = nil,
        accessLog: Bool = false, demandLoader: DemandLoader? = nil
    ) {
        self.demandLoader = demandLoader
        self.registry = registry
        self.info = info
        self.logger = logger
        self.metrics = metrics
        self.accessLog = accessLog
        var access = logger
        access.logLevel = .info  // asked for with --access-log: printed whatever --log-level says
        self.accessLogger = access
        var r = Router<Endpoint>()
        r.add("GET", "/", .statusPage)
        r.add("GET", "/status.json", .statusJSON)
        r.add("GET", "/metrics", .metrics)
        r.add("GET", "/v2/models/stats", .stats)
        r.add("GET", "/v2/health/live", .live)
        r.add("GET", "/v2/health/ready", .ready)
        r.add("GET", "/v2", .serverMetadata)
        for prefix in ["/v2/models/{model}", "/v2/models/{model}/versions/{version}"] {
            r.add("GET", prefix, .modelMetadata)
            r.add("GET", prefix + "/ready", .modelReady)
            r.add("GET", prefix + "/config", .modelConfig)
            r.add("GET", prefix + "/stats", .stats)
            r.add("POST", prefix + "/infer", .modelInfer)
        }
        for prefix in ["/v1/models/{model}", "/v1/models/{model}/versions/{version}", "/v1/models/{model}/labels/{label}"] {
            r.add("POST", prefix + ":predict", .v1Predict)
            r.add("GET", prefix, .v1Status)
            r.add("GET", prefix + "/metadata", .v1Metadata)
        }
        router = r
    }

    /// Marks the initial load of the store as done: `/v2/health/ready` can answer 200 from now on.
    public func markStoreLoaded() { storeLoaded.store(true, ordering: .releasing) }

    /// Marks the server as shutting down: `/v2/health/ready` answers 503 from now on.
    public func beginDrain() { draining.store(true, ordering: .releasing) }

    /// Whether the server is ready: the store's first load is done (see `--ready-when`), no model
    /// is still working towards its first AVAILABLE version (docs/model-store.md), and it is not
    /// shutting down.
    public var isReady: Bool {
        storeLoaded.load(ordering: .acquiring) && !draining.load(ordering: .acquiring) && registry.snapshot().isSettled
    }

    private func notReadyMessage() -> String {
        guard storeLoaded.load(ordering: .acquiring) else { return "not ready: the model store is still loading; retry shortly" }
        let pending = registry.snapshot().pendingModels
        return "not ready: still loading model(s) \(pending.joined(separator: ", ")); retry shortly"
    }

    public func handle(_ request: HTTPRequest, responder: HTTPResponder) {
        let (match, pattern) = router.matchRoute(method: request.method, path: request.path)
        guard metrics != nil || accessLog else { return dispatch(request, match, responder) }
        dispatch(request, match, observed(request, match, pattern: pattern, responder))
    }

    /// Counts and logs the 413s the HTTP layer answers before a handler runs.
    public func rejected(_ request: HTTPRequest, with response: HTTPResponse) {
        guard metrics != nil || accessLog else { return }
        let (match, pattern) = router.matchRoute(method: request.method, path: request.path)
        observed(request, match, pattern: pattern, HTTPResponder { _ in }).respond(response)
    }

    func dispatch(_ request: HTTPRequest, _ match: Router<Endpoint>.Match, _ responder: HTTPResponder, afterLoad: Bool = false) {
        switch match {
        case .notFound:
            responder.respond(
                .error(404, "no endpoint at \(request.method) \(request.path); see the endpoint list in README.md"))
        case .methodNotAllowed(let allowed):
            var response = HTTPResponse.error(
                405, "\(request.path) does not accept \(request.method); use \(allowed.joined(separator: " or "))")
            response.headers.append(("Allow", allowed.joined(separator: ", ")))
            responder.respond(response)
        case .found(let endpoint, let parameters):
            let model = parameters["model"] ?? ""
            var responder = responder
            do throws(APIError) {
                let version = try requestedVersion(model, parameters)
                if endpoint == .modelInfer || endpoint == .v1Predict,
                    let servable = try? registry.snapshot().resolve(model: model, version: version)
                {
                    // In flight on this version until answered: eviction passes it over meanwhile.
                    servable.requestStarted()
                    let inner = responder
                    responder = HTTPResponder { response in
                        servable.requestFinished()
                        inner.respond(response)
                    }
                }
                switch endpoint {
                case .live: responder.respond(.text(200, ""))
                case .ready:
                    responder.respond(
                        isReady
                            ? .text(200, "")
                            : .error(503, draining.load(ordering: .acquiring)
                                ? "not ready: the server is shutting down; send requests to another instance"
                                : notReadyMessage()))
                case .serverMetadata: responder.respond(serverMetadata())
                case .modelMetadata: responder.respond(try modelMetadata(model, version))
                case .modelReady:
                    _ = try registry.snapshot().resolve(model: model, version: version)
                    responder.respond(.text(200, ""))
                case .modelConfig: responder.respond(try modelConfig(model, version))
                case .modelInfer: try infer(request, model, version, responder)
                case .v1Status: responder.respond(try v1Status(model, version))
                case .v1Metadata: responder.respond(try v1Metadata(model, version))
                case .v1Predict: try v1Predict(request, model, version, responder)
                case .metrics: responder.respond(metricsText())
                case .stats: responder.respond(try modelStats(parameters["model"], version))
                case .statusPage: responder.respond(statusPage())
                case .statusJSON: responder.respond(statusJSON())
                }
            } catch {
                if error.status == 503, !afterLoad, let demandLoader, Self.loadsOnDemand(endpoint),
                    registry.snapshot().models[model]?.loadsOnDemand == true
                {
                    // Not loaded yet (or evicted): load it; this request waits, suspended, no thread held.
                    let number = (try? requestedVersion(model, parameters))?.flatMap(StoreLayout.versionNumber)
                    let started = monotonicNow()
                    let metrics = self.metrics
                    let answer = responder
                    demandLoader(model, number) { [self] result in
                        let waited = monotonicNow() - started
                        metrics?.loadWaited(model: model, seconds: waited, loaded: (try? result.get()) != nil)
                        // Says that (and how long) this request waited for a load, and for which
                        // version: clients and benchmarks tell cold answers from warm ones, and
                        // the metrics count the request on that version.
                        let loaded = try? result.get().version
                        let answer = HTTPResponder { response in
                            var response = response
                            response.headers.append(("Swerve-Load-Wait-Ms", String(Int(waited * 1000))))
                            if let loaded { response.headers.append(("Swerve-Loaded-Version", String(loaded))) }
                            answer.respond(response)
                        }
                        switch result {
                        case .success(let servable):
                            // Off the store's queue: the request is parsed and submitted as usual, on
                            // the version just loaded (even if evicted again meanwhile: it drains).
                            DispatchQueue.global().async {
                                let (again, _) = self.router.matchRoute(method: request.method, path: request.path)
                                InferenceAPI.$loadedForRequest.withValue(servable) {
                                    self.dispatch(request, again, answer, afterLoad: true)
                                }
                            }
                        case .failure(let failure):
                            answer.respond(.error(503, failure.description))
                        }
                    }
                    return
                }
                if error.status >= 500 {
                    logger.warning("request failed", metadata: ["path": "\(request.path)", "status": "\(error.status)", "error": "\(error.message)"])
                }
                responder.respond(error.response)
            }
        }
    }

    /// Endpoints that load an on-demand model that is not loaded (and wait for it).
    static func loadsOnDemand(_ endpoint: Endpoint) -> Bool {
        switch endpoint {
        case .modelInfer, .v1Predict, .modelMetadata, .modelConfig, .v1Metadata: return true
        default: return false
        }
    }

    /// The version text a route names: `/versions/{v}`, a TF Serving label's target, or nil (the
    /// default version). Shared by dispatch and the metrics, so both see the same version.
    func requestedVersion(_ model: String, _ parameters: [String: String]) throws(APIError) -> String? {
        if let label = parameters["label"] { return try labelVersion(model, label) }
        return parameters["version"]
    }

    /// The version a TF Serving label (`/labels/{l}`) points at, as version text.
    func labelVersion(_ model: String, _ label: String) throws(APIError) -> String {
        switch registry.snapshot().version(model: model, label: label) {
        case .found(let v): return String(v)
        case .modelNotFound:
            throw .notFound("model '\(model)' is not in the model store; GET /v2/repository/index lists the models")
        case .labelNotFound(let known):
            throw .notFound(
                "model '\(model)' has no label '\(label)' (labels: \(known.isEmpty ? "none" : known.joined(separator: ", "))); "
                    + "set version_labels in its config.json")
        }
    }

    func serverMetadata() -> HTTPResponse {
        var w = JSONWriter()
        w.raw("{")
        w.field("name", info.name)
        w.comma()
        w.field("version", info.version)
        w.comma()
        w.key("extensions")
        w.array(info.extensions) { $0.string($1) }
        w.raw("}")
        return .json(200, w.bytes)
    }
}

extension Dimension {
    /// The dimension as V2 metadata reports it: the size, or -1 when it varies.
    var reported: Int { value ?? -1 }
}
