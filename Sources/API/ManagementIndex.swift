import HTTP
import ModelStore

/// `POST /v2/repository/index`: one entry per version (one per model without any), in Triton's
/// vocabulary (READY, LOADING, UNLOADING, UNAVAILABLE), with swerve's own state and the reason.
extension ManagementAPI {
    func index(readyOnly: Bool) -> HTTPResponse {
        let snapshot = registry.snapshot()
        var w = JSONWriter()
        w.raw("[")
        var first = true
        for name in snapshot.models.keys.sorted() {
            let model = snapshot.models[name]!
            let versions = model.sortedVersions.reversed()
            func entry(
                _ version: String, _ state: String, _ lifecycle: String, _ reason: String, servable: ServableVersion? = nil
            ) {
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
                if !lifecycle.isEmpty {
                    w.raw(",")
                    w.field("lifecycle", lifecycle)
                }
                w.raw(",")
                w.field("reason", reason)
                if let servable {
                    w.raw(",\"memory_bytes\":\(servable.memory.total),\"load_ms\":\(Int(servable.loadSeconds * 1000))")
                    if let cold = servable.coldStartSeconds { w.raw(",\"cold_start_ms\":\(Int(cold * 1000))") }
                }
                if !model.labels.isEmpty, let v = Int(version) {
                    let labels = model.labels.filter { $0.value == v }.map(\.key).sorted()
                    if !labels.isEmpty {
                        w.raw(",")
                        w.key("labels")
                        w.array(labels) { $0.string($1) }
                    }
                }
                w.raw("}")
            }
            if versions.isEmpty { entry("", "UNAVAILABLE", "", model.error ?? "no version loaded") }
            for v in versions {
                let state: String
                switch v.state {
                case .available: state = "READY"
                case .loading, .start: state = "LOADING"
                case .unloading: state = "UNLOADING"
                case .end, .failed, .unloaded: state = "UNAVAILABLE"
                }
                // A model-level problem (a rejected config.json, a fallback, a refused label) shows on
                // every version, the serving ones included: it is why they serve as they do.
                entry(String(v.version), state, v.state.rawValue, v.error ?? model.error ?? "", servable: v.servable)
            }
        }
        w.raw("]")
        return .json(200, w.bytes)
    }
}
