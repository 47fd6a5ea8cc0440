import Foundation
import Testing

@Suite struct V1APITests {
    let h: APIHarness
    init() throws { h = try APIHarness() }

    @Test func statusLikeTFServing() {
        let r = h.call("GET", "/v1/models/relu")
        let versions = r.object["model_version_status"] as? [[String: Any]] ?? []
        #expect(versions.map { $0["version"] as? String } == ["2", "1"])
        #expect(versions.first?["state"] as? String == "AVAILABLE")
        #expect((versions.first?["status"] as? [String: Any])?["error_code"] as? String == "OK")
        let failed = h.call("GET", "/v1/models/failed").object["model_version_status"] as? [[String: Any]]
        #expect(failed?.first?["state"] as? String == "END")
        #expect((failed?.first?["status"] as? [String: Any])?["error_message"] as? String == "cannot parse model.onnx")
        #expect(h.call("GET", "/v1/models/nope").status == 404)
        #expect(h.call("GET", "/v1/models/relu/versions/9").status == 404)
    }

    @Test func metadataSignature() {
        let r = h.call("GET", "/v1/models/relu/metadata").object
        let sig = (((r["metadata"] as? [String: Any])?["signature_def"] as? [String: Any])?["signature_def"]
            as? [String: Any])?["serving_default"] as? [String: Any]
        let x = (sig?["inputs"] as? [String: Any])?["x"] as? [String: Any]
        #expect(x?["dtype"] as? String == "DT_FLOAT")
        let dims = (x?["tensor_shape"] as? [String: Any])?["dim"] as? [[String: Any]]
        #expect(dims?.map { $0["size"] as? String } == ["-1", "3"])
        #expect(dims?.first?["name"] as? String == "")
    }

    @Test func instancesRowForm() {
        let r = h.call("POST", "/v1/models/relu:predict", #"{"instances":[[-1,2,-3],[4,-5,6]]}"#)
        #expect(r.status == 200, "\(r.text)")
        let predictions = r.object["predictions"] as? [[String: Any]]
        #expect(predictions?.count == 2)
        #expect(predictions?.first?["y"] as? [Double] == [0, 2, 0])
        #expect(predictions?.last?["z"] as? [Double] == [5, -3, 9])
    }

    @Test func namedInstancesForMultiInputModels() {
        let r = h.call("POST", "/v1/models/ints/versions/1:predict", #"""
            {"instances":[{"a":[1,2],"b":[10,20],"flags":true},{"a":[3,4],"b":[10,20],"flags":false}]}
            """#)
        // b has no batch dimension in the model, so stacking it gives [2, 2]: the engine rejects.
        #expect(r.status == 400, "\(r.text)")
        let columns = h.call("POST", "/v1/models/ints:predict", #"{"inputs":{"a":[[1,2],[3,4]],"b":[10,20],"flags":[true,false]}}"#)
        #expect(columns.status == 200, "\(columns.text)")
        let outputs = columns.object["outputs"] as? [String: Any]
        #expect(outputs?["s"] as? [[Int]] == [[11, 22], [13, 24]])
        #expect(outputs?["f"] as? [Bool] == [true, false])
    }

    @Test func columnarSingleInput() {
        let r = h.call("POST", "/v1/models/relu:predict", #"{"inputs":[[-1,2,-3]]}"#)
        let outputs = r.object["outputs"] as? [String: Any]
        #expect(outputs?["y"] as? [[Double]] == [[0, 2, 0]])
    }

    @Test func badPredictRequests() {
        let cases: [(String, String, Int)] = [
            ("/v1/models/relu:predict", #"{"instances":[]}"#, 400),
            ("/v1/models/relu:predict", #"{"instances":[[1,2,3]],"inputs":[[1,2,3]]}"#, 400),
            ("/v1/models/relu:predict", #"{"instances":[[1,2,3],[1,2]]}"#, 400),
            ("/v1/models/relu:predict", #"{"instances":[[[1],[2,3]]]}"#, 400),
            ("/v1/models/relu:predict", #"{"instances":[{"q":[1,2,3]}]}"#, 400),
            ("/v1/models/ints:predict", #"{"instances":[[1,2]]}"#, 400),
            ("/v1/models/relu:predict", "nonsense", 400),
            ("/v1/models/nope:predict", #"{"instances":[[1,2,3]]}"#, 404),
            // Found by schemathesis (negative_data_rejection): signature_name used to be ignored.
            ("/v1/models/relu:predict", #"{"instances":[[1,2,3]],"signature_name":{}}"#, 400),
            ("/v1/models/relu:predict", #"{"instances":[[1,2,3]],"signature_name":"predict_images"}"#, 400),
        ]
        for (path, body, status) in cases {
            let r = h.call("POST", path, body)
            #expect(r.status == status, "\(body): \(r.status) \(r.text)")
            #expect(!r.error.isEmpty)
        }
        for signature in ["serving_default", ""] {
            let r = h.call("POST", "/v1/models/relu:predict", #"{"instances":[[1,2,3]],"signature_name":"\#(signature)"}"#)
            #expect(r.status == 200, "\(signature): \(r.text)")
        }
    }
}
