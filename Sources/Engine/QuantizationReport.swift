import Tensors

/// How a model is quantized, for `swerve check`: its formats (QDQ pairs, QOperator integer
/// operators, dynamic quantization, 4-bit weights), whether weights are quantized per channel, the
/// 8-bit types, and what the engine's QDQ pass fuses into integer operators (and what it leaves in
/// float, with why). nil-free: a float model has no formats.
///
/// A value computed from a model once; immutable.
public struct QuantizationReport: Sendable {
    public private(set) var formats: [String] = []
    public private(set) var perChannel = false
    public private(set) var types: [String] = []
    public let fusion: QDQFusion
    /// MatMulInteger chains of dynamic quantization that load fuses into MatMulIntegerToFloat.
    public let dynamicFused: Int

    public var isQuantized: Bool { !formats.isEmpty }

    public init(model: GraphModel, registry: OperatorRegistry = .cpu) {
        var ops: [String: Int] = [:]
        var perChannel = false
        var types = Set<DataType>()
        let constants = model.graph.initializers
        model.graph.walkNodes { node, _ in
            let name = OperatorRegistry.isDefaultDomain(node.domain) ? node.opType : "\(node.domain).\(node.opType)"
            ops[name, default: 0] += 1
            // Scales (and per-axis zero points) of more than one value are per channel.
            let scaleInputs: [Int]
            switch node.opType {
            case "QuantizeLinear", "DequantizeLinear": scaleInputs = [1]
            case "QLinearConv", "QLinearMatMul": scaleInputs = [4]
            case "MatMulInteger", "ConvInteger": scaleInputs = [3]
            case "QGemm", "MatMulIntegerToFloat", "DynamicQuantizeMatMul": scaleInputs = node.opType == "QGemm" ? [4] : [3, 2]
            default: scaleInputs = []
            }
            for i in scaleInputs where i < node.inputs.count {
                if let t = constants[node.inputs[i]], t.count > 1 { perChannel = true }
            }
            for name in node.inputs where !name.isEmpty {
                if let t = constants[name], [.uint8, .int8, .uint16, .int16].contains(t.dataType) { types.insert(t.dataType) }
            }
        }
        let has = { (names: [String]) in names.contains { ops[$0] != nil } }
        if has(["QuantizeLinear", "DequantizeLinear"]) && has(["Conv", "MatMul", "Gemm", "Add", "Mul", "MaxPool"]) { formats.append("QDQ") }
        if has(["QLinearConv", "QLinearMatMul", "com.microsoft.QGemm", "com.microsoft.QLinearAdd", "com.microsoft.QLinearMul",
            "com.microsoft.QLinearGlobalAveragePool", "com.microsoft.QLinearConcat", "com.microsoft.QLinearSigmoid",
            "com.microsoft.QLinearLeakyRelu"])
        {
            formats.append("QOperator")
        }
        if has(["DynamicQuantizeLinear", "MatMulInteger", "ConvInteger", "com.microsoft.DynamicQuantizeMatMul",
            "com.microsoft.MatMulIntegerToFloat"])
        {
            formats.append("dynamic")
        }
        if has(["com.microsoft.MatMulNBits"]) { formats.append("4-bit weights (MatMulNBits)") }
        self.perChannel = perChannel
        self.types = types.map(\.v2Name).sorted()
        fusion = formats.contains("QDQ") ? GraphOptimizer.quantizeDequantizeFusion(model, registry: registry) : QDQFusion()
        dynamicFused = ops["MatMulInteger"] != nil ? GraphOptimizer.matMulIntegerToFloatFusion(model, registry: registry) : 0
    }

    /// The report's lines for `swerve check` (empty for a float model).
    public var lines: [String] {
        guard isQuantized else { return [] }
        var out = ["quantized   \(formats.joined(separator: ", ")); weights \(perChannel ? "per channel" : "per tensor"); "
            + "8-bit types \(types.isEmpty ? "(none constant)" : types.joined(separator: ", "))"]
        if formats.contains("QDQ") {
            let fused = fusion.fused.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)" }.joined(separator: ", ")
            out.append("  QDQ fused into integer operators: \(fused.isEmpty ? "none" : fused); the other operators run in float between the pairs")
            for why in fusion.left.prefix(5) { out.append("  left in float: \(why)") }
            if fusion.left.count > 5 { out.append("  left in float: \(fusion.left.count - 5) more") }
        }
        if dynamicFused > 0 {
            out.append("  dynamic: \(dynamicFused) MatMulInteger -> Cast -> Mul [-> Add] fused into com.microsoft.MatMulIntegerToFloat "
                + "(scaled in the integer GEMM's epilogue)")
        }
        return out
    }
}
