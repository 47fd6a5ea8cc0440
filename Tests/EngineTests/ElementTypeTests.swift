import Engine
import Tensors
import Testing

/// The integer and float64 semantics that ONNX's conformance cases do not pin down: two's-complement
/// wrap on overflow, Div truncating toward zero, Mod's sign rules, 64-bit unsigned values above
/// Int64.max, and float64 kept in float64.
@Suite struct ElementTypeTests {
    @Test func addSubMulWrapAround() throws {
        let a = Tensor([127, -128, 100] as [Int8], shape: [3])
        let b = Tensor([1, 1, 3] as [Int8], shape: [3])
        #expect(try runSimple("Add", [a, b]).scalars(as: Int8.self) == [-128, -127, 103])
        #expect(try runSimple("Sub", [a, b]).scalars(as: Int8.self) == [126, 127, 97])
        #expect(try runSimple("Mul", [a, b]).scalars(as: Int8.self) == [127, -128, 44])  // 300 wraps to 44
        let u = Tensor([0, 255] as [UInt8], shape: [2])
        let one = Tensor(scalar: UInt8(1))
        #expect(try runSimple("Sub", [u, one]).scalars(as: UInt8.self) == [255, 254])
        #expect(try runSimple("Add", [u, one]).scalars(as: UInt8.self) == [1, 0])
    }

    @Test func divisionTruncatesTowardZero() throws {
        let a = Tensor([7, -7, 7, -7, -128] as [Int8], shape: [5])
        let b = Tensor([2, 2, -2, -2, -1] as [Int8], shape: [5])
        // -128 / -1 overflows: it wraps to -128 instead of trapping.
        #expect(try runSimple("Div", [a, b]).scalars(as: Int8.self) == [3, -3, -3, 3, -128])
        let u = Tensor([UInt32.max, 7] as [UInt32], shape: [2])
        #expect(try runSimple("Div", [u, Tensor(scalar: UInt32(2))]).scalars(as: UInt32.self) == [2_147_483_647, 3])
        let error = engineError { _ = try runSimple("Div", [a, Tensor(scalar: Int8(0))]) }
        #expect(error.map { "\($0)".contains("division by zero") } == true)
    }

    @Test func modTakesTheDivisorsSignAndFmodTheDividends() throws {
        let a = Tensor([7, -7, 7, -7] as [Int16], shape: [4])
        let b = Tensor([3, 3, -3, -3] as [Int16], shape: [4])
        #expect(try runSimple("Mod", [a, b]).scalars(as: Int16.self) == [1, 2, -2, -1])
        #expect(try runSimple("Mod", [a, b], attributes: ["fmod": .int(1)]).scalars(as: Int16.self) == [1, -1, 1, -1])
        let x = Tensor([5.5, -5.5, 5.5, -5.5] as [Double], shape: [4])
        let y = Tensor([2, 2, -2, -2] as [Double], shape: [4])
        #expect(try runSimple("Mod", [x, y], attributes: ["fmod": .int(1)]).scalars(as: Double.self) == [1.5, -1.5, 1.5, -1.5])
        #expect(try runSimple("Mod", [x, y]).scalars(as: Double.self) == [1.5, 0.5, -0.5, -1.5])
    }

    @Test func unsigned64BitValuesAboveInt64Max() throws {
        let big: UInt64 = 18_446_744_073_709_551_000
        let a = Tensor([big, 1 << 63] as [UInt64], shape: [2])
        let b = Tensor([615, 1] as [UInt64], shape: [2])
        #expect(try runSimple("Add", [a, b]).scalars(as: UInt64.self) == [UInt64.max, (1 << 63) + 1])
        #expect(try runSimple("Add", [a, Tensor(scalar: UInt64(616))]).scalars(as: UInt64.self) == [0, (1 << 63) + 616])
        #expect(try runSimple("Greater", [a, Tensor(scalar: UInt64(Int64.max))]).scalars(as: Bool.self) == [true, true])
        #expect(try runSimple("Max", [a, b]).scalars(as: UInt64.self) == [big, 1 << 63])
        let axes = Tensor([0] as [Int64], shape: [1])
        let largest = try runNode(
            "ReduceMax", inputs: ["x", "axes"], feeds: [("x", a)], initializers: ["axes": axes],
            attributes: ["keepdims": .int(0)], opset: 18)[0]
        #expect(largest.scalars(as: UInt64.self) == [big])
        let arg = try runSimple("ArgMax", [a], attributes: ["keepdims": .int(0)])
        #expect(arg.scalars(as: Int64.self) == [0])
    }

    @Test func signAbsNegOfSignedIntegers() throws {
        let x = Tensor([-5, 0, 9, Int64.min] as [Int64], shape: [4])
        #expect(try runSimple("Sign", [x]).scalars(as: Int64.self) == [-1, 0, 1, -1])
        #expect(try runSimple("Abs", [x]).scalars(as: Int64.self) == [5, 0, 9, Int64.min])  // wraps, as C
        #expect(try runSimple("Neg", [x]).scalars(as: Int64.self) == [5, 0, -9, Int64.min])
        let u = Tensor([0, 200] as [UInt8], shape: [2])
        #expect(try runSimple("Sign", [u]).scalars(as: UInt8.self) == [0, 1])
        #expect(try runSimple("Abs", [u]).scalars(as: UInt8.self) == [0, 200])
    }

    @Test func integerPowWrapsAndNegativeExponents() throws {
        let base = Tensor([2, 3, -1, 2, 1] as [Int32], shape: [5])
        let exponent = Tensor([31, 2, 3, -1, -4] as [Int32], shape: [5])
        #expect(try runSimple("Pow", [base, exponent]).scalars(as: Int32.self) == [Int32.min, 9, -1, 0, 1])
        let u = Tensor([16] as [UInt8], shape: [1])
        #expect(try runSimple("Pow", [u, Tensor(scalar: UInt8(2))]).scalars(as: UInt8.self) == [0])  // 256 wraps
    }

    @Test func clipOnIntegersDefaultsToTheTypesRange() throws {
        let x = Tensor([-128, -3, 0, 5, 127] as [Int8], shape: [5])
        #expect(try runSimple("Clip", [x, Tensor(scalar: Int8(-2)), Tensor(scalar: Int8(4))]).scalars(as: Int8.self) == [-2, -2, 0, 4, 4])
        let onlyMax = try runNode(
            "Clip", inputs: ["x", "", "hi"], feeds: [("x", x)], initializers: ["hi": Tensor(scalar: Int8(0))])[0]
        #expect(onlyMax.scalars(as: Int8.self) == [-128, -3, 0, 0, 0])
    }

    @Test func integerReductionsWrap() throws {
        let x = Tensor([100, 100, -7, 2] as [Int8], shape: [2, 2])
        let axes = Tensor([1] as [Int64], shape: [1])
        func reduce(_ op: String) throws -> [Int8] {
            try runNode(
                op, inputs: ["x", "axes"], feeds: [("x", x)], initializers: ["axes": axes],
                attributes: ["keepdims": .int(0)], opset: 18)[0].scalars(as: Int8.self)
        }
        #expect(try reduce("ReduceSum") == [-56, -5])  // 200 wraps to -56
        #expect(try reduce("ReduceMean") == [-28, -2])  // of the wrapped sums, truncated
        #expect(try reduce("ReduceProd") == [16, -14])  // 10000 wraps to 16
        #expect(try reduce("ReduceL1") == [-56, 9])
    }

    @Test func float64StaysFloat64() throws {
        // 1 + 1e-12 is 1 in float32.
        let a = Tensor([1, 2] as [Double], shape: [2])
        let b = Tensor([1e-12, 1e-12] as [Double], shape: [2])
        #expect(try runSimple("Add", [a, b]).scalars(as: Double.self) == [1 + 1e-12, 2 + 1e-12])
        let e = try runSimple("Exp", [Tensor([1] as [Double], shape: [1])])
        #expect(e.scalars(as: Double.self) == [2.718281828459045])
        let m = try runSimple("MatMul", [Tensor([1, 2, 3, 4] as [Double], shape: [2, 2]), Tensor([0.5, 0, 0, 1] as [Double], shape: [2, 2])])
        #expect(m.dataType == .float64)
        #expect(m.scalars(as: Double.self) == [0.5, 2, 1.5, 4])
        let s = try runSimple("Softmax", [Tensor([0, 0] as [Double], shape: [1, 2])])
        #expect(s.scalars(as: Double.self) == [0.5, 0.5])
    }

    @Test func castBetweenIntegersKeepsTheLowBits() throws {
        let x = Tensor([-1, 256, 300] as [Int64], shape: [3])
        let to8 = try runSimple("Cast", [x], attributes: ["to": .int(Int(DataType.uint8.rawValue))])
        #expect(to8.scalars(as: UInt8.self) == [255, 0, 44])
        let to64 = try runSimple("Cast", [x], attributes: ["to": .int(Int(DataType.uint64.rawValue))])
        #expect(to64.scalars(as: UInt64.self) == [UInt64.max, 256, 300])
        let d = try runSimple("Cast", [Tensor([1.5, -2.5] as [Float], shape: [2])], attributes: ["to": .int(Int(DataType.float64.rawValue))])
        #expect(d.scalars(as: Double.self) == [1.5, -2.5])
    }

    @Test func gemmMaxPoolAndRangeOnFloat64AndIntegers() throws {
        let a = Tensor([1, 2, 3, 4] as [Double], shape: [2, 2])
        let b = Tensor([1, 0, 0, 1] as [Double], shape: [2, 2])
        let c = Tensor([1e-12, 2e-12] as [Double], shape: [2])
        let y = try runSimple("Gemm", [a, b, c], attributes: ["alpha": .float(2), "beta": .float(1), "transA": .int(1)])
        #expect(y.dataType == .float64)
        let expected: [Double] = [2 + 1e-12, 6 + 2e-12, 4 + 1e-12, 8 + 2e-12]
        #expect(y.scalars(as: Double.self) == expected)
        let x = Tensor([-128, -5, 7, 3, 0, -1, 100, 127, -128] as [Int8], shape: [1, 1, 3, 3])
        let pooled = try runSimple("MaxPool", [x], attributes: ["kernel_shape": .ints([2, 2])])
        #expect(pooled.scalars(as: Int8.self) == [3, 7, 127, 127])
        let r = try runSimple("Range", [Tensor(scalar: 0.5), Tensor(scalar: 2.0), Tensor(scalar: 0.5)])
        #expect(r.scalars(as: Double.self) == [0.5, 1, 1.5])
    }
}
