import Engine
import Foundation
import Testing

@Suite struct V2APITests {
    let h: APIHarness
    init() throws { h = try APIHarness() }

    @Test func healthAndServerMetadata() {
        #expect(h.call("GET", "/v2/health/live").status == 200)
        #expect(h.call("GET", "/v2/health/ready").status == 200)
        let meta = h.call("GET", "/v2").object
        #expect(meta["name"] as? String == "swerve")
        #expect(meta["extensions"] is [String])
    }

    @Test func modelMetadata() {
        let r = h.call("GET", "/v2/models/relu")
        #expect(r.status == 200)
        #expect(r.object["versions"] as? [String] == ["1", "2"])
        #expect(r.object["platform"] as? String == "onnx_onnxv1")
        let inputs = r.object["inputs"] as? [[String: Any]]
        #expect(inputs?.first?["name"] as? String == "x")
        #expect(inputs?.first?["datatype"] as? String == "FP32")
        #expect(inputs?.first?["shape"] as? [Int] == [-1, 3])
        #expect(h.call("GET", "/v2/models/relu/versions/1").object["versions"] as? [String] == ["1"])
        let config = h.call("GET", "/v2/models/relu/config").object
        #expect(config["max_batch_size"] as? Int == 0)
        #expect((config["input"] as? [[String: Any]])?.first?["data_type"] as? String == "TYPE_FP32")
    }

    @Test func inferFlatAndNestedGiveTheSameAnswer() {
        let flat = h.call("POST", "/v2/models/relu/infer",
            #"{"id":"r1","inputs":[{"name":"x","shape":[2,3],"datatype":"FP32","data":[-1,2,-3,4,-5.5,6]}]}"#)
        #expect(flat.status == 200, "\(flat.text)")
        #expect(flat.object["id"] as? String == "r1")
        #expect(flat.object["model_name"] as? String == "relu")
        #expect(flat.object["model_version"] as? String == "2")
        let outputs = flat.object["outputs"] as? [[String: Any]] ?? []
        #expect(outputs.map { $0["name"] as? String } == ["y", "z"])
        #expect(outputs.first?["data"] as? [Double] == [0, 2, 0, 4, 0, 6])
        #expect(outputs.first?["shape"] as? [Int] == [2, 3])
        #expect(outputs.last?["data"] as? [Double] == [0, 4, 0, 5, -3.5, 9])
        let nested = h.call("POST", "/v2/models/relu/versions/1/infer",
            #"{"inputs":[{"name":"x","shape":[2,3],"datatype":"FP32","data":[[-1,2,-3],[4,-5.5,6]]}]}"#)
        #expect((nested.object["outputs"] as? [[String: Any]])?.first?["data"] as? [Double] == [0, 2, 0, 4, 0, 6])
        #expect(nested.object["model_version"] as? String == "1")
        #expect(nested.object["id"] == nil)
    }

    @Test func requestedOutputsOnly() {
        let r = h.call("POST", "/v2/models/relu/infer",
            #"{"inputs":[{"name":"x","shape":[1,3],"datatype":"FP32","data":[1,2,3]}],"outputs":[{"name":"z"}]}"#)
        let outputs = r.object["outputs"] as? [[String: Any]] ?? []
        #expect(outputs.count == 1)
        #expect(outputs.first?["name"] as? String == "z")
        #expect(outputs.first?["data"] as? [Double] == [2, 4, 6])
    }

    @Test func integerAndBoolTensors() {
        let r = h.call("POST", "/v2/models/ints/infer", #"""
            {"inputs":[{"name":"a","shape":[2,2],"datatype":"INT64","data":[1,2,3,9007199254740993]},
                       {"name":"b","shape":[2],"datatype":"INT64","data":[10,-20]},
                       {"name":"flags","shape":[2],"datatype":"BOOL","data":[true,false]}]}
            """#)
        #expect(r.status == 200, "\(r.text)")
        // Exact int64 beyond 2^53 survives (checked on the text, not through Double).
        #expect(r.text.contains("[11,-18,13,9007199254740973]"))
        #expect(r.text.contains("\"datatype\":\"BOOL\",\"shape\":[2],\"data\":[true,false]"))
    }

    @Test func badRequestsGetClearErrors() {
        let cases: [(String, String, Int, String)] = [
            ("/v2/models/relu/infer", "{not json", 400, "not valid JSON"),
            ("/v2/models/relu/infer", "", 400, "empty"),
            ("/v2/models/relu/infer", "[1,2]", 400, "JSON object"),
            ("/v2/models/relu/infer", #"{"inputs":[]}"#, 400, "non-empty \"inputs\""),
            ("/v2/models/relu/infer", #"{"inputs":[{"name":"q","shape":[1,3],"datatype":"FP32","data":[1,2,3]}]}"#, 400, "no input 'q'"),
            ("/v2/models/relu/infer", #"{"inputs":[{"name":"x","shape":[1,3],"datatype":"INT64","data":[1,2,3]}]}"#, 400, "expects datatype FP32"),
            ("/v2/models/relu/infer", #"{"inputs":[{"name":"x","shape":[1,3],"datatype":"FP99","data":[1,2,3]}]}"#, 400, "unknown datatype"),
            ("/v2/models/relu/infer", #"{"inputs":[{"name":"x","shape":[1,3],"datatype":"FP32","data":[1,2]}]}"#, 400, "needs 3 values"),
            ("/v2/models/relu/infer", #"{"inputs":[{"name":"x","shape":[1,3],"datatype":"FP32","data":[1,2,3,4]}]}"#, 400, "more values"),
            ("/v2/models/relu/infer", #"{"inputs":[{"name":"x","shape":[1,3],"datatype":"FP32","data":[1,"a",3]}]}"#, 400, "not a valid FP32"),
            ("/v2/models/relu/infer", #"{"inputs":[{"name":"x","shape":[1,4],"datatype":"FP32","data":[1,2,3,4]}]}"#, 400, "x"),
            ("/v2/models/relu/infer", #"{"inputs":[{"name":"x","shape":[3],"datatype":"FP32","data":[1,2,3]}]}"#, 400, "x"),
            ("/v2/models/relu/infer", #"{"inputs":[{"name":"x","shape":[1,3],"datatype":"FP32","data":[1,2,3]}],"outputs":[{"name":"w"}]}"#, 400, "no output 'w'"),
            ("/v2/models/ints/infer", #"{"inputs":[{"name":"a","shape":[1,2],"datatype":"INT64","data":[1.5,2]}]}"#, 400, "INT64"),
            // Found by the FuzzV2Infer target: a huge declared shape used to be allocated before
            // the data was counted, and a huge binary_data_size trapped converting it to Int.
            ("/v2/models/relu/infer", #"{"inputs":[{"name":"x","shape":[1000000000,1000],"datatype":"FP32","data":[1]}]}"#, 400,
             "needs 1000000000000 values but data has 1"),
            ("/v2/models/relu/infer", #"{"inputs":[{"name":"x","shape":[1,3],"datatype":"FP32","parameters":{"binary_data_size":1e300}}]}"#, 400,
             "binary_data_size 1e+300 is not a byte count"),
            ("/v2/models/relu/infer", #"{"inputs":[{"name":"x","shape":[1,3],"datatype":"FP32","parameters":{"binary_data_size":-1}}]}"#, 400,
             "binary_data_size -1 is not a byte count"),
            ("/v2/models/nope/infer", "{}", 404, "not in the model store"),
            ("/v2/models/relu/versions/7/infer", "{}", 404, "no version 7"),
            ("/v2/models/relu/versions/x/infer", "{}", 400, "not a positive integer"),
            ("/v2/models/failed/infer", "{}", 503, "cannot parse model.onnx"),
        ]
        for (path, body, status, fragment) in cases {
            let r = h.call("POST", path, body)
            #expect(r.status == status, "\(path) \(body): \(r.status) \(r.text)")
            #expect(r.error.contains(fragment), "\(body): \(r.error)")
        }
        // Found by schemathesis (negative_data_rejection): an empty raw body was a 200 with zero rows.
        let emptyRaw = h.call("POST", "/v2/models/relu/infer", "", headers: ["inference-header-content-length": "0"])
        #expect(emptyRaw.status == 400)
        #expect(emptyRaw.error.contains("empty body"), "\(emptyRaw.error)")
        #expect(h.call("GET", "/v2/models/relu/infer").status == 405)
        #expect(h.call("GET", "/v2/models/relu/infer").headers.contains { $0 == ("Allow", "POST") })
        #expect(h.call("GET", "/v3").status == 404)
        #expect(h.call("GET", "/v2/models/failed/ready").status == 503)
        #expect(h.call("GET", "/v2/models/relu/ready").status == 200)
    }

    /// A model whose fixed dims overflow a row's byte count: raw mode used to trap multiplying them.
    @Test func rawModeWithHugeRowsIsABadRequest() throws {
        let huge = GraphModel(
            graph: Graph(
                nodes: [Node(name: "i", opType: "Identity", inputs: ["x"], outputs: ["y"])],
                inputs: [ValueInfo(name: "x", dataType: .float32, shape: [.symbolic("n"), .fixed(1 << 32), .fixed(1 << 32)])],
                outputs: [ValueInfo(name: "y", dataType: .float32, shape: [.symbolic("n"), .fixed(1 << 32), .fixed(1 << 32)])]),
            opsets: ["": 17], irVersion: 8)
        try h.add("huge", version: 1, huge)
        let r = h.call("POST", "/v2/models/huge/infer", "abcd", headers: ["inference-header-content-length": "0"])
        #expect(r.status == 400, "\(r.text)")
        #expect(r.error.contains("whose size overflows"), "\(r.error)")
    }
}
