import Batching
import Dispatch
import Engine
import Foundation
import Logging
import Synchronization
@testable import ModelStore
import Tensors
import Testing

/// The one lifecycle writer (`StoreManager.transition` and its diagram), the load workers, the
/// manager's `stop`, and the measured memory of a version.
@Suite struct LifecycleTests {
    let good = try! [UInt8](Data(contentsOf: URL(fileURLWithPath: mlpModelPath)))

    func manager(
        _ store: TempStore, loads: Int = 2, makeScheduler: (@Sendable (SchedulerContext) -> any InferenceScheduler)? = nil
    ) -> (StoreManager, ModelRegistry) {
        let registry = ModelRegistry()
        let loader = StoreLoader(
            layout: StoreLayout(root: store.root), sessionOptions: SessionOptions(), logger: Logger(label: "test"),
            makeScheduler: makeScheduler ?? { $0.makeDefaultScheduler() })
        return (StoreManager(loader: loader, registry: registry, pollInterval: 0, maxConcurrentLoads: loads), registry)
    }

    @Test func theDiagramAllowsOnlyItsTransitions() {
        let legal: [(VersionState?, VersionState?)] = [
            (nil, .start), (.start, .loading), (.loading, .available), (.available, .unloading), (.unloading, .end),
            (.loading, .failed), (.failed, .start), (.end, .loading), (.start, nil), (.unloading, nil),
            (nil, .unloaded), (.unloaded, .loading), (.end, .unloaded), (.unloading, .loading),
        ]
        for (from, to) in legal { #expect(StoreManager.isLegal(from: from, to: to), "\(String(describing: from)) -> \(String(describing: to))") }
        let illegal: [(VersionState?, VersionState?)] = [
            (nil, .available), (.start, .available), (.available, .loading), (.unloading, .available), (.available, nil),
            (.loading, nil), (.end, .available), (.failed, .available), (.unloaded, .available), (.loading, .unloaded),
            (.available, .unloaded),
        ]
        for (from, to) in illegal { #expect(!StoreManager.isLegal(from: from, to: to), "\(String(describing: from)) -> \(String(describing: to))") }
        // Every state has its row.
        for state in [VersionState.start, .loading, .available, .unloading, .end, .failed, .unloaded] {
            #expect(StoreManager.legalTransitions[state] != nil, "\(state)")
        }
    }

    @Test func anIllegalTransitionIsRefusedAndChangesNothing() throws {
        let store = TempStore()
        store.write("m/1/model.onnx", good)
        let (m, r) = manager(store)
        try m.loadAllNow()
        #expect(r.snapshot().models["m"]?.versions[1]?.state == .available)
        let done = m.queue.sync { m.transition("m", 1, to: .loading) }
        #expect(!done)
        #expect(r.snapshot().models["m"]?.versions[1]?.state == .available)
        #expect(r.snapshot().models["m"]?.versions[1]?.servable != nil)
    }

    /// A slow model no longer holds up the others, and a model loads one version at a time.
    @Test func loadWorkersRunModelsSideBySideButOneLoadPerModel() throws {
        let store = TempStore()
        store.write("slow/1/model.onnx", good)
        store.write("slow/2/model.onnx", good)
        store.write("slow/config.json", #"{"version_policy": {"all": {}}}"#)
        store.write("fast/1/model.onnx", good)
        let running = Mutex<[String: Int]>([:])
        let most = Mutex<[String: Int]>([:])
        let (m, r) = manager(store) { context in
            running.withLock { $0[context.model, default: 0] += 1 }
            most.withLock { $0[context.model] = max($0[context.model] ?? 0, running.withLock { $0[context.model]! }) }
            if context.model == "slow" { usleep(600_000) }
            running.withLock { $0[context.model]! -= 1 }
            return context.makeDefaultScheduler()
        }
        let started = Date()
        let loaded = DispatchSemaphore(value: 0)
        try m.start { loaded.signal() }
        // fast is AVAILABLE while slow is still loading its first version.
        var fastFirst = false
        for _ in 0..<300 {
            let s = r.snapshot()
            if s.models["fast"]?.versions[1]?.state == .available {
                fastFirst = s.models["slow"]?.versions.values.contains { $0.state == .loading } == true
                break
            }
            usleep(5_000)
        }
        #expect(fastFirst, "a slow model held up another model's load")
        loaded.wait()
        #expect(Date().timeIntervalSince(started) >= 1.1, "slow's two versions loaded one after the other")
        #expect(most.withLock { $0["slow"] } == 1)
        #expect(r.snapshot().models["slow"]?.versions.values.allSatisfy { $0.state == .available } == true)
    }

    @Test func stopUnloadsEveryVersionThroughTheManager() throws {
        let store = TempStore()
        store.write("a/1/model.onnx", good)
        store.write("b/1/model.onnx", good)
        let (m, r) = manager(store)
        try m.loadAllNow()
        m.stop()
        for name in ["a", "b"] { #expect(r.snapshot().models[name]?.versions[1]?.state == .end) }
        let result = Mutex<Result<ServableVersion, LoadFailure>?>(nil)
        let done = DispatchSemaphore(value: 0)
        m.acquire(model: "a", version: nil) { outcome in
            result.withLock { $0 = outcome }
            done.signal()
        }
        done.wait()
        guard case .failure(let failure) = result.withLock({ $0 }) else {
            Issue.record("a stopped store handed out a version")
            return
        }
        #expect(failure.description.contains("shutting down"))
    }

    @Test func aLoadedVersionHasAMeasuredFootprint() throws {
        let store = TempStore()
        store.write("m/1/model.onnx", good)
        let (m, r) = manager(store)
        try m.loadAllNow()
        guard case .found(let servable) = r.snapshot().servable(model: "m", version: nil) else {
            Issue.record("not served")
            return
        }
        let before = servable.memory
        #expect(before.total > 0)
        _ = try servable.session.run(["input": .init(zeros: .float32, shape: [1, 8])])
        let after = servable.memory
        #expect(after.arenas >= before.arenas)
        #expect(after.total > 0 && after.total < 64 << 20)
    }

    typealias Candidate = StoreManager.EvictionCandidate

    @Test func evictionTakesTheLeastRecentlyUsedIdleVersionsFirst() {
        let candidates = [
            Candidate(model: "a", version: 1, bytes: 10, lastUsed: 300, inFlight: 0),
            Candidate(model: "b", version: 1, bytes: 10, lastUsed: 100, inFlight: 2),  // busy: never
            Candidate(model: "c", version: 1, bytes: 10, lastUsed: 200, inFlight: 0),
            Candidate(model: "d", version: 1, bytes: 10, lastUsed: 400, inFlight: 0),
        ]
        #expect(StoreManager.evictionChoice(candidates, needed: 5).map(\.model) == ["c"])
        #expect(StoreManager.evictionChoice(candidates, needed: 15).map(\.model) == ["c", "a"])
        #expect(StoreManager.evictionChoice(candidates, needed: 100).map(\.model) == ["c", "a", "d"])
        #expect(StoreManager.evictionChoice(candidates, needed: 0).isEmpty)
    }

    func acquire(_ m: StoreManager, _ model: String) -> Result<ServableVersion, LoadFailure> {
        let result = Mutex<Result<ServableVersion, LoadFailure>?>(nil)
        let done = DispatchSemaphore(value: 0)
        m.acquire(model: model, version: nil) { outcome in
            result.withLock { $0 = outcome }
            done.signal()
        }
        done.wait()
        return result.withLock { $0! }
    }

    /// On-demand models are listed UNLOADED; a request loads one; a load that would pass the
    /// budget evicts the least recently used; pinned (`always`) models stay.
    @Test func onDemandLoadsEvictTheLeastRecentlyUsedAndKeepPinnedOnes() throws {
        let store = TempStore()
        for name in ["a", "b", "c"] { store.write("\(name)/1/model.onnx", good) }
        store.write("p/1/model.onnx", good)
        store.write("p/config.json", #"{"load": "always"}"#)
        let registry = ModelRegistry()
        let loader = StoreLoader(layout: StoreLayout(root: store.root), sessionOptions: SessionOptions(), logger: Logger(label: "test"))
        // Room for the pinned model and two others. A first load is estimated at its file's size,
        // later ones at what it measured (M); a load reserves twice its estimate while it runs.
        let (probe, probed) = manager(store)
        try probe.loadAllNow()
        guard case .found(let sample) = probed.snapshot().servable(model: "p", version: nil) else {
            Issue.record("probe failed")
            return
        }
        let measured = sample.memory.total
        #expect(measured > 0)
        let size = good.count
        let m = StoreManager(
            loader: loader, registry: registry, pollInterval: 0,
            policy: StorePolicy(memoryBudget: 2 * measured + 2 * size + measured / 2, loadOnDemand: true, loadWait: 10))
        try m.loadAllNow()
        let state = { (name: String) in registry.snapshot().models[name]?.versions[1]?.state }
        #expect(state("a") == .unloaded && state("p") == .available)
        #expect(registry.snapshot().isSettled)
        #expect((try? acquire(m, "a").get()) != nil)
        usleep(2_000)
        #expect((try? acquire(m, "b").get()) != nil)
        usleep(2_000)
        #expect(state("a") == .available && state("b") == .available)
        #expect((try? acquire(m, "c").get()) != nil)  // evicts a, the least recently used
        m.waitUntilIdle()
        #expect(waitFor { state("a") == .unloaded })
        #expect(state("b") == .available && state("c") == .available && state("p") == .available)
        #expect(registry.snapshot().models["a"]?.versions[1]?.error?.contains("least recently used") == true)
    }

    @Test func aRequestWaitingOnAFailedLoadGetsItsError() throws {
        let store = TempStore()
        store.write("broken/1/model.onnx", "not a protobuf")
        let (m, _) = manager(store)
        try m.loadAllNow()
        // Loaded "always" (the default) and failed: a waiter gets the reason at once.
        guard case .failure(let failure) = acquire(m, "broken") else {
            Issue.record("a broken model was handed out")
            return
        }
        #expect(failure.description.contains("could not be loaded") && failure.description.contains("version 1"))
    }

    func waitFor(_ condition: () -> Bool) -> Bool {
        for _ in 0..<300 {
            if condition() { return true }
            usleep(10_000)
        }
        return condition()
    }
}
