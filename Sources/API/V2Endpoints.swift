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
        // Each instance's share of --threads (Triton reports backend settings as string parameters).
        w.raw("\"parameters\":{\"intra_op_thread_count\":{\"string_value\":")
        w.string("\(servable.session.options.blasThreads)")
        w.raw("}},")
        w.field("default_model_filename", "model.onnx")
        w.raw("}")
        return .json(200, w.bytes)
    }

    /// `POST .../infer`: JSON, or JSON plus binary tensors (the binary tensor extension).
    func infer(_ request: HTTPRequest, _ model: String, _ version: String?, _ responder: HTTPResponder) throws(APIError) {
        let servable = try registry.snapshot().resolve(model: model, version: version)
        let parsed = try V2InferRequest(request, session: servable.session)
        servable.scheduler.submit(InferenceJob(inputs: parsed.inputs, timeoutMicros: parsed.timeoutMicros) { result in
            switch result {
            case .success(let outputs):
                responder.respond(parsed.response(outputs, servable: servable))
            case .failure(let error):
                responder.respond(APIError.from(error).response)
            }
        })
    }
}
