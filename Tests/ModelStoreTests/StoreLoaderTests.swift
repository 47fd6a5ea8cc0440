import Engine
import Foundation
import Logging
import ModelStore
import Tensors
import Testing

/// The small MLP of the end-to-end test store (made by tools/make_test_models.py).
let mlpModelPath = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .appendingPathComponent("../e2e/models/mlp/1/model.onnx").standardized.path

@Suite struct StoreLoaderTests {
    func load(_ store: TempStore) throws -> RegistrySnapshot {
        let registry = ModelRegistry()
        let loader = StoreLoader(
            layout: StoreLayout(root: store.root), sessionOptions: SessionOptions(), logger: Logger(label: "test"))
        try StoreManager(loader: loader, registry: registry, pollInterval: 0).loadAllNow()
        return registry.snapshot()
    }

    /// float8 and int4 inside a graph are served; as a graph output they are refused at load, since
    /// no inference protocol has a datatype for them (fixtures: tools/make_narrow_fixtures.py).
    @Test func narrowTypesServeInsideAndAreRefusedAtTheEdges() throws {
        let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")
        let store = TempStore()
        for name in ["narrow_inside", "narrow_output"] {
            store.write("\(name)/1/model.onnx", try [UInt8](Data(contentsOf: fixtures.appendingPathComponent(name + ".onnx"))))
        }
        let snapshot = try load(store)
        guard case .found(let servable) = snapshot.servable(model: "narrow_inside", version: nil) else {
            Issue.record("narrow_inside not served: \(snapshot.models["narrow_inside"]?.versions[1]?.error ?? "")")
            return
        }
        let x = Tensor([Float(0.3), -500, 1, 2.2, 0.01, -3.1], shape: [2, 3])
        let z = try #require(try servable.session.run(["x": x])["z"])
        // x rounded to FLOAT8E4M3FN (3 mantissa bits, ties to even, saturating at 448), plus the
        // INT4 initializer [-8, 7, 3] widened: what onnxruntime 1.32 computes for this file too.
        let expected: [Float] = [0.3125 - 8, -448 + 7, 1 + 3, 2.25 - 8, 0.009765625 + 7, -3 + 3]
        #expect(z.scalars(as: Float.self) == expected)

        let refused = snapshot.models["narrow_output"]?.versions[1]
        #expect(refused?.state == .failed)
        let reason = refused?.error ?? ""
        #expect(reason.contains("output 'y8' is FLOAT8E4M3FN") && reason.contains("Cast to FLOAT"), "\(reason)")
    }

    @Test func aBrokenModelDoesNotStopTheOthers() throws {
        let store = TempStore()
        let good = try [UInt8](Data(contentsOf: URL(fileURLWithPath: mlpModelPath)))
        store.write("good/1/model.onnx", good)
        store.write("good/2/model.onnx", good)
        store.write("broken/1/model.onnx", "this is not a protobuf")
        store.mkdir("empty")
        store.write("badconfig/1/model.onnx", good)
        store.write("badconfig/config.json", "{\"version_policy\": 5}")
        let snapshot = try load(store)

        guard case .found(let servable) = snapshot.servable(model: "good", version: nil) else {
            Issue.record("good model not served")
            return
        }
        #expect(servable.version == 2)  // default policy: latest 1
        #expect(snapshot.models["good"]?.versions.keys.sorted() == [2])
        guard case .versionNotFound = snapshot.servable(model: "good", version: 1) else {
            Issue.record("version 1 should not be served under latest(1)")
            return
        }

        let broken = snapshot.models["broken"]?.versions[1]
        #expect(broken?.state == .failed)
        #expect(broken?.error?.contains("broken/1/model.onnx") == true)
        guard case .unavailable(let reason) = snapshot.servable(model: "broken", version: nil) else {
            Issue.record("broken model should be unavailable")
            return
        }
        #expect(reason.contains("broken"))

        #expect(snapshot.models["empty"]?.error?.contains("no version directory") == true)
        #expect(snapshot.models["badconfig"]?.error?.contains("config.json") == true)
        #expect(snapshot.models["badconfig"]?.versions.isEmpty == true)
        guard case .modelNotFound = snapshot.servable(model: "nope", version: nil) else {
            Issue.record("unknown model should be not found")
            return
        }
        #expect(snapshot.isSettled)
    }

    @Test func allPolicyServesEveryVersion() throws {
        let store = TempStore()
        let good = try [UInt8](Data(contentsOf: URL(fileURLWithPath: mlpModelPath)))
        store.write("m/1/model.onnx", good)
        store.write("m/3/model.onnx", good)
        store.write("m/config.json", #"{"version_policy": {"all": {}}}"#)
        let snapshot = try load(store)
        #expect(snapshot.models["m"]?.versions.keys.sorted() == [1, 3])
        guard case .found(let v1) = snapshot.servable(model: "m", version: 1) else {
            Issue.record("version 1 not served")
            return
        }
        #expect(v1.version == 1)
        guard case .found(let latest) = snapshot.servable(model: "m", version: nil) else {
            Issue.record("no default version")
            return
        }
        #expect(latest.version == 3)
    }
}
