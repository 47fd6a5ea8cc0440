import Engine
import HTTP
import ModelStore
import Tensors

/// A decoded V2 inference request: JSON, with the binary tensor extension.
///
/// Binary extension: the body is a JSON header of `Inference-Header-Content-Length` bytes followed
/// by raw little-endian row-major tensors, in the order of the inputs that carry
/// `"parameters": {"binary_data_size": N}`. `Inference-Header-Content-Length: 0` is raw mode: the
/// whole body is the single input's bytes. Outputs come back binary when asked with
/// `"parameters": {"binary_data": true}` on the output or `"binary_data_output": true` on the request.
struct V2InferRequest: Sendable {
    var id: String?
    /// The `timeout` parameter (microseconds in the queue before the request is dropped with 504).
    var timeoutMicros: Int?
    var inputs: [String: Tensor] = [:]
    /// Outputs to return, in order, and whether each goes back as binary.
    var outputs: [(name: String, binary: Bool)] = []

    private init() {}

    init(_ request: HTTPRequest, session: InferenceSession) throws(APIError) {
        self = try V2InferRequest.decode(request, session: session)
    }

    private static func decode(_ request: HTTPRequest, session: InferenceSession) throws(APIError) -> V2InferRequest {
        guard let headerText = request.header("Inference-Header-Content-Length") else {
            return try decode(json: request.body[...], binary: [][...], session: session)
        }
        guard let headerLength = Int(headerText), headerLength >= 0, headerLength <= request.body.count else {
            throw .badRequest(
                "Inference-Header-Content-Length is '\(headerText)' but the body has \(request.body.count) bytes; "
                    + "it must be the byte length of the JSON part")
        }
        if headerLength == 0 { return try decode(raw: request.body, session: session) }
        return try decode(json: request.body[0..<headerLength], binary: request.body[headerLength...], session: session)
    }

    /// Raw mode: the body is the one input's bytes; every output comes back binary.
    private static func decode(raw body: [UInt8], session: InferenceSession) throws(APIError) -> V2InferRequest {
        var request = V2InferRequest()
        guard session.inputs.count == 1, let input = session.inputs.first, let type = input.dataType,
            type.byteSize > 0, let declared = input.shape
        else {
            throw .badRequest("raw binary requests (Inference-Header-Content-Length: 0) need a model with one numeric input")
        }
        let known = declared.dropFirst().compactMap(\.value)
        guard known.count == declared.count - 1 else {
            throw .badRequest("raw binary requests need every dimension but the first of input '\(input.name)' to be fixed")
        }
        guard !body.isEmpty else {
            throw .badRequest(
                "raw binary request (Inference-Header-Content-Length: 0) with an empty body; send input '\(input.name)' as raw bytes, or a JSON request")
        }
        // The dims come from the model file: checked, so a huge declared row is a 400, not a trap.
        guard let rowBytes = Tensor.checkedByteCount(type, Array(known)) else {
            throw .badRequest("input '\(input.name)' declares dimensions \(known) whose size overflows; fix the model's input shape")
        }
        var shape = declared.map { $0.value ?? 1 }
        if declared.first?.value == nil, rowBytes > 0, !shape.isEmpty {
            guard body.count % rowBytes == 0 else {
                throw .badRequest("raw body of \(body.count) bytes is not a whole number of rows of \(rowBytes) bytes for input '\(input.name)'")
            }
            shape[0] = body.count / rowBytes
        }
        request.inputs[input.name] = try BinaryTensor.decode(body[...], dataType: type, shape: shape, what: "input '\(input.name)'")
        request.outputs = session.outputs.map { ($0.name, true) }
        return request
    }

    private static func decode(json: ArraySlice<UInt8>, binary: ArraySlice<UInt8>, session: InferenceSession) throws(APIError)
        -> V2InferRequest
    {
        var request = V2InferRequest()
        let document = try JSONDocument(parsing: Array(json))
        let root = document.rootValue
        guard root.isObject else { throw APIError.badRequest("the request body must be a JSON object with an \"inputs\" list") }
        if let id = root["id"] {
            guard let text = id.string else { throw APIError.badRequest("\"id\" must be a string") }
            request.id = text
        }
        let parameters = root["parameters"]
        if let timeout = parameters?["timeout"] {
            guard let micros = timeout.int, micros > 0 else {
                throw APIError.badRequest("parameters.timeout must be a positive number of microseconds")
            }
            request.timeoutMicros = Int(micros)
        }
        guard let list = root["inputs"], list.isArray, list.count > 0 else {
            throw APIError.badRequest("the request needs a non-empty \"inputs\" list of {name, shape, datatype, data}")
        }
        let declared = Dictionary(session.inputs.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        var rest = binary
        for i in 0..<list.count {
            let input = list[i]
            guard input.isObject, let name = input["name"]?.string else {
                throw APIError.badRequest("inputs[\(i)] must be an object with a string \"name\"")
            }
            guard let info = declared[name] else {
                throw APIError.badRequest(
                    "the model has no input '\(name)'; its inputs are: \(session.inputs.map(\.name).joined(separator: ", "))")
            }
            guard request.inputs[name] == nil else { throw APIError.badRequest("input '\(name)' is given twice") }
            guard let typeName = input["datatype"]?.string else {
                throw APIError.badRequest("input '\(name)' needs a \"datatype\" such as \"FP32\"")
            }
            guard let dataType = DataType(v2Name: typeName) else {
                throw APIError.badRequest("input '\(name)': unknown datatype '\(typeName)'; use FP32, INT64, INT32, BOOL, ...")
            }
            if let expected = info.dataType, expected != dataType {
                throw APIError.badRequest(
                    "input '\(name)': the model expects datatype \(expected.v2Name), got \(typeName); "
                        + "send \(expected.v2Name) data (GET /v2/models/{name} lists each input's datatype)")
            }
            let shape = try shape(input["shape"], name: name)
            let what = "input '\(name)'"
            if let size = input["parameters"]?["binary_data_size"] {
                guard let n = size.int, n >= 0, n <= Int64(rest.count) else {
                    // Described from the JSON value: a huge or fractional number has no Int.
                    let given = size.int.map { String($0) } ?? size.double.map { String($0) } ?? size.typeName
                    throw APIError.badRequest(
                        "\(what): binary_data_size \(given) is not a byte count within the \(rest.count) binary bytes left in the body; "
                            + "give each binary input's exact size in bytes")
                }
                if input["data"] != nil { throw APIError.badRequest("\(what) has both \"data\" and binary_data_size; send one") }
                let end = rest.startIndex + Int(n)
                request.inputs[name] = try BinaryTensor.decode(rest[rest.startIndex..<end], dataType: dataType, shape: shape, what: what)
                rest = rest[end...]
            } else {
                guard let data = input["data"] else { throw APIError.badRequest("\(what) has no \"data\"") }
                request.inputs[name] = try TensorJSON.decode(data, dataType: dataType, shape: shape, what: what)
            }
        }
        guard rest.isEmpty else {
            throw APIError.badRequest(
                "the body has \(rest.count) bytes after the inputs' binary data; binary_data_size values must add up to the binary part")
        }
        let binaryByDefault = parameters?["binary_data_output"]?.bool ?? false
        let names = session.outputs.map(\.name)
        if let requested = root["outputs"] {
            guard requested.isArray else { throw APIError.badRequest("\"outputs\" must be a list of {\"name\": ...}") }
            for i in 0..<requested.count {
                guard let name = requested[i]["name"]?.string else {
                    throw APIError.badRequest("outputs[\(i)] must be an object with a string \"name\"")
                }
                guard names.contains(name) else {
                    throw APIError.badRequest("the model has no output '\(name)'; its outputs are: \(names.joined(separator: ", "))")
                }
                request.outputs.append((name, requested[i]["parameters"]?["binary_data"]?.bool ?? binaryByDefault))
            }
        } else {
            request.outputs = names.map { ($0, binaryByDefault) }
        }
        return request
    }

    private static func shape(_ value: JSONValue?, name: String) throws(APIError) -> [Int] {
        guard let value, value.isArray else { throw .badRequest("input '\(name)' needs a \"shape\" list such as [1, 64]") }
        var shape: [Int] = []
        for j in 0..<value.count {
            guard let d = value[j].int, d >= 0, d <= Int64(Int32.max) else {
                throw .badRequest("input '\(name)': shape entries must be non-negative integers")
            }
            shape.append(Int(d))
        }
        return shape
    }

    /// The response: plain JSON, or JSON followed by the binary outputs.
    func response(_ results: [String: Tensor], servable: ServableVersion) -> HTTPResponse {
        let present = outputs.compactMap { o in results[o.name].map { (o.name, o.binary, $0) } }
        var w = JSONWriter(capacity: 256 + present.reduce(0) { $0 + ($1.1 ? 64 : $1.2.count * 12) })
        w.raw("{")
        w.field("model_name", servable.model)
        w.raw(",")
        w.field("model_version", String(servable.version))
        if let id {
            w.raw(",")
            w.field("id", id)
        }
        w.raw(",")
        w.key("outputs")
        w.array(present) { w, item in
            let (name, binary, tensor) = item
            w.raw("{")
            w.field("name", name)
            w.raw(",")
            w.field("datatype", tensor.dataType.v2Name)
            w.raw(",")
            w.key("shape")
            w.array(tensor.shape) { $0.int($1) }
            if binary {
                w.raw(",\"parameters\":{\"binary_data_size\":\(tensor.byteCount)}")
            } else {
                w.raw(",")
                w.key("data")
                w.flatArray(tensor)
            }
            w.raw("}")
        }
        w.raw("}")
        guard present.contains(where: { $0.1 }) else { return .json(200, w.bytes) }
        var body = w.bytes
        let headerLength = body.count
        body.reserveCapacity(headerLength + present.reduce(0) { $0 + ($1.1 ? $1.2.byteCount : 0) })
        for (_, binary, tensor) in present where binary { body.append(contentsOf: tensor.rawBytes) }
        return HTTPResponse(
            status: 200,
            headers: [("Content-Type", "application/octet-stream"), ("Inference-Header-Content-Length", String(headerLength))],
            body: body)
    }
}

/// Raw tensor bytes (little-endian, row-major; BOOL one byte each; FP16 and BF16 as their 16-bit
/// patterns) to and from tensors.
enum BinaryTensor {
    static func decode(_ bytes: ArraySlice<UInt8>, dataType: DataType, shape: [Int], what: String) throws(APIError) -> Tensor {
        guard dataType.byteSize > 0 else {
            throw .badRequest("\(what): datatype \(dataType.v2Name) is not supported in binary form; use a numeric datatype or BOOL")
        }
        var count = 1
        for d in shape {
            let (p, overflow) = count.multipliedReportingOverflow(by: d)
            guard !overflow, p <= (1 << 40) else { throw .badRequest("\(what): shape \(shape) is too large") }
            count = p
        }
        guard count * dataType.byteSize == bytes.count else {
            throw .badRequest(
                "\(what): shape \(shape) of \(dataType.v2Name) needs \(count * dataType.byteSize) bytes but binary_data_size is \(bytes.count)")
        }
        let tensor = Tensor(uninitialized: dataType, shape: shape)
        bytes.withUnsafeBytes { src in
            if src.count > 0 { tensor.mutableBytes.baseAddress!.copyMemory(from: src.baseAddress!, byteCount: src.count) }
        }
        if dataType == .bool {
            // Any non-zero byte is true; store canonical Swift Bools.
            let b = tensor.mutableBytes
            for i in 0..<b.count where b[i] > 1 { b[i] = 1 }
        }
        return tensor
    }
}
