import Batching
import Engine
import Synchronization

/// Lifecycle of a model version (TF Serving's names, plus FAILED); the diagram and the rules of
/// each transition are in docs/model-store.md:
///
///     START --> LOADING --> AVAILABLE --> UNLOADING --> END
///     any state --> FAILED (with the error)
///
/// START: seen on disk, waiting for its files to be stable. LOADING: parse, plan, warm-up.
/// AVAILABLE: serving. UNLOADING: out of the registry's serving set, waiting for requests in
/// flight on it to finish. END: memory released. FAILED: parked until its files change.
public enum VersionState: String, Sendable {
    case start = "START"
    case loading = "LOADING"
    case available = "AVAILABLE"
    case unloading = "UNLOADING"
    case end = "END"
    case failed = "FAILED"
    /// Known and selected, not in memory: an on-demand model before its first request, or a
    /// version evicted to make room (or idle); the next request loads it.
    case unloaded = "UNLOADED"
}

/// A loaded, servable model version: its session and the scheduler requests go through.
///
/// Immutable; shared by the registry and every request in flight on it, so a version that is
/// swapped out stays alive until its last request finishes.
public final class ServableVersion: Sendable {
    public let model: String
    public let version: Int
    public let path: String
    public let session: InferenceSession
    public let scheduler: any InferenceScheduler
    /// The scheduling options in force (config.json with command-line overrides).
    public let batching: BatchingOptions
    /// Something the load noticed that does not stop the version serving (a warm-up on made-up
    /// shapes that failed); shown as the version's reason.
    public let warning: String?
    /// Seconds the load took (parse, plan, warm-up).
    public let loadSeconds: Double
    /// Monotonic milliseconds of the last request that used it (LRU eviction).
    private let lastUsedMillis = Atomic<Int>(0)
    /// Requests on it not yet answered: a version with any is never evicted.
    private let requestsInFlight = Atomic<Int>(0)
    /// Cold start, in monotonic microseconds: when the load was asked for, when the version
    /// became AVAILABLE, when its first request started, and the cold-start time once answered.
    private let loadRequestedMicros = Atomic<Int>(0)
    private let availableMicros = Atomic<Int>(0)
    private let firstRequestMicros = Atomic<Int>(0)
    private let coldStartMicros = Atomic<Int>(0)

    public init(
        model: String, version: Int, path: String, session: InferenceSession, scheduler: any InferenceScheduler,
        batching: BatchingOptions = BatchingOptions(), warning: String? = nil, loadSeconds: Double = 0
    ) {
        self.warning = warning
        self.loadSeconds = loadSeconds
        lastUsedMillis.store(ServableVersion.nowMillis(), ordering: .relaxed)
        self.model = model
        self.version = version
        self.path = path
        self.session = session
        self.scheduler = scheduler
        self.batching = batching
    }

    /// A request starts on this version (call `requestFinished` when it is answered).
    public func requestStarted() {
        requestsInFlight.add(1, ordering: .relaxed)
        lastUsedMillis.store(ServableVersion.nowMillis(), ordering: .relaxed)
        _ = firstRequestMicros.compareExchange(expected: 0, desired: ServableVersion.nowMicros(), ordering: .relaxed)
    }

    public func requestFinished() {
        requestsInFlight.subtract(1, ordering: .relaxed)
        lastUsedMillis.store(ServableVersion.nowMillis(), ordering: .relaxed)
        let available = availableMicros.load(ordering: .relaxed)
        guard available > 0, coldStartMicros.load(ordering: .relaxed) == 0 else { return }
        // The load (asked for -> AVAILABLE) plus the first request (its start -> its answer):
        // files to first answer, without the time the version sat idle before any request.
        let now = ServableVersion.nowMicros()
        let first = max(firstRequestMicros.load(ordering: .relaxed), available)
        let cold = (available - loadRequestedMicros.load(ordering: .relaxed)) + (now - first)
        _ = coldStartMicros.compareExchange(expected: 0, desired: max(cold, 1), ordering: .relaxed)
    }

    /// Recorded by the store when the version becomes AVAILABLE: `requested` is when its load
    /// was asked for (monotonic seconds).
    public func markAvailable(loadRequestedAt requested: Double) {
        loadRequestedMicros.store(Int(requested * 1e6), ordering: .relaxed)
        availableMicros.store(ServableVersion.nowMicros(), ordering: .relaxed)
    }

    /// Files to first answer: the load (from when it was asked for, queueing and waiting for
    /// memory included) plus the first request's time; nil until a request has been answered.
    public var coldStartSeconds: Double? {
        let micros = coldStartMicros.load(ordering: .relaxed)
        return micros > 0 ? Double(micros) / 1e6 : nil
    }

    static func nowMicros() -> Int { Int(monotonicSeconds() * 1e6) }

    /// Marks the version used now (a load waiter got it), so that it is not the next evicted.
    public func touch() { lastUsedMillis.store(ServableVersion.nowMillis(), ordering: .relaxed) }

    /// Monotonic milliseconds of the last use.
    public var lastUsed: Int { lastUsedMillis.load(ordering: .relaxed) }
    /// Requests in flight on it.
    public var inFlight: Int { requestsInFlight.load(ordering: .relaxed) }

    static func nowMillis() -> Int { Int(monotonicSeconds() * 1000) }

    /// The memory this version holds now, measured (`MemoryFootprint`).
    public var memory: MemoryFootprint { session.memoryFootprint() }

    /// The last reference is gone (no request in flight, out of the registry): stop the
    /// scheduler's workers.
    deinit { scheduler.stop() }
}

/// The state of one version as the registry reports it.
public struct VersionStatus: Sendable {
    public var version: Int
    public var state: VersionState
    /// Why the version failed, when it did.
    public var error: String?
    /// Set when AVAILABLE.
    public var servable: ServableVersion?

    public init(version: Int, state: VersionState, error: String? = nil, servable: ServableVersion? = nil) {
        self.version = version
        self.state = state
        self.error = error
        self.servable = servable
    }
}

/// Everything the registry knows about one model.
public struct ModelStatus: Sendable {
    public var name: String
    public var versions: [Int: VersionStatus] = [:]
    /// A model-level problem (a config that does not parse), when there is one.
    public var error: String?
    /// Label -> version (`version_labels`), only ever pointing at versions that were AVAILABLE
    /// when the mapping was made.
    public var labels: [String: Int] = [:]

    public init(name: String) { self.name = name }

    /// The highest AVAILABLE version: what requests without a version get.
    public var defaultVersion: ServableVersion? {
        versions.values.filter { $0.state == .available }.max { $0.version < $1.version }?.servable
    }

    /// Whether the model is still working towards serving: a version is START or LOADING while
    /// no version of the model is AVAILABLE. (A version loading next to an AVAILABLE one is a hot
    /// swap: the model keeps serving.) FAILED versions are parked, not pending.
    public var isPending: Bool {
        defaultVersion == nil && !loadsOnDemand && versions.values.contains { $0.state == .start || $0.state == .loading }
    }

    /// Set by the store when the model loads on demand (`load: on_demand`): a request for it
    /// waits for a load instead of failing at once, and it never holds readiness back.
    public var loadsOnDemand = false

    /// Versions newest first.
    public var sortedVersions: [VersionStatus] { versions.values.sorted { $0.version > $1.version } }
}

/// The answer to "which version serves this request?".
public enum ServableLookup: Sendable {
    case found(ServableVersion)
    case modelNotFound
    case versionNotFound
    /// The model or version exists but cannot serve; the reason says why.
    case unavailable(String)
}

/// The answer to "which version does this label name?".
public enum LabelLookup: Sendable, Equatable {
    case found(Int)
    case modelNotFound
    case labelNotFound(known: [String])
}

/// An immutable view of every model and version at one instant.
public struct RegistrySnapshot: Sendable {
    public let models: [String: ModelStatus]

    public func servable(model: String, version: Int?) -> ServableLookup {
        guard let status = models[model] else { return .modelNotFound }
        guard let version else {
            if let servable = status.defaultVersion { return .found(servable) }
            let reasons = status.sortedVersions.compactMap { v in v.error.map { "version \(v.version): \($0)" } }
            let why = status.error ?? (reasons.isEmpty ? "no version is loaded" : reasons.joined(separator: "; "))
            return .unavailable("model '\(model)' has no available version: \(why)")
        }
        guard let v = status.versions[version] else { return .versionNotFound }
        if v.state == .available, let servable = v.servable { return .found(servable) }
        let why = v.error.map { ": \($0)" } ?? ""
        return .unavailable("model '\(model)' version \(version) is \(v.state.rawValue)\(why)")
    }

    /// True when no model is pending (see `ModelStatus.isPending`): every model either serves or
    /// has failed for a reason its status reports.
    public var isSettled: Bool { pendingModels.isEmpty }

    /// Models still working towards their first AVAILABLE version, sorted.
    public var pendingModels: [String] { models.values.filter(\.isPending).map(\.name).sorted() }

    /// The version a label points at.
    public func version(model: String, label: String) -> LabelLookup {
        guard let status = models[model] else { return .modelNotFound }
        guard let v = status.labels[label] else { return .labelNotFound(known: status.labels.keys.sorted()) }
        return .found(v)
    }
}

/// The registry of models and versions: the one place that says what serves.
///
/// Writers (the loader) replace entries under a lock; readers take an immutable snapshot, so a
/// request never sees a half-updated state. Thread-safe.
public final class ModelRegistry: Sendable {
    private let state = Mutex<[String: ModelStatus]>([:])

    public init() {}

    public func snapshot() -> RegistrySnapshot { RegistrySnapshot(models: state.withLock { $0 }) }

    /// Applies `change` to one model's status (created when absent; removed when set to nil).
    public func update(_ model: String, _ change: (inout ModelStatus?) -> Void) {
        state.withLock { models in
            var entry = models[model] ?? ModelStatus(name: model)
            var optional: ModelStatus? = entry
            change(&optional)
            if let updated = optional { entry = updated; models[model] = entry } else { models[model] = nil }
        }
    }

    /// Sets one version's state.
    public func setVersion(_ model: String, _ status: VersionStatus) {
        update(model) { $0?.versions[status.version] = status }
    }

    /// Removes one version's entry (after END, once its directory is gone).
    public func removeVersion(_ model: String, _ version: Int) {
        update(model) { $0?.versions[version] = nil }
    }
}
