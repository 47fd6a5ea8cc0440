import API
import ArgumentParser
import Batching
import CUDA
import Engine
import Glibc
import HTTP
import Logging
import ModelStore
import Operations
import Tensors

/// `swerve serve`: load the model store and serve it until SIGTERM or SIGINT.
struct Serve: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Serve the models of a model store (the default command).")

    @Option(help: "Model store directory: <dir>/<model>/<version>/model.onnx. [default: ./models] [env: SWERVE_MODEL_STORE]")
    var modelStore: String?

    @Option(help: "Address of the inference port. [default: 0.0.0.0] [env: SWERVE_HOST]")
    var host: String?

    @Option(help: "Inference port; 0 picks a free port, printed at startup. [default: 8000] [env: SWERVE_PORT]")
    var port: Int?

    @Option(help: "Address of the management port. [default: 127.0.0.1] [env: SWERVE_MANAGEMENT_HOST]")
    var managementHost: String?

    @Option(help: "Management port; 0 picks a free port. [default: 8001] [env: SWERVE_MANAGEMENT_PORT]")
    var managementPort: Int?

    @Option(help: "Device: auto, cpu, cuda or cuda:N. auto uses CUDA when it can, else the CPU. [default: auto] [env: SWERVE_DEVICE]")
    var device: String?

    @Option(help: "Seconds between scans of the model store for new, changed and removed versions; 0 = no polling (POST /v2/repository/rescan or .../load on the management port still rescan). [default: 2] [env: SWERVE_POLL_INTERVAL]")
    var pollInterval: Double?

    @Option(help: "Bearer token of the management port; required when --management-host is not loopback, and for uploads. [env: SWERVE_MANAGEMENT_TOKEN]")
    var managementToken: String?

    @Option(help: "When /v2/health/ready turns 200 at startup: all = every aspired version of every model has loaded or failed; any = each model has one version serving (or has failed). [default: all] [env: SWERVE_READY_WHEN]")
    var readyWhen: String?

    @Option(help: "Largest request body in bytes; larger requests get 413. [default: 67108864 (64 MiB)] [env: SWERVE_MAX_BODY_SIZE]")
    var maxBodySize: Int?

    @Option(help: "Most working memory one inference run (a request, or a batch of them) may allocate: outputs, activations, scratch; a request that would need more gets 413 saying how much. Bytes, or with a K/M/G/T suffix (powers of 1024). [default: a quarter of the machine's or the container's memory] [env: SWERVE_MAX_REQUEST_MEMORY]")
    var maxRequestMemory: String?
    @Option(help: "Most bytes of request bodies held in memory at once on each port (bodies being read and bodies of requests not yet answered); a request that would pass it gets 503 with Retry-After. [default: a quarter of the machine's or cgroup's memory, at least 4 x --max-body-size] [env: SWERVE_MAX_BUFFERED_BODY_BYTES]")
    var maxBufferedBodyBytes: Int?

    @Option(help: "Most memory the loaded model versions may hold together (measured: weights, packed copies, arenas); a load that would pass it first unloads the least recently used versions of on-demand models. Bytes, or with a K/M/G/T suffix. [default: three quarters of the machine's or the container's memory] [env: SWERVE_MEMORY_BUDGET]")
    var memoryBudget: String?

    @Flag(help: "Load models on their first request instead of at startup (config.json \"load\" overrides it per model); requests wait for the load. [env: SWERVE_LOAD_ON_DEMAND=1]")
    var loadOnDemand = false

    @Option(help: "Seconds a request waits for an on-demand load before 503. [default: 30] [env: SWERVE_LOAD_WAIT]")
    var loadWait: Double?

    @Option(help: "Models loading at once (load workers; one load at a time per model). [default: 2] [env: SWERVE_LOAD_WORKERS]")
    var loadWorkers: Int?

    @Option(help: "HTTP threads (each with its own epoll loop). [default: number of cores] [env: SWERVE_HTTP_THREADS]")
    var httpThreads: Int?

    @Option(help: "Batching for every model, overriding config.json: most rows per batch; 0 = off. [env: SWERVE_MAX_BATCH_SIZE]")
    var maxBatchSize: Int?

    @Option(help: "Batching for every model: microseconds a batch may wait for more rows. [env: SWERVE_MAX_QUEUE_DELAY_US]")
    var maxQueueDelayUs: Int?

    @Flag(help: "Batching for every model: choose the wait from observed compute time and arrival rate (docs/batching.md). [env: SWERVE_ADAPTIVE_BATCHING=1]")
    var adaptiveBatching = false

    @Option(help: "For every model: most requests waiting; beyond it 503. [default: 1024 or config.json] [env: SWERVE_MAX_QUEUE_SIZE]")
    var maxQueueSize: Int?

    @Option(help: "For every model: microseconds a request may wait in the queue before 504; 0 = none. [env: SWERVE_DEFAULT_TIMEOUT_US]")
    var defaultTimeoutUs: Int?

    @Option(help: "For every model: execution instances (workers) per version. [default: 1 or config.json] [env: SWERVE_INSTANCES]")
    var instances: Int?

    @Option(help: "Compute threads for the engine: workers x BLAS threads stay within it. [default: number of cores] [env: SWERVE_THREADS]")
    var threads: Int?

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical. [default: info] [env: SWERVE_LOG_LEVEL]")
    var logLevel: String?

    @Option(help: "Log format: text (key=value) or json. [default: text] [env: SWERVE_LOG_FORMAT]")
    var logFormat: String?

    @Flag(help: "Log one line per HTTP request on the inference port (method, path, status, bytes, duration, request id). [env: SWERVE_ACCESS_LOG=1]")
    var accessLog = false

    @Option(help: "Seconds to finish the requests in flight after SIGTERM or SIGINT before exiting anyway (status 1). [default: 30] [env: SWERVE_SHUTDOWN_TIMEOUT]")
    var shutdownTimeout: Double?

    @Flag(inversion: .prefixedNo, help: "Collect metrics (GET /metrics, /v2/models/stats, the status page's charts). [default: on] [env: SWERVE_METRICS=0 turns them off]")
    var metrics: Bool?

    func run() throws {
        let settings = try resolve()
        // Block the shutdown signals before any thread starts (threads inherit the mask); the main
        // thread then waits for them with sigwait.
        var signals = sigset_t()
        sigemptyset(&signals)
        sigaddset(&signals, SIGINT)
        sigaddset(&signals, SIGTERM)
        pthread_sigmask(SIG_BLOCK, &signals, nil)

        let logger = settings.logger
        // CUDA is probed (dlopen of the NVIDIA libraries) for auto and cuda; docs/gpu.md.
        let choice: DeviceChoice
        do {
            choice = try DeviceSelector.select(settings.device) { CUDAProbe(loader: .system()).run() }
        } catch {
            logger.critical("cannot start: \(error)", metadata: ["event": "device_unavailable"])
            throw ExitCode(2)
        }
        let device = choice.device
        let cpu = CPULevelChoice.process
        logger.info(
            "cpu level \(cpu.level)",
            metadata: [
                "event": "cpu_level", "level": "\(cpu.level)", "chosen": "\(cpu.requested.map { "SWERVE_CPU_LEVEL=\($0)" } ?? "detected")",
                "cpu": "\(CPUModel.name)", "family": "\(CPUFeatures.host.family)", "model": "\(CPUFeatures.host.model)",
                "flags": "\(CPUFeatures.host.flags)",
            ])
        logger.info(
            "device selected",
            metadata: ["event": "device", "requested": "\(settings.device)", "device": "\(device)", "reason": "\(choice.reason)"])

        logger.info(
            "memory limits",
            metadata: [
                "event": "memory_limits", "available": "\(MemoryLimits.describe(MemoryLimits.availableBytes))",
                "engine": "\(MemoryLimits.describe(MemoryLedger.process.limit))",
                "request": "\(MemoryLimits.describe(settings.maxRequestMemory))",
                "load": "\(MemoryLimits.describe(MemoryLimits.defaultLoadBytes))",
            ])
        let registry = ModelRegistry()
        let metrics: ServerMetrics? = settings.metrics ? ServerMetrics(gpuSamples: gpuSampler(logger)) : nil
        metrics?.memoryBudget.store(settings.store.memoryBudget, ordering: .relaxed)
        logger.info(
            "model store policy",
            metadata: [
                "event": "store_policy", "memory_budget": "\(MemoryLimits.describe(settings.store.memoryBudget))",
                "load_on_demand": "\(settings.store.loadOnDemand)", "load_wait_s": "\(settings.store.loadWait)",
                "load_workers": "\(settings.loadWorkers)",
            ])
        // The engine's whole budget: each version divides it among its instances once its
        // config.json is read (StoreLoader.threads), so a version's instances x threads stay within it.
        let blasThreads = settings.threads
        let loader = StoreLoader(
            layout: StoreLayout(root: settings.modelStore),
            sessionOptions: SessionOptions(
                device: device, blasThreads: blasThreads, maxRunMemory: settings.maxRequestMemory),
            logger: logger,
            batchingOverrides: settings.batching,
            makeScheduler: { context in
                context.makeDefaultScheduler(
                    observer: metrics.map { $0.model(context.model, version: context.version) } ?? NoSchedulerObserver())
            },
            loadFinished: { model, _, succeeded, seconds in
                metrics?.modelLoaded(model: model, succeeded: succeeded, seconds: seconds)
            },
            versionEnded: { model, version in metrics?.forget(model: model, version: version) },
            versionEvicted: { model, _, reason in metrics?.modelEvicted(model: model, reason: reason) })
        let manager = StoreManager(
            loader: loader, registry: registry, pollInterval: settings.pollInterval,
            maxConcurrentLoads: settings.loadWorkers, policy: settings.store)
        let inference = InferenceAPI(
            registry: registry, logger: logger, metrics: metrics, accessLog: settings.accessLog,
            demandLoader: { model, version, completion in manager.acquire(model: model, version: version, completion: completion) })
        let management = ManagementAPI(registry: registry, manager: manager, token: settings.managementToken, logger: logger)
        do {
            // Models load in the background; readiness says when they are done.
            let readyWhenAny = settings.readyWhenAny
            try manager.start {
                if !readyWhenAny { inference.markStoreLoaded() }
                logger.info("model store loaded", metadata: ["event": "store_loaded"])
            }
            if readyWhenAny { inference.markStoreLoaded() }
        } catch {
            logger.critical("cannot start: \(error)", metadata: ["event": "store_unreadable"])
            throw ExitCode(2)
        }

        var http = settings.http
        let server = HTTPServer(configuration: http, handler: inference, logger: logger)
        http.host = settings.managementHost
        http.port = settings.managementPort
        http.threads = 1
        let managementServer = HTTPServer(configuration: http, handler: management, logger: logger)
        do {
            try server.start()
            try managementServer.start()
        } catch {
            logger.critical("cannot start: \(error)", metadata: ["event": "listen_failed"])
            throw ExitCode(2)
        }
        // No registry snapshot is kept here: one held until shutdown would pin every version in it.
        logger.info(
            "serving",
            metadata: [
                "event": "listening", "http": "\(settings.http.host):\(server.port)", "http_port": "\(server.port)",
                "management": "\(settings.managementHost):\(managementServer.port)",
                "management_port": "\(managementServer.port)",
            ])

        var received: Int32 = 0
        sigwait(&signals, &received)
        let shutdown = GracefulShutdown(
            inference: inference, servers: [server, managementServer], manager: manager,
            timeout: settings.shutdownTimeout, logger: logger)
        guard shutdown.run(signal: received, signals: signals) else { throw ExitCode(1) }
    }

    /// Flags, then `SWERVE_*` variables, then defaults.
    struct Settings {
        var modelStore: String
        var http: HTTPServerConfiguration
        var managementHost: String
        var managementPort: Int
        var device: DeviceSelection
        var batching: BatchingOverrides
        var threads: Int
        var logger: Logger
        var accessLog: Bool
        var shutdownTimeout: Double
        var metrics: Bool
        var pollInterval: Double
        var managementToken: String?
        var readyWhenAny: Bool
        var maxRequestMemory: Int
        var store: StorePolicy
        var loadWorkers: Int
    }

    func resolve() throws -> Settings {
        func int(_ flag: Int?, _ env: String, _ fallback: Int, _ name: String) throws -> Int {
            if let flag { return flag }
            guard let text = environment(env) else { return fallback }
            guard let v = Int(text) else { throw ValidationError("SWERVE_\(env)=\(text) is not an integer; set \(name) to a number") }
            return v
        }
        let levelText = logLevel ?? environment("LOG_LEVEL") ?? "info"
        guard let level = Logger.Level(rawValue: levelText) else {
            throw ValidationError("unknown log level '\(levelText)'; use trace, debug, info, notice, warning, error or critical")
        }
        let formatText = logFormat ?? environment("LOG_FORMAT") ?? "text"
        guard let format = LogFormat(rawValue: formatText) else {
            throw ValidationError("unknown log format '\(formatText)'; use text or json")
        }
        let deviceText = device ?? environment("DEVICE") ?? "auto"
        guard let selection = DeviceSelection(parsing: deviceText) else {
            throw ValidationError("unknown device '\(deviceText)'; use auto, cpu, cuda or cuda:N")
        }
        var http = HTTPServerConfiguration()
        http.host = host ?? environment("HOST") ?? "0.0.0.0"
        http.port = try int(port, "PORT", 8000, "--port")
        http.maxBodySize = try int(maxBodySize, "MAX_BODY_SIZE", 64 << 20, "--max-body-size")
        http.threads = try int(httpThreads, "HTTP_THREADS", http.threads, "--http-threads")
        http.maxBufferedBodyBytes = try int(
            maxBufferedBodyBytes, "MAX_BUFFERED_BODY_BYTES", defaultMaxBufferedBodyBytes(maxBodySize: http.maxBodySize),
            "--max-buffered-body-bytes")
        let managementPort = try int(managementPort, "MANAGEMENT_PORT", 8001, "--management-port")
        for (name, p) in [("--port", http.port), ("--management-port", managementPort)] where !(0...65535).contains(p) {
            throw ValidationError("\(name) \(p) is not a port number (0-65535)")
        }
        guard http.maxBodySize > 0 else { throw ValidationError("--max-body-size must be positive") }
        guard http.threads > 0 else { throw ValidationError("--http-threads must be positive") }
        guard http.maxBufferedBodyBytes >= http.maxBodySize else {
            throw ValidationError(
                "--max-buffered-body-bytes \(http.maxBufferedBodyBytes) is smaller than --max-body-size \(http.maxBodySize), "
                    + "so the largest accepted body could never be read; raise it (default: a quarter of memory, at least 4 x --max-body-size)")
        }
        let poll = pollInterval ?? environment("POLL_INTERVAL").flatMap(Double.init) ?? 2
        guard poll >= 0 else { throw ValidationError("--poll-interval must be 0 (off) or a positive number of seconds") }
        let readyText = readyWhen ?? environment("READY_WHEN") ?? "all"
        guard readyText == "all" || readyText == "any" else {
            throw ValidationError("unknown --ready-when '\(readyText)'; use all or any")
        }
        let managementHost = managementHost ?? environment("MANAGEMENT_HOST") ?? "127.0.0.1"
        let token = (managementToken ?? environment("MANAGEMENT_TOKEN")).flatMap { $0.isEmpty ? nil : $0 }
        if token == nil && !ManagementAPI.isLoopback(managementHost) {
            throw ValidationError(
                "--management-host \(managementHost) is reachable from other machines, and the management API can load and unload models; "
                    + "set --management-token (or SWERVE_MANAGEMENT_TOKEN) to a secret, or bind it to 127.0.0.1")
        }
        let shutdownText = environment("SHUTDOWN_TIMEOUT")
        let shutdownTimeout = try shutdownTimeout ?? shutdownText.map { text in
            guard let v = Double(text) else {
                throw ValidationError("SWERVE_SHUTDOWN_TIMEOUT=\(text) is not a number of seconds; set it to e.g. 30")
            }
            return v
        } ?? 30
        guard shutdownTimeout >= 0 else { throw ValidationError("--shutdown-timeout must be 0 or a positive number of seconds") }
        func flag(_ env: String) -> Bool? { environment(env).map { ["1", "true", "yes", "on"].contains($0.lowercased()) } }

        func optionalInt(_ flag: Int?, _ env: String, _ name: String, minimum: Int) throws -> Int? {
            let value = try flag ?? environment(env).map { text in
                guard let v = Int(text) else { throw ValidationError("SWERVE_\(env)=\(text) is not an integer; set \(name) to a number") }
                return v
            }
            if let value, value < minimum { throw ValidationError("\(name) must be at least \(minimum)") }
            return value
        }
        var batching = BatchingOverrides()
        batching.maxBatchSize = try optionalInt(maxBatchSize, "MAX_BATCH_SIZE", "--max-batch-size", minimum: 0)
        batching.maxQueueDelayMicros = try optionalInt(maxQueueDelayUs, "MAX_QUEUE_DELAY_US", "--max-queue-delay-us", minimum: 0)
        batching.maxQueueSize = try optionalInt(maxQueueSize, "MAX_QUEUE_SIZE", "--max-queue-size", minimum: 1)
        batching.defaultTimeoutMicros = try optionalInt(defaultTimeoutUs, "DEFAULT_TIMEOUT_US", "--default-timeout-us", minimum: 0)
        batching.instanceCount = try optionalInt(instances, "INSTANCES", "--instances", minimum: 1)
        if adaptiveBatching || environment("ADAPTIVE_BATCHING") == "1" { batching.adaptive = true }
        let requestMemoryText = maxRequestMemory ?? environment("MAX_REQUEST_MEMORY")
        let requestMemory = try requestMemoryText.map { text in
            guard let bytes = MemoryLimits.parse(text), bytes > 0 else {
                throw ValidationError(
                    "--max-request-memory '\(text)' is not a positive byte count; use e.g. 4G, 512M or 1073741824")
            }
            return bytes
        } ?? MemoryLimits.defaultRequestBytes
        let budgetText = memoryBudget ?? environment("MEMORY_BUDGET")
        var store = StorePolicy()
        if let budgetText {
            guard let bytes = MemoryLimits.parse(budgetText), bytes > 0 else {
                throw ValidationError("--memory-budget '\(budgetText)' is not a positive byte count; use e.g. 8G, 250M or 1073741824")
            }
            store.memoryBudget = bytes
        }
        store.loadOnDemand = loadOnDemand || (flag("LOAD_ON_DEMAND") ?? false)
        let waitText = environment("LOAD_WAIT")
        store.loadWait = try loadWait ?? waitText.map { text in
            guard let v = Double(text) else { throw ValidationError("SWERVE_LOAD_WAIT=\(text) is not a number of seconds; set it to e.g. 30") }
            return v
        } ?? 30
        guard store.loadWait > 0 else { throw ValidationError("--load-wait must be a positive number of seconds") }
        let workers = try optionalInt(loadWorkers, "LOAD_WORKERS", "--load-workers", minimum: 1) ?? 2
        let cores = max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
        let threadBudget = try optionalInt(threads, "THREADS", "--threads", minimum: 1) ?? cores

        LoggingSystem.bootstrap { label in SwerveLogHandler(label: label, level: level, format: format) }
        return Settings(
            modelStore: modelStore ?? environment("MODEL_STORE") ?? "./models", http: http,
            managementHost: managementHost,
            managementPort: managementPort, device: selection, batching: batching, threads: threadBudget,
            logger: Logger(label: "swerve"),
            accessLog: accessLog || (flag("ACCESS_LOG") ?? false), shutdownTimeout: shutdownTimeout,
            metrics: metrics ?? flag("METRICS") ?? true,
            pollInterval: poll, managementToken: token, readyWhenAny: readyText == "any",
            maxRequestMemory: requestMemory, store: store, loadWorkers: workers)
    }
}
