import Foundation
import Engine
import Tensors
import Testing

/// SwiGLU against `a * sigmoid(alpha * a) * b`, over lengths that leave a tail after the eight-lane
/// loop and gates far in the tails of the sigmoid.
@Suite struct SwiGLUTests {
    @Test(arguments: [(Float(1), 13), (Float(1.702), 64), (Float(0.5), 3)])
    func swigluMatchesTheDefinition(_ alpha: Float, _ count: Int) throws {
        var rng = TestRNG(seed: 31)
        var a = rng.floats(count).map { $0 * 8 }
        a[0] = 95
        a[count - 1] = -95
        let b = rng.floats(count)
        let y = try runSimple(
            "SwiGLU", [Tensor(a, shape: [1, count]), Tensor(b, shape: [1, count])], attributes: ["alpha": .float(alpha)],
            opset: 28)
        let expected = zip(a, b).map { a, b in Float(Double(a) / (1 + exp(-Double(alpha * a))) * Double(b)) }
        expectClose(y, expected, shape: [1, count])
    }

    @Test func swigluRefusesOperandsToBroadcast() {
        let error = engineError {
            _ = try runSimple(
                "SwiGLU", [Tensor([Float](repeating: 1, count: 8), shape: [2, 4]), Tensor([Float(1), 2, 3, 4], shape: [1, 4])],
                opset: 28)
        }
        guard case .invalidInput(let m)? = error else {
            Issue.record("expected invalidInput, got \(String(describing: error))")
            return
        }
        #expect(m.contains("[2, 4]") && m.contains("[1, 4]"), "\(m)")
    }
}
