import API
import Glibc
import HTTP
import Logging
import ModelStore

/// What the daemon does after SIGTERM or SIGINT: report not-ready, stop accepting connections,
/// finish every request already accepted (within `timeout` seconds), stop the listeners, unload
/// the models. A second signal, or the timeout, abandons the requests still in flight.
///
/// Used once, by the main thread, after `sigwait` returned.
struct GracefulShutdown {
    let inference: InferenceAPI
    /// The inference server first, then the management server.
    let servers: [HTTPServer]
    /// Stops the store (no more polls or loads, every version unloaded) once requests are done.
    let manager: StoreManager
    let timeout: Double
    let logger: Logger

    /// Runs the sequence. Returns true when every accepted request was answered.
    func run(signal received: Int32, signals: sigset_t) -> Bool {
        let started = monotonic()
        let inFlight = servers.reduce(0) { $0 + $1.requestsInFlight }
        logger.info(
            "shutting down: refusing new connections, finishing the requests in flight",
            metadata: [
                "event": "shutdown", "signal": "\(received == SIGTERM ? "SIGTERM" : "SIGINT")",
                "in_flight": "\(inFlight)", "timeout_s": "\(timeout)",
            ])
        inference.beginDrain()
        for server in servers { server.quiesce() }

        // Wait for the requests in flight; sigtimedwait is the sleep, so a second signal cuts it short.
        // Done means none in flight for 5 checks in a row: a connection accepted just before the
        // quiesce, whose request a busy thread has not parsed yet, starts its request within them.
        var waitSet = signals
        var remaining = servers.reduce(0) { $0 + $1.requestsInFlight }
        var idleChecks = 0
        var forced = false
        while idleChecks < 5 && monotonic() - started < timeout {
            var pause = timespec(tv_sec: 0, tv_nsec: 10_000_000)
            if sigtimedwait(&waitSet, nil, &pause) > 0 {
                forced = true
                break
            }
            remaining = servers.reduce(0) { $0 + $1.requestsInFlight }
            idleChecks = remaining == 0 ? idleChecks + 1 : 0
        }
        if remaining > 0 {
            // libmicrohttpd must not be stopped with suspended connections: exit without stopping it.
            logger.error(
                forced
                    ? "second signal: exiting without finishing the requests in flight"
                    : "shutdown timeout: exiting without finishing the requests in flight; raise --shutdown-timeout to give them longer",
                metadata: [
                    "event": "shutdown_abandoned", "in_flight": "\(remaining)",
                    "duration_ms": "\(Int((monotonic() - started) * 1000))",
                ])
            return false
        }
        for server in servers { server.stop() }
        manager.stop()
        logger.info(
            "stopped", metadata: ["event": "stopped", "duration_ms": "\(Int((monotonic() - started) * 1000))"])
        return true
    }

    private func monotonic() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }
}
