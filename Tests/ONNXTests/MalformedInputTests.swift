import Engine
import Foundation
import Tensors
import Testing

@testable import ONNX

/// Malformed, truncated and hostile inputs: every one must give an ONNXError that says what is
/// wrong, never a crash.
@Suite struct MalformedInputTests {
    /// The error's message, or nil if decoding succeeded.
    func message(_ bytes: [UInt8], directory: String? = nil) -> String? {
        do {
            _ = try ONNXLoader.decode(bytes: bytes, path: "m.onnx", directory: directory)
            return nil
        } catch let error as ONNXError {
            #expect(error.path == "m.onnx")
            return error.message
        } catch {
            Issue.record("not an ONNXError: \(error)")
            return "\(error)"
        }
    }

    func expectFailure(_ bytes: [UInt8], containing fragments: [String], directory: String? = nil) {
        guard let m = message(bytes, directory: directory) else {
            Issue.record("decoded, but should fail with \(fragments)")
            return
        }
        for f in fragments { #expect(m.contains(f), "message: \(m)") }
    }

    @Test(arguments: ["typed.onnx", "attributes.onnx", "external/model.onnx", "torch_mlp/model.onnx"])
    func everyPrefixThrowsOrDecodes(file: String) throws {
        let bytes = try Fixtures.bytes(file)
        let dir = Fixtures.path(file).split(separator: "/").dropLast().joined(separator: "/")
        var failures = 0
        for n in 0..<bytes.count where message(Array(bytes[..<n]), directory: "/" + dir) != nil { failures += 1 }
        // Most prefixes cut a field short; only a few end exactly at a top-level field boundary.
        #expect(failures > bytes.count * 9 / 10)
        #expect(message(bytes, directory: "/" + dir) == nil)
    }

    @Test(arguments: ["typed.onnx", "attributes.onnx", "external/model.onnx", "torch_mlp/model.onnx"])
    func randomByteMutationsThrowOrDecode(file: String) throws {
        let original = try Fixtures.bytes(file)
        let dir = "/" + Fixtures.path(file).split(separator: "/").dropLast().joined(separator: "/")
        var rng = SplitMix64(seed: UInt64(file.utf8.count) &* 0x9e37_79b9)
        var decoded = 0, failed = 0
        for _ in 0..<1500 {
            var b = original
            for _ in 0...Int(rng.next() % 4) {
                let i = Int(rng.next() % UInt64(b.count))
                switch rng.next() % 3 {
                case 0: b[i] = UInt8(truncatingIfNeeded: rng.next())
                case 1: b[i] ^= UInt8(1) << (rng.next() % 8)
                default: b[i] = [0x00, 0x7f, 0x80, 0xff][Int(rng.next() % 4)]
                }
            }
            if message(b, directory: dir) == nil { decoded += 1 } else { failed += 1 }
        }
        #expect(decoded + failed == 1500)
        #expect(failed > 0)
    }

    /// The ONNXError `body` throws (recording an issue if it throws nothing or something else).
    func onnxError(_ body: () throws -> Void) -> ONNXError {
        do {
            try body()
            Issue.record("expected an ONNXError")
        } catch let error as ONNXError {
            return error
        } catch {
            Issue.record("not an ONNXError: \(error)")
        }
        return ONNXError(path: "", message: "")
    }

    @Test func emptyAndMissingFiles() throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let empty = dir.appendingPathComponent("empty.onnx").path
        _ = FileManager.default.createFile(atPath: empty, contents: Data())
        #expect(onnxError { _ = try ONNXLoader.load(path: empty) }.message.contains("file is empty"))
        let missing = dir.appendingPathComponent("nope.onnx").path
        let e = onnxError { _ = try ONNXLoader.load(path: missing) }
        #expect(e.path == missing)
        #expect(e.message.contains("cannot open: No such file or directory"), "\(e)")
        #expect(onnxError { _ = try ONNXLoader.load(path: dir.path) }.message.contains("is a directory"))
        #expect(onnxError { _ = try ONNXLoader.loadTensor(path: missing) }.message.contains("No such file"))
    }

    @Test func noGraph() {
        var m = ProtoWriter()
        m.varint(1, 8)
        m.string(2, "x")
        expectFailure(m.bytes, containing: ["not an ONNX model: no graph"])
        expectFailure(Array("hello, this is not a model\n".utf8), containing: ["malformed"])
    }

    @Test func truncatedRawDataNamesTheTensor() {
        let bytes = modelProto(graph: graphWithInitializer(
            tensorProto(name: "fc.weight", dims: [32, 32], dataType: 1, raw: [UInt8](repeating: 7, count: 4096))))
        #expect(message(bytes) == nil)
        let cut = Array(bytes[..<2000])
        expectFailure(cut, containing: [
            "truncated: field 9 (raw_data) of tensor 'fc.weight' needs 4096 bytes at offset", "but the file ends at 2000",
        ])
    }

    @Test func varintLongerThanTenBytes() {
        expectFailure([0x08] + [UInt8](repeating: 0xff, count: 11) + [0x01], containing: ["longer than 10 bytes"])
    }

    @Test func lengthPastTheEnd() {
        var m = ProtoWriter()
        m.key(7, 2)
        m.rawVarint(UInt64(Int64.max))
        expectFailure(m.bytes, containing: ["truncated: field 7 (graph) of model needs"])
    }

    @Test func invalidWireTypesAndFieldNumbers() {
        expectFailure([0x0b, 0x0c], containing: ["group encoding"])  // field 1, wire 3
        expectFailure([0x0e], containing: ["invalid wire type 6"])
        expectFailure([0x00, 0x01], containing: ["invalid field number 0"])
        var m = ProtoWriter()
        m.varint(7, 5)  // graph as a varint
        expectFailure(m.bytes, containing: ["field 7 (graph) of model has wire type 0, expected 2"])
    }

    @Test func badTensorShapesAndSizes() {
        func model(_ t: ProtoWriter) -> [UInt8] { modelProto(graph: graphWithInitializer(t)) }
        expectFailure(model(tensorProto(name: "neg", dims: [2, -3], dataType: 1, raw: [])),
                      containing: ["tensor 'neg'", "negative dimension -3"])
        expectFailure(model(tensorProto(name: "huge", dims: [1 << 40, 1 << 40], dataType: 1, raw: [])),
                      containing: ["tensor 'huge'", "overflows"])
        expectFailure(model(tensorProto(name: "big", dims: [1 << 61], dataType: 1, raw: [])),
                      containing: ["tensor 'big'", "too large"])
        expectFailure(model(tensorProto(name: "short", dims: [2, 2], dataType: 1, raw: [UInt8](repeating: 0, count: 12))),
                      containing: ["tensor 'short' (float [2, 2]) needs 16 bytes but its raw_data has 12"])
        expectFailure(model(tensorProto(name: "cplx", dims: [1], dataType: 14, raw: [UInt8](repeating: 0, count: 8))),
                      containing: ["tensor 'cplx'", "data type 14 (COMPLEX64)"])
        expectFailure(model(tensorProto(name: "str", dims: [1], dataType: 8, raw: [])),
                      containing: ["tensor 'str'", "STRING"])
        var typed = ProtoWriter()
        typed.varint(1, 3)
        typed.varint(2, 1)
        typed.string(8, "few")
        typed.fixed32(4, 0)
        typed.fixed32(4, 0)
        expectFailure(model(typed), containing: ["tensor 'few' (float [3]) has 2 values in float_data but its shape needs 3"])
        var wrong = ProtoWriter()
        wrong.varint(1, 1)
        wrong.varint(2, 7)
        wrong.string(8, "mixed")
        wrong.fixed32(4, 0)
        expectFailure(model(wrong), containing: ["tensor 'mixed'", "float_data", "int64_data"])
        var none = ProtoWriter()
        none.varint(1, 4)
        none.varint(2, 1)
        none.string(8, "nodata")
        expectFailure(model(none), containing: ["tensor 'nodata'", "has no data"])
        var packed = ProtoWriter()
        packed.varint(2, 1)
        packed.string(8, "odd")
        packed.bytes(4, [0, 0, 0])
        expectFailure(model(packed), containing: ["packed field 4 (float_data) of tensor 'odd' has 3 bytes"])
    }

    @Test func unpackedAndPackedRepeatedScalarsBothDecode() throws {
        var t = ProtoWriter()
        var packedDims = ProtoWriter()
        packedDims.rawVarint(2)
        packedDims.rawVarint(3)
        t.bytes(1, packedDims.bytes)  // dims packed, although proto2 writes them unpacked
        t.varint(2, 7)
        t.string(8, "mix")
        t.varint(7, -1)  // int64_data unpacked, although it is declared packed
        var rest = ProtoWriter()
        for v in [2, 3, 4, 5, 6] { rest.rawVarint(UInt64(v)) }
        t.bytes(7, rest.bytes)
        let m = try ONNXLoader.decode(bytes: modelProto(graph: graphWithInitializer(t)))
        let w = try #require(m.graph.initializers["mix"])
        #expect(w.shape == [2, 3])
        #expect(w.scalars(as: Int64.self) == [-1, 2, 3, 4, 5, 6])
    }

    @Test func deeplyNestedGraphsAreRefused() {
        func nest(_ depth: Int) -> ProtoWriter {
            var g = ProtoWriter()
            g.string(2, "g\(depth)")
            if depth > 0 {
                var a = ProtoWriter()
                a.string(1, "body")
                a.message(6, nest(depth - 1))
                a.varint(20, 5)
                var n = ProtoWriter()
                n.string(4, "If")
                n.message(5, a)
                g.message(1, n)
            }
            return g
        }
        #expect(message(modelProto(graph: nest(ONNXLoader.maxGraphDepth))) == nil)
        expectFailure(modelProto(graph: nest(ONNXLoader.maxGraphDepth + 1)), containing: ["nested more than 32"])
        expectFailure(modelProto(graph: nest(2000)), containing: ["nested more than 32"])
    }

    @Test func externalDataErrors() throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        try Data(repeating: 0x3f, count: 64).write(to: dir.appendingPathComponent("w.data"))
        try FileManager.default.createDirectory(at: dir.appendingPathComponent("sub"), withIntermediateDirectories: true)
        func model(_ location: String, offset: Int = 0, length: Int = 16) -> [UInt8] {
            modelProto(graph: graphWithInitializer(
                externalTensorProto(name: "ext", dims: [4], location: location, offset: offset, length: length)))
        }
        func load(_ bytes: [UInt8]) throws -> GraphModel {
            let path = dir.appendingPathComponent("model.onnx").path
            try Data(bytes).write(to: URL(fileURLWithPath: path))
            return try ONNXLoader.load(path: path)
        }
        func failure(_ bytes: [UInt8]) throws -> String {
            do {
                _ = try load(bytes)
                return "decoded"
            } catch let e as ONNXError { return e.message }
        }
        let ok = try load(model("w.data", offset: 16))
        #expect(ok.graph.initializers["ext"]?.count == 4)
        #expect(try load(model("sub/../w.data")).graph.initializers["ext"] != nil)
        #expect(try load(model("./w.data", offset: 48)).graph.initializers["ext"] != nil)

        let missing = try failure(model("nothere.data"))
        #expect(missing.contains("tensor 'ext'") && missing.contains("'nothere.data'") && missing.contains("No such file"), "\(missing)")
        for bad in ["../w.data", "sub/../../w.data", "/etc/passwd", "", "./.."] {
            let m = try failure(model(bad))
            #expect(m.contains("refused"), "location '\(bad)': \(m)")
        }
        let past = try failure(model("w.data", offset: 56))
        #expect(past.contains("truncated") && past.contains("tensor 'ext'"), "\(past)")
        let hugeOffset = try failure(model("w.data", offset: Int.max))
        #expect(hugeOffset.contains("truncated"), "\(hugeOffset)")
        let wrongLength = try failure(model("w.data", length: 12))
        #expect(wrongLength.contains("needs 16 bytes but its external data length is 12"), "\(wrongLength)")
        let outside = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: outside) }
        try Data(repeating: 0, count: 64).write(to: outside.appendingPathComponent("secret.data"))
        try FileManager.default.createSymbolicLink(
            atPath: dir.appendingPathComponent("link.data").path, withDestinationPath: outside.appendingPathComponent("secret.data").path)
        let link = try failure(model("link.data"))
        #expect(link.contains("refused") && link.contains("outside the model's directory"), "\(link)")
        let dirAsData = try failure(model("sub"))
        #expect(dirAsData.contains("is a directory"), "\(dirAsData)")
        expectFailure(model("w.data"), containing: ["decoded from memory"])
    }
}

/// A small deterministic generator, so that failures reproduce.
struct SplitMix64 {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9e37_79b9_7f4a_7c15
        var z = state
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }
}
