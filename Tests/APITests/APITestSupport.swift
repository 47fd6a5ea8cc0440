import API
import Batching
import Engine
import Foundation
import HTTP
import Logging
import ModelStore
import Synchronization
import Tensors

/// Builds an API over a registry holding small hand-built models, and calls it in process.
struct APIHarness {
    let registry = ModelRegistry()
    let api: InferenceAPI

    init() throws {
        api = InferenceAPI(registry: registry, logger: Logger(label: "test"))
        // "relu": x FP32 [batch, 3] -> y = Relu(x), z = Add(x, bias)
        let bias = Tensor([Float(1), 2, 3], shape: [3])
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
                initializers: ["bias": bias]),
            opsets: ["": 17], irVersion: 8)
        try add("relu", version: 1, relu)
        try add("relu", version: 2, relu)
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
        try add("ints", version: 1, ints)
        registry.setVersion("failed", VersionStatus(version: 1, state: .failed, error: "cannot parse model.onnx"))
        api.markStoreLoaded()
    }

    func add(_ name: String, version: Int, _ model: GraphModel) throws {
        let session = try InferenceSession(model: model)
        let servable = ServableVersion(
            model: name, version: version, path: "/dev/null", session: session,
            scheduler: PassThroughScheduler { try session.run($0) })
        registry.setVersion(name, VersionStatus(version: version, state: .available, servable: servable))
    }

    struct Reply {
        let status: Int
        let body: [UInt8]
        let headers: [(String, String)]
        var text: String { String(decoding: body, as: UTF8.self) }
        var json: Any { (try? JSONSerialization.jsonObject(with: Data(body), options: [.fragmentsAllowed])) ?? NSNull() }
        var object: [String: Any] { json as? [String: Any] ?? [:] }
        var error: String { object["error"] as? String ?? "" }
    }

    /// Sends a request through the API and waits for its answer.
    func call(_ method: String, _ path: String, _ body: String = "", headers: [String: String] = [:]) -> Reply {
        let box = Mutex<HTTPResponse?>(nil)
        api.handle(HTTPRequest(method: method, path: path, headers: headers, body: Array(body.utf8)), responder: HTTPResponder { r in
            box.withLock { $0 = r }
        })
        let r = box.withLock { $0 }!
        return Reply(status: r.status, body: r.body, headers: r.headers)
    }
}
