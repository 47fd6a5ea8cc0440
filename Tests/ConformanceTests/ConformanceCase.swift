import Engine
import Foundation
import ONNX
import Tensors

/// One ONNX conformance case on disk (`SUITE/test_NAME/model.onnx` + `test_data_set_0/*.pb`) and how
/// it went. Built and run by `ConformanceTests`; a value type, not shared.
struct ConformanceCase {
    /// `node/test_abs`, the key used by the skip manifest.
    let key: String
    let directory: String

    /// What happened to one case.
    enum Outcome {
        case passed
        /// Swerve cannot run it; the reason names the unsupported operator or type.
        case unsupported(String)
        case failed(String)
    }

    /// Element types Swerve's engine runs: float32, float64, float16 and bfloat16 (held as float32),
    /// every integer type, bool, and the narrow types (float8, float4, int4, int2; one byte per
    /// element). Which of them an operator implements its record says (`OperatorRecord.elementTypes`,
    /// checked below).
    static let supportedTypes: Set<DataType> = Set(DataType.allCases.filter { $0 != .string })

    /// Loads, checks and runs the case, comparing with `rtol`/`atol` as onnx's runner does.
    func run(rtol: Double, atol: Double) -> Outcome {
        let model: GraphModel
        do {
            model = try ONNXLoader.load(path: directory + "/model.onnx")
        } catch {
            return .unsupported("io: the model does not decode: \(error)")
        }
        if let reason = Self.unsupportedReason(model) { return .unsupported(reason) }
        let session: InferenceSession
        do {
            session = try InferenceSession(model: model)
        } catch let error as EngineError {
            if case .unsupportedOperator(let op, _, let opset, _) = error {
                return .unsupported("operator: \(op) (opset \(opset)) with these attributes, inputs or types")
            }
            if case .unsupportedOperators(let list) = error, let first = list.first {
                return .unsupported("operator: \(first.qualifiedName)")
            }
            return .failed("load failed: \(error)")
        } catch {
            return .failed("load failed: \(error)")
        }
        let data = directory + "/test_data_set_0"
        var feeds: [String: Tensor] = [:]
        do {
            for (i, input) in model.graph.inputs.enumerated() {
                feeds[input.name] = try ONNXLoader.loadValue(
                    path: "\(data)/input_\(i).pb", kind: input.kind, elementType: input.dataType)
            }
        } catch {
            return .failed("cannot read the inputs: \(error)")
        }
        // The first run of a shape signature builds its shape plan; the second runs through it
        // (folded shapes, arena), and that is the result compared.
        let results: [String: Tensor]
        do {
            _ = try session.run(feeds)
            results = try session.run(feeds)
        } catch {
            return .failed("run failed: \(error)")
        }
        if let random = RandomCase.cases[key] {
            do {
                let expected = try model.graph.outputs.indices.map { i in
                    try ONNXLoader.loadValue(
                        path: "\(data)/output_\(i).pb", kind: model.graph.outputs[i].kind, elementType: model.graph.outputs[i].dataType)
                }
                let outputs = try model.graph.outputs.map { o in
                    guard let t = results[o.name] else { throw KernelError.failed("output '\(o.name)' missing") }
                    return t
                }
                let inputs = model.graph.inputs.compactMap { feeds[$0.name] }
                return random.check(inputs: inputs, outputs: outputs, expected: expected).map { .failed("random outputs: \($0)") } ?? .passed
            } catch {
                return .failed("\(error)")
            }
        }
        for (i, output) in model.graph.outputs.enumerated() {
            let expected: Tensor
            do {
                expected = try ONNXLoader.loadValue(
                    path: "\(data)/output_\(i).pb", kind: output.kind, elementType: output.dataType)
            } catch {
                return .failed("cannot read output_\(i).pb: \(error)")
            }
            guard let actual = results[output.name] else { return .failed("output '\(output.name)' missing") }
            if let problem = Self.compare(actual, expected, rtol: rtol, atol: atol) {
                return .failed("output \(i) '\(output.name)': \(problem)")
            }
        }
        return .passed
    }

    /// Why Swerve cannot run `model` at all (types and operators), or nil.
    static func unsupportedReason(_ model: GraphModel) -> String? {
        let g = model.graph
        for v in g.inputs + g.outputs {
            if v.kind == .other { return "io: '\(v.name)' is a map or sparse tensor" }
            guard let t = v.dataType else {
                if v.kind == .tensor {
                    return "type: '\(v.name)' has an element type the engine does not hold (float8, float4, int4 or int2)"
                }
                return "io: '\(v.name)' is a \(v.kind.rawValue) of an element type the engine does not hold"
            }
            if !supportedTypes.contains(t) { return "type: '\(v.name)' is \(t.onnxName)" }
        }
        for t in g.initializers.values where !supportedTypes.contains(t.dataType) {
            return "type: an initializer is \(t.dataType.onnxName)"
        }
        // Subgraphs included (If branches, Loop and Scan bodies).
        if let missing = OperatorRegistry.cpu.unsupportedOperators(in: model).first {
            return "operator: \(missing.qualifiedName)"
        }
        // A node whose main input comes straight from the graph with a type its record does not list.
        var known: [String: DataType] = [:]
        for v in g.inputs + g.valueInfo { if let t = v.dataType { known[v.name] = t } }
        for (name, t) in g.initializers { known[name] = t.dataType }
        for node in g.nodes {
            guard let record = OperatorRegistry.cpu.record(node.opType, domain: node.domain), let first = node.inputs.first,
                let t = known[first], !record.elementTypes.contains(t)
            else { continue }
            return "type: '\(first)' is \(t.onnxName), which \(node.opType) does not implement"
        }
        return nil
    }

    /// nil when `actual` matches `expected`: same type and shape, equal integers and booleans, floats
    /// within `atol + rtol * |expected|` (NaN matches NaN, infinities must be equal).
    static func compare(_ actual: Tensor, _ expected: Tensor, rtol: Double, atol: Double) -> String? {
        if actual.container != nil || expected.container != nil {
            return compareContainers(actual, expected, rtol: rtol, atol: atol)
        }
        guard actual.dataType == expected.dataType else {
            return "type \(actual.dataType.onnxName), expected \(expected.dataType.onnxName)"
        }
        guard actual.shape == expected.shape else { return "shape \(actual.shape), expected \(expected.shape)" }
        let a = actual.doubleValues()
        let e = expected.doubleValues()
        let exact = !actual.dataType.isFloatingPoint
        // A 16-bit output is compared at its type's precision: the reference rounds every
        // intermediate to 16 bits where the engine computes in float32 and rounds once, so results
        // may differ by an ulp or two (float16: 2^-10 relative, bfloat16: 2^-7).
        let rtol = actual.dataType == .float16 ? max(rtol, 0x1p-9) : actual.dataType == .bfloat16 ? max(rtol, 0x1p-6) : rtol
        let size = actual.dataType.byteSize
        var bad = 0
        var first = ""
        for i in e.indices {
            let x = a[i]
            let y = e[i]
            let ok: Bool
            if exact {
                // Bytes, not Doubles: 64-bit integers above 2^53 must match exactly too.
                ok = memcmp(actual.rawBytes.baseAddress! + i * size, expected.rawBytes.baseAddress! + i * size, size) == 0
            } else if y.isNaN || x.isNaN {
                ok = y.isNaN && x.isNaN
            } else if y.isInfinite || x.isInfinite {
                ok = x == y
            } else {
                ok = abs(x - y) <= atol + rtol * abs(y)
            }
            if !ok {
                if bad == 0 { first = "element \(i): got \(x), expected \(y)" }
                bad += 1
            }
        }
        return bad == 0 ? nil : "\(bad) of \(e.count) elements differ; first \(first)"
    }

    /// Sequences element by element; empty optionals only match empty optionals.
    static func compareContainers(_ actual: Tensor, _ expected: Tensor, rtol: Double, atol: Double) -> String? {
        if expected.isNoneOptional || actual.isNoneOptional {
            return expected.isNoneOptional == actual.isNoneOptional
                ? nil : "got a \(actual.kindDescription), expected a \(expected.kindDescription)"
        }
        guard let a = actual.sequenceElements, let e = expected.sequenceElements else {
            return "got a \(actual.kindDescription), expected a \(expected.kindDescription)"
        }
        guard a.count == e.count else { return "sequence of \(a.count) tensors, expected \(e.count)" }
        for (i, (x, y)) in zip(a, e).enumerated() {
            if let problem = compare(x, y, rtol: rtol, atol: atol) { return "sequence element \(i): \(problem)" }
        }
        return nil
    }
}
