import Engine
import Tensors
import Testing

/// TopK, NonZero, CumSum, Trilu, OneHot and EyeLike beyond the ONNX conformance cases: large k,
/// ties, NaN, integer types, and inputs that must fail cleanly.
@Suite struct SelectionOpTests {
    /// TopK through a session, with k as an initializer.
    func topK(_ x: Tensor, k: Int, axis: Int = -1, largest: Int = 1, opset: Int = 11) throws -> (Tensor, Tensor) {
        let out = try runNode(
            "TopK", inputs: ["x", "k"], feeds: [("x", x)], initializers: ["k": Tensor([Int64(k)], shape: [1])],
            attributes: ["axis": .int(axis), "largest": .int(largest)], outputs: ["v", "i"], opset: opset)
        return (out[0], out[1])
    }

    /// The direct definition: a stable sort of (value, index) pairs, first k.
    func referenceTopK(_ row: [Float], _ k: Int, largest: Bool) -> [Int] {
        let order = row.indices.sorted { a, b in
            if row[a] == row[b] { return a < b }
            return largest ? row[a] > row[b] : row[a] < row[b]
        }
        return Array(order.prefix(k))
    }

    @Test(arguments: [(1, true), (7, true), (500, false), (999, true), (1000, false)])
    func topKLargeRowsMatchASort(k: Int, largest: Bool) throws {
        var rng = TestRNG(seed: 90)
        // Values from a small set, so ties are frequent.
        let rows = 3
        let n = 1000
        let values = (0..<(rows * n)).map { _ in Float(rng.int(in: -20...20)) / 4 }
        let (v, i) = try topK(Tensor(values, shape: [rows, n]), k: k, largest: largest ? 1 : 0)
        #expect(v.shape == [rows, k] && i.shape == [rows, k])
        let vs = v.scalars(as: Float.self)
        let ids = i.scalars(as: Int64.self)
        for r in 0..<rows {
            let row = Array(values[(r * n)..<((r + 1) * n)])
            let expected = referenceTopK(row, k, largest: largest)
            #expect(ids[(r * k)..<((r + 1) * k)].map { Int($0) } == expected, "row \(r)")
            #expect(Array(vs[(r * k)..<((r + 1) * k)]) == expected.map { row[$0] })
        }
    }

    @Test func topKAlongAnInnerAxisAndIntegers() throws {
        // [2, 3, 2] along axis 1, int64 and int32.
        let data: [Int64] = [5, 1, 9, 9, 5, 3, -1, 0, 7, 7, 7, 2]
        for x in [Tensor(data, shape: [2, 3, 2]), Tensor(data.map { Int32($0) }, shape: [2, 3, 2])] {
            let (v, i) = try topK(x, k: 2, axis: 1)
            #expect(v.doubleValues() == [9, 9, 5, 3, 7, 7, 7, 2])
            #expect(i.scalars(as: Int64.self) == [1, 1, 0, 2, 1, 1, 2, 2])
        }
    }

    @Test func topKNaNIsLargest() throws {
        let x = Tensor([1, .nan, 3, -2] as [Float], shape: [4])
        let (v, i) = try topK(x, k: 2)
        #expect(i.scalars(as: Int64.self) == [1, 2])
        #expect(v.scalars(as: Float.self)[0].isNaN)
        let (_, small) = try topK(x, k: 4, largest: 0)
        #expect(small.scalars(as: Int64.self) == [3, 0, 2, 1])
    }

    @Test func topKOpset1And10() throws {
        let x = Tensor([3, 1, 2] as [Float], shape: [3])
        let v1 = try runNode(
            "TopK", inputs: ["x"], feeds: [("x", x)], attributes: ["k": .int(2)], outputs: ["v", "i"], opset: 1)
        #expect(v1[0].scalars(as: Float.self) == [3, 2] && v1[1].scalars(as: Int64.self) == [0, 2])
        // k fed at run time (not a constant): the output shape is known only from its value.
        let v10 = try runNode(
            "TopK", inputs: ["x", "k"], feeds: [("x", x), ("k", Tensor([Int64(1)], shape: [1]))], outputs: ["v", "i"],
            opset: 10)
        #expect(v10[0].scalars(as: Float.self) == [3])
    }

    @Test func topKRefusesABadK() {
        let x = Tensor([3, 1, 2] as [Float], shape: [3])
        for k in [4, -1, Int(Int64.max)] {
            let error = engineError { _ = try topK(x, k: k) }
            guard case .invalidInput(let message)? = error else {
                Issue.record("k = \(k): expected invalidInput, got \(String(describing: error))")
                continue
            }
            #expect(message.contains("TopK"))
        }
    }

    @Test func nonZeroOfEveryShape() throws {
        let x = Tensor([0, 1.5, -0.0, .nan, 0, 2] as [Float], shape: [2, 3])
        let y = try runSimple("NonZero", [x], opset: 13)
        #expect(y.shape == [2, 3])
        #expect(y.scalars(as: Int64.self) == [0, 1, 1, 1, 0, 2])
        let none = try runSimple("NonZero", [Tensor([Int32](repeating: 0, count: 4), shape: [4])], opset: 13)
        #expect(none.shape == [1, 0])
        let scalar = try runSimple("NonZero", [Tensor([true], shape: [])], opset: 13)
        #expect(scalar.shape == [0, 1])
    }

    @Test func cumSumMatchesADirectSum() throws {
        var rng = TestRNG(seed: 91)
        let shape = [3, 5, 4]
        let x = rng.tensor(shape)
        let xs = x.scalars(as: Float.self)
        for axis in [0, 1, -1] {
            for (exclusive, reverse) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
                let y = try runNode(
                    "CumSum", inputs: ["x", "axis"], feeds: [("x", x)],
                    initializers: ["axis": Tensor(scalar: Int32(axis))],
                    attributes: ["exclusive": .int(exclusive), "reverse": .int(reverse)], opset: 14)[0]
                let a = (axis + 3) % 3
                let got = y.scalars(as: Float.self)
                for flat in 0..<xs.count {
                    let idx = unravel(flat, shape)
                    var sum: Float = 0
                    for j in 0..<shape[a] {
                        let before = reverse == 1 ? j > idx[a] : j < idx[a]
                        if before || (exclusive == 0 && j == idx[a]) {
                            var other = idx
                            other[a] = j
                            sum += xs[(other[0] * shape[1] + other[1]) * shape[2] + other[2]]
                        }
                    }
                    #expect(abs(got[flat] - sum) <= 1e-5, "axis \(axis) excl \(exclusive) rev \(reverse) at \(idx)")
                }
            }
        }
    }

    @Test func cumSumIntegersWrapInsteadOfTrapping() throws {
        let x = Tensor([Int64.max, 1, 1], shape: [3])
        let y = try runNode(
            "CumSum", inputs: ["x", "axis"], feeds: [("x", x)], initializers: ["axis": Tensor(scalar: Int64(0))],
            opset: 14)[0]
        #expect(y.scalars(as: Int64.self) == [Int64.max, Int64.min, Int64.min + 1])
    }

    @Test func triluExtremeK() throws {
        let x = Tensor((1...6).map { Int64($0) }, shape: [2, 3])
        func trilu(_ k: Int64, upper: Int) throws -> [Int64] {
            try runNode(
                "Trilu", inputs: ["x", "k"], feeds: [("x", x)], initializers: ["k": Tensor(scalar: k)],
                attributes: ["upper": .int(upper)], opset: 14)[0].scalars(as: Int64.self)
        }
        #expect(try trilu(Int64.max, upper: 1) == [0, 0, 0, 0, 0, 0])
        #expect(try trilu(Int64.min, upper: 1) == [1, 2, 3, 4, 5, 6])
        #expect(try trilu(Int64.max, upper: 0) == [1, 2, 3, 4, 5, 6])
        #expect(try trilu(Int64.min, upper: 0) == [0, 0, 0, 0, 0, 0])
        #expect(try trilu(1, upper: 0) == [1, 2, 0, 4, 5, 6])
    }

    @Test func oneHotRefusesAHugeDepth() {
        for depth: Float in [1e12, -3, .nan, .infinity] {
            let error = engineError {
                _ = try runNode(
                    "OneHot", inputs: ["i", "d", "v"], feeds: [("i", Tensor([Int64(1)], shape: [1]))],
                    initializers: ["d": Tensor([depth], shape: [1]), "v": Tensor([0, 1] as [Float], shape: [2])],
                    opset: 11)
            }
            if case .invalidInput? = error {} else { Issue.record("depth \(depth): got \(String(describing: error))") }
        }
    }

    @Test func oneHotIntegerValuesAndFloatIndices() throws {
        let y = try runNode(
            "OneHot", inputs: ["i", "d", "v"], feeds: [("i", Tensor([0, 2.7, -1, 5] as [Float], shape: [4]))],
            initializers: ["d": Tensor(scalar: Int64(3)), "v": Tensor([Int32(-1), 7], shape: [2])], opset: 11)[0]
        #expect(y.shape == [4, 3])
        #expect(y.scalars(as: Int32.self) == [7, -1, -1, -1, -1, 7, -1, -1, 7, -1, -1, -1])
    }

    @Test func eyeLikeOffDiagonalAndType() throws {
        let y = try runSimple(
            "EyeLike", [Tensor([Float](repeating: 5, count: 6), shape: [2, 3])],
            attributes: ["k": .int(-1), "dtype": .int(Int(DataType.int32.rawValue))], opset: 9)
        #expect(y.dataType == .int32 && y.scalars(as: Int32.self) == [0, 0, 0, 1, 0, 0])
        let far = try runSimple(
            "EyeLike", [Tensor([Float](repeating: 5, count: 4), shape: [2, 2])], attributes: ["k": .int(Int(Int64.max))],
            opset: 9)
        #expect(far.scalars(as: Float.self) == [0, 0, 0, 0])
    }
}
