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

    /// Gemm on INT32, INT64, UINT32 and UINT64 (opset 13's types) against a wrapping reference:
    /// every transpose, C broadcast per column and per row; products past the type's range wrap.
    @Test(arguments: [(false, false), (false, true), (true, false), (true, true)])
    func integerTypesWrap(transA: Bool, transB: Bool) throws {
        let (m, k, n) = (3, 4, 2)
        // 70 000 * 70 000 passes Int32.max and UInt32.max: the 32-bit results wrap.
        let a: [Int64] = [1, -2, 3, 70_000, 0, 5, -6, 7, 8, 9, -10, 11]
        let b: [Int64] = [70_000, 2, -3, 4, 5, -6, 7, 8]
        for cShape in [[n], [m, 1]] as [[Int]] {
            let c: [Int64] = cShape == [n] ? [100, -200] : [1, 2, 3]
            var expected = [Int64](repeating: 0, count: m * n)
            for i in 0..<m {
                for j in 0..<n {
                    var sum: Int64 = 0
                    for p in 0..<k {
                        let av = transA ? a[p * m + i] : a[i * k + p]
                        let bv = transB ? b[j * k + p] : b[p * n + j]
                        sum &+= av &* bv
                    }
                    expected[i * n + j] = sum &+ c[cShape == [n] ? j : i]
                }
            }
            func run<T: TensorElement & FixedWidthInteger>(_: T.Type) throws -> [T] {
                let wrap = { (v: [Int64]) in v.map { T(truncatingIfNeeded: $0) } }
                let y = try runSimple(
                    "Gemm",
                    [Tensor(wrap(a), shape: transA ? [k, m] : [m, k]), Tensor(wrap(b), shape: transB ? [n, k] : [k, n]),
                        Tensor(wrap(c), shape: cShape)],
                    attributes: ["transA": .int(transA ? 1 : 0), "transB": .int(transB ? 1 : 0)], opset: 13)
                #expect(y.dataType == T.dataType && y.shape == [m, n])
                return y.scalars(as: T.self)
            }
            #expect(try run(Int32.self) == expected.map { Int32(truncatingIfNeeded: $0) })
            #expect(try run(Int64.self) == expected)
            #expect(try run(UInt32.self) == expected.map { UInt32(truncatingIfNeeded: $0) })
            #expect(try run(UInt64.self) == expected.map { UInt64(truncatingIfNeeded: $0) })
        }
    }

    /// alpha and beta other than 1 on integers scale in double and truncate toward zero (the ONNX
    /// reference's numpy `astype`); a result past the type's range saturates.
    @Test func integerAlphaBetaTruncateTowardZero() throws {
        func gemm(_ a: [Int32], _ c: [Int32], alpha: Float, beta: Float) throws -> [Int32] {
            try runSimple(
                "Gemm", [Tensor(a, shape: [2, 2]), Tensor([Int32(3), 4], shape: [2, 1]), Tensor(c, shape: [2, 1])],
                attributes: ["alpha": .float(alpha), "beta": .float(beta)], opset: 13
            ).scalars(as: Int32.self)
        }
        // [1 2; -1 -2] [3; 4] = [11; -11]: 27.5 - 1.5 = 26, -27.5 - 1 = -28.5 -> -28 (not -29).
        #expect(try gemm([1, 2, -1, -2], [3, 2], alpha: 2.5, beta: -0.5) == [26, -28])
        #expect(try gemm([1, 2, -1, -2], [0, 0], alpha: 1e9, beta: 1) == [Int32.max, Int32.min])
    }

    /// An integer Gemm or MatMul followed by Relu (which the spec allows on integers) runs with the
    /// Relu fused into it; the result is Relu's.
    @Test func integerProductWithFusedRelu() throws {
        for op in ["Gemm", "MatMul"] {
            let nodes = [
                Node(name: "p", opType: op, inputs: ["a", "b"], outputs: ["t"]),
                Node(name: "r", opType: "Relu", inputs: ["t"], outputs: ["y"]),
            ]
            let graph = Graph(
                nodes: nodes,
                inputs: [
                    ValueInfo(name: "a", dataType: .int64, shape: [.fixed(2), .fixed(2)]),
                    ValueInfo(name: "b", dataType: .int64, shape: [.fixed(2), .fixed(1)]),
                ],
                outputs: [ValueInfo(name: "y", dataType: nil, shape: nil)], initializers: [:])
            let session = try InferenceSession(
                model: GraphModel(graph: graph, opsets: ["": 14], irVersion: 8), options: SessionOptions(blasThreads: 1))
            let y = try session.run([
                "a": Tensor([Int64(1), 2, -1, -2], shape: [2, 2]), "b": Tensor([Int64(3), 4], shape: [2, 1]),
            ])["y"]!
            #expect(y.scalars(as: Int64.self) == [11, 0], "\(op)")
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
