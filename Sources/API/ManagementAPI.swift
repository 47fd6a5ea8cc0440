import HTTP
import Logging
import ModelStore

/// The management port: Triton's model-repository API. `POST /v2/repository/index` (what is in
/// the store and in which state), `POST /v2/repository/models/{m}/load` (rescan the model, or
/// write uploaded files first) and `.../unload`, plus `POST /v2/repository/rescan` (the whole
/// store, now) and `GET /v2/health/live`.
///
/// With a token, every endpoint but `live` needs `Authorization: Bearer <token>` (compared in
/// constant time); uploads need a token in any case. Immutable; handles requests from any HTTP
/// thread; loads and unloads complete asynchronously on the store manager's queue.
public final class ManagementAPI: HTTPHandler {
    enum Endpoint: Sendable { case index, live, load, unload, rescan }

    let registry: ModelRegistry
    let manager: StoreManager?
    let token: [UInt8]?
    let logger: Logger
    let router: Router<Endpoint>

    public init(registry: ModelRegistry, manager: StoreManager? = nil, token: String? = nil, logger: Logger = Logger(label: "swerve")) {
        self.registry = registry
        self.manager = manager
        self.token = token.map { Array($0.utf8) }
        self.logger = logger
        var r = Router<Endpoint>()
        r.add("POST", "/v2/repository/index", .index)
        r.add("POST", "/v2/repository/rescan", .rescan)
        r.add("POST", "/v2/repository/models/{model}/load", .load)
        r.add("POST", "/v2/repository/models/{model}/unload", .unload)
        r.add("GET", "/v2/health/live", .live)
        router = r
    }

    /// True for addresses only this machine can reach (`127.0.0.0/8`, `::1`, `localhost`).
    public static func isLoopback(_ host: String) -> Bool {
        host == "localhost" || host == "::1" || host == "[::1]" || host.hasPrefix("127.")
    }

    public func handle(_ request: HTTPRequest, responder: HTTPResponder) {
        let match = router.match(method: request.method, path: request.path)
        if case .found(.live, _) = match {
            responder.respond(.text(200, ""))
            return
        }
        if let token, !ManagementAPI.authorized(request.header("Authorization"), token: token) {
            var response = HTTPResponse.error(
                401, "the management API needs the header 'Authorization: Bearer <token>' with the server's --management-token")
            response.headers.append(("WWW-Authenticate", "Bearer"))
            responder.respond(response)
            return
        }
        switch match {
        case .notFound:
            if request.path.hasPrefix("/v2/repository/models/") {
                // A model name with '/' (e.g. '../x', percent-encoded or not) lands here.
                responder.respond(.error(
                    400, "invalid model path '\(request.path)'; use /v2/repository/models/<name>/load or /unload, the name made of letters, digits, '_', '-' and '.'"))
                return
            }
            responder.respond(.error(404, "no management endpoint at \(request.method) \(request.path); try POST /v2/repository/index"))
        case .methodNotAllowed(let allowed):
            var response = HTTPResponse.error(405, "\(request.path) does not accept \(request.method); use \(allowed.joined(separator: " or "))")
            response.headers.append(("Allow", allowed.joined(separator: ", ")))
            responder.respond(response)
        case .found(.live, _):
            responder.respond(.text(200, ""))
        case .found(.index, _):
            do throws(APIError) {
                responder.respond(index(readyOnly: try readyOnly(request.body)))
            } catch {
                responder.respond(error.response)
            }
        case .found(.rescan, _):
            guard let manager else { return responder.respond(.error(503, "the store manager is not running")) }
            manager.rescan { responder.respond(self.index(readyOnly: false)) }
        case .found(.load, let parameters):
            load(parameters["model"] ?? "", request, responder)
        case .found(.unload, let parameters):
            let model = parameters["model"] ?? ""
            guard StoreLayout.isValidModelName(model) else {
                return responder.respond(.error(400, "invalid model name '\(model)'; use letters, digits, '_', '-' and '.', not starting with '.'"))
            }
            guard let manager else { return responder.respond(.error(503, "the store manager is not running")) }
            manager.unload(model: model) { result in
                switch result {
                case .success: responder.respond(.json(200, Array("{}".utf8)))
                case .failure(let failure): responder.respond(.error(failure.status, failure.message))
                }
            }
        }
    }

    /// Constant-time comparison of the bearer token (the time does not depend on where they differ).
    static func authorized(_ header: String?, token: [UInt8]) -> Bool {
        guard let header, header.hasPrefix("Bearer ") else { return false }
        let given = Array(header.utf8.dropFirst(7))
        var difference = UInt8(given.count == token.count ? 0 : 1)
        for i in 0..<token.count { difference |= token[i] ^ (i < given.count ? given[i] : 0) }
        return difference == 0
    }

    /// The body may be empty, `{}`, or `{"ready": true}` to list only what can serve; anything
    /// else is a 400 (it used to be ignored, listing everything).
    private func readyOnly(_ body: [UInt8]) throws(APIError) -> Bool {
        if body.allSatisfy({ $0 == 32 || $0 == 10 || $0 == 13 || $0 == 9 }) { return false }
        let root = try JSONDocument(parsing: body).rootValue
        guard root.isObject else { throw .badRequest("the index body must be a JSON object such as {\"ready\": true}, or empty") }
        guard let ready = root["ready"] else { return false }
        guard let flag = ready.bool else { throw .badRequest("\"ready\" must be true or false") }
        return flag
    }
}
