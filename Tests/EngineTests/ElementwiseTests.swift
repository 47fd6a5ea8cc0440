import Engine
import Tensors
import Testing

/// Broadcasting cases: (A shape, B shape, expected output shape).
let broadcastCases: [([Int], [Int], [Int])] = [
    ([2, 3, 4], [2, 3, 4], [2, 3, 4]),  // same shape
    ([2, 3, 4], [], [2, 3, 4]),  // scalar B
    ([], [3, 4], [3, 4]),  // scalar A
    ([3, 4], [4], [3, 4]),  // row
    ([3, 4], [3, 1], [3, 4]),  // column
    ([2, 3, 4, 5], [3, 1, 1], [2, 3, 4, 5]),  // per channel
    ([3, 1, 1], [2, 3, 4, 5], [2, 3, 4, 5]),  // per channel, on the left
    ([3, 1], [1, 4], [3, 4]),  // both sides broadcast
    ([2, 1, 4], [1, 3, 1], [2, 3, 4]),
    ([1], [2, 3], [2, 3]),
    ([0, 3], [3], [0, 3]),  // empty
]

/// Generic naive reference: out[i] = f(a[bcast(i)], b[bcast(i)]).
func referenceBinary<T>(_ a: [T], _ aShape: [Int], _ b: [T], _ bShape: [Int], _ outShape: [Int], _ f: (T, T) -> T)
    -> [T]
{
    (0..<volume(outShape)).map { flat in
        let index = unravel(flat, outShape)
        return f(a[broadcastFlat(index, into: aShape)], b[broadcastFlat(index, into: bShape)])
    }
}

@Suite struct ElementwiseTests {
    /// PRelu on the spec's non-float32 types (opset 16): double, and the integers with a wrapping
    /// product (unsigned values are never negative, so the identity), slope broadcast per channel.
    @Test func preluOnDoubleAndIntegers() throws {
        let xs: [Int] = [-3, 7, 0, -100, 5, -1]
        let slopes: [Int] = [2, -4]
        let expected = xs.indices.map { i in xs[i] < 0 ? xs[i] * slopes[i / 3] : xs[i] }
        func run<T: TensorElement>(_ values: [T], _ slope: [T]) throws -> Tensor {
            try runNode("PRelu", inputs: ["x", "s"], feeds: [("x", Tensor(values, shape: [2, 3])), ("s", Tensor(slope, shape: [2, 1]))],
                        opset: 16)[0]
        }
        #expect(try run(xs.map(Int32.init), slopes.map(Int32.init)).scalars(as: Int32.self) == expected.map(Int32.init))
        #expect(try run(xs.map(Int64.init), slopes.map(Int64.init)).scalars(as: Int64.self) == expected.map(Int64.init))
        #expect(try run(xs.map(Double.init), slopes.map(Double.init)).scalars(as: Double.self) == expected.map(Double.init))
        let unsigned: [UInt32] = [3, 7, 0, 100, 5, 1]
        #expect(try run(unsigned, [2, 4]).scalars(as: UInt32.self) == unsigned)
        #expect(try run(unsigned.map(UInt64.init), [2, 4]).scalars(as: UInt64.self) == unsigned.map(UInt64.init))
        // Int32.min * 2 wraps (to 0), as the other integer arithmetic does, instead of trapping.
        let wrapped = try runNode("PRelu", inputs: ["x", "s"], feeds: [
            ("x", Tensor([Int32.min, -5], shape: [2])), ("s", Tensor([Int32(2)], shape: [1]))], opset: 16)[0]
        #expect(wrapped.scalars(as: Int32.self) == [0, -10])
        #expect(throws: (any Error).self) { try runNode("PRelu", inputs: ["x", "s"], feeds: [
            ("x", Tensor([Int32(-1)], shape: [1])), ("s", Tensor([Float(2)], shape: [1]))], opset: 16) }
    }

    /// From 64k elements the binary loops split between threads (same-shape blocks, and the rows
    /// of a broadcast such as a squeeze-and-excitation scale [1, C, H, W] * [1, C, 1, 1]): every
    /// element as on one thread.
    @Test(arguments: [1, 2, 3])
    func binaryLoopsSplitOnThreads(_ threads: Int) throws {
        var rng = TestRNG(seed: 91)
        let (c, hw) = (96, 29 * 31)
        let x = rng.tensor([1, c, 29, 31])
        let s = rng.tensor([1, c, 1, 1])
        let r = rng.tensor([1, c, 29, 31])
        let scaled = try runNode("Mul", inputs: ["x", "s"], feeds: [("x", x), ("s", s)], threads: threads)[0]
        let sum = try runNode("Add", inputs: ["x", "r"], feeds: [("x", x), ("r", r)], threads: threads)[0]
        let (xv, sv, rv) = (x.scalars(as: Float.self), s.scalars(as: Float.self), r.scalars(as: Float.self))
        #expect(scaled.scalars(as: Float.self) == xv.indices.map { xv[$0] * sv[$0 / hw] })
        #expect(sum.scalars(as: Float.self) == xv.indices.map { xv[$0] + rv[$0] })
    }

    @Test(arguments: ["Add", "Sub", "Mul", "Div"])
    func float32Broadcasting(op: String) throws {
        var rng = TestRNG(seed: 21)
        let f: (Float, Float) -> Float =
            switch op {
            case "Add": { $0 + $1 }
            case "Sub": { $0 - $1 }
            case "Mul": { $0 * $1 }
            default: { $0 / $1 }
            }
        for (aShape, bShape, outShape) in broadcastCases {
            let a = rng.floats(volume(aShape))
            // Keep divisors away from zero.
            let b = rng.floats(volume(bShape)).map { $0 < 0 ? $0 - 0.5 : $0 + 0.5 }
            let y = try runSimple(op, [Tensor(a, shape: aShape), Tensor(b, shape: bShape)])
            expectClose(y, referenceBinary(a, aShape, b, bShape, outShape, f), shape: outShape)
        }
    }

    @Test(arguments: ["Add", "Sub", "Mul", "Div"])
    func int64Broadcasting(op: String) throws {
        try integerCase(op, Int64.self)
    }

    @Test(arguments: ["Add", "Sub", "Mul", "Div"])
    func int32Broadcasting(op: String) throws {
        try integerCase(op, Int32.self)
    }

    private func integerCase<T: FixedWidthInteger & TensorElement>(_ op: String, _: T.Type) throws {
        var rng = TestRNG(seed: 22)
        let f: (T, T) -> T =
            switch op {
            case "Add": { $0 + $1 }
            case "Sub": { $0 - $1 }
            case "Mul": { $0 * $1 }
            default: { $0 / $1 }  // Swift's / truncates toward zero, as C
            }
        for (aShape, bShape, outShape) in broadcastCases {
            let a = (0..<volume(aShape)).map { _ in T(rng.int(in: -1000...1000)) }
            let b = (0..<volume(bShape)).map { _ in
                let v = rng.int(in: -9...9)
                return T(v == 0 ? 7 : v)
            }
            let y = try runSimple(op, [Tensor(a, shape: aShape), Tensor(b, shape: bShape)])
            #expect(y.dataType == T.dataType)
            #expect(y.shape == outShape)
            #expect(y.scalars(as: T.self) == referenceBinary(a, aShape, b, bShape, outShape, f))
        }
    }

    @Test func integerDivisionTruncatesTowardZero() throws {
        let a = Tensor([7, -7, 7, -7] as [Int64], shape: [4])
        let b = Tensor([2, 2, -2, -2] as [Int64], shape: [4])
        #expect(try runSimple("Div", [a, b]).scalars(as: Int64.self) == [3, -3, -3, 3])
    }

    @Test func integerDivisionByZeroFailsCleanly() {
        let error = engineError {
            _ = try runSimple("Div", [Tensor([1, 2] as [Int32], shape: [2]), Tensor([1, 0] as [Int32], shape: [2])])
        }
        guard case .executionFailed(let node, let message)? = error else {
            Issue.record("expected executionFailed, got \(String(describing: error))")
            return
        }
        #expect(node == "node0")
        #expect(message.contains("division by zero"))
    }

    @Test func nonBroadcastingShapesAreInputErrors() {
        var rng = TestRNG(seed: 3)
        let error = engineError { _ = try runSimple("Add", [rng.tensor([2, 3]), rng.tensor([4])]) }
        guard case .invalidInput(let message)? = error else {
            Issue.record("expected invalidInput, got \(String(describing: error))")
            return
        }
        #expect(message.contains("[2, 3]") && message.contains("[4]"))
    }

    @Test func mixedTypesFail() {
        let error = engineError {
            _ = try runSimple("Mul", [Tensor([1] as [Float], shape: [1]), Tensor([1] as [Int64], shape: [1])])
        }
        guard case .executionFailed? = error else {
            Issue.record("expected executionFailed, got \(String(describing: error))")
            return
        }
    }
}
