import Dispatch
import Glibc
import Logging
import Tensors

/// The memory budget, on-demand loading, eviction and idle unloading (docs/model-store.md,
/// "Many models: memory budget and on-demand loading").
///
/// - Every loaded version has a measured footprint (`ServableVersion.memory`); the store keeps
///   the sum, with versions still draining and the estimates of loads in progress, within
///   `StorePolicy.modelBudget` (the budget less a headroom for what the accounting does not see).
/// - Before a load starts (`admit`), the least recently used versions of on-demand models with
///   no request in flight are unloaded until the new one fits; versions of `always` models are
///   pinned and never evicted. A load that cannot fit waits for draining versions and running
///   loads; one that can never fit fails with the reason.
/// - A request for an on-demand model that is not loaded waits (`acquire`) for the load, up to
///   `StorePolicy.loadWait`, and gets the load's error when it fails.
///
/// Runs on the manager's queue, like everything that touches `state`.
extension StoreManager {
    /// Whether the model's versions load on demand (config.json `load`, else `--load-on-demand`).
    func loadsOnDemand(_ track: Track) -> Bool {
        (track.config.load ?? (policy.loadOnDemand ? .onDemand : .always)) == .onDemand
    }

    /// Whether the reconcile should load the model's selected versions now.
    func wantsLoad(_ track: Track) -> Bool {
        !loadsOnDemand(track) || track.demanded || !track.loaded.isEmpty || track.loading != nil
    }

    /// Gets a servable of `model` (`version`, or the default), loading it first when the model
    /// loads on demand. `completion` runs on the manager's queue: the servable, or why not (the
    /// load's error, the wait's timeout, shutdown).
    public func acquire(
        model: String, version: Int?, completion: @escaping @Sendable (Result<ServableVersion, LoadFailure>) -> Void
    ) {
        queue.async {
            guard !self.state.withLock({ $0.stopping }) else {
                return completion(.failure(LoadFailure(description: "the server is shutting down; send the request to another instance")))
            }
            guard var track = self.state.withLock({ $0.tracks[model] }) else {
                return completion(.failure(LoadFailure(
                    description: "model '\(model)' is not in the model store; POST /v2/repository/index lists the models")))
            }
            if let found = self.servable(model, track, version) {
                found.touch()
                return completion(.success(found))
            }
            let id = self.state.withLock { s -> Int in
                s.nextWaiter += 1
                return s.nextWaiter
            }
            track.loadWaiters.append(LoadWaiter(id: id, version: version, started: monotonicSeconds(), completion: completion))
            track.demanded = true
            self.state.withLock { $0.tracks[model] = track }
            self.reconcile(model: model, .startup)
            self.answerLoadWaiters(model)
            let wait = self.policy.loadWait
            self.queue.asyncAfter(deadline: .now() + wait) {
                let waiter = self.state.withLock { s -> LoadWaiter? in
                    guard let i = s.tracks[model]?.loadWaiters.firstIndex(where: { $0.id == id }) else { return nil }
                    return s.tracks[model]!.loadWaiters.remove(at: i)
                }
                waiter?.completion(.failure(LoadFailure(
                    description: "model '\(model)' did not finish loading within \(wait) s (--load-wait); "
                        + "it is still loading (or waiting for memory to free up): retry shortly")))
            }
        }
    }

    /// The AVAILABLE servable a waiter for `version` (nil = the default) would get.
    func servable(_ name: String, _ track: Track, _ version: Int?) -> ServableVersion? {
        if let version { return track.loaded[version] }
        return registry.snapshot().models[name]?.defaultVersion
    }

    /// Answers the model's load waiters that can be answered: those whose version serves, and,
    /// when nothing more is loading, the others with the reason.
    func answerLoadWaiters(_ name: String) {
        guard let track = state.withLock({ $0.tracks[name] }), !track.loadWaiters.isEmpty else { return }
        var answered: [(LoadWaiter, Result<ServableVersion, LoadFailure>)] = []
        var waiting: [LoadWaiter] = []
        let status = registry.snapshot().models[name]
        for waiter in track.loadWaiters {
            if let found = servable(name, track, waiter.version) {
                found.touch()
                answered.append((waiter, .success(found)))
            } else if track.loading == nil {
                let failed = status?.sortedVersions.filter { $0.state == .failed && (waiter.version == nil || $0.version == waiter.version) }
                let reasons = failed?.compactMap { v in v.error.map { "version \(v.version): \($0)" } } ?? []
                let why = reasons.isEmpty ? (status?.error ?? "no version of it could be loaded") : reasons.joined(separator: "; ")
                answered.append((waiter, .failure(LoadFailure(description: "model '\(name)' could not be loaded: \(why)"))))
            } else {
                waiting.append(waiter)
            }
        }
        state.withLock { $0.tracks[name]?.loadWaiters = waiting }
        for (waiter, result) in answered { waiter.completion(result) }
    }

    /// Bytes a version will need once loaded: what it measured last time, else its files' size.
    func estimatedBytes(_ job: LoadJob) -> Int {
        if let measured = state.withLock({ $0.tracks[job.model]?.measured[job.version] }) { return measured }
        let dir = "\(layout.root)/\(job.model)/\(job.version)"
        var total = 0
        if let d = opendir(dir) {
            defer { closedir(d) }
            while let e = readdir(d) {
                let entryName = withUnsafeBytes(of: e.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
                if entryName.hasPrefix(".") { continue }
                var st = stat()
                if stat("\(dir)/\(entryName)", &st) == 0, (st.st_mode & S_IFMT) == S_IFREG { total += Int(st.st_size) }
            }
        }
        return total
    }

    /// Bytes the store holds now: loaded versions and versions still draining, measured.
    func residentBytes() -> Int {
        let (tracks, draining) = state.withLock { ($0.tracks, $0.draining) }
        var total = 0
        for track in tracks.values { for servable in track.loaded.values { total += servable.memory.total } }
        for d in draining { if let s = d.servable { total += s.memory.total } }
        return total
    }

    /// What to do with the next load: start it (after evicting what it needs), wait for memory
    /// to free up, or fail it because it can never fit.
    enum Admission {
        case start(reserve: Int)
        case wait
        /// `retryable`: the room is held by pinned models now, which may change (a later request
        /// tries again); otherwise the version can never fit (it is parked like a failed load).
        case refuse(String, retryable: Bool)
    }

    func admit(_ job: LoadJob) -> Admission {
        let budget = policy.modelBudget
        let need = estimatedBytes(job)
        if need > budget {
            return .refuse(
                "version \(job.version) of model '\(job.model)' needs about \(MemoryLimits.describe(need)), more than the whole "
                    + "memory budget of \(MemoryLimits.describe(budget)) (--memory-budget); raise the budget or serve a smaller model",
                retryable: false)
        }
        // While it loads, a version holds the file's pages it reads and the packed copies it
        // makes at once (the pages are dropped at the end): reserve twice its size for the load.
        let transient = min(2 * need, budget)
        let reserved = state.withLock { $0.reservedBytes }
        let used = residentBytes() + reserved
        if used + transient <= budget { return .start(reserve: transient) }
        // Evict the least recently used unpinned versions with no request in flight.
        var candidates: [EvictionCandidate] = []
        var evictable = 0  // all of the on-demand versions, busy or not: what could ever go
        for (name, track) in state.withLock({ $0.tracks }) where loadsOnDemand(track) {
            for (v, s) in track.loaded {
                let c = EvictionCandidate(model: name, version: v, bytes: s.memory.total, lastUsed: s.lastUsed, inFlight: s.inFlight)
                candidates.append(c)
                evictable += c.bytes
            }
        }
        let chosen = StoreManager.evictionChoice(candidates, needed: used + transient - budget)
        for c in chosen {
            evict(c.model, c.version, reason: "evicted (least recently used) to make room for model '\(job.model)' version \(job.version)")
        }
        let drainingLeft = state.withLock { s in s.draining.contains { $0.servable != nil } }
        if !chosen.isEmpty || drainingLeft || state.withLock({ $0.activeLoads }) > 0 { return .wait }
        // Versions busy with requests now become evictable when those finish.
        if used - evictable + transient <= budget { return .wait }
        return .refuse(
            "model '\(job.model)' version \(job.version) needs about \(MemoryLimits.describe(need)) but the memory budget of "
                + "\(MemoryLimits.describe(budget)) (--memory-budget) is held by models loaded always (pinned) "
                + "(\(MemoryLimits.describe(used)) in use: \(MemoryLimits.describe(used - evictable - reserved)) by versions "
                + "that cannot be evicted, \(MemoryLimits.describe(reserved)) reserved by loads in progress, "
                + "\(MemoryLimits.describe(evictable)) by on-demand versions); raise the budget, or set \"load\": "
                + "\"on_demand\" on more models",
            retryable: true)
    }

    /// One loaded version eviction could unload.
    struct EvictionCandidate: Sendable, Equatable {
        var model: String
        var version: Int
        var bytes: Int
        var lastUsed: Int
        var inFlight: Int
    }

    /// The versions to evict to free `needed` bytes: least recently used first, skipping those
    /// with requests in flight; all the idle ones when even that is not enough.
    static func evictionChoice(_ candidates: [EvictionCandidate], needed: Int) -> [EvictionCandidate] {
        var chosen: [EvictionCandidate] = []
        var freed = 0
        for c in candidates.filter({ $0.inFlight == 0 }).sorted(by: { ($0.lastUsed, $0.model, $0.version) < ($1.lastUsed, $1.model, $1.version) }) {
            if freed >= needed { break }
            chosen.append(c)
            freed += c.bytes
        }
        return chosen
    }

    /// Unloads one version of an on-demand model (eviction or idle); it ends as UNLOADED and the
    /// next request loads it again.
    func evict(_ name: String, _ v: Int, reason: String) {
        guard var track = state.withLock({ $0.tracks[name] }), track.loaded[v] != nil else { return }
        unload(name, v, &track, reason: reason)
        track.unloadReasons[v] = reason
        if track.loaded.isEmpty { track.demanded = false }
        state.withLock { $0.tracks[name] = track }
        loader.versionEvicted(name, v, reason.hasPrefix("idle") ? "idle" : "memory")
        logger.info("model version evicted", metadata: ["event": "model_evicted", "model": "\(name)", "version": "\(v)", "reason": "\(reason)"])
        drainFinished()
    }

    /// Every second: unloads versions of on-demand models idle longer than their `idle_timeout_s`.
    func scheduleIdleSweep() {
        queue.asyncAfter(deadline: .now() + 1) {
            guard !self.state.withLock({ $0.stopping }) else { return }
            let now = ServableVersion.nowMillis()
            for (name, track) in self.state.withLock({ $0.tracks }) where self.loadsOnDemand(track) {
                guard let idle = track.config.idleTimeoutSeconds else { continue }
                for (v, s) in track.loaded where s.inFlight == 0 && Double(now - s.lastUsed) / 1000 > idle {
                    self.evict(name, v, reason: "idle for more than \(idle) s (idle_timeout_s); it loads again on the next request")
                }
            }
            self.scheduleIdleSweep()
        }
    }
}

/// A request waiting for an on-demand load.
struct LoadWaiter: Sendable {
    var id: Int
    /// The version asked for; nil = the default.
    var version: Int?
    var started: Double
    var completion: @Sendable (Result<ServableVersion, LoadFailure>) -> Void
}

/// The store's memory and loading policy (`--memory-budget`, `--load-on-demand`, `--load-wait`).
public struct StorePolicy: Sendable {
    /// Bytes the process may hold for models above what it holds with none loaded. Default: 3/4 of
    /// the machine's or cgroup's memory.
    public var memoryBudget: Int
    /// What the loaded versions' measured footprints may hold together: the budget less 5 % of it,
    /// the headroom for memory the accounting does not see (allocator slack, per-thread scratch,
    /// kernels' own arrays), so that resident memory stays within `memoryBudget` and not just the
    /// sum of the footprints.
    public var modelBudget: Int { memoryBudget - memoryBudget / 20 }
    /// Models without `load` in config.json load on their first request.
    public var loadOnDemand: Bool
    /// Seconds a request waits for an on-demand load before 503.
    public var loadWait: Double

    public init(memoryBudget: Int = MemoryLimits.availableBytes / 4 * 3, loadOnDemand: Bool = false, loadWait: Double = 30) {
        self.memoryBudget = memoryBudget
        self.loadOnDemand = loadOnDemand
        self.loadWait = loadWait
    }
}
