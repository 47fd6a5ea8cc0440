import HTTP
import ModelStore
import Operations

/// The live status page (`GET /`) and the JSON it polls (`GET /status.json`), documented in
/// `docs/operations.md`. The page is one self-contained HTML document (StatusPageHTML.swift).
extension InferenceAPI {
    /// Seconds of history the charts show.
    static let statusWindow = 60
    /// Seconds the "now" figures average over.
    static let statusSummary = 10

    func statusPage() -> HTTPResponse {
        HTTPResponse(
            status: 200,
            headers: [("Content-Type", "text/html; charset=utf-8"), ("Cache-Control", "no-cache")],
            body: Array(statusPageHTML.utf8))
    }

    /// Models, versions, states, cumulative counts, and the last minute second by second.
    func statusJSON() -> HTTPResponse {
        let snapshot = registry.snapshot()
        let now = Int(monotonicNow())
        var w = JSONWriter(capacity: 16 << 10)
        w.raw("{\"server\":{")
        w.field("name", info.name)
        w.comma()
        w.field("version", info.version)
        w.raw(",\"uptime_s\":\(Int(monotonicNow() - startedAt)),\"ready\":\(isReady),")
        w.raw("\"draining\":\(draining.load(ordering: .acquiring)),\"metrics\":\(metrics != nil),")
        w.raw("\"time_ms\":\(Int(wallClockNow() * 1000))},")
        // Memory: what the loaded versions hold together (measured), the budget, evictions.
        let held = snapshot.models.values.reduce(0) { sum, model in
            sum + model.versions.values.reduce(0) { $0 + ($1.servable?.memory.total ?? 0) }
        }
        w.raw("\"memory\":{\"models_bytes\":\(held)")
        if let metrics {
            w.raw(",\"budget_bytes\":\(metrics.memoryBudget.load(ordering: .relaxed))")
            w.raw(",\"evictions\":\(metrics.evictionCount.load(ordering: .relaxed))")
        }
        w.raw("},")
        w.raw("\"window_s\":\(InferenceAPI.statusWindow),\"summary_s\":\(InferenceAPI.statusSummary),\"models\":")
        w.array(snapshot.models.keys.sorted()) { w, name in
            let status = snapshot.models[name]!
            w.raw("{")
            w.field("name", name)
            w.raw(",\"error\":")
            writeOptional(&w, status.error)
            w.raw(",\"versions\":")
            w.array(status.sortedVersions) { w, v in
                w.raw("{")
                w.field("version", String(v.version))
                w.comma()
                w.field("state", v.state.rawValue)
                w.raw(",\"error\":")
                writeOptional(&w, v.error)
                if let servable = v.servable {
                    w.raw(",\"memory_bytes\":\(servable.memory.total),\"load_ms\":\(Int(servable.loadSeconds * 1000))")
                    if let cold = servable.coldStartSeconds { w.raw(",\"cold_start_ms\":\(Int(cold * 1000))") }
                }
                if let m = metrics?.model(name, version: v.version) { writeTraffic(&w, m, now: now) }
                w.raw("}")
            }
            w.raw("}")
        }
        w.raw("}")
        var response = HTTPResponse.json(200, w.bytes)
        response.headers.append(("Cache-Control", "no-cache"))
        return response
    }

    private func writeOptional(_ w: inout JSONWriter, _ s: String?) {
        if let s { w.string(s) } else { w.raw("null") }
    }

    /// `"requests":..,"now":{..},"series":{..}` for one version (milliseconds for times).
    private func writeTraffic(_ w: inout JSONWriter, _ m: ModelMetrics, now: Int) {
        let (series, summary) = m.window.withLock {
            ($0.series(now: now, count: InferenceAPI.statusWindow), $0.summary(now: now, count: InferenceAPI.statusSummary))
        }
        func number(_ w: inout JSONWriter, _ v: Double?, scale: Double = 1) {
            if let v { w.raw(String(Double(Int((v * scale * 1000).rounded())) / 1000)) } else { w.raw("null") }
        }
        let t = m.totals
        w.raw(",\"requests\":\(t.successCount + t.failureCount),\"failures\":\(t.failureCount)")
        w.raw(",\"rows\":\(t.rows),\"batches\":\(t.batches),\"pending\":\(t.pending),\"now\":{\"rps\":")
        number(&w, Double(summary.requests) / Double(InferenceAPI.statusSummary))
        w.raw(",\"error_rate\":")
        number(&w, summary.requests > 0 ? Double(summary.failures) / Double(summary.requests) : nil)
        for (key, value) in [("p50_ms", summary.p50), ("p90_ms", summary.p90), ("p99_ms", summary.p99), ("queue_ms", summary.queueMean)] {
            w.raw(",\"\(key)\":")
            number(&w, value, scale: 1000)
        }
        w.raw(",\"batch\":")
        number(&w, summary.batchMean)
        w.raw("},\"series\":{\"rps\":")
        w.array(series) { w, p in w.int(p.requests) }
        w.raw(",\"errors\":")
        w.array(series) { w, p in w.int(p.failures) }
        let columns: [(String, KeyPath<RecentWindow.Point, Double?>)] = [
            ("p50_ms", \.p50), ("p90_ms", \.p90), ("p99_ms", \.p99), ("queue_ms", \.queueMean),
        ]
        for (key, path) in columns {
            w.raw(",\"\(key)\":")
            w.array(series) { w, p in number(&w, p[keyPath: path], scale: 1000) }
        }
        w.raw(",\"batch\":")
        w.array(series) { w, p in number(&w, p.batchMean) }
        w.raw("}")
    }
}
