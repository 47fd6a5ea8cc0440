import Tensors

/// Conformance cases whose outputs come from a random generator. numpy's stream made their expected
/// values, which no other generator reproduces (onnxruntime's runner skips them for that reason), so
/// Swerve checks what the spec guarantees instead: the expected type and shape, and the property
/// below. Swerve's generators are seeded by the node's `seed`, so each check sees the same draw
/// every time.
enum RandomCase {
    /// Bernoulli: every output is 0 or 1; probability 0 gives 0 and 1 gives 1.
    case bernoulli
    /// Dropout in training mode: each output is 0 or its input scaled by 1 / (1 - ratio), the mask
    /// (when asked for) says which, and the share dropped is within 5 standard deviations of ratio.
    case dropout

    static let cases: [String: RandomCase] = [
        "node/test_bernoulli": .bernoulli,
        "node/test_bernoulli_expanded": .bernoulli,
        "node/test_bernoulli_double": .bernoulli,
        "node/test_bernoulli_double_expanded": .bernoulli,
        "node/test_bernoulli_seed": .bernoulli,
        "node/test_bernoulli_seed_expanded": .bernoulli,
        "node/test_training_dropout": .dropout,
        "node/test_training_dropout_default": .dropout,
        "node/test_training_dropout_mask": .dropout,
        "node/test_training_dropout_default_mask": .dropout,
    ]

    /// nil when `outputs` (in graph order) satisfy the property for `inputs` (in graph order) and
    /// have the types and shapes of `expected`.
    func check(inputs: [Tensor], outputs: [Tensor], expected: [Tensor]) -> String? {
        for (i, (a, e)) in zip(outputs, expected).enumerated() {
            guard a.dataType == e.dataType, a.shape == e.shape else {
                return "output \(i) is \(a.dataType.onnxName) \(a.shape), expected \(e.dataType.onnxName) \(e.shape)"
            }
        }
        switch self {
        case .bernoulli:
            let p = inputs[0].doubleValues()
            for (i, y) in outputs[0].doubleValues().enumerated() {
                guard y == 0 || y == 1 else { return "element \(i) is \(y), not 0 or 1" }
                if p[i] == 0 && y != 0 || p[i] == 1 && y != 1 { return "element \(i) is \(y) with probability \(p[i])" }
            }
            return nil
        case .dropout:
            let x = inputs[0].doubleValues()
            let ratio = inputs.count > 1 ? inputs[1].doubleValues()[0] : 0.5
            let y = outputs[0].doubleValues()
            let mask = outputs.count > 1 ? outputs[1].doubleValues() : nil
            var dropped = 0
            for i in x.indices {
                let kept = y[i] != 0 || (mask?[i] ?? 0) != 0
                if kept {
                    guard abs(y[i] - x[i] / (1 - ratio)) <= 1e-5 * abs(x[i] / (1 - ratio)) else {
                        return "element \(i) is \(y[i]), neither 0 nor \(x[i]) / (1 - \(ratio))"
                    }
                } else {
                    dropped += 1
                }
                if let mask, (mask[i] != 0) != kept { return "mask element \(i) disagrees with the output" }
            }
            let n = Double(x.count)
            let sd = (n * ratio * (1 - ratio)).squareRoot()
            guard abs(Double(dropped) - n * ratio) <= 5 * sd + 1 else {
                return "\(dropped) of \(x.count) dropped at ratio \(ratio)"
            }
            return nil
        }
    }
}
