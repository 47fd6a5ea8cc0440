import Dispatch
import Engine
import Foundation
import Logging
import Synchronization
@testable import ModelStore
import Testing

/// The manager's state machine over a real store directory and real ONNX files, driven scan by
/// scan (no timer: `pollInterval` 0 and explicit `scanAll(.poll)` calls).
@Suite struct StoreManagerTests {
    let good = try! [UInt8](Data(contentsOf: URL(fileURLWithPath: mlpModelPath)))

    func manager(_ store: TempStore) -> (StoreManager, ModelRegistry) {
        let registry = ModelRegistry()
        let loader = StoreLoader(layout: StoreLayout(root: store.root), sessionOptions: SessionOptions(), logger: Logger(label: "test"))
        return (StoreManager(loader: loader, registry: registry, pollInterval: 0), registry)
    }

    /// One poll, then the loads it started (load workers) to their end.
    func poll(_ m: StoreManager) {
        m.queue.sync { m.scanAll(.poll) }
        m.waitUntilIdle()
    }

    func state(_ r: ModelRegistry, _ model: String, _ v: Int) -> VersionState? { r.snapshot().models[model]?.versions[v]?.state }

    func defaultVersion(_ r: ModelRegistry, _ model: String) -> Int? {
        if case .found(let s) = r.snapshot().servable(model: model, version: nil) { return s.version }
        return nil
    }

    /// Waits (bounded) for draining to finish a version.
    func waitFor(_ condition: () -> Bool) -> Bool {
        for _ in 0..<500 {
            if condition() { return true }
            usleep(10_000)
        }
        return condition()
    }

    @Test func aNewVersionLoadsOnlyOnceItsFilesAreStableThenReplacesTheOld() throws {
        let store = TempStore()
        store.write("m/1/model.onnx", good)
        let (m, r) = manager(store)
        try m.loadAllNow()
        #expect(defaultVersion(r, "m") == 1)

        store.write("m/2/model.onnx", Array(good.prefix(100)))  // a copy in progress
        poll(m)
        #expect(state(r, "m", 2) == .start)
        #expect(defaultVersion(r, "m") == 1)
        store.write("m/2/model.onnx", good)  // the copy grows: still not loaded
        poll(m)
        #expect(state(r, "m", 2) == .start)
        #expect(r.snapshot().models["m"]?.versions[2]?.error?.contains("unchanged") == true)
        poll(m)  // unchanged since the last poll: load, then unload the old one
        #expect(state(r, "m", 2) == .available)
        #expect(defaultVersion(r, "m") == 2)
        #expect(waitFor { state(r, "m", 1) == .end })
    }

    @Test func aFailingVersionLeavesThePreviousOneServingAndIsRetriedWhenItChanges() throws {
        let store = TempStore()
        store.write("m/1/model.onnx", good)
        let (m, r) = manager(store)
        try m.loadAllNow()
        store.write("m/2/model.onnx", Array(good.prefix(good.count / 2)))  // truncated
        poll(m)
        poll(m)
        #expect(state(r, "m", 2) == .failed)
        #expect(state(r, "m", 1) == .available)
        #expect(defaultVersion(r, "m") == 1)
        #expect(r.snapshot().isSettled)
        poll(m)
        #expect(state(r, "m", 2) == .failed)  // parked: same files, no retry
        store.write("m/2/model.onnx", good)
        poll(m)
        poll(m)
        #expect(state(r, "m", 2) == .available)
        #expect(waitFor { state(r, "m", 1) == .end })
    }

    @Test func requestsInFlightKeepTheOldVersionUntilTheyFinish() throws {
        let store = TempStore()
        store.write("m/1/model.onnx", good)
        let (m, r) = manager(store)
        try m.loadAllNow()
        var held: ServableVersion? = nil
        if case .found(let s) = r.snapshot().servable(model: "m", version: nil) { held = s }
        weak let old = held
        store.write("m/2/model.onnx", good)
        poll(m)
        poll(m)
        #expect(defaultVersion(r, "m") == 2)
        #expect(state(r, "m", 1) == .unloading)  // a request still holds it
        #expect(try held?.session.run(["input": .init(zeros: .float32, shape: [1, 8])]).isEmpty == false)
        held = nil
        #expect(waitFor { state(r, "m", 1) == .end })
        #expect(old == nil)  // its memory went with the last reference
    }

    @Test func removingAVersionDirectoryUnloadsIt() throws {
        let store = TempStore()
        store.write("m/1/model.onnx", good)
        store.write("m/2/model.onnx", good)
        store.write("m/config.json", #"{"version_policy": {"all": {}}}"#)
        let (m, r) = manager(store)
        try m.loadAllNow()
        #expect(defaultVersion(r, "m") == 2)
        try FileManager.default.removeItem(atPath: store.root + "/m/2")
        poll(m)
        #expect(defaultVersion(r, "m") == 1)
        #expect(waitFor { state(r, "m", 2) == nil })
        try FileManager.default.removeItem(atPath: store.root + "/m")
        poll(m)
        #expect(waitFor { r.snapshot().models["m"] == nil })
    }

    /// The issue's sequence: v1-v3 (v3 serving), a truncated v4 fails, then v3's directory is
    /// removed. The model must keep serving: v2 (the highest version that loads) takes over,
    /// and v3 leaves memory only once v2 is AVAILABLE.
    @Test func anEndedVersionIsReported() throws {
        let store = TempStore()
        store.write("m/1/model.onnx", good)
        let ended = Mutex<[Int]>([])
        let loader = StoreLoader(
            layout: StoreLayout(root: store.root), sessionOptions: SessionOptions(), logger: Logger(label: "test"),
            versionEnded: { _, v in ended.withLock { $0.append(v) } })
        let m = StoreManager(loader: loader, registry: ModelRegistry(), pollInterval: 0)
        try m.loadAllNow()
        store.write("m/2/model.onnx", good)
        poll(m)
        poll(m)
        #expect(waitFor { ended.withLock { $0 } == [1] })
    }

    @Test func aModelWithALoadableVersionNeverServesNothing() throws {
        let store = TempStore()
        for v in 1...3 { store.write("m/\(v)/model.onnx", good) }
        let (m, r) = manager(store)
        try m.loadAllNow()
        #expect(defaultVersion(r, "m") == 3)
        store.write("m/4/model.onnx", Array(good.prefix(good.count / 2)))  // truncated
        poll(m)
        poll(m)
        #expect(state(r, "m", 4) == .failed)
        #expect(defaultVersion(r, "m") == 3)
        try FileManager.default.removeItem(atPath: store.root + "/m/3")
        poll(m)
        #expect(defaultVersion(r, "m") == 2, "v2 serves in place of the failed v4")
        #expect(waitFor { state(r, "m", 3) == nil })
        let error = r.snapshot().models["m"]?.error ?? ""
        #expect(error.contains("version 2 serves in place of") && error.contains("4"), "\(error)")
        // v4 fixed: it serves, and the fallback goes.
        store.write("m/4/model.onnx", good)
        poll(m)
        poll(m)
        #expect(defaultVersion(r, "m") == 4)
        #expect(waitFor { state(r, "m", 2) == .end })
        #expect(r.snapshot().models["m"]?.error == nil)
    }

    @Test func aBrokenLatestVersionAtStartupFallsBackToTheNextOne() throws {
        let store = TempStore()
        store.write("m/1/model.onnx", good)
        store.write("m/2/model.onnx", Array(good.prefix(good.count / 2)))
        let (m, r) = manager(store)
        try m.loadAllNow()
        #expect(state(r, "m", 2) == .failed)
        #expect(defaultVersion(r, "m") == 1)
    }

    @Test func theLastServingVersionStaysInMemoryWhenItsDirectoryGoesAndNothingElseLoads() throws {
        let store = TempStore()
        store.write("m/1/model.onnx", Array(good.prefix(good.count / 2)))  // cannot serve
        store.write("m/2/model.onnx", good)
        let (m, r) = manager(store)
        try m.loadAllNow()
        #expect(defaultVersion(r, "m") == 2)
        try FileManager.default.removeItem(atPath: store.root + "/m/2")
        poll(m)
        poll(m)
        #expect(defaultVersion(r, "m") == 2, "v2 keeps serving from memory: v1 cannot load")
        #expect(r.snapshot().models["m"]?.error?.contains("keeps serving from memory") == true)
        store.write("m/3/model.onnx", good)
        poll(m)
        poll(m)
        #expect(defaultVersion(r, "m") == 3)
        #expect(waitFor { state(r, "m", 2) == nil })
    }

    @Test func labelsOnlyPointAtAvailableVersions() throws {
        let store = TempStore()
        store.write("m/1/model.onnx", good)
        store.write("m/2/model.onnx", good)
        store.write("m/config.json", #"{"version_policy": {"all": {}}, "version_labels": {"stable": 1, "canary": 2}}"#)
        let (m, r) = manager(store)
        try m.loadAllNow()
        #expect(r.snapshot().models["m"]?.labels == ["stable": 1, "canary": 2])
        #expect(r.snapshot().version(model: "m", label: "stable") == .found(1))
        // Move stable to a version that does not exist: refused, the previous mapping stays.
        store.write("m/config.json", #"{"version_policy": {"all": {}}, "version_labels": {"stable": 7, "canary": 2}}"#)
        poll(m)
        #expect(r.snapshot().models["m"]?.labels["stable"] == 1)
        #expect(r.snapshot().models["m"]?.error?.contains("label 'stable' -> version 7 refused") == true)
        // Moving it to a served version works.
        store.write("m/config.json", #"{"version_policy": {"all": {}}, "version_labels": {"stable": 2}}"#)
        poll(m)
        #expect(r.snapshot().models["m"]?.labels == ["stable": 2])
        #expect(r.snapshot().models["m"]?.error == nil)
    }

    @Test func aBrokenConfigKeepsThePreviousState() throws {
        let store = TempStore()
        store.write("m/1/model.onnx", good)
        store.write("m/2/model.onnx", good)
        store.write("m/config.json", #"{"version_policy": {"all": {}}}"#)
        let (m, r) = manager(store)
        try m.loadAllNow()
        store.write("m/config.json", #"{"version_policy": {"latest": 0}}"#)
        poll(m)
        #expect(state(r, "m", 1) == .available)
        #expect(state(r, "m", 2) == .available)
        let error = r.snapshot().models["m"]?.error ?? ""
        #expect(error.contains("version_policy.latest") && error.contains("previous configuration stays"))
    }

    @Test func uploadsAreWrittenAtomicallyAndLoaded() throws {
        let store = TempStore()
        store.mkdir("m")
        let (m, r) = manager(store)
        try m.loadAllNow()
        func load(_ model: String, _ files: [UploadedFile], config: String? = nil) -> Result<[Int], ManagementFailure> {
            let box = Mutex<Result<[Int], ManagementFailure>?>(nil)
            let done = DispatchSemaphore(value: 0)
            m.load(model: model, config: config.map { Array($0.utf8) }, files: files) { result in
                box.withLock { $0 = result }
                done.signal()
            }
            done.wait()
            return box.withLock { $0! }
        }
        let result = load("m", [UploadedFile(version: 3, name: "model.onnx", bytes: good)], config: #"{"version_labels": {"live": 3}}"#)
        #expect(try result.get() == [3])
        #expect(r.snapshot().models["m"]?.labels == ["live": 3])
        #expect(FileManager.default.fileExists(atPath: store.root + "/m/config.json"))
        #expect(try FileManager.default.contentsOfDirectory(atPath: store.root + "/m").sorted() == ["3", "config.json"])
        // The same version again: refused, nothing written.
        guard case .failure(let again) = load("m", [UploadedFile(version: 3, name: "model.onnx", bytes: [1])]) else {
            Issue.record("re-upload of version 3 accepted")
            return
        }
        #expect(again.status == 409)
        guard case .failure(let bad) = load("../etc", [UploadedFile(version: 1, name: "model.onnx", bytes: good)]) else {
            Issue.record("path traversal accepted")
            return
        }
        #expect(bad.status == 400)
        guard case .failure(let broken) = load("m", [UploadedFile(version: 4, name: "model.onnx", bytes: [1, 2, 3])]) else {
            Issue.record("broken upload reported as loaded")
            return
        }
        #expect(broken.status == 400 && broken.message.contains("version 4"))
        #expect(defaultVersion(r, "m") == 3)
    }
}
