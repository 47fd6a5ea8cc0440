import Dispatch
import Logging
import Synchronization

/// Keeps the registry in step with the store: the lifecycle state machine of every version, the
/// poller, explicit loads and unloads (management API), labels, and draining old versions.
///
/// Decisions run on one serial queue (`queue`), which owns `state`: at most one reconcile runs at
/// a time, and every version state change goes through `transition` (StoreManager+Lifecycle).
/// Loads run on a small pool of load workers (`maxConcurrentLoads`, one load at a time per
/// model; StoreManager+LoadWorkers), so a slow model does not hold up polls, unloads and
/// management calls of the others. The rules (availability first, stable files, parked
/// failures) are in docs/model-store.md. Thread-safe: every public method may be called from any
/// thread; completions run on the manager's queue.
public final class StoreManager: Sendable {
    /// How a reconcile treats versions it has not loaded yet.
    enum Mode: Sendable {
        /// Startup: files present before the daemon started are taken as complete.
        case startup
        /// Poller: a new or changed version loads only once its files are the same two polls running.
        case poll
        /// Management `load`: the caller says the files are complete; also clears an explicit unload.
        case explicit
    }

    /// What the manager remembers about one model between scans (only touched on `queue`).
    struct Track: Sendable {
        var config = ModelConfig()
        var configStamp: FileStamp?
        var hasValidConfig = false
        var configError: String?
        /// Stamps seen at the previous scan, per version.
        var stamps: [Int: FileStamp] = [:]
        /// Stamp of each FAILED version when it failed: retried only when this changes.
        var failed: [Int: FileStamp] = [:]
        var loaded: [Int: ServableVersion] = [:]
        var labelErrors: [String] = []
        /// Why the model has nothing to serve, when the policy selects nothing.
        var note: String?
        /// Why a version outside the policy serves (the policy's versions are not AVAILABLE).
        var fallbackNote: String?
        /// A version whose directory is gone that still serves because no other version can.
        var removedButServing: Int?
        /// Set by the management `unload`: the poller leaves the model alone until a `load`.
        var unloadedByRequest = false
        /// The version a load worker is loading (or that waits for one): one at a time per model.
        var loading: Int?
        /// Called once the model has no load queued or running (management `load`).
        var settledWaiters: [@Sendable () -> Void] = []
        /// A request asked for this on-demand model: load its selected versions.
        var demanded = false
        /// Requests waiting for an on-demand load (`acquire`).
        var loadWaiters: [LoadWaiter] = []
        /// Measured bytes of each version when it last loaded (the next load's estimate).
        var measured: [Int: Int] = [:]
        /// Why a version was unloaded (eviction, idle), shown once it is UNLOADED.
        var unloadReasons: [Int: String] = [:]
    }

    /// One version waiting for, or running on, a load worker.
    struct LoadJob: Sendable {
        var model: String
        var version: Int
        var stamp: FileStamp
        var config: ModelConfig
        /// The reconcile mode that asked for it; the follow-up reconcile uses the same rules.
        var mode: Mode
        /// Bytes reserved against the budget while it runs.
        var reserved = 0
        /// When the load was asked for (monotonic seconds), for the cold-start time.
        var requested = monotonicSeconds()
    }

    struct Draining: Sendable {
        weak var servable: ServableVersion?
        var model: String
        var version: Int
    }

    struct State: Sendable {
        var tracks: [String: Track] = [:]
        /// Unloaded versions waiting for their requests in flight to finish. Held weakly: the
        /// version's memory goes with the last request's reference, and then this turns nil.
        var draining: [Draining] = []
        var drainScheduled = false
        /// Loads waiting for a free worker, in order.
        var pendingLoads: [LoadJob] = []
        /// Loads running on workers now.
        var activeLoads = 0
        /// Called once no model has a load queued or running (startup, rescan, `loadAllNow`).
        var idleWaiters: [@Sendable () -> Void] = []
        /// Set by `stop`: no new loads, no polls.
        var stopping = false
        /// Estimated bytes of the loads running now (counted against the budget until measured).
        var reservedBytes = 0
        var nextWaiter = 0
        /// A retry of `pumpLoads` is scheduled (a load waits for memory to free up).
        var pumpRetryScheduled = false
    }

    public let loader: StoreLoader
    public let registry: ModelRegistry
    /// Seconds between polls; 0 = no polling.
    public let pollInterval: Double
    let queue = DispatchQueue(label: "swerve.store-manager")
    let state = Mutex(State())
    var layout: StoreLayout { loader.layout }
    var logger: Logger { loader.logger }

    /// Most loads running at once (the load workers).
    public let maxConcurrentLoads: Int

    /// Memory budget and on-demand loading (StoreManager+Budget).
    public let policy: StorePolicy

    /// `maxConcurrentLoads`: the load workers (default 2; each load is mostly one thread's work).
    public init(
        loader: StoreLoader, registry: ModelRegistry, pollInterval: Double, maxConcurrentLoads: Int = 2,
        policy: StorePolicy = StorePolicy()
    ) {
        self.policy = policy
        self.loader = loader
        self.registry = registry
        self.pollInterval = pollInterval
        self.maxConcurrentLoads = max(1, maxConcurrentLoads)
    }

    /// Scans the store now and registers every model's aspired versions as START (so readiness
    /// knows what to wait for); then loads them in the background, calls `loaded`, and starts the
    /// poller. Throws only when the store cannot be read.
    public func start(loaded: @escaping @Sendable () -> Void = {}) throws {
        fixLargeAllocationThreshold()
        let models = try layout.scan()
        if models.isEmpty {
            logger.warning("the model store holds no models", metadata: ["event": "store_empty", "path": "\(layout.root)"])
        }
        for entry in models {
            // A config that does not parse: nothing will load, so nothing to wait for.
            guard let config = entry.configPath.map({ try? ModelConfig.parse(readFile($0), path: $0) }) ?? ModelConfig()
            else { continue }
            let aspired = config.versionPolicy.select(from: entry.versions)
            // An on-demand model is listed, not loaded; it never holds readiness back.
            let onDemand = (config.load ?? (policy.loadOnDemand ? .onDemand : .always)) == .onDemand
            for v in aspired {
                transition(
                    entry.name, v, to: onDemand ? .unloaded : .start,
                    error: onDemand ? "not loaded: the model loads on demand; the first request loads it" : nil)
            }
            registry.update(entry.name) { $0?.loadsOnDemand = onDemand }
        }
        queue.async {
            self.scanAll(.startup)
            self.whenIdle {
                loaded()
                self.schedulePoll()
                self.scheduleIdleSweep()
            }
        }
    }

    /// Loads every model and version of the store now and returns when the loads are done
    /// (tests, tools). Not on the manager's queue.
    public func loadAllNow() throws {
        _ = try layout.scan()
        queue.sync { scanAll(.startup) }
        waitUntilIdle()
    }

    /// Blocks the calling thread (not the manager's queue) until no load is queued or running.
    public func waitUntilIdle() {
        let done = DispatchSemaphore(value: 0)
        queue.async { self.whenIdle { done.signal() } }
        done.wait()
    }

    /// Rescans the whole store now (as the poller would, without the stability wait); completes
    /// once the loads it started are done.
    public func rescan(completion: @escaping @Sendable () -> Void) {
        queue.async {
            self.scanAll(.explicit)
            self.whenIdle(completion)
        }
    }

    private func schedulePoll() {
        guard pollInterval > 0 else { return }
        queue.asyncAfter(deadline: .now() + pollInterval) {
            guard !self.state.withLock({ $0.stopping }) else { return }
            self.scanAll(.poll)
            self.schedulePoll()
        }
    }

    /// One pass over the store: every model on disk, and every model that has disappeared.
    func scanAll(_ mode: Mode) {
        let entries: [StoreLayout.ModelEntry]
        do {
            entries = try layout.scan()
        } catch {
            logger.error("model store scan failed; serving goes on unchanged", metadata: ["event": "scan_failed", "error": "\(error)"])
            return
        }
        let onDisk = Set(entries.map(\.name))
        for entry in entries { reconcile(entry, mode) }
        let gone = state.withLock { $0.tracks.keys.filter { !onDisk.contains($0) } }
        for name in gone {
            reconcile(StoreLayout.ModelEntry(name: name, versions: [], configPath: nil), mode, directoryGone: true)
        }
    }

    /// Reconciles one model by name (management `load`): rescans its directory.
    func reconcile(model name: String, _ mode: Mode) {
        guard let entry = (try? layout.scan())?.first(where: { $0.name == name }) else {
            reconcile(StoreLayout.ModelEntry(name: name, versions: [], configPath: nil), mode, directoryGone: true)
            return
        }
        reconcile(entry, mode)
    }
}
