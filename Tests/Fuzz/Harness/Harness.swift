import API
import Batching
import Engine
import FoundationEssentials
import HTTP
import Logging
import ModelStore
import Synchronization
import Tensors

/// What the libFuzzer targets share: an `InferenceAPI` over small hand-built models (the same
/// ones the API unit tests use), called in process, and the contract every answer must keep.
/// Built once per fuzzing process; see docs/fuzzing.md.
public final class FuzzHarness: Sendable {
    public static let shared = FuzzHarness()

    let registry = ModelRegistry()
    let api: InferenceAPI
    /// The "relu" model's session, which `checkConfig` validates batching options against.
    let reluSession: InferenceSession

    private init() {
        LoggingSystem.bootstrap { _ in SwiftLogNoOpLogHandler() }
        api = InferenceAPI(registry: registry, logger: Logger(label: "fuzz"))
        // "relu": x FP32 [batch, 3] -> y = Relu(x), z = x + bias
        let relu = GraphModel(
            graph: Graph(
                nodes: [
                    Node(name: "r", opType: "Relu", inputs: ["x"], outputs: ["y"]),
                    Node(name: "a", opType: "Add", inputs: ["x", "bias"], outputs: ["z"]),
                ],
                inputs: [ValueInfo(name: "x", dataType: .float32, shape: [.symbolic("batch"), .fixed(3)])],
                outputs: [
                    ValueInfo(name: "y", dataType: .float32, shape: [.symbolic("batch"), .fixed(3)]),
                    ValueInfo(name: "z", dataType: .float32, shape: [.symbolic("batch"), .fixed(3)]),
                ],
                initializers: ["bias": Tensor([Float(1), 2, 3], shape: [3])]),
            opsets: ["": 17], irVersion: 8)
        // "ints": a INT64 [n, 2], b INT64 [2] -> s = a + b ; flags BOOL [n] -> f = Identity(flags)
        let ints = GraphModel(
            graph: Graph(
                nodes: [
                    Node(name: "add", opType: "Add", inputs: ["a", "b"], outputs: ["s"]),
                    Node(name: "id", opType: "Identity", inputs: ["flags"], outputs: ["f"]),
                ],
                inputs: [
                    ValueInfo(name: "a", dataType: .int64, shape: [.symbolic("n"), .fixed(2)]),
                    ValueInfo(name: "b", dataType: .int64, shape: [.fixed(2)]),
                    ValueInfo(name: "flags", dataType: .bool, shape: [.symbolic("n")]),
                ],
                outputs: [
                    ValueInfo(name: "s", dataType: .int64, shape: [.symbolic("n"), .fixed(2)]),
                    ValueInfo(name: "f", dataType: .bool, shape: [.symbolic("n")]),
                ]),
            opsets: ["": 17], irVersion: 8)
        do {
            reluSession = try InferenceSession(model: relu)
            try add("relu", version: 1, relu)
            try add("ints", version: 1, ints)
        } catch {
            fatalError("the fuzz harness cannot build its models: \(error)")
        }
        api.markStoreLoaded()
    }

    private func add(_ name: String, version: Int, _ model: GraphModel) throws {
        let session = try InferenceSession(model: model)
        let servable = ServableVersion(
            model: name, version: version, path: "/dev/null", session: session,
            scheduler: PassThroughScheduler { try session.run($0) })
        registry.setVersion(name, VersionStatus(version: version, state: .available, servable: servable))
    }

    /// Sends one request through the inference API and checks the answer against the contract:
    /// a 2xx, or a JSON `{"error": "..."}` with a status a client can act on (never a 500).
    public func call(_ method: String, _ path: String, headers: [String: String] = [:], body: [UInt8]) {
        let box = Mutex<HTTPResponse?>(nil)
        api.handle(HTTPRequest(method: method, path: path, headers: headers, body: body), responder: HTTPResponder { r in
            box.withLock { $0 = r }
        })
        guard let response = box.withLock({ $0 }) else {
            fatalError("\(method) \(path): no answer (the request was dropped)")
        }
        FuzzHarness.checkContract(response, "\(method) \(path)")
    }

    /// Parses `bytes` as a model's config.json and, when it parses, validates its batching options
    /// against a model. Errors are expected; a trap is a finding.
    public func checkConfig(_ bytes: [UInt8]) {
        guard let config = try? ModelConfig.parse(bytes, path: "config.json") else { return }
        _ = try? SchedulerContext.validate(config.batching, for: reluSession)
    }

    struct ErrorBody: Decodable { let error: String }

    static func checkContract(_ response: HTTPResponse, _ what: String) {
        if (200..<300).contains(response.status) { return }
        guard [400, 404, 405, 413, 429, 503, 504].contains(response.status) else {
            fatalError("\(what): status \(response.status): \(String(decoding: response.body, as: UTF8.self))")
        }
        guard let decoded = try? JSONDecoder().decode(ErrorBody.self, from: Data(response.body)), !decoded.error.isEmpty else {
            fatalError("\(what): status \(response.status) without a JSON {\"error\": ...} body: \(String(decoding: response.body, as: UTF8.self))")
        }
    }
}
