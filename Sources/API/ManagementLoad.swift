import HTTP
import ModelStore

/// `POST /v2/repository/models/{m}/load`: Triton's body `{"parameters": {"config": "<json>",
/// "file:<version>/<name>": "<base64>"}}`, every part optional. Names are checked here so no
/// path outside the store can be written; the writing itself is the store manager's.
extension ManagementAPI {
    func load(_ model: String, _ request: HTTPRequest, _ responder: HTTPResponder) {
        guard StoreLayout.isValidModelName(model) else {
            return responder.respond(.error(400, "invalid model name '\(model)'; use letters, digits, '_', '-' and '.', not starting with '.'"))
        }
        guard let manager else { return responder.respond(.error(503, "the store manager is not running")) }
        let config: [UInt8]?
        let files: [UploadedFile]
        do throws(APIError) {
            (config, files) = try parseLoadBody(request.body)
        } catch {
            return responder.respond(error.response)
        }
        if !files.isEmpty || config != nil, token == nil {
            return responder.respond(.error(
                403, "uploading files or a config needs a management token; start swerve with --management-token, or copy the files into the store"))
        }
        manager.load(model: model, config: config, files: files) { result in
            switch result {
            case .success: responder.respond(.json(200, Array("{}".utf8)))
            case .failure(let failure): responder.respond(.error(failure.status, failure.message))
            }
        }
    }

    func parseLoadBody(_ body: [UInt8]) throws(APIError) -> ([UInt8]?, [UploadedFile]) {
        if body.isEmpty || body.allSatisfy({ $0 == 32 || $0 == 10 || $0 == 13 || $0 == 9 }) { return (nil, []) }
        let document = try JSONDocument(parsing: body)
        let root = document.rootValue
        guard root.isObject else { throw .badRequest("the body must be a JSON object {\"parameters\": {...}}") }
        guard let parameters = root["parameters"] else { return (nil, []) }
        guard parameters.isObject else { throw .badRequest("\"parameters\" must be an object") }
        var config: [UInt8]?
        var files: [UploadedFile] = []
        for (key, value) in parameters.members {
            if key == "config" {
                guard let text = value.string else { throw .badRequest("parameters.config must be a string holding the config's JSON") }
                config = Array(text.utf8)
            } else if key.hasPrefix("file:") {
                let path = key.dropFirst(5).split(separator: "/", omittingEmptySubsequences: false).map(String.init)
                guard path.count == 2, let version = StoreLayout.versionNumber(path[0]), StoreLayout.isValidFileName(path[1]) else {
                    throw .badRequest(
                        "parameter '\(key)' is not a valid file; use \"file:<version>/<name>\" with a positive version without leading zeros and a plain file name (e.g. file:3/model.onnx)")
                }
                guard let text = value.string, let bytes = Base64.decode(text) else {
                    throw .badRequest("parameter '\(key)' must be the file's content in base64")
                }
                files.append(UploadedFile(version: version, name: path[1], bytes: bytes))
            } else {
                throw .badRequest("unknown load parameter '\(key)'; use \"config\" and \"file:<version>/<name>\"")
            }
        }
        for version in Set(files.map(\.version)) where !files.contains(where: { $0.version == version && $0.name == "model.onnx" }) {
            throw .badRequest("the upload for version \(version) has no file:\(version)/model.onnx")
        }
        return (config, files)
    }
}

/// Standard base64 (RFC 4648, padding optional, no line breaks).
enum Base64 {
    static func decode(_ text: String) -> [UInt8]? {
        var out: [UInt8] = []
        out.reserveCapacity(text.utf8.count * 3 / 4)
        var buffer: UInt32 = 0
        var bits = 0
        var ended = false
        for c in text.utf8 {
            let v: UInt32
            switch c {
            case 65...90: v = UInt32(c - 65)
            case 97...122: v = UInt32(c - 97 + 26)
            case 48...57: v = UInt32(c - 48 + 52)
            case 43: v = 62
            case 47: v = 63
            case 61: ended = true; continue
            default: return nil
            }
            if ended { return nil }
            buffer = (buffer << 6) | v
            bits += 6
            if bits >= 8 {
                bits -= 8
                out.append(UInt8((buffer >> UInt32(bits)) & 0xFF))
            }
        }
        return bits >= 6 ? nil : out
    }
}
