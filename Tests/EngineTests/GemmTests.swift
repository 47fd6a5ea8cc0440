import Engine
import Tensors
import Testing

/// Naive Gemm: alpha * op(A) * op(B) + beta * C, with C read by unidirectional broadcasting.
func referenceGemm(
    _ a: [Float], _ aShape: [Int], _ b: [Float], _ bShape: [Int], transA: Bool, transB: Bool,
    alpha: Float, beta: Float, c: [Float]?, cShape: [Int]
) -> [Float] {
    let m = transA ? aShape[1] : aShape[0]
    let k = transA ? aShape[0] : aShape[1]
    let n = transB ? bShape[0] : bShape[1]
    var y = [Float](repeating: 0, count: m * n)
    for i in 0..<m {
        for j in 0..<n {
            var sum: Float = 0
            for p in 0..<k {
                let av = transA ? a[p * m + i] : a[i * k + p]
                let bv = transB ? b[j * k + p] : b[p * n + j]
                sum += av * bv
            }
            var bias: Float = 0
            if let c {
                switch cShape.count {
                case 0: bias = c[0]
                case 1: bias = c[cShape[0] == 1 ? 0 : j]
                default: bias = c[(cShape[0] == 1 ? 0 : i) * cShape[1] + (cShape[1] == 1 ? 0 : j)]
                }
            }
            y[i * n + j] = alpha * sum + beta * bias
        }
    }
    return y
}

@Suite struct GemmTests {
    @Test(arguments: [(false, false), (false, true), (true, false), (true, true)])
    func everyTransposeAndBiasShape(transA: Bool, transB: Bool) throws {
        var rng = TestRNG(seed: 7)
        // m = 1 goes through sgemv, the others through sgemm.
        for (m, k, n) in [(5, 7, 4), (1, 6, 3), (3, 1, 2)] {
            let aShape = transA ? [k, m] : [m, k]
            let bShape = transB ? [n, k] : [k, n]
            let a = rng.floats(m * k)
            let b = rng.floats(k * n)
            for cShape in [[], [n], [1, n], [m, 1], [m, n], [1], [1, 1]] as [[Int]] {
                let c = rng.floats(volume(cShape))
                let attributes: [String: Attribute] = [
                    "alpha": .float(0.7), "beta": .float(-1.3), "transA": .int(transA ? 1 : 0),
                    "transB": .int(transB ? 1 : 0),
                ]
                let y = try runSimple(
                    "Gemm", [Tensor(a, shape: aShape), Tensor(b, shape: bShape), Tensor(c, shape: cShape)],
                    attributes: attributes, opset: 13)
                let expected = referenceGemm(
                    a, aShape, b, bShape, transA: transA, transB: transB, alpha: 0.7, beta: -1.3, c: c,
                    cShape: cShape)
                expectClose(y, expected, shape: [m, n])
            }
            // Without C (opset 11+), with the default alpha and beta.
            let y = try runSimple(
                "Gemm", [Tensor(a, shape: aShape), Tensor(b, shape: bShape)],
                attributes: ["transA": .int(transA ? 1 : 0), "transB": .int(transB ? 1 : 0)], opset: 11)
            let expected = referenceGemm(
                a, aShape, b, bShape, transA: transA, transB: transB, alpha: 1, beta: 1, c: nil, cShape: [])
            expectClose(y, expected, shape: [m, n])
        }
    }

    @Test func omittedCByEmptyName() throws {
        var rng = TestRNG(seed: 8)
        let a = rng.tensor([2, 3])
        let b = rng.tensor([3, 4])
        let y = try runNode("Gemm", inputs: ["a", "b", ""], feeds: [("a", a), ("b", b)], opset: 13)[0]
        let expected = referenceGemm(
            a.scalars(as: Float.self), [2, 3], b.scalars(as: Float.self), [3, 4], transA: false, transB: false,
            alpha: 1, beta: 1, c: nil, cShape: [])
        expectClose(y, expected, shape: [2, 4])
    }

    @Test func mismatchedShapesAreInputErrors() throws {
        var rng = TestRNG(seed: 9)
        let error = engineError {
            _ = try runSimple("Gemm", [rng.tensor([2, 3]), rng.tensor([4, 5])])
        }
        guard case .invalidInput(let message)? = error else {
            Issue.record("expected invalidInput, got \(String(describing: error))")
            return
        }
        #expect(message.contains("node0") && message.contains("Gemm"))
        let bias = engineError {
            _ = try runSimple("Gemm", [rng.tensor([2, 3]), rng.tensor([3, 5]), rng.tensor([3])])
        }
        guard case .invalidInput? = bias else {
            Issue.record("expected invalidInput for a bad C, got \(String(describing: bias))")
            return
        }
    }
}
