import Batching
import Engine
import HTTP
import ModelStore
import Tensors

/// KServe V2 / Open Inference Protocol endpoints (and Triton's `config`).
extension InferenceAPI {
    func modelMetadata(_ model: String, _ version: String?) throws(APIError) -> HTTPResponse {
        let snapshot = registry.snapshot()
        let servable = try snapshot.resolve(model: model, version: version)
        let versions = version.map { [$0] }
            ?? snapshot.models[model]!.versions.values.filter { $0.state == .available }
            .map(\.version).sorted().map(String.init)
        var w = JSONWriter()
        w.raw("{")
        w.field("name", model)
        w.raw(",")
        w.key("versions")
        w.array(versions) { $0.string($1) }
        w.raw(",")
        w.field("platform", "onnx_onnxv1")
        w.raw(",")
        w.key("inputs")
        writeTensorMetadata(&w, servable.session.inputs)
        w.raw(",")
        w.key("outputs")
        writeTensorMetadata(&w, servable.session.outputs)
        w.raw("}")
        return .json(200, w.bytes)
    }

    /// Writes `[{"name", <typeKey>, <shapeKey>}]`: V2 metadata uses `datatype`/`shape` with V2
    /// type names, Triton's config `data_type`/`dims` with `TYPE_` names.
    private func writeTensorMetadata(
        _ w: inout JSONWriter, _ values: [ValueInfo], typeKey: String = "datatype", shapeKey: String = "shape",
        typePrefix: String = ""
    ) {
        w.array(values) { w, value in
            let type = value.dataType ?? .float32
            w.raw("{")
            w.field("name", value.name)
            w.raw(",")
            w.field(typeKey, typePrefix + (typePrefix.isEmpty || type != .string ? type.v2Name : "STRING"))
            w.raw(",")
            w.key(shapeKey)
            w.array(value.shape ?? []) { $0.int($1.reported) }
            w.raw("}")
        }
    }

    /// Triton's model configuration, enough for perf_analyzer and tritonclient. With
    /// max_batch_size > 0, `dims` leave out the batch dimension, as Triton's do.
    func modelConfig(_ model: String, _ version: String?) throws(APIError) -> HTTPResponse {
        let servable = try registry.snapshot().resolve(model: model, version: version)
        let batching = servable.batching
        func dropBatch(_ values: [ValueInfo]) -> [ValueInfo] {
            guard batching.batches else { return values }
            return values.map { v in
                var v = v
                v.shape = v.shape.map { Array($0.dropFirst()) }
                return v
            }
        }
        var w = JSONWriter()
        w.raw("{")
        w.field("name", model)
        w.raw(",")
        w.field("platform", "onnx_onnxv1")
        w.raw(",")
        w.field("backend", "swerve")
        w.raw(",\"max_batch_size\":\(batching.maxBatchSize),")
        w.key("input")
        writeTensorMetadata(&w, dropBatch(servable.session.inputs), typeKey: "data_type", shapeKey: "dims", typePrefix: "TYPE_")
        w.raw(",")
        w.key("output")
        writeTensorMetadata(&w, dropBatch(servable.session.outputs), typeKey: "data_type", shapeKey: "dims", typePrefix: "TYPE_")
        if batching.batches {
            w.raw(",\"dynamic_batching\":{")
            w.raw("\"max_queue_delay_microseconds\":\(batching.maxQueueDelayMicros),")
            w.raw("\"adaptive\":\(batching.adaptive),\"preferred_batch_size\":")
            w.array(batching.preferredBatchSizes) { $0.int($1) }
            w.raw(",\"default_queue_policy\":{\"max_queue_size\":\(batching.maxQueueSize),")
            w.raw("\"default_timeout_microseconds\":\(batching.defaultTimeoutMicros),\"allow_timeout_override\":true}}")
        }
        w.raw(",\"instance_group\":[{\"name\":")
        w.string(model)
        w.raw(",\"kind\":\"KIND_CPU\",\"count\":\(batching.instanceCount)}],")
        w.field("default_model_filename", "model.onnx")
        w.raw("}")
        return .json(200, w.bytes)
    }

    /// `POST .../infer` with a JSON body.
    func infer(_ request: HTTPRequest, _ model: String, _ version: String?, _ responder: HTTPResponder) throws(APIError) {
        let servable = try registry.snapshot().resolve(model: model, version: version)
        let document = try JSONDocument(parsing: request.body)
        let parsed = try V2InferRequest(document.rootValue, session: servable.session)
        servable.scheduler.submit(InferenceJob(inputs: parsed.inputs, timeoutMicros: parsed.timeoutMicros) { result in
            switch result {
            case .success(let outputs):
                responder.respond(.json(200, parsed.renderResponse(outputs, servable: servable)))
            case .failure(let error):
                responder.respond(APIError.from(error).response)
            }
        })
    }
}

/// A decoded V2 inference request.
struct V2InferRequest: Sendable {
    var id: String?
    /// The `timeout` parameter (microseconds in the queue before the request is dropped with 504).
    var timeoutMicros: Int?
    var inputs: [String: Tensor] = [:]
    /// Outputs to return, in order.
    var outputNames: [String]

    init(_ root: JSONValue, session: InferenceSession) throws(APIError) {
        guard root.isObject else { throw .badRequest("the request body must be a JSON object with an \"inputs\" list") }
        if let id = root["id"] {
            guard let text = id.string else { throw .badRequest("\"id\" must be a string") }
            self.id = text
        }
        if let timeout = root["parameters"]?["timeout"] {
            guard let micros = timeout.int, micros > 0 else {
                throw .badRequest("parameters.timeout must be a positive number of microseconds")
            }
            timeoutMicros = Int(micros)
        }
        guard let list = root["inputs"], list.isArray, list.count > 0 else {
            throw .badRequest("the request needs a non-empty \"inputs\" list of {name, shape, datatype, data}")
        }
        let declared = Dictionary(session.inputs.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        for i in 0..<list.count {
            let input = list[i]
            guard input.isObject, let name = input["name"]?.string else {
                throw .badRequest("inputs[\(i)] must be an object with a string \"name\"")
            }
            guard let info = declared[name] else {
                throw .badRequest(
                    "the model has no input '\(name)'; its inputs are: \(session.inputs.map(\.name).joined(separator: ", "))")
            }
            guard inputs[name] == nil else { throw .badRequest("input '\(name)' is given twice") }
            guard let typeName = input["datatype"]?.string else {
                throw .badRequest("input '\(name)' needs a \"datatype\" such as \"FP32\"")
            }
            guard let dataType = DataType(v2Name: typeName) else {
                throw .badRequest("input '\(name)': unknown datatype '\(typeName)'; use FP32, INT64, INT32, BOOL, ...")
            }
            if let expected = info.dataType, expected != dataType {
                throw .badRequest("input '\(name)': the model expects datatype \(expected.v2Name), got \(typeName)")
            }
            guard let shapeValue = input["shape"], shapeValue.isArray else {
                throw .badRequest("input '\(name)' needs a \"shape\" list such as [1, 64]")
            }
            var shape: [Int] = []
            for j in 0..<shapeValue.count {
                guard let d = shapeValue[j].int, d >= 0, d <= Int64(Int32.max) else {
                    throw .badRequest("input '\(name)': shape entries must be non-negative integers")
                }
                shape.append(Int(d))
            }
            if input["parameters"]?["binary_data_size"] != nil {
                throw .badRequest("input '\(name)': the binary tensor extension is not supported yet; send \"data\" as JSON")
            }
            guard let data = input["data"] else { throw .badRequest("input '\(name)' has no \"data\"") }
            inputs[name] = try TensorJSON.decode(data, dataType: dataType, shape: shape, what: "input '\(name)'")
        }
        let outputs = session.outputs.map(\.name)
        if let requested = root["outputs"] {
            guard requested.isArray else { throw .badRequest("\"outputs\" must be a list of {\"name\": ...}") }
            outputNames = []
            for i in 0..<requested.count {
                guard let name = requested[i]["name"]?.string else {
                    throw .badRequest("outputs[\(i)] must be an object with a string \"name\"")
                }
                guard outputs.contains(name) else {
                    throw .badRequest("the model has no output '\(name)'; its outputs are: \(outputs.joined(separator: ", "))")
                }
                outputNames.append(name)
            }
        } else {
            outputNames = outputs
        }
    }

    func renderResponse(_ outputs: [String: Tensor], servable: ServableVersion) -> [UInt8] {
        var w = JSONWriter(capacity: 256 + outputs.values.reduce(0) { $0 + $1.count * 12 })
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
        w.array(outputNames.compactMap { name in outputs[name].map { (name, $0) } }) { w, item in
            let (name, tensor) = item
            w.raw("{")
            w.field("name", name)
            w.raw(",")
            w.field("datatype", tensor.dataType.v2Name)
            w.raw(",")
            w.key("shape")
            w.array(tensor.shape) { $0.int($1) }
            w.raw(",")
            w.key("data")
            w.flatArray(tensor)
            w.raw("}")
        }
        w.raw("}")
        return w.bytes
    }
}
