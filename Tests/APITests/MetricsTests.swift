import Foundation
import HTTP
import Logging
@testable import Operations
import Synchronization
import Testing

@testable import API

@Suite struct MetricsTests {
    /// The value of one sample line `name{labels} value` in exposition text.
    func sample(_ text: String, _ prefix: String) -> Double? {
        for line in text.split(separator: "\n") where line.hasPrefix(prefix + " ") {
            return Double(line.split(separator: " ").last!)
        }
        return nil
    }

    @Test func outcomesFollowTheStatus() {
        #expect(RequestOutcome(status: 200, reachedVersion: true) == .success)
        #expect(RequestOutcome(status: 400, reachedVersion: true) == .badInput)
        #expect(RequestOutcome(status: 413, reachedVersion: false) == .badInput)
        #expect(RequestOutcome(status: 404, reachedVersion: false) == .notFound)
        #expect(RequestOutcome(status: 503, reachedVersion: true) == .overloaded)
        #expect(RequestOutcome(status: 503, reachedVersion: false) == .notFound)
        #expect(RequestOutcome(status: 504, reachedVersion: true) == .timeout)
        #expect(RequestOutcome(status: 500, reachedVersion: true) == .internal)
    }

    @Test func windowPercentilesAreWithinABucket() {
        var window = RecentWindow()
        // 1..100 ms, one sample each, all in second 1000.
        for ms in 1...100 { window.request(second: 1000, seconds: Double(ms) / 1000, failed: ms > 95) }
        window.batch(second: 1000, rows: 4)
        window.batch(second: 1000, rows: 8)
        window.queueWait(second: 1000, seconds: 0.002)
        let point = window.series(now: 1001, count: 60).last!
        #expect(point.requests == 100 && point.failures == 5)
        for (q, want) in [(point.p50, 0.050), (point.p90, 0.090), (point.p99, 0.099)] {
            let got = try! #require(q)
            #expect(abs(got / want - 1) < 0.1, "quantile \(got) vs \(want)")
        }
        #expect(point.batchMean == 6)
        #expect(point.queueMean == 0.002)
        // The second in progress is not in the series; an old slot is cleared when reused.
        #expect(window.series(now: 1000, count: 60).allSatisfy { $0.requests == 0 })
        window.request(second: 1000 + RecentWindow.slotCount, seconds: 0.001, failed: false)
        #expect(window.summary(now: 1001 + RecentWindow.slotCount, count: 10).requests == 1)
    }

    @Test func requestsAreCountedByVersionOutcomeAndRoute() throws {
        let harness = try APIHarness()
        let metrics = ServerMetrics()
        let api = InferenceAPI(registry: harness.registry, logger: Logger(label: "test"), metrics: metrics)
        let body = #"{"inputs":[{"name":"x","shape":[2,3],"datatype":"FP32","data":[1,2,3,4,5,6]}]}"#
        func call(_ method: String, _ path: String, _ body: String = "") -> Int {
            let box = Mutex<Int>(0)
            api.handle(HTTPRequest(method: method, path: path, body: Array(body.utf8)), responder: HTTPResponder { r in
                box.withLock { $0 = r.status }
            })
            return box.withLock { $0 }
        }
        #expect(call("POST", "/v2/models/relu/versions/1/infer", body) == 200)
        #expect(call("POST", "/v2/models/relu/versions/1/infer", body) == 200)
        #expect(call("POST", "/v2/models/relu/versions/1/infer", "{") == 400)
        #expect(call("POST", "/v2/models/nope/infer", body) == 404)
        #expect(call("GET", "/nowhere") == 404)
        #expect(call("GET", "/metrics") == 200)
        let text = String(decoding: metrics.render(harness.registry.snapshot()), as: UTF8.self)
        let relu = #"model="relu",version="1""#
        #expect(sample(text, #"swerve_requests_total{\#(relu),protocol="v2",outcome="success"}"#) == 2)
        #expect(sample(text, #"swerve_requests_total{\#(relu),protocol="v2",outcome="bad_input"}"#) == 1)
        #expect(sample(text, #"swerve_requests_total{model="",version="",protocol="v2",outcome="not_found"}"#) == 1)
        #expect(sample(text, "swerve_request_duration_seconds_count{\(relu)}") == 3)
        #expect(sample(text, "swerve_pending_requests{\(relu)}") == 0)
        #expect(sample(text, #"swerve_http_requests_total{route="unmatched",method="GET",status="404"}"#) == 1)
        #expect(
            sample(text, #"swerve_http_requests_total{route="/v2/models/{model}/versions/{version}/infer",method="POST",status="200"}"#) == 2)
        #expect(sample(text, #"swerve_model_versions{model="failed",state="FAILED"}"#) == 1)
        #expect(sample(text, #"swerve_model_versions{model="relu",state="AVAILABLE"}"#) == 2)
        #expect((sample(text, "process_resident_memory_bytes") ?? 0) > 0)
        #expect((sample(text, "process_open_fds") ?? 0) > 0)
    }

    @Test func labelledPredictionsCountForTheLabelsVersion() throws {
        let harness = try APIHarness()
        harness.registry.update("relu") { $0?.labels = ["stable": 1] }
        let metrics = ServerMetrics()
        let api = InferenceAPI(registry: harness.registry, logger: Logger(label: "test"), metrics: metrics)
        func predict(_ path: String) -> Int {
            let box = Mutex<Int>(0)
            api.handle(
                HTTPRequest(method: "POST", path: path, body: Array(#"{"instances": [[1, 2, 3]]}"#.utf8)),
                responder: HTTPResponder { r in box.withLock { $0 = r.status } })
            return box.withLock { $0 }
        }
        #expect(predict("/v1/models/relu/labels/stable:predict") == 200)
        #expect(predict("/v1/models/relu/labels/stable:predict") == 200)
        #expect(predict("/v1/models/relu:predict") == 200)
        let text = String(decoding: metrics.render(harness.registry.snapshot()), as: UTF8.self)
        // The labelled ones ran on version 1 (the label's), the plain one on version 2 (the default).
        #expect(sample(text, #"swerve_requests_total{model="relu",version="1",protocol="v1",outcome="success"}"#) == 2)
        #expect(sample(text, #"swerve_requests_total{model="relu",version="2",protocol="v1",outcome="success"}"#) == 1)
    }

    @Test func anEndedVersionsSeriesLeave() throws {
        let harness = try APIHarness()
        let metrics = ServerMetrics()
        for v in 1...3 { metrics.model("m", version: v).requestFinished(protocol: .v2, outcome: .success, seconds: 0.001) }
        metrics.forget(model: "m", version: 2)
        let text = String(decoding: metrics.render(harness.registry.snapshot()), as: UTF8.self)
        #expect(sample(text, #"swerve_requests_total{model="m",version="1",protocol="v2",outcome="success"}"#) == 1)
        #expect(sample(text, #"swerve_requests_total{model="m",version="3",protocol="v2",outcome="success"}"#) == 1)
        #expect(!text.contains(#"model="m",version="2""#), "version 2's series are gone")
        #expect(metrics.allModels.map(\.version) == ["1", "3"])
        metrics.forget(model: "m", version: 2)  // twice: nothing happens
    }

    @Test func schedulerObserverFeedsTheBatchMetrics() {
        let metrics = ServerMetrics()
        let m = metrics.model("m", version: 3)
        #expect(metrics.model("m", version: "3") === m)
        m.jobDequeued(waitedSeconds: 0.001)
        m.batchExecuted(rows: 5, computeSeconds: 0.002)
        m.batchExecuted(rows: 1, computeSeconds: 0.001)
        let text = String(decoding: metrics.render(ModelRegistrySnapshotForTests.empty), as: UTF8.self)
        #expect(sample(text, #"swerve_inference_rows_total{model="m",version="3"}"#) == 6)
        #expect(sample(text, #"swerve_batches_total{model="m",version="3"}"#) == 2)
        #expect(sample(text, #"swerve_batch_size_bucket{model="m",version="3",le="4.0"}"#) == 1)
        #expect(sample(text, #"swerve_queue_duration_seconds_count{model="m",version="3"}"#) == 1)
        #expect(m.totals.rows == 6 && m.totals.batches == 2 && m.totals.queueCount == 1)
    }

    @Test func gpuMetricsComeFromTheSourceAndAreAbsentWithoutOne() {
        let none = String(decoding: ServerMetrics().render(ModelRegistrySnapshotForTests.empty), as: UTF8.self)
        #expect(!none.contains("swerve_gpu_"))
        let empty = ServerMetrics(gpuSamples: { [] })
        #expect(!String(decoding: empty.render(ModelRegistrySnapshotForTests.empty), as: UTF8.self).contains("swerve_gpu_"))
        let metrics = ServerMetrics(gpuSamples: {
            [
                GPUSample(gpu: 0, memoryUsedBytes: 3 << 30, memoryTotalBytes: 141 << 30, utilization: 0.25),
                GPUSample(gpu: 1, memoryUsedBytes: 1024, memoryTotalBytes: 141 << 30, utilization: nil),
            ]
        })
        let text = String(decoding: metrics.render(ModelRegistrySnapshotForTests.empty), as: UTF8.self)
        #expect(sample(text, #"swerve_gpu_memory_used_bytes{gpu="0"}"#) == Double(3 << 30))
        #expect(sample(text, #"swerve_gpu_memory_used_bytes{gpu="1"}"#) == 1024)
        #expect(sample(text, #"swerve_gpu_memory_total_bytes{gpu="1"}"#) == Double(141 << 30))
        #expect(sample(text, #"swerve_gpu_utilization_ratio{gpu="0"}"#) == 0.25)
        #expect(!text.contains(#"swerve_gpu_utilization_ratio{gpu="1"}"#))
        #expect(text.contains("# TYPE swerve_gpu_utilization_ratio gauge"))
    }

    @Test func v2ResponseIDIsReadFromTheResponseStart() {
        #expect(v2ResponseID(Array(#"{"model_name":"m","model_version":"1","id":"a-1","outputs":[]}"#.utf8)) == "a-1")
        #expect(v2ResponseID(Array(#"{"model_name":"m","model_version":"1","outputs":[{"id":"x"}]}"#.utf8)) == nil)
        #expect(v2ResponseID(Array(#"{"model_name":"m","model_version":"1","id":"q\"x","outputs":[]}"#.utf8)) == #"q\"x"#)
    }
}

import ModelStore

enum ModelRegistrySnapshotForTests {
    static var empty: RegistrySnapshot { ModelRegistry().snapshot() }
}
