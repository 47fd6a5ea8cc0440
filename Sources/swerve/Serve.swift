import API
import ArgumentParser
import Engine
import Glibc
import HTTP
import Logging
import ModelStore

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

    @Option(help: "HTTP threads (each with its own epoll loop). [default: number of cores] [env: SWERVE_HTTP_THREADS]")
    var httpThreads: Int?

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical. [default: info] [env: SWERVE_LOG_LEVEL]")
    var logLevel: String?

    @Option(help: "Log format: text (key=value) or json. [default: text] [env: SWERVE_LOG_FORMAT]")
    var logFormat: String?

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
        let device: Device
        do {
            device = try Device.resolve(settings.device)
        } catch {
            logger.critical("cannot start: \(error)", metadata: ["event": "device_unavailable"])
            throw ExitCode(2)
        }
        logger.info("device selected", metadata: ["event": "device", "requested": "\(settings.device)", "device": "\(device)"])

        let registry = ModelRegistry()
        let inference = InferenceAPI(registry: registry, logger: logger)
        let loader = StoreLoader(
            layout: StoreLayout(root: settings.modelStore),
            sessionOptions: SessionOptions(device: device, blasThreads: 1), logger: logger)
        let manager = StoreManager(loader: loader, registry: registry, pollInterval: settings.pollInterval)
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
        // No snapshot kept in a local: it would hold every version it saw until shutdown.
        logger.info(
            "serving",
            metadata: [
                "event": "listening", "http": "\(settings.http.host):\(server.port)", "http_port": "\(server.port)",
                "management": "\(settings.managementHost):\(managementServer.port)",
                "management_port": "\(managementServer.port)",
                "models": "\(registry.snapshot().models.count)",
            ])

        var received: Int32 = 0
        sigwait(&signals, &received)
        logger.info("shutting down", metadata: ["event": "shutdown", "signal": "\(received == SIGTERM ? "SIGTERM" : "SIGINT")"])
        server.quiesce()
        managementServer.quiesce()
        server.stop()
        managementServer.stop()
        logger.info("stopped", metadata: ["event": "stopped"])
    }

    /// Flags, then `SWERVE_*` variables, then defaults.
    struct Settings {
        var modelStore: String
        var http: HTTPServerConfiguration
        var managementHost: String
        var managementPort: Int
        var device: DeviceSelection
        var logger: Logger
        var pollInterval: Double = 2
        var managementToken: String?
        var readyWhenAny = false
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
        let managementPort = try int(managementPort, "MANAGEMENT_PORT", 8001, "--management-port")
        for (name, p) in [("--port", http.port), ("--management-port", managementPort)] where !(0...65535).contains(p) {
            throw ValidationError("\(name) \(p) is not a port number (0-65535)")
        }
        guard http.maxBodySize > 0 else { throw ValidationError("--max-body-size must be positive") }
        guard http.threads > 0 else { throw ValidationError("--http-threads must be positive") }
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

        LoggingSystem.bootstrap { label in SwerveLogHandler(label: label, level: level, format: format) }
        return Settings(
            modelStore: modelStore ?? environment("MODEL_STORE") ?? "./models", http: http,
            managementHost: managementHost,
            managementPort: managementPort, device: selection, logger: Logger(label: "swerve"),
            pollInterval: poll, managementToken: token, readyWhenAny: readyText == "any")
    }
}
