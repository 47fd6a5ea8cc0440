import Glibc
import Dispatch
import Logging

/// The reconcile step: from what is on disk and the model's config to the registry's states.
/// Runs on the manager's queue only.
extension StoreManager {
    func reconcile(_ entry: StoreLayout.ModelEntry, _ mode: Mode, directoryGone: Bool = false) {
        let name = entry.name
        var track = state.withLock { $0.tracks[name] } ?? Track()
        if mode == .explicit { track.unloadedByRequest = false }
        if track.unloadedByRequest { return }
        if directoryGone {
            // A load in flight finishes first (its result comes back here and is unloaded).
            if track.loading != nil {
                state.withLock { $0.tracks[name] = track }
                return
            }
            for v in track.loaded.keys.sorted() { unload(name, v, &track, reason: "its model directory was removed") }
            for (v, vs) in registry.snapshot().models[name]?.versions ?? [:] where vs.state != .unloading {
                transition(name, v, to: nil)
            }
            registry.update(name) { status in
                if status?.versions.isEmpty ?? true { status = nil }
            }
            let waiters = track.settledWaiters
            state.withLock { $0.tracks[name] = nil }
            for w in waiters { w() }
            drainFinished()
            return
        }
        applyConfig(entry, &track)
        guard track.hasValidConfig else {
            registry.update(name) { $0?.error = track.configError }
            state.withLock { $0.tracks[name] = track }
            return
        }

        let present = Set(entry.versions)
        let aspired = track.config.versionPolicy.select(from: entry.versions)
        track.note = nil
        if aspired.isEmpty {
            track.note = entry.versions.isEmpty
                ? "no version directory with a model.onnx (expected \(layout.root)/\(name)/<version>/model.onnx)"
                : "the version policy selects none of the versions \(entry.versions)"
        }
        var stamps: [Int: FileStamp] = [:]
        for v in entry.versions { stamps[v] = FileStamp.of("\(layout.root)/\(name)/\(v)") }

        // 0. An on-demand model nobody has asked for: its selected versions are listed as
        //    UNLOADED (the reason says so) and load on the first request.
        let loadNow = wantsLoad(track)
        if !loadNow {
            let states = registry.snapshot().models[name]?.versions ?? [:]
            for v in aspired where track.loaded[v] == nil && track.loading != v {
                let current = states[v]?.state
                guard current == nil || current == .start || current == .end || current == .unloaded else { continue }
                let why = track.unloadReasons[v].map { "\($0)" }
                    ?? "not loaded: the model loads on demand (\"load\": \"on_demand\"); the first request loads it"
                if current != .unloaded || states[v]?.error != why { transition(name, v, to: .unloaded, error: why) }
            }
        }
        // 1. Load what the policy wants, newest first (availability first: nothing unloads yet),
        //    one version at a time per model: the next one when the load worker reports back.
        var loadsAhead = track.loading != nil
        for v in aspired.reversed() where loadNow {
            if track.loaded[v] != nil || track.loading == v { continue }
            let stamp = stamps[v]!
            if let failedAt = track.failed[v], failedAt == stamp { continue }  // parked until its files change
            if mode == .poll, track.stamps[v] != stamp {
                transition(
                    name, v, to: .start,
                    error: "waiting for the files of version \(v) to stay unchanged for one poll (\(pollInterval) s)")
                continue
            }
            loadsAhead = true
            if track.loading == nil { enqueueLoad(name, v, stamp, &track, mode: mode) }
        }
        // 1b. Availability first: when no version the policy selects serves or is about to load
        //     (they failed, or are waiting for stable files) and no loaded version is still on
        //     disk, the highest other version that loads serves in their place until one of them
        //     is AVAILABLE. One candidate at a time: a failure comes back here for the next.
        if loadNow, !aspired.isEmpty, !loadsAhead, !aspired.contains(where: { track.loaded[$0] != nil }),
            !track.loaded.keys.contains(where: { present.contains($0) })
        {
            for v in entry.versions.sorted().reversed() where !aspired.contains(v) && track.loaded[v] == nil {
                let stamp = stamps[v]!
                if let failedAt = track.failed[v], failedAt == stamp { continue }
                if mode == .poll, track.stamps[v] != stamp { continue }
                logger.warning(
                    "no version the policy selects serves; loading a fallback version",
                    metadata: ["event": "model_fallback", "model": "\(name)", "version": "\(v)", "selected": "\(aspired)"])
                enqueueLoad(name, v, stamp, &track, mode: mode)
                break
            }
        }
        track.stamps = stamps
        // 2. Unload what the policy no longer wants: at once when its directory is gone, otherwise
        //    only once every aspired version is AVAILABLE (a failure leaves the old one serving).
        //    A removed version that is the last one serving stays in memory until another is
        //    AVAILABLE: a model never goes from serving to serving nothing while it has a version.
        let allAspiredServe = aspired.allSatisfy { track.loaded[$0] != nil }
        for v in track.loaded.keys.sorted() where !aspired.contains(v) {
            if !present.contains(v) {
                let replaced = track.loaded.keys.contains { $0 != v && present.contains($0) }
                if replaced {
                    unload(name, v, &track, reason: "its directory was removed")
                } else if track.removedButServing != v {
                    track.removedButServing = v
                    logger.warning(
                        "version directory removed, but it is the only version that can serve: it stays in memory until another version is AVAILABLE",
                        metadata: ["event": "model_kept", "model": "\(name)", "version": "\(v)"])
                }
            } else if allAspiredServe {
                unload(name, v, &track, reason: "the version policy no longer selects it")
            }
        }
        if let kept = track.removedButServing, track.loaded[kept] == nil { track.removedButServing = nil }
        let fallback = track.loaded.keys.filter { !aspired.contains($0) }.max()
        track.fallbackNote = aspired.contains(where: { track.loaded[$0] != nil }) ? nil : fallback.map { v in
            "version \(v) serves in place of the version policy's \(aspired.map(String.init).joined(separator: ", ")), "
                + "which \(aspired.count == 1 ? "is" : "are") not AVAILABLE (see their errors); fix or replace "
                + "\(aspired.count == 1 ? "it" : "them")"
        }

        // Forget entries of versions that are neither loaded, loading, draining, aspired, nor on disk.
        for (v, vs) in registry.snapshot().models[name]?.versions ?? [:]
        where track.loaded[v] == nil && track.loading != v && vs.state != .unloading && vs.state != .loading {
            if !present.contains(v) || (!aspired.contains(v) && vs.state != .end) { transition(name, v, to: nil) }
            else if !aspired.contains(v) && vs.state == .unloaded { transition(name, v, to: nil) }
        }
        track.failed = track.failed.filter { present.contains($0.key) }

        // 3. Labels: only ever to versions that serve; a refused label keeps its previous target.
        applyLabels(name, &track)
        state.withLock { $0.tracks[name] = track }
        drainFinished()
    }

    /// Reads `config.json` when it changed. A config that does not parse keeps the previous one.
    private func applyConfig(_ entry: StoreLayout.ModelEntry, _ track: inout Track) {
        let stamp = entry.configPath.map { FileStamp.of($0) }
        if track.hasValidConfig || track.configError != nil, stamp == track.configStamp { return }
        track.configStamp = stamp
        guard let path = entry.configPath else {
            track.config = ModelConfig()
            track.hasValidConfig = true
            track.configError = nil
            return
        }
        do {
            track.config = try ModelConfig.parse(try readFile(path), path: path)
            track.hasValidConfig = true
            track.configError = nil
        } catch {
            let keeps = track.hasValidConfig ? "the previous configuration stays in force" : "the model is not loaded"
            track.configError = "\(error) (\(keeps) until the file is fixed)"
            logger.error(
                "model config rejected; \(keeps) until the file is fixed",
                metadata: ["event": "config_failed", "model": "\(entry.name)", "error": "\(error)"])
        }
    }

    /// AVAILABLE -> UNLOADING: out of the serving set now; END once requests in flight finish.
    func unload(_ name: String, _ v: Int, _ track: inout Track, reason: String) {
        guard let servable = track.loaded.removeValue(forKey: v) else { return }
        transition(name, v, to: .unloading)
        logger.info("model version unloading", metadata: ["event": "model_unloading", "model": "\(name)", "version": "\(v)", "reason": "\(reason)"])
        state.withLock { $0.draining.append(Draining(servable: servable, model: name, version: v)) }
        // The caller runs `drainFinished()` once its own references are gone.
    }

    /// Moves versions whose last request has finished to END; their memory goes with the last
    /// reference. Re-checks every 20 ms while some are still busy.
    func drainFinished() {
        let (done, more) = state.withLock { s -> ([(String, Int)], Bool) in
            var done: [(String, Int)] = []
            var i = 0
            while i < s.draining.count {
                if s.draining[i].servable == nil {
                    done.append((s.draining[i].model, s.draining[i].version))
                    s.draining.remove(at: i)
                } else {
                    i += 1
                }
            }
            let schedule = !s.draining.isEmpty && !s.drainScheduled
            if schedule { s.drainScheduled = true }
            return (done, schedule)
        }
        for (name, v) in done {
            // END stays on record while the version is on disk; a removed one is forgotten.
            let versionGone = !FileStamp.exists("\(layout.root)/\(name)/\(v)")
            let modelGone = !FileStamp.exists("\(layout.root)/\(name)")
            if registry.snapshot().models[name]?.versions[v]?.state == .unloading {
                transition(name, v, to: versionGone ? nil : .end)
                // An evicted (or idle) version of an on-demand model waits for the next request.
                if !versionGone, let track = state.withLock({ $0.tracks[name] }), let reason = track.unloadReasons[v],
                    loadsOnDemand(track), track.loaded[v] == nil, track.loading != v
                {
                    transition(name, v, to: .unloaded, error: reason + "; the next request loads it again")
                }
            }
            registry.update(name) { status in
                if modelGone && (status?.versions.isEmpty ?? true) { status = nil }
            }
            logger.info("model version unloaded", metadata: ["event": "model_unloaded", "model": "\(name)", "version": "\(v)"])
            loader.versionEnded(name, v)
        }
        // Hand freed heap back to the system: glibc keeps freed blocks in per-thread arenas, which
        // would show up as growth across load/unload cycles.
        if !done.isEmpty { _ = swerveMallocTrim(0) }
        if more {
            queue.asyncAfter(deadline: .now() + 0.02) {
                self.state.withLock { $0.drainScheduled = false }
                self.drainFinished()
            }
        }
    }

    private func applyLabels(_ name: String, _ track: inout Track) {
        let current = registry.snapshot().models[name]?.labels ?? [:]
        var labels: [String: Int] = [:]
        var errors: [String] = []
        for (label, v) in track.config.versionLabels.sorted(by: { $0.key < $1.key }) {
            if track.loaded[v] != nil {
                labels[label] = v
                continue
            }
            let previous = current[label]
            if let previous { labels[label] = previous }
            errors.append(
                "label '\(label)' -> version \(v) refused: version \(v) is not AVAILABLE; "
                    + (previous.map { "the label still points at version \($0)" } ?? "the label is not set"))
        }
        if errors != track.labelErrors {
            for e in errors { logger.warning("version label refused", metadata: ["event": "label_refused", "model": "\(name)", "error": "\(e)"]) }
        }
        track.labelErrors = errors
        let kept = track.removedButServing.map { v in
            "version \(v)'s directory was removed; it keeps serving from memory until another version is AVAILABLE"
        }
        let problems = ([track.configError, track.note, track.fallbackNote, kept].compactMap { $0 } + errors)
        let onDemand = loadsOnDemand(track)
        registry.update(name) { status in
            status?.loadsOnDemand = onDemand
            status?.labels = labels
            status?.error = problems.isEmpty ? nil : problems.joined(separator: "; ")
        }
    }
}

/// glibc's `malloc_trim` (not exported by the Glibc module): returns free heap memory of every
/// arena to the system.
@_silgen_name("malloc_trim")
func swerveMallocTrim(_ pad: Int) -> Int32

/// glibc's `mallopt`.
@_silgen_name("mallopt")
func swerveMallopt(_ parameter: Int32, _ value: Int32) -> Int32

/// Makes blocks of 1 MiB and more (weights copied out of a model file, large activations) always
/// come from their own mappings, returned to the system when freed. glibc's default raises that
/// threshold after the first large free, after which such blocks stay in the heap: memory that
/// an unloaded version leaves behind. Process-wide; called once by `StoreManager.start`.
func fixLargeAllocationThreshold() {
    let M_MMAP_THRESHOLD: Int32 = -3
    _ = swerveMallopt(M_MMAP_THRESHOLD, 1 << 20)
}
