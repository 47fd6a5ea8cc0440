import Batching
import Engine
import HTTP
import ModelStore

/// An error answered to a client: the HTTP status a peer server would use, and a message that
/// says what went wrong and what to do. Rendered as `{"error": message}`.
struct APIError: Error, CustomStringConvertible {
    let status: Int
    let message: String

    static func badRequest(_ m: String) -> APIError { APIError(status: 400, message: m) }
    static func notFound(_ m: String) -> APIError { APIError(status: 404, message: m) }
    static func unavailable(_ m: String) -> APIError { APIError(status: 503, message: m) }
    static func internalError(_ m: String) -> APIError { APIError(status: 500, message: m) }

    var description: String { message }
    var response: HTTPResponse { .error(status, message) }

    /// Maps an error from the engine or elsewhere to what the client sees.
    static func from(_ error: any Error) -> APIError {
        if let api = error as? APIError { return api }
        if let scheduler = error as? SchedulerError {
            switch scheduler {
            case .queueFull, .stopped: return APIError(status: 503, message: "\(scheduler)")
            case .timedOut: return APIError(status: 504, message: "\(scheduler)")
            case .tooManyRows, .missingBatchDimension, .inconsistentRows: return .badRequest("\(scheduler)")
            case .unbatchableOutput: return .internalError("\(scheduler)")
            }
        }
        if let engine = error as? EngineError {
            if case .invalidInput(let m) = engine { return .badRequest(m) }
            // The request would need more working memory than it may have: too large, as a body
            // past --max-body-size is (the server is fine; a smaller request will do).
            if case .memoryLimit = engine { return APIError(status: 413, message: "\(engine)") }
            return .internalError("\(engine)")
        }
        return .internalError("internal error: \(error); the server logs have details")
    }
}

extension RegistrySnapshot {
    /// The servable for a request's model and optional version text, or the error to answer.
    func resolve(model: String, version: String?) throws(APIError) -> ServableVersion {
        var number: Int?
        if let version {
            guard let v = StoreLayout.versionNumber(version) else {
                throw .badRequest("version '\(version)' is not a positive integer; use e.g. /versions/1")
            }
            number = v
        }
        if let loaded = InferenceAPI.loadedForRequest, loaded.model == model, number == nil || number == loaded.version {
            return loaded
        }
        switch servable(model: model, version: number) {
        case .found(let servable): return servable
        case .modelNotFound:
            throw .notFound("model '\(model)' is not in the model store; GET /v2/repository/index lists the models")
        case .versionNotFound:
            let known = models[model]?.sortedVersions.map { String($0.version) }.joined(separator: ", ") ?? ""
            throw .notFound(
                "model '\(model)' has no version \(version ?? "") being served (served versions: \(known.isEmpty ? "none" : known)); "
                    + "omit the version to use the latest")
        case .unavailable(let reason):
            throw .unavailable(reason)
        }
    }
}
