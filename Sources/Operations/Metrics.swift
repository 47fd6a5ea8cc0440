import Engine
import ModelStore
import Prometheus
import Synchronization

/// Every metric of the server, in one Prometheus registry: per model version (`ModelMetrics`),
/// model loads, versions by state, HTTP requests by route, and the `process_*` metrics. Renders
/// the exposition text for `GET /metrics`. Names and labels: `docs/operations.md`.
///
/// Created once by the daemon and shared by the inference API and the store loader; thread-safe.
public final class ServerMetrics: Sendable {
    let families: MetricFamilies
    /// Metrics of requests that reached no model version (a 404, a bad version): model = version = "".
    public let unresolved: ModelMetrics
    private let versions = Mutex<[VersionKey: ModelMetrics]>([:])
    private let httpCounters = Mutex<[HTTPKey: Counter]>([:])
    /// (model, state) gauges set at each scrape; models seen once stay (at 0) so series do not vanish.
    private let stateGauges = Mutex<[String: [Gauge]]>([:])
    /// `swerve_model_memory_bytes` per loaded version, set at each scrape; a version's series goes
    /// when it is no longer loaded.
    private let memoryGauges = Mutex<[VersionKey: Gauge]>([:])
    /// Wall-clock start of the process, for `process_start_time_seconds`.
    let startTime: Double
    /// Reads the GPUs at each scrape for the `swerve_gpu_*` metrics; nil = none exported.
    let gpuSamples: (@Sendable () -> [GPUSample])?

    struct VersionKey: Hashable { let model: String, version: String }
    struct HTTPKey: Hashable { let route: String, method: String, status: Int }

    /// `gpuSamples`: the GPU source (NVML), read at each scrape; nil when there is none.
    public init(gpuSamples: (@Sendable () -> [GPUSample])? = nil) {
        self.gpuSamples = gpuSamples
        families = MetricFamilies(registry: PrometheusCollectorRegistry())
        unresolved = ModelMetrics(model: "", version: "", families: families)
        families.registry.makeGauge(descriptor: families.cpuLevel, labels: [("level", CPULevel.active.rawValue)]).set(to: 1)
        startTime = ProcessMetrics.startTime() ?? wallClockNow()
    }

    /// The metrics of one version, created on first use. Pass the result as the version's
    /// `SchedulerObserver`.
    public func model(_ model: String, version: Int) -> ModelMetrics { self.model(model, version: String(version)) }

    public func model(_ model: String, version: String) -> ModelMetrics {
        let key = VersionKey(model: model, version: version)
        if let m = versions.withLock({ $0[key] }) { return m }
        // Made outside the lock (the registry has its own); the first one stored wins.
        let made = ModelMetrics(model: model, version: version, families: families)
        return versions.withLock { all in
            if let m = all[key] { return m }
            all[key] = made
            return made
        }
    }

    /// Drops the metrics of a version that has ended (unloaded, its last request done): its
    /// series leave `/metrics` and the status page, so that hot swaps do not add series (and
    /// memory: about 30 KB a version) without end. A version loaded again starts from zero.
    public func forget(model: String, version: Int) {
        guard let gone = versions.withLock({ $0.removeValue(forKey: VersionKey(model: model, version: String(version))) })
        else { return }
        gone.unregister(from: families.registry)
    }

    /// Every version with metrics, sorted by model then version.
    public var allModels: [ModelMetrics] {
        versions.withLock { Array($0.values) }.sorted {
            ($0.model, Int($0.version) ?? 0) < ($1.model, Int($1.version) ?? 0)
        }
    }

    /// One HTTP request answered on the inference port. `route` is a route pattern or `unmatched`.
    public func httpRequest(route: String, method: String, status: Int) {
        let known = ["GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH"]
        let key = HTTPKey(route: route, method: known.contains(method) ? method : "other", status: status)
        if let c = httpCounters.withLock({ $0[key] }) {
            c.increment()
            return
        }
        let counter = families.registry.makeCounter(
            descriptor: families.http,
            labels: [("route", key.route), ("method", key.method), ("status", String(status))])
        httpCounters.withLock { $0[key] = counter }
        counter.increment()
    }

    /// A version load finished (`swerve_model_loads_total`, `swerve_model_load_duration_seconds`).
    public func modelLoaded(model: String, succeeded: Bool, seconds: Double) {
        let r = families.registry
        r.makeCounter(descriptor: families.loads, labels: [("model", model), ("outcome", succeeded ? "success" : "failure")])
            .increment()
        r.makeValueHistogram(descriptor: families.loadDuration, labels: [("model", model)], buckets: MetricFamilies.loadBuckets)
            .record(seconds)
    }

    /// The store's memory budget, exported as `swerve_memory_budget_bytes` (0 = not exported).
    public let memoryBudget = Atomic<Int>(0)

    /// Versions evicted since the start, for the status page.
    public let evictionCount = Atomic<Int>(0)

    /// A version was evicted (`swerve_model_evictions_total{model,reason}`).
    public func modelEvicted(model: String, reason: String) {
        evictionCount.add(1, ordering: .relaxed)
        families.registry.makeCounter(descriptor: families.evictions, labels: [("model", model), ("reason", reason)]).increment()
    }

    /// A request waited for an on-demand load (`swerve_model_load_wait_seconds{model,outcome}`).
    public func loadWaited(model: String, seconds: Double, loaded: Bool) {
        families.registry.makeValueHistogram(
            descriptor: families.loadWait, labels: [("model", model), ("outcome", loaded ? "loaded" : "failed")],
            buckets: MetricFamilies.loadBuckets
        ).record(seconds)
    }

    /// Sets `swerve_model_versions{model,state}` from a registry snapshot.
    func updateVersionStates(_ snapshot: RegistrySnapshot) {
        let states: [VersionState] = [.start, .loading, .available, .unloading, .end, .failed, .unloaded]
        stateGauges.withLock { gauges in
            for name in snapshot.models.keys where gauges[name] == nil {
                gauges[name] = states.map { state in
                    families.registry.makeGauge(descriptor: families.versions, labels: [("model", name), ("state", state.rawValue)])
                }
            }
            for (name, row) in gauges {
                let versions = snapshot.models[name]?.versions.values.map(\.state) ?? []
                for (i, state) in states.enumerated() {
                    row[i].set(Double(versions.filter { $0 == state }.count))
                }
            }
        }
    }

    /// Sets `swerve_model_memory_bytes{model,version}` from a registry snapshot (measured now).
    func updateMemory(_ snapshot: RegistrySnapshot) {
        var current: [VersionKey: Int] = [:]
        for (name, model) in snapshot.models {
            for v in model.versions.values {
                if let servable = v.servable { current[VersionKey(model: name, version: String(v.version))] = servable.memory.total }
            }
        }
        memoryGauges.withLock { gauges in
            for (key, gauge) in gauges where current[key] == nil {
                families.registry.unregisterGauge(gauge)
                gauges[key] = nil
            }
            let budget = memoryBudget.load(ordering: .relaxed)
            if budget > 0 {
                families.registry.makeGauge(descriptor: families.budget).set(Double(budget))
                families.registry.makeGauge(descriptor: families.resident).set(Double(current.values.reduce(0, +)))
            }
            for (key, bytes) in current {
                let gauge = gauges[key] ?? families.registry.makeGauge(
                    descriptor: families.memory, labels: [("model", key.model), ("version", key.version)])
                gauges[key] = gauge
                gauge.set(Double(bytes))
            }
        }
    }

    /// The whole exposition text: the registry's families, then the `process_*` metrics.
    public func render(_ snapshot: RegistrySnapshot) -> [UInt8] {
        updateVersionStates(snapshot)
        updateMemory(snapshot)
        var out: [UInt8] = []
        out.reserveCapacity(16 << 10)
        families.registry.emit(into: &out)
        ProcessMetrics.render(startTime: startTime, into: &out)
        if let gpuSamples { GPUMetrics.render(gpuSamples(), into: &out) }
        return out
    }
}
