import Foundation
import ModelStore
import Testing

/// A temporary directory tree, removed at deinit.
final class TempStore {
    let root: String
    init() {
        root = FileManager.default.temporaryDirectory.appendingPathComponent("swerve-store-\(UUID().uuidString)").path
        try! FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
    }
    deinit { try? FileManager.default.removeItem(atPath: root) }

    func write(_ relative: String, _ bytes: [UInt8]) {
        let path = root + "/" + relative
        try! FileManager.default.createDirectory(
            atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        _ = FileManager.default.createFile(atPath: path, contents: Data(bytes))
    }
    func write(_ relative: String, _ text: String) { write(relative, Array(text.utf8)) }
    func mkdir(_ relative: String) {
        try! FileManager.default.createDirectory(atPath: root + "/" + relative, withIntermediateDirectories: true)
    }
}

@Suite struct StoreLayoutTests {
    @Test func scansModelsAndNumericVersions() throws {
        let store = TempStore()
        store.write("b/1/model.onnx", "x")
        store.write("b/10/model.onnx", "x")
        store.write("b/2/model.onnx", "x")
        store.write("b/007/model.onnx", "x")  // leading zero: not a version
        store.write("b/latest/model.onnx", "x")  // not numeric
        store.mkdir("b/3")  // no model.onnx yet
        store.write("b/config.json", "{}")
        store.write("a/1/model.onnx", "x")
        store.write(".hidden/1/model.onnx", "x")
        store.write("notadir", "x")
        let models = try StoreLayout(root: store.root).scan()
        #expect(models.map(\.name) == ["a", "b"])
        #expect(models[1].versions == [1, 2, 10])
        #expect(models[1].configPath == store.root + "/b/config.json")
        #expect(models[0].configPath == nil)
    }

    @Test func missingStoreIsAnError() {
        #expect(throws: StoreError.self) { try StoreLayout(root: "/nonexistent/swerve-store").scan() }
    }

    @Test func validatesNamesAndVersions() {
        #expect(StoreLayout.isValidModelName("resnet-50_v1.2"))
        for bad in ["", ".", "..", ".x", "a/b", "a b", "ü", String(repeating: "a", count: 300)] {
            #expect(!StoreLayout.isValidModelName(bad), "\(bad)")
        }
        #expect(StoreLayout.versionNumber("12") == 12)
        for bad in ["0", "01", "-1", "1.0", "x", "", "99999999999999999999999"] {
            #expect(StoreLayout.versionNumber(bad) == nil, "\(bad)")
        }
    }
}

@Suite struct ModelConfigTests {
    func parse(_ text: String) throws -> ModelConfig { try ModelConfig.parse(Array(text.utf8), path: "config.json") }

    @Test func versionPolicies() throws {
        #expect(try parse("{}").versionPolicy == .latest(1))
        #expect(try parse(#"{"version_policy": {"latest": 2}}"#).versionPolicy == .latest(2))
        #expect(try parse(#"{"version_policy": {"latest": {"num_versions": 3}}}"#).versionPolicy == .latest(3))
        #expect(try parse(#"{"version_policy": {"all": {}}}"#).versionPolicy == .all)
        #expect(try parse(#"{"version_policy": {"specific": [1, 3]}}"#).versionPolicy == .specific([1, 3]))
        #expect(try parse(#"{"version_policy": {"specific": {"versions": [2]}}}"#).versionPolicy == .specific([2]))
    }

    @Test func rejectsBadConfigsWithTheReason() {
        let cases: [(String, String)] = [
            ("{", "not valid JSON"),
            (#"{"version_policy": {"latest": 0}}"#, "positive"),
            (#"{"version_policy": {"newest": 1}}"#, "unknown version_policy 'newest'"),
            (#"{"version_policy": {"latest": 1, "all": {}}}"#, "exactly one key"),
            (#"{"version_policy": {"specific": []}}"#, "non-empty"),
            (#"{"load": "lazy"}"#, #"use "always" or "on_demand""#),
            (#"{"load": "always", "idle_timeout_s": 5}"#, #"needs "load": "on_demand""#),
            (#"{"idle_timeout_s": 0}"#, "out of range"),
            (#"{"model_warmup": [{"inputs": {"x": {"data_type": "TYPE_FP32", "dims": [4]}}}]}"#, "exactly one of"),
            (#"{"model_warmup": [{"inputs": {"x": {"data_type": "TYPE_FP32", "dims": [-1], "zero_data": true}}}]}"#, "no -1"),
            (#"{"model_warmup": [{"inputs": {"x": {"data_type": "TYPE_FP32", "dims": [4], "input_data_file": "../x"}}}]}"#, "warmup/ directory"),
            (#"{"model_warmup": [{"inputs": {"x": {"data_type": "TYPE_NOPE", "dims": [4], "zero_data": true}}}]}"#, "unknown or unsupported type"),
            (#"{"model_warmup": [{"inputs": {"x": {"data_type": "TYPE_FP32", "dims": [4], "zero_data": true, "shape": [1]}}}]}"#, "unknown field 'shape'"),
            (#"{"model_warmup": [{"count": 0, "inputs": {"x": {"data_type": "TYPE_FP32", "dims": [4], "zero_data": true}}}]}"#, "out of range"),
            (#"{"model_warmup": [{"name": "s"}]}"#, "'model_warmup[0].inputs' is required"),
        ]
        for (text, fragment) in cases {
            do {
                _ = try parse(text)
                Issue.record("accepted \(text)")
            } catch {
                #expect("\(error)".contains(fragment), "\(error)")
                #expect("\(error)".hasPrefix("config.json: "))
            }
        }
    }

    @Test func modelWarmupInTritonsShape() throws {
        let config = try parse(
            #"{"model_warmup": [{"name": "s", "batch_size": 2, "count": 3, "inputs": {"x": {"data_type": "TYPE_FP32", "dims": [4], "random_data": true}, "ids": {"data_type": "INT64", "dims": [2, 3], "input_data_file": "ids.bin"}}}]}"#)
        #expect(config.warmup.count == 1)
        let sample = config.warmup[0]
        #expect(sample.name == "s" && sample.batchSize == 2 && sample.count == 3)
        #expect(sample.inputs["x"] == .init(dataType: .float32, dims: [4], data: .random))
        #expect(sample.inputs["ids"] == .init(dataType: .int64, dims: [2, 3], data: .file("ids.bin")))
    }

    @Test func loadPolicyAndIdleTimeout() throws {
        let config = try parse(#"{"load": "on_demand", "idle_timeout_s": 2.5}"#)
        #expect(config.load == .onDemand && config.idleTimeoutSeconds == 2.5)
        #expect(try parse(#"{"load": "always"}"#).load == .always)
        #expect(try parse("{}").load == nil)
    }

    @Test func policySelection() {
        #expect(VersionPolicy.latest(1).select(from: [3, 1, 2]) == [3])
        #expect(VersionPolicy.latest(2).select(from: [3, 1, 2]) == [2, 3])
        #expect(VersionPolicy.all.select(from: [3, 1]) == [1, 3])
        #expect(VersionPolicy.specific([1, 5]).select(from: [1, 2, 3]) == [1])
        #expect(VersionPolicy.latest(1).select(from: []) == [])
    }
}

@Suite struct ModelConfigQuotingTests {
    @Test func errorsQuoteAtMostAShortEscapedExcerpt() {
        // A config.json may be a link to some other JSON file: an error must not echo much of it.
        let secret = "AKIA" + String(repeating: "S3CR3T", count: 20) + "\\u001b[31m"
        let text = "{\"\(secret)\": 1}"
        do {
            _ = try ModelConfig.parse(Array(text.utf8), path: "config.json")
            Issue.record("accepted an unknown key")
        } catch {
            let message = "\(error)"
            #expect(message.contains("unknown field 'AKIAS3CR3TS3CR3T"))
            #expect(!message.contains(String(repeating: "S3CR3T", count: 8)), "quotes too much: \(message)")
        }
        // Control characters are escaped, not written into logs and pages as they are.
        do {
            _ = try ModelConfig.parse(Array(#"{"a\u001b[31mb": 1}"#.utf8), path: "config.json")
            Issue.record("accepted an unknown key")
        } catch {
            let message = "\(error)"
            #expect(message.contains(#"unknown field 'a\u{1b}[31mb'"#), "\(message)")
            #expect(!message.unicodeScalars.contains("\u{1b}"))
        }
    }
}

@Suite struct ModelConfigFieldTests {
    func parse(_ text: String) throws -> ModelConfig { try ModelConfig.parse(Array(text.utf8), path: "config.json") }

    @Test func labelsAndOverrides() throws {
        let config = try parse(#"""
            {"version_labels": {"stable": 1, "canary_2": 2},
             "input": [{"name": "x", "data_type": "TYPE_FP32", "dims": [-1, 4]}],
             "output": [{"name": "y", "dims": [-1, 3]}],
             "max_batch_size": 8, "dynamic_batching": {}, "instance_group": [{"kind": "KIND_CPU", "count": 1}]}
            """#)
        #expect(config.versionLabels == ["stable": 1, "canary_2": 2])
        #expect(config.inputs == [TensorOverride(name: "x", dataType: .float32, dims: [-1, 4])])
        #expect(config.outputs == [TensorOverride(name: "y", dims: [-1, 3])])
        #expect(try parse(#"{"instance_group": [{"count": 200}, {"count": 28, "gpus": [0, 1]}]}"#).batching.instanceCount == 256)
    }

    @Test func rejectsBadFieldsWithTheirName() {
        let cases: [(String, String)] = [
            (#"{"version_labels": {"a-b": 1}}"#, "label 'a-b' must match"),
            (#"{"version_labels": {"a": 0}}"#, "version_labels.a"),
            (#"{"version_labels": {"a": "x"}}"#, "version_labels"),
            (#"{"verison_policy": {"all": {}}}"#, "unknown field 'verison_policy'"),
            (#"{"input": [{"name": "x", "data_type": "TYPE_NOPE"}]}"#, "input[0].data_type"),
            (#"{"input": [{"name": "x", "dims": [0]}]}"#, "input[0].dims"),
            (#"{"input": [{"dims": [1]}]}"#, "input"),
            // Unknown keys are refused at every level, not only at the top.
            (#"{"input": [{"name": "x", "dim": [1]}]}"#, "unknown field 'dim' in 'input[0]'"),
            (#"{"max_batch_size": 4, "dynamic_batching": {"max_queue_delay": 5}}"#,
             "unknown field 'max_queue_delay' in 'dynamic_batching'"),
            (#"{"instance_group": [{"kind": "cpu", "cnt": 2}]}"#, "unknown field 'cnt' in 'instance_group[0]'"),
            (#"{"version_policy": {"latest": {"num_versions": 1, "extra": 1}}}"#, "version_policy.latest"),
            // Numbers out of range are named as such (not "not valid JSON"), and never trap.
            (#"{"max_batch_size": 1e30}"#, "field 'max_batch_size': the number is out of range"),
            (#"{"max_batch_size": 18446744073709551616}"#, "field 'max_batch_size'"),
            (#"{"instance_group": [{"count": 9223372036854775807}]}"#, "instance_group[0].count 9223372036854775807 is out of range"),
            (#"{"instance_group": [{"count": 200, "gpus": [0, 1]}]}"#, "at most 256 are allowed"),
            (#"{"max_batch_size": 4, "dynamic_batching": {"max_queue_delay_us": 9223372036854775807}}"#, "out of range"),
            (#"{"max_batch_size": 4, "dynamic_batching": {"default_timeout_us": 9223372036854775807}}"#, "out of range"),
            (#"{"max_batch_size": 4, "dynamic_batching": {"max_queue_size": 9223372036854775807}}"#, "out of range"),
            (#"{"max_batch_size": 9223372036854775807}"#, "max_batch_size 9223372036854775807 is out of range"),
            // Found by the FuzzConfig target: these counts used to overflow (a trap) or ask for
            // billions of worker threads.
            (#"{"instance_group": [{"count": 9223372036854775807}, {"count": 2}]}"#, "out of range: use 1 to 256"),
            (#"{"instance_group": [{"count": 4611686018427387904, "gpus": [0, 1, 2]}]}"#, "out of range: use 1 to 256"),
            (#"{"instance_group": [{"count": 200}, {"count": 57}]}"#, "at most 256 are allowed"),
        ]
        for (text, fragment) in cases {
            do {
                _ = try parse(text)
                Issue.record("accepted \(text)")
            } catch {
                #expect("\(error)".contains(fragment), "\(error)")
            }
        }
    }
}
