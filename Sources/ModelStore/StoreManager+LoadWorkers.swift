import Dispatch
import Logging
import Tensors

/// The load workers: versions to load wait in `State.pendingLoads` and run, at most
/// `maxConcurrentLoads` at a time, on Dispatch's global pool; each result comes back to the
/// manager's queue (`finishLoad`), which records it and reconciles the model again (the next
/// version of the same model, the unload of the one it replaces, a fallback after a failure).
/// Only the manager's queue touches `state`'s load fields.
extension StoreManager {
    /// Queues a load of one version: LOADING now, a worker picks it up when one is free.
    func enqueueLoad(_ name: String, _ v: Int, _ stamp: FileStamp, _ track: inout Track, mode: Mode) {
        guard transition(name, v, to: .loading) else { return }
        track.loading = v
        let job = LoadJob(model: name, version: v, stamp: stamp, config: track.config, mode: mode)
        state.withLock { $0.pendingLoads.append(job) }
        // The caller stores `track`; the pump runs after it (same queue).
        queue.async { self.pumpLoads() }
    }

    /// Starts queued loads while workers are free.
    func pumpLoads() {
        while true {
            guard var next = state.withLock({ s -> LoadJob? in
                guard s.activeLoads < maxConcurrentLoads, !s.stopping else { return nil }
                return s.pendingLoads.first
            }) else { break }
            switch admit(next) {
            case .wait:
                // Memory frees up when evicted or draining versions let go: look again shortly.
                if state.withLock({ s in
                    defer { s.pumpRetryScheduled = true }
                    return !s.pumpRetryScheduled
                }) {
                    queue.asyncAfter(deadline: .now() + 0.02) {
                        self.state.withLock { $0.pumpRetryScheduled = false }
                        self.drainFinished()
                        self.pumpLoads()
                    }
                }
                fireIdleWaiters()
                return
            case .refuse(let reason, let retryable):
                state.withLock { _ = $0.pendingLoads.removeFirst() }
                finishLoad(next, .failure(LoadFailure(description: reason, retryable: retryable)), seconds: 0)
                continue
            case .start(let reserve):
                next.reserved = reserve
                state.withLock { s in
                    _ = s.pendingLoads.removeFirst()
                    s.activeLoads += 1
                    s.reservedBytes += reserve
                }
            }
            let loader = self.loader
            let budget = policy.memoryBudget
            let job = next
            DispatchQueue.global().async {
                let started = monotonicSeconds()
                let result: Result<ServableVersion, LoadFailure>
                do {
                    let servable = try loader.loadServable(model: job.model, version: job.version, config: job.config)
                    let bytes = servable.memory.total
                    if bytes > budget {
                        servable.scheduler.stop()
                        throw LoadFailure(
                            description: "version \(job.version) of model '\(job.model)' holds "
                                + "\(MemoryLimits.describe(bytes)) once loaded (measured), more than the whole memory budget of "
                                + "\(MemoryLimits.describe(budget)) (--memory-budget); raise the budget or serve a smaller model")
                    }
                    result = .success(servable)
                } catch {
                    result = .failure(LoadFailure(description: "\(error)"))
                }
                let seconds = monotonicSeconds() - started
                self.queue.async {
                    self.state.withLock {
                        $0.activeLoads -= 1
                        $0.reservedBytes -= job.reserved
                    }
                    self.finishLoad(job, result, seconds: seconds)
                    self.pumpLoads()
                }
            }
        }
        fireIdleWaiters()
    }

    /// Records a finished load (AVAILABLE or FAILED) and reconciles the model again.
    func finishLoad(_ job: LoadJob, _ result: Result<ServableVersion, LoadFailure>, seconds: Double) {
        let name = job.model, v = job.version
        var track = state.withLock { $0.tracks[name] } ?? Track()
        if track.loading == v { track.loading = nil }
        switch result {
        case .success(let servable):
            track.loaded[v] = servable
            track.failed[v] = nil
            track.measured[v] = servable.memory.total
            track.unloadReasons[v] = nil
            servable.markAvailable(loadRequestedAt: job.requested)
            // The swap: one registry update makes the version visible to new requests.
            transition(name, v, to: .available, error: servable.warning, servable: servable)
            loader.loadFinished(name, v, true, seconds)
            logger.info(
                "model version loaded",
                metadata: [
                    "event": "model_loaded", "model": "\(name)", "version": "\(v)",
                    "device": "\(loader.sessionOptions.device)", "nodes": "\(servable.session.model.graph.nodes.count)",
                    "instances": "\(servable.batching.instanceCount)", "threads": "\(servable.session.options.blasThreads)",
                    "memory_bytes": "\(servable.memory.total)", "duration_ms": "\(Int(seconds * 1000))",
                ])
        case .failure(let error):
            if error.retryable && loadsOnDemand(track) {
                // Not parked: the next request for the model tries again.
                track.demanded = false
            } else {
                track.failed[v] = job.stamp
            }
            transition(name, v, to: .failed, error: error.description)
            loader.loadFinished(name, v, false, seconds)
            logger.error(
                "model version failed to load; what served before keeps serving; it is retried when its files change",
                metadata: [
                    "event": "model_failed", "model": "\(name)", "version": "\(v)", "error": "\(error)",
                    "duration_ms": "\(Int(seconds * 1000))",
                ])
        }
        state.withLock { $0.tracks[name] = track }
        // Follow-up with the rules of the scan that asked for the load (an explicit load's
        // follow-up must not clear a management unload that came in meanwhile).
        let stopping = state.withLock { $0.stopping }
        if !stopping { reconcile(model: name, job.mode == .explicit ? .startup : job.mode) }
        if track.unloadedByRequest || stopping, var t = state.withLock({ $0.tracks[name] }), t.loaded[v] != nil {
            unload(name, v, &t, reason: stopping ? "shutdown" : "unloaded through the management API")
            state.withLock { $0.tracks[name] = t }
            drainFinished()
        }
        fireSettledWaiters(name)
        answerLoadWaiters(name)
    }

    /// Calls `body` (on the queue) once no load is queued or running.
    func whenIdle(_ body: @escaping @Sendable () -> Void) {
        state.withLock { $0.idleWaiters.append(body) }
        fireIdleWaiters()
    }

    /// Calls `body` (on the queue) once model `name` has no load queued or running.
    func whenSettled(_ name: String, _ body: @escaping @Sendable () -> Void) {
        state.withLock { s in
            if s.tracks[name] != nil { s.tracks[name]!.settledWaiters.append(body) }
        }
        fireSettledWaiters(name)
        // A model without a track (no directory) is settled now.
        if state.withLock({ $0.tracks[name] == nil }) { body() }
    }

    private func fireSettledWaiters(_ name: String) {
        let waiters = state.withLock { s -> [@Sendable () -> Void] in
            guard var t = s.tracks[name], t.loading == nil, !t.settledWaiters.isEmpty else { return [] }
            let w = t.settledWaiters
            t.settledWaiters = []
            s.tracks[name] = t
            return w
        }
        for w in waiters { w() }
    }

    private func fireIdleWaiters() {
        let waiters = state.withLock { s -> [@Sendable () -> Void] in
            guard s.activeLoads == 0, s.pendingLoads.isEmpty, !s.idleWaiters.isEmpty else { return [] }
            let w = s.idleWaiters
            s.idleWaiters = []
            return w
        }
        for w in waiters { w() }
    }

    /// Stops the store (shutdown): no more polls or loads; queued loads are dropped (FAILED:
    /// shutting down); loads already running finish and are unloaded; every loaded version is
    /// unloaded (its scheduler stopped, which joins its workers) and ends. Blocks until done; call
    /// it once the requests in flight are answered, from any thread but the manager's queue.
    public func stop() {
        let done = DispatchSemaphore(value: 0)
        queue.async {
            let dropped = self.state.withLock { s -> [LoadJob] in
                s.stopping = true
                let d = s.pendingLoads
                s.pendingLoads = []
                return d
            }
            for job in dropped {
                self.transition(job.model, job.version, to: .failed, error: "the server is shutting down")
                self.state.withLock { $0.tracks[job.model]?.loading = nil }
                self.fireSettledWaiters(job.model)
                self.answerLoadWaiters(job.model)
            }
            self.whenIdle {
                let tracks = self.state.withLock { $0.tracks }
                for (name, track) in tracks.sorted(by: { $0.key < $1.key }) {
                    for (v, servable) in track.loaded.sorted(by: { $0.key < $1.key }) {
                        let started = monotonicSeconds()
                        self.transition(name, v, to: .unloading)
                        servable.scheduler.stop()  // joins the version's workers (nothing is queued now)
                        self.transition(name, v, to: .end)
                        self.logger.info(
                            "model version unloaded",
                            metadata: [
                                "event": "model_unloaded", "model": "\(name)", "version": "\(v)", "reason": "shutdown",
                                "duration_ms": "\(Int((monotonicSeconds() - started) * 1000))",
                            ])
                    }
                    self.state.withLock { $0.tracks[name]?.loaded = [:] }
                }
                done.signal()
            }
        }
        done.wait()
    }
}

/// Why a version did not load, in words (the loader's error, or the store's reason).
public struct LoadFailure: Error, Sendable, CustomStringConvertible {
    public let description: String
    /// The load may succeed later without any change to its files (memory held by others).
    public let retryable: Bool
    public init(description: String, retryable: Bool = false) {
        self.description = description
        self.retryable = retryable
    }
}
