import HTTP
import Logging
import ModelStore
import Operations

/// Operations endpoints of the inference port (`/metrics`, Triton's `/stats`, the status page and
/// its JSON) and the per-request instrumentation: metrics, pending gauge, access log.
extension InferenceAPI {
    /// Wraps `responder` so that the answer is counted (HTTP route and status; for inference
    /// requests outcome, duration, pending) and access-logged before it is delivered.
    func observed(_ request: HTTPRequest, _ match: Router<Endpoint>.Match, pattern: String?, _ responder: HTTPResponder)
        -> HTTPResponder
    {
        let start = monotonicNow()
        var target: ModelMetrics?
        var inferProtocol: InferenceProtocol?
        var lookup: (model: String, version: String?)?
        if let metrics, case .found(let endpoint, let parameters) = match,
            endpoint == .modelInfer || endpoint == .v1Predict
        {
            inferProtocol = endpoint == .modelInfer ? .v2 : .v1
            // The version the request runs on: a TF Serving label's target, not the default version.
            let model = parameters["model"] ?? ""
            let version: String?? = try? requestedVersion(model, parameters)  // nil: an unknown label
            if let version { lookup = (model, version) }
            if let version, let servable = try? registry.snapshot().resolve(model: model, version: version) {
                let m = metrics.model(servable.model, version: servable.version)
                m.requestStarted()
                target = m
            }
        }
        let route = pattern ?? "unmatched"
        let method = request.method
        let path = request.path
        let headerID = accessLog ? request.header("x-request-id") : nil
        return HTTPResponder { [self, target, inferProtocol, lookup] response in
            let seconds = monotonicNow() - start
            if let metrics {
                if let inferProtocol {
                    // A request that waited for an on-demand load resolved no version when it
                    // came in: count it on the version that answered it.
                    // The same for one that came in while its model was loading (it resolved
                    // nothing here, and a version by the time it was dispatched).
                    var counted = target
                    if counted == nil, response.status < 300, let lookup {
                        if let loaded = response.headers.first(where: { $0.0 == "Swerve-Loaded-Version" }).flatMap({ Int($0.1) }) {
                            counted = metrics.model(lookup.model, version: loaded)
                        } else if let servable = try? registry.snapshot().resolve(model: lookup.model, version: lookup.version) {
                            counted = metrics.model(servable.model, version: servable.version)
                        }
                    }
                    let outcome = RequestOutcome(status: response.status, reachedVersion: counted != nil)
                    (counted ?? metrics.unresolved).requestFinished(protocol: inferProtocol, outcome: outcome, seconds: seconds)
                }
                target?.requestEnded()
                metrics.httpRequest(route: route, method: method, status: response.status)
            }
            if accessLog {
                var metadata: Logger.Metadata = [
                    "event": "access", "method": "\(method)", "path": "\(path)", "status": "\(response.status)",
                    "bytes": "\(response.body.count)", "duration_ms": "\(Double(Int(seconds * 1e6)) / 1000)",
                ]
                if let id = headerID ?? (inferProtocol == .v2 ? v2ResponseID(response.body) : nil) {
                    metadata["request_id"] = "\(id)"
                }
                accessLogger.info("request", metadata: metadata)
            }
            responder.respond(response)
        }
    }

    /// `GET /metrics`: Prometheus text format 0.0.4.
    func metricsText() -> HTTPResponse {
        guard let metrics else {
            return .error(404, "metrics are off (--no-metrics); restart swerve without --no-metrics to collect them")
        }
        var response = HTTPResponse(status: 200, body: metrics.render(registry.snapshot()))
        response.headers.append(("Content-Type", "text/plain; version=0.0.4; charset=utf-8"))
        return response
    }

    /// Triton's `GET /v2/models[/{m}[/versions/{v}]]/stats`: cumulative counts and nanoseconds.
    func modelStats(_ model: String?, _ version: String?) throws(APIError) -> HTTPResponse {
        let snapshot = registry.snapshot()
        var selected: [(String, Int)] = []
        if let model {
            if version != nil {
                let servable = try snapshot.resolve(model: model, version: version)
                selected = [(servable.model, servable.version)]
            } else {
                guard let status = snapshot.models[model] else {
                    throw .notFound("model '\(model)' is not in the model store; GET /v2/repository/index lists the models")
                }
                selected = status.sortedVersions.filter { $0.state == .available }.map { (model, $0.version) }.reversed()
            }
        } else {
            for name in snapshot.models.keys.sorted() {
                for v in snapshot.models[name]!.sortedVersions.reversed() where v.state == .available {
                    selected.append((name, v.version))
                }
            }
        }
        var w = JSONWriter(capacity: 1024)
        w.raw("{\"model_stats\":")
        w.array(selected) { w, item in
            let t = metrics?.model(item.0, version: item.1).totals ?? ModelMetrics.Totals()
            func pair(_ name: String, _ count: Int, _ nanos: Int) {
                w.raw("\"\(name)\":{\"count\":\(count),\"ns\":\(nanos)}")
            }
            w.raw("{")
            w.field("name", item.0)
            w.comma()
            w.field("version", String(item.1))
            w.raw(",\"last_inference\":\(t.lastInferenceMillis),\"inference_count\":\(t.rows),")
            w.raw("\"execution_count\":\(t.batches),\"inference_stats\":{")
            pair("success", t.successCount, t.successNanos)
            w.comma()
            pair("fail", t.failureCount, t.failureNanos)
            w.comma()
            pair("queue", t.queueCount, t.queueNanos)
            w.comma()
            pair("compute_input", 0, 0)
            w.comma()
            pair("compute_infer", t.batches, t.computeNanos)
            w.comma()
            pair("compute_output", 0, 0)
            w.comma()
            pair("cache_hit", 0, 0)
            w.comma()
            pair("cache_miss", 0, 0)
            w.raw("},\"batch_stats\":[]}")
        }
        w.raw("}")
        return .json(200, w.bytes)
    }
}

/// The `id` a V2 inference response echoes (`{"model_name":..,"model_version":..,"id":"..."`), read
/// from the start of the body without parsing it; nil when there is none.
func v2ResponseID(_ body: [UInt8]) -> String? {
    let marker = Array(",\"id\":\"".utf8)
    let limit = min(body.count, 1024)
    guard limit > marker.count else { return nil }
    var i = 0
    while i + marker.count <= limit {
        if body[i] == marker[0] && Array(body[i..<(i + marker.count)]) == marker {
            var j = i + marker.count
            let start = j
            while j < body.count && body[j] != UInt8(ascii: "\"") {
                j += body[j] == UInt8(ascii: "\\") ? 2 : 1
            }
            return j <= body.count ? String(decoding: body[start..<min(j, body.count)], as: UTF8.self) : nil
        }
        if body[i] == UInt8(ascii: "[") { return nil }  // the outputs list began: no id
        i += 1
    }
    return nil
}
