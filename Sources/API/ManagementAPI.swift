import HTTP
import Logging
import ModelStore

/// The management port: Triton's model-repository API. For now `POST /v2/repository/index`
/// (what is in the store and in which state) and the health endpoints; load and unload come with
/// the model-store work.
///
/// Immutable; handles requests from any HTTP thread.
public final class ManagementAPI: HTTPHandler {
    enum Endpoint: Sendable { case index, live }

    let registry: ModelRegistry
    let router: Router<Endpoint>

    public init(registry: ModelRegistry) {
        self.registry = registry
        var r = Router<Endpoint>()
        r.add("POST", "/v2/repository/index", .index)
        r.add("GET", "/v2/health/live", .live)
        router = r
    }

    public func handle(_ request: HTTPRequest, responder: HTTPResponder) {
        switch router.match(method: request.method, path: request.path) {
        case .notFound:
            responder.respond(.error(404, "no management endpoint at \(request.method) \(request.path); try POST /v2/repository/index"))
        case .methodNotAllowed(let allowed):
            var response = HTTPResponse.error(405, "\(request.path) does not accept \(request.method); use \(allowed.joined(separator: " or "))")
            response.headers.append(("Allow", allowed.joined(separator: ", ")))
            responder.respond(response)
        case .found(.live, _):
            responder.respond(.text(200, ""))
        case .found(.index, _):
            responder.respond(index(readyOnly: readyOnly(request.body)))
        }
    }

    /// The body may be `{"ready": true}` to list only what can serve.
    private func readyOnly(_ body: [UInt8]) -> Bool {
        guard !body.isEmpty, let document = try? JSONDocument(parsing: body) else { return false }
        return document.rootValue["ready"]?.bool ?? false
    }

    /// `[{"name","version","state","reason"}]`, one entry per version (one per model without any).
    func index(readyOnly: Bool) -> HTTPResponse {
        let snapshot = registry.snapshot()
        var w = JSONWriter()
        w.raw("[")
        var first = true
        for name in snapshot.models.keys.sorted() {
            let model = snapshot.models[name]!
            let versions = model.sortedVersions.reversed()
            func entry(_ version: String, _ state: String, _ reason: String) {
                if readyOnly && state != "READY" { return }
                if !first { w.comma() }
                first = false
                w.raw("{")
                w.field("name", name)
                if !version.isEmpty {
                    w.raw(",")
                    w.field("version", version)
                }
                w.raw(",")
                w.field("state", state)
                w.raw(",")
                w.field("reason", reason)
                w.raw("}")
            }
            if versions.isEmpty { entry("", "UNAVAILABLE", model.error ?? "no version loaded") }
            for v in versions {
                // Triton's vocabulary: READY, LOADING, UNLOADING, UNAVAILABLE.
                let state: String
                switch v.state {
                case .available: state = "READY"
                case .loading, .start: state = "LOADING"
                case .unloading: state = "UNLOADING"
                case .end, .failed: state = "UNAVAILABLE"
                }
                entry(String(v.version), state, v.error ?? "")
            }
        }
        w.raw("]")
        return .json(200, w.bytes)
    }
}
