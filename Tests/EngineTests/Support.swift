import Engine
import Tensors
import Testing

/// A small deterministic random generator (SplitMix64) so failures reproduce.
struct TestRNG {
    var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Uniform in [-1, 1).
    mutating func float() -> Float { Float(next() >> 40) / Float(1 << 24) * 2 - 1 }

    mutating func floats(_ count: Int) -> [Float] { (0..<count).map { _ in float() } }

    mutating func int(in range: ClosedRange<Int>) -> Int {
        range.lowerBound + Int(next() % UInt64(range.upperBound - range.lowerBound + 1))
    }

    mutating func tensor(_ shape: [Int]) -> Tensor { Tensor(floats(shape.reduce(1, *)), shape: shape) }
}

/// Product of dimensions.
func volume(_ shape: [Int]) -> Int { shape.reduce(1, *) }

/// Row-major multi-index of flat position `flat` in `shape`.
func unravel(_ flat: Int, _ shape: [Int]) -> [Int] {
    var rest = flat
    var index = [Int](repeating: 0, count: shape.count)
    for d in stride(from: shape.count - 1, through: 0, by: -1) {
        index[d] = rest % shape[d]
        rest /= shape[d]
    }
    return index
}

/// Flat position in an operand of `shape` that numpy broadcasting reads for output multi-index `index`
/// (right-aligned; size-1 dimensions always read position 0).
func broadcastFlat(_ index: [Int], into shape: [Int]) -> Int {
    let pad = index.count - shape.count
    var flat = 0
    for d in 0..<shape.count {
        flat = flat * shape[d] + (shape[d] == 1 ? 0 : index[d + pad])
    }
    return flat
}

/// Builds a one-node model whose inputs are `feeds` (declared with their exact type and shape) and
/// `initializers`, runs it once and returns the outputs in the order of `outputs`.
func runNode(
    _ opType: String, inputs: [String], feeds: [(String, Tensor)] = [], initializers: [String: Tensor] = [:],
    attributes: [String: Attribute] = [:], outputs: [String] = ["y"], domain: String = "", opset: Int = 17,
    threads: Int = 1
) throws -> [Tensor] {
    let node = Node(name: "node0", opType: opType, domain: domain, inputs: inputs, outputs: outputs, attributes: attributes)
    let graph = Graph(
        nodes: [node],
        inputs: feeds.map { ValueInfo(name: $0.0, dataType: $0.1.dataType, shape: $0.1.shape.map { .fixed($0) }) },
        outputs: outputs.filter { !$0.isEmpty }.map { ValueInfo(name: $0, dataType: nil, shape: nil) },
        initializers: initializers)
    let opsets = domain.isEmpty ? ["": opset] : ["": 17, domain: opset]
    let session = try InferenceSession(
        model: GraphModel(graph: graph, opsets: opsets, irVersion: 8), options: SessionOptions(blasThreads: threads))
    let result = try session.run(Dictionary(uniqueKeysWithValues: feeds))
    return outputs.filter { !$0.isEmpty }.map { result[$0]! }
}

/// Runs a node whose inputs are all fed, named a, b, c, ...
func runSimple(
    _ opType: String, _ tensors: [Tensor], attributes: [String: Attribute] = [:], opset: Int = 17
) throws -> Tensor {
    let names = tensors.indices.map { String(UnicodeScalar(UInt8(97 + $0))) }
    return try runNode(
        opType, inputs: names, feeds: Array(zip(names, tensors)), attributes: attributes, opset: opset)[0]
}

/// Expects `actual` to have `shape` and values within rtol 1e-4 / atol 1e-5 of `expected`.
func expectClose(
    _ actual: Tensor, _ expected: [Float], shape: [Int], sourceLocation: SourceLocation = #_sourceLocation
) {
    #expect(actual.dataType == .float32, sourceLocation: sourceLocation)
    #expect(actual.shape == shape, sourceLocation: sourceLocation)
    guard actual.dataType == .float32, actual.count == expected.count else {
        Issue.record("count \(actual.count) != expected \(expected.count)", sourceLocation: sourceLocation)
        return
    }
    let values = actual.scalars(as: Float.self)
    var worst = 0
    var worstExcess: Float = 0
    for i in values.indices {
        let excess = abs(values[i] - expected[i]) - (1e-5 + 1e-4 * abs(expected[i]))
        if !(excess <= worstExcess) { worstExcess = excess; worst = i }
    }
    #expect(
        worstExcess <= 0, "element \(worst): got \(values[worst]), expected \(expected[worst])",
        sourceLocation: sourceLocation)
}

/// The message of an `EngineError` thrown by `body`, or nil (recording an issue) when it does not throw one.
func engineError(_ body: () throws -> Void, sourceLocation: SourceLocation = #_sourceLocation) -> EngineError? {
    do {
        try body()
        Issue.record("expected an EngineError, nothing was thrown", sourceLocation: sourceLocation)
    } catch let e as EngineError {
        return e
    } catch {
        Issue.record("expected an EngineError, got \(error)", sourceLocation: sourceLocation)
    }
    return nil
}
