import Engine
import Tensors
import Testing

/// Naive numpy matmul: promotes 1-D operands, broadcasts batch dimensions, removes promoted dims.
func referenceMatMul(_ a: [Float], _ aShape: [Int], _ b: [Float], _ bShape: [Int]) -> ([Float], [Int]) {
    let ash = aShape.count == 1 ? [1, aShape[0]] : aShape
    let bsh = bShape.count == 1 ? [bShape[0], 1] : bShape
    let m = ash[ash.count - 2]
    let k = ash[ash.count - 1]
    let n = bsh[bsh.count - 1]
    let aBatch = Array(ash.dropLast(2))
    let bBatch = Array(bsh.dropLast(2))
    let rank = max(aBatch.count, bBatch.count)
    let pa = [Int](repeating: 1, count: rank - aBatch.count) + aBatch
    let pb = [Int](repeating: 1, count: rank - bBatch.count) + bBatch
    let batch = (0..<rank).map { max(pa[$0], pb[$0]) }
    var out: [Float] = []
    for flat in 0..<volume(batch) {
        let index = unravel(flat, batch)
        let aBase = broadcastFlat(index, into: aBatch) * m * k
        let bBase = broadcastFlat(index, into: bBatch) * k * n
        for i in 0..<m {
            for j in 0..<n {
                var s: Float = 0
                for p in 0..<k { s += a[aBase + i * k + p] * b[bBase + p * n + j] }
                out.append(s)
            }
        }
    }
    var shape = batch
    if aShape.count > 1 { shape.append(m) }
    if bShape.count > 1 { shape.append(n) }
    return (out, shape)
}

@Suite struct MatMulTests {
    static let cases: [([Int], [Int])] = [
        ([4], [4]),  // dot product -> scalar
        ([4], [4, 3]),  // vector-matrix
        ([3, 4], [4]),  // matrix-vector
        ([1, 4], [4, 5]),  // one row (sgemv)
        ([3, 4], [4, 5]),
        ([2, 3, 4], [4, 5]),  // batch folds into M
        ([2, 3, 4], [2, 4, 5]),
        ([2, 3, 4], [1, 4, 5]),
        ([3, 4], [2, 4, 5]),  // A broadcast over B's batch
        ([2, 1, 3, 4], [1, 3, 4, 5]),  // both batches broadcast
        ([2, 3, 3, 4], [3, 4, 2]),
        ([5], [2, 3, 5, 2]),  // 1-D A with a batched B
        ([2, 3, 4], [4]),
    ]

    @Test(arguments: cases)
    func matchesNumpySemantics(aShape: [Int], bShape: [Int]) throws {
        var rng = TestRNG(seed: UInt64(aShape.count * 10 + bShape.count))
        let a = rng.floats(volume(aShape))
        let b = rng.floats(volume(bShape))
        let y = try runSimple("MatMul", [Tensor(a, shape: aShape), Tensor(b, shape: bShape)])
        let (expected, shape) = referenceMatMul(a, aShape, b, bShape)
        expectClose(y, expected, shape: shape)
    }

    @Test func mismatchIsAnInputError() {
        var rng = TestRNG(seed: 1)
        let inner = engineError { _ = try runSimple("MatMul", [rng.tensor([2, 3]), rng.tensor([4, 2])]) }
        let batch = engineError { _ = try runSimple("MatMul", [rng.tensor([2, 2, 3]), rng.tensor([3, 3, 2])]) }
        for error in [inner, batch] {
            guard case .invalidInput(let m)? = error else {
                Issue.record("expected invalidInput, got \(String(describing: error))")
                continue
            }
            #expect(m.contains("MatMul"))
        }
    }
}
