import Engine
import HTTP
import ModelStore
import Tensors

/// TF Serving REST endpoints: model status, metadata and `:predict` (row and columnar forms).
extension InferenceAPI {
    func v1Status(_ model: String, _ version: String?) throws(APIError) -> HTTPResponse {
        let snapshot = registry.snapshot()
        guard let status = snapshot.models[model] else {
            throw .notFound("Could not find any versions of model \(model); GET /v2/repository/index lists the models")
        }
        var versions = status.sortedVersions
        if let version {
            guard let v = StoreLayout.versionNumber(version), let entry = status.versions[v] else {
                throw .notFound("Could not find version \(version) of model \(model)")
            }
            versions = [entry]
        }
        var w = JSONWriter()
        w.raw("{\"model_version_status\":")
        w.array(versions) { w, v in
            let ok = v.state != .failed
            w.raw("{")
            w.field("version", String(v.version))
            w.raw(",")
            // TF Serving has no FAILED state: a version that failed is END with an error status.
            // Nor UNLOADED (an on-demand model not in memory): END, OK, with the reason.
            w.field("state", v.state == .failed || v.state == .unloaded ? "END" : v.state.rawValue)
            w.raw(",\"status\":{")
            w.field("error_code", ok ? "OK" : "UNKNOWN")
            w.raw(",")
            // A serving version reports the model's problems too (a rejected config.json keeps the
            // previous configuration in force): OK, with the reason.
            w.field("error_message", v.error ?? (v.state == .available ? status.error : nil) ?? "")
            w.raw("}}")
        }
        // Swerve's addition, beside TF Serving's list (whose entries stay exactly TF Serving's):
        // the measured resident bytes of each loaded version.
        w.raw(",\"memory_bytes\":{")
        var first = true
        for v in versions {
            guard let memory = v.servable?.memory.total else { continue }
            if !first { w.comma() }
            first = false
            w.key(String(v.version))
            w.raw("\(memory)")
        }
        w.raw("}}")
        return .json(200, w.bytes)
    }

    func v1Metadata(_ model: String, _ version: String?) throws(APIError) -> HTTPResponse {
        let servable = try registry.snapshot().resolve(model: model, version: version)
        func signature(_ w: inout JSONWriter, _ values: [ValueInfo]) {
            w.raw("{")
            for (i, value) in values.enumerated() {
                if i > 0 { w.comma() }
                w.key(value.name)
                w.raw("{")
                w.field("dtype", value.dataType?.tensorFlowName ?? "DT_INVALID")
                w.raw(",\"tensor_shape\":{\"dim\":")
                w.array(value.shape ?? []) { w, d in
                    w.raw("{")
                    w.field("size", String(d.reported))
                    w.raw(",")
                    w.field("name", "")  // TF Serving leaves dimension names empty
                    w.raw("}")
                }
                w.raw(",\"unknown_rank\":\(value.shape == nil)},")
                w.field("name", value.name)
                w.raw("}")
            }
            w.raw("}")
        }
        var w = JSONWriter()
        w.raw("{\"model_spec\":{")
        w.field("name", model)
        w.raw(",\"signature_name\":\"\",")
        w.field("version", String(servable.version))
        w.raw("},\"metadata\":{\"signature_def\":{\"signature_def\":{\"serving_default\":{\"inputs\":")
        signature(&w, servable.session.inputs)
        w.raw(",\"outputs\":")
        signature(&w, servable.session.outputs)
        w.raw(",\"method_name\":\"tensorflow/serving/predict\"}}}}}")
        return .json(200, w.bytes)
    }

    /// `POST /v1/models/{m}[/versions/{v}]:predict` with `instances` (rows) or `inputs` (columns).
    func v1Predict(_ request: HTTPRequest, _ model: String, _ version: String?, _ responder: HTTPResponder) throws(APIError) {
        let servable = try registry.snapshot().resolve(model: model, version: version)
        let document = try JSONDocument(parsing: request.body)
        let root = document.rootValue
        guard root.isObject else {
            throw .badRequest("the request body must be a JSON object with \"instances\" or \"inputs\"")
        }
        if let signature = root["signature_name"] {
            // Models have the one signature V1 metadata reports; "" means the default, as in TF Serving.
            guard let name = signature.string, name.isEmpty || name == "serving_default" else {
                throw .badRequest(
                    "signature_name must be \"serving_default\" (the only signature; GET .../metadata lists it) or left out")
            }
        }
        let session = servable.session
        let instances = root["instances"]
        let columns = root["inputs"]
        guard (instances == nil) != (columns == nil) else {
            throw .badRequest("send exactly one of \"instances\" (a list of rows) or \"inputs\" (columns)")
        }
        let feeds: [String: Tensor]
        var rows: Int? = nil
        if let instances {
            guard instances.isArray, instances.count > 0 else {
                throw .badRequest("\"instances\" must be a non-empty list of rows")
            }
            rows = instances.count
            feeds = try V1Decoder.rows(instances.elements, inputs: session.inputs)
        } else {
            feeds = try V1Decoder.columns(columns!, inputs: session.inputs)
        }
        let outputNames = session.outputs.map(\.name)
        let rowCount = rows
        servable.scheduler.submit(feeds) { result in
            switch result {
            case .success(let outputs):
                responder.respond(.json(200, V1Decoder.render(outputs, names: outputNames, rows: rowCount)))
            case .failure(let error):
                responder.respond(APIError.from(error).response)
            }
        }
    }
}

/// Reading V1 request bodies into tensors, and writing V1 answers.
enum V1Decoder {
    /// Row form: each instance is the single input's row, or an object of named inputs.
    static func rows(_ instances: [JSONValue], inputs: [ValueInfo]) throws(APIError) -> [String: Tensor] {
        if instances[0].isObject {
            var feeds: [String: Tensor] = [:]
            let names = Set(inputs.map(\.name))
            for (i, row) in instances.enumerated() {
                guard row.isObject else { throw .badRequest("instances[\(i)] must be an object like instances[0]") }
                for (key, _) in row.members where !names.contains(key) {
                    throw .badRequest(
                        "instances[\(i)] names input '\(key)', which the model does not have; its inputs are: \(inputs.map(\.name).joined(separator: ", "))")
                }
            }
            for input in inputs {
                var values: [JSONValue] = []
                for (i, row) in instances.enumerated() {
                    guard let v = row[input.name] else { throw .badRequest("instances[\(i)] has no value for input '\(input.name)'") }
                    values.append(v)
                }
                feeds[input.name] = try stack(values, input: input)
            }
            return feeds
        }
        guard inputs.count == 1, let input = inputs.first else {
            throw .badRequest(
                "the model has \(inputs.count) inputs (\(inputs.map(\.name).joined(separator: ", "))); send each instance as an object {input_name: value}")
        }
        return [input.name: try stack(instances, input: input)]
    }

    /// Stacks rows of one input along a new first dimension.
    static func stack(_ values: [JSONValue], input: ValueInfo) throws(APIError) -> Tensor {
        let what = "input '\(input.name)'"
        let rowShape = try TensorJSON.shape(of: values[0], what: what)
        for (i, v) in values.enumerated().dropFirst() {
            guard try TensorJSON.shape(of: v, what: what) == rowShape else {
                throw .badRequest("\(what): instance \(i) has a different shape from instance 0; all rows must have the same shape")
            }
        }
        return try TensorJSON.decode(
            rows: values, dataType: input.dataType ?? .float32, shape: [values.count] + rowShape, what: what)
    }

    /// Columnar form: one tensor for a single-input model, or an object of named tensors.
    static func columns(_ value: JSONValue, inputs: [ValueInfo]) throws(APIError) -> [String: Tensor] {
        let names = inputs.map(\.name)
        if value.isObject {
            var feeds: [String: Tensor] = [:]
            for (key, tensor) in value.members {
                guard let input = inputs.first(where: { $0.name == key }) else {
                    throw .badRequest("\"inputs\" names '\(key)', which the model does not have; its inputs are: \(names.joined(separator: ", "))")
                }
                let what = "input '\(key)'"
                feeds[key] = try TensorJSON.decode(
                    tensor, dataType: input.dataType ?? .float32, shape: try TensorJSON.shape(of: tensor, what: what), what: what)
            }
            return feeds
        }
        guard inputs.count == 1, let input = inputs.first else {
            throw .badRequest("the model has \(inputs.count) inputs; send \"inputs\" as an object {input_name: tensor}")
        }
        let what = "input '\(input.name)'"
        return [input.name: try TensorJSON.decode(
            value, dataType: input.dataType ?? .float32, shape: try TensorJSON.shape(of: value, what: what), what: what)]
    }

    /// `{"predictions": [...]}` for the row form, `{"outputs": ...}` for the columnar form.
    static func render(_ outputs: [String: Tensor], names: [String], rows: Int?) -> [UInt8] {
        let present = names.compactMap { name in outputs[name].map { (name, $0) } }
        var w = JSONWriter(capacity: 256 + outputs.values.reduce(0) { $0 + $1.count * 12 })
        guard let rows, present.allSatisfy({ $0.1.rank >= 1 && $0.1.shape[0] == rows }) else {
            // Columnar answer (also for row requests whose outputs are not batched by row).
            w.raw(rows == nil ? "{\"outputs\":" : "{\"predictions\":")
            if present.count == 1 {
                w.nestedArray(present[0].1, shape: present[0].1.shape[...])
            } else {
                w.raw("{")
                for (i, (name, tensor)) in present.enumerated() {
                    if i > 0 { w.comma() }
                    w.key(name)
                    w.nestedArray(tensor, shape: tensor.shape[...])
                }
                w.raw("}")
            }
            w.raw("}")
            return w.bytes
        }
        w.raw("{\"predictions\":[")
        for r in 0..<rows {
            if r > 0 { w.comma() }
            if present.count == 1 {
                row(&w, present[0].1, r)
            } else {
                w.raw("{")
                for (i, (name, tensor)) in present.enumerated() {
                    if i > 0 { w.comma() }
                    w.key(name)
                    row(&w, tensor, r)
                }
                w.raw("}")
            }
        }
        w.raw("]}")
        return w.bytes
    }

    private static func row(_ w: inout JSONWriter, _ tensor: Tensor, _ r: Int) {
        let inner = tensor.shape.dropFirst()
        w.nestedArray(tensor, shape: inner, start: r * inner.reduce(1, *))
    }
}
