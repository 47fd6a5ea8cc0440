import Foundation
import Engine
import Tensors
import Testing

@Suite struct ActivationTests {
    @Test func reluSigmoidTanh() throws {
        var rng = TestRNG(seed: 31)
        // Include large magnitudes, where a naive sigmoid overflows.
        let x = rng.floats(60).map { $0 * 12 } + [-100, 100, 0]
        let t = Tensor(x, shape: [3, 21])
        expectClose(try runSimple("Relu", [t]), x.map { $0 > 0 ? $0 : 0 }, shape: [3, 21])
        expectClose(
            try runSimple("Sigmoid", [t]), x.map { Float(1 / (1 + Foundation.exp(-Double($0)))) }, shape: [3, 21])
        expectClose(try runSimple("Tanh", [t]), x.map { Float(Foundation.tanh(Double($0))) }, shape: [3, 21])
    }

    /// Naive softmax of `x` (shape `shape`) over the dims in `axes`-th group: groups of elements that
    /// share all coordinates outside `reduced`.
    func referenceSoftmax(_ x: [Float], _ shape: [Int], reduced: Set<Int>) -> [Float] {
        var out = [Float](repeating: 0, count: x.count)
        func key(_ flat: Int) -> [Int] {
            let idx = unravel(flat, shape)
            return idx.enumerated().map { reduced.contains($0.offset) ? 0 : $0.element }
        }
        let keys = (0..<x.count).map(key)
        for i in 0..<x.count {
            let group = (0..<x.count).filter { keys[$0] == keys[i] }
            let m = group.map { Double(x[$0]) }.max()!
            let sum = group.map { Foundation.exp(Double(x[$0]) - m) }.reduce(0, +)
            out[i] = Float(Foundation.exp(Double(x[i]) - m) / sum)
        }
        return out
    }

    @Test func softmaxOpset11CoercesTo2D() throws {
        var rng = TestRNG(seed: 32)
        let x = rng.floats(24).map { $0 * 5 }
        let t = Tensor(x, shape: [2, 3, 4])
        // Default axis 1: normalise over the flattened [3, 4] block.
        expectClose(try runSimple("Softmax", [t], opset: 11), referenceSoftmax(x, [2, 3, 4], reduced: [1, 2]), shape: [2, 3, 4])
        expectClose(
            try runSimple("Softmax", [t], attributes: ["axis": .int(2)], opset: 11),
            referenceSoftmax(x, [2, 3, 4], reduced: [2]), shape: [2, 3, 4])
        expectClose(
            try runSimple("Softmax", [t], attributes: ["axis": .int(0)], opset: 11),
            referenceSoftmax(x, [2, 3, 4], reduced: [0, 1, 2]), shape: [2, 3, 4])
    }

    @Test func softmaxOpset13AlongOneAxis() throws {
        var rng = TestRNG(seed: 33)
        let x = rng.floats(24).map { $0 * 5 }
        let t = Tensor(x, shape: [2, 3, 4])
        expectClose(try runSimple("Softmax", [t], opset: 13), referenceSoftmax(x, [2, 3, 4], reduced: [2]), shape: [2, 3, 4])
        expectClose(
            try runSimple("Softmax", [t], attributes: ["axis": .int(1)], opset: 13),
            referenceSoftmax(x, [2, 3, 4], reduced: [1]), shape: [2, 3, 4])
        expectClose(
            try runSimple("Softmax", [t], attributes: ["axis": .int(-3)], opset: 13),
            referenceSoftmax(x, [2, 3, 4], reduced: [0]), shape: [2, 3, 4])
    }

    /// Rows longer than a vector (the maximum found eight lanes at a time, then the tail): the
    /// largest value in the first vector, in the tail, and a row of equal values. The largest
    /// values are 90-100 above the others, so a maximum taken without them would overflow exp.
    @Test func softmaxAndLogSoftmaxOnLongRows() throws {
        var rng = TestRNG(seed: 34)
        var x = rng.floats(3 * 37).map { $0 * 5 }
        x[5] = 95  // row 0: maximum in the first vector
        x[37 + 35] = 95  // row 1: maximum in the tail
        for i in 74..<111 { x[i] = 2 }  // row 2: all equal
        let t = Tensor(x, shape: [3, 37])
        expectClose(try runSimple("Softmax", [t], opset: 13), referenceSoftmax(x, [3, 37], reduced: [1]), shape: [3, 37])
        var logs = [Float]()
        for r in 0..<3 {
            let row = x[(r * 37)..<(r * 37 + 37)].map(Double.init)
            let m = row.max()!
            let l = Foundation.log(row.map { Foundation.exp($0 - m) }.reduce(0, +)) + m
            logs += row.map { Float($0 - l) }
        }
        expectClose(try runSimple("LogSoftmax", [t], opset: 13), logs, shape: [3, 37])
    }

    @Test func softmaxIsStableForLargeInputs() throws {
        let y = try runSimple("Softmax", [Tensor([1000, 1001, 1002] as [Float], shape: [1, 3])], opset: 13)
        expectClose(y, referenceSoftmax([0, 1, 2], [1, 3], reduced: [1]), shape: [1, 3])
    }

    @Test func softmaxAxisOutOfRangeIsAnInputError() {
        let error = engineError {
            _ = try runSimple("Softmax", [Tensor([1, 2] as [Float], shape: [2])], attributes: ["axis": .int(3)], opset: 13)
        }
        guard case .invalidInput(let message)? = error else {
            Issue.record("expected invalidInput, got \(String(describing: error))")
            return
        }
        #expect(message.contains("axis 3"))
    }
}
