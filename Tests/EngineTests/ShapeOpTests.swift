import Engine
import Tensors
import Testing

@Suite struct ShapeOpTests {
    func reshape(_ input: [Int], _ shape: [Int64], allowZero: Int? = nil, opset: Int = 14) throws -> Tensor {
        var rng = TestRNG(seed: 41)
        let x = rng.tensor(input)
        let y = try runNode(
            "Reshape", inputs: ["x", "shape"], feeds: [("x", x)],
            initializers: ["shape": Tensor(shape, shape: [shape.count])],
            attributes: allowZero.map { ["allowzero": .int($0)] } ?? [:], opset: opset)[0]
        // Reshape never changes the elements or their order.
        #expect(y.scalars(as: Float.self) == x.scalars(as: Float.self))
        return y
    }

    @Test func reshapeZeroAndMinusOne() throws {
        #expect(try reshape([2, 3, 4], [4, 6]).shape == [4, 6])
        #expect(try reshape([2, 3, 4], [0, -1]).shape == [2, 12])
        #expect(try reshape([2, 3, 4], [-1, 0, 2]).shape == [4, 3, 2])
        #expect(try reshape([2, 3, 4], [0, 0, 4, 1]).shape == [2, 3, 4, 1])
        #expect(try reshape([2, 3, 4], [-1]).shape == [24])
        #expect(try reshape([2, 0, 4], [0, -1], opset: 13).shape == [2, 0])
    }

    @Test func reshapeAllowZero() throws {
        // With allowzero=1 a 0 is a real zero-size dimension.
        #expect(try reshape([0, 3], [3, 0], allowZero: 1).shape == [3, 0])
        // With allowzero=0 the same shape copies dimension 1 (3) and fails to match 0 elements... of [0, 3]:
        // [3, 3] has 9 elements, so it is an error.
        #expect(throws: EngineError.self) { try reshape([0, 3], [3, 0], allowZero: 0) }
        // Before opset 14 the attribute does not exist: 0 copies.
        #expect(try reshape([2, 3], [0, 3], allowZero: 1, opset: 13).shape == [2, 3])
    }

    @Test func reshapeErrors() {
        for bad: [Int64] in [[5, -1], [-1, -1], [7], [2, 3, 4, 0, 0], [1 << 62, 8, -1], [1 << 62, 1 << 62]] {
            #expect(throws: EngineError.self, "shape \(bad)") { try reshape([2, 3, 4], bad) }
        }
        let error = engineError { _ = try reshape([2, 3, 4], [5, 5]) }
        guard case .invalidInput(let message)? = error else {
            Issue.record("expected invalidInput, got \(String(describing: error))")
            return
        }
        #expect(message.contains("[2, 3, 4]") && message.contains("[5, 5]"))
    }

    @Test func reshapeFromAnAttributeBeforeOpset5() throws {
        var rng = TestRNG(seed: 42)
        let y = try runNode(
            "Reshape", inputs: ["x"], feeds: [("x", rng.tensor([2, 6]))], attributes: ["shape": .ints([3, -1])],
            opset: 4)[0]
        #expect(y.shape == [3, 4])
    }

    @Test(arguments: [(0, [1, 120]), (1, [2, 60]), (2, [6, 20]), (3, [24, 5]), (4, [120, 1]), (-1, [24, 5]), (-4, [1, 120])])
    func flatten(axis: Int, expected: [Int]) throws {
        var rng = TestRNG(seed: 43)
        let x = rng.tensor([2, 3, 4, 5])
        let y = try runSimple("Flatten", [x], attributes: ["axis": .int(axis)])
        #expect(y.shape == expected)
        #expect(y.scalars(as: Float.self) == x.scalars(as: Float.self))
    }

    @Test func flattenDefaultAxisAndRangeCheck() throws {
        var rng = TestRNG(seed: 44)
        #expect(try runSimple("Flatten", [rng.tensor([2, 3, 4])]).shape == [2, 12])
        #expect(throws: EngineError.self) { try runSimple("Flatten", [rng.tensor([2, 3])], attributes: ["axis": .int(3)]) }
    }

    @Test func identityAndDropout() throws {
        var rng = TestRNG(seed: 45)
        let x = rng.tensor([2, 5])
        #expect(try runSimple("Identity", [x]).scalars(as: Float.self) == x.scalars(as: Float.self))
        let outs = try runNode(
            "Dropout", inputs: ["x"], feeds: [("x", x)], attributes: ["ratio": .float(0.5)],
            outputs: ["y", "mask"], opset: 10)
        #expect(outs[0].scalars(as: Float.self) == x.scalars(as: Float.self))
        #expect(outs[1].dataType == .bool && outs[1].shape == [2, 5])
        #expect(outs[1].scalars(as: Bool.self).allSatisfy { $0 })
        let plain = try runNode("Dropout", inputs: ["x"], feeds: [("x", x)], outputs: ["y"], opset: 13)
        #expect(plain[0].scalars(as: Float.self) == x.scalars(as: Float.self))
    }

    @Test func constantAttributes() throws {
        let t = Tensor([1, 2, 3, 4, 5, 6] as [Float], shape: [2, 3])
        let cases: [(Attribute, String, DataType, [Int], [Double])] = [
            (.tensor(t), "value", .float32, [2, 3], [1, 2, 3, 4, 5, 6]),
            (.float(2.5), "value_float", .float32, [], [2.5]),
            (.floats([1, -2]), "value_floats", .float32, [2], [1, -2]),
            (.int(-7), "value_int", .int64, [], [-7]),
            (.ints([3, 4, 5]), "value_ints", .int64, [3], [3, 4, 5]),
        ]
        for (attribute, name, type, shape, values) in cases {
            let y = try runNode("Constant", inputs: [], attributes: [name: attribute], opset: 13)[0]
            #expect(y.dataType == type, "\(name)")
            #expect(y.shape == shape, "\(name)")
            #expect(y.doubleValues() == values, "\(name)")
        }
        #expect(throws: EngineError.self) { try runNode("Constant", inputs: [], opset: 13) }
    }
}

@Suite struct ArgMaxTests {
    /// Naive ArgMax over `axis` of a tensor of `shape`.
    func referenceArgMax(_ x: [Float], _ shape: [Int], axis: Int, last: Bool) -> [Int64] {
        var outShape = shape
        outShape[axis] = 1
        return (0..<volume(outShape)).map { flat in
            var index = unravel(flat, outShape)
            var best = 0
            var bestValue = -Float.infinity
            for i in 0..<shape[axis] {
                index[axis] = i
                var p = 0
                for d in 0..<shape.count { p = p * shape[d] + index[d] }
                if x[p] > bestValue || (last && x[p] == bestValue) {
                    bestValue = x[p]
                    best = i
                }
            }
            return Int64(best)
        }
    }

    @Test func everyAxisWithAndWithoutKeepdims() throws {
        var rng = TestRNG(seed: 51)
        let shape = [2, 3, 4]
        // Few distinct values, so ties happen and select_last_index matters.
        let x = (0..<24).map { _ in Float(rng.int(in: 0...3)) }
        for axis in -3..<3 {
            let a = axis < 0 ? axis + 3 : axis
            for last in [false, true] {
                let expected = referenceArgMax(x, shape, axis: a, last: last)
                let kept = try runSimple(
                    "ArgMax", [Tensor(x, shape: shape)],
                    attributes: ["axis": .int(axis), "select_last_index": .int(last ? 1 : 0)], opset: 13)
                var keptShape = shape
                keptShape[a] = 1
                #expect(kept.dataType == .int64)
                #expect(kept.shape == keptShape)
                #expect(kept.scalars(as: Int64.self) == expected, "axis \(axis) last \(last)")
                let dropped = try runSimple(
                    "ArgMax", [Tensor(x, shape: shape)],
                    attributes: ["axis": .int(axis), "keepdims": .int(0), "select_last_index": .int(last ? 1 : 0)],
                    opset: 13)
                var droppedShape = shape
                droppedShape.remove(at: a)
                #expect(dropped.shape == droppedShape)
                #expect(dropped.scalars(as: Int64.self) == expected)
            }
        }
    }

    @Test func digitClass() throws {
        let logits = Tensor([0.1, 0.3, 2.5, -1, 0, 0, 0, 0, 0, 0.2] as [Float], shape: [1, 10])
        let y = try runSimple("ArgMax", [logits], attributes: ["axis": .int(1)])
        #expect(y.shape == [1, 1])
        #expect(y.scalars(as: Int64.self) == [2])
    }
}
