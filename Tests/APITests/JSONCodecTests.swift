@testable import API
import Foundation
import Tensors
import Testing

@Suite struct JSONCodecTests {
    func parse(_ text: String) throws -> JSONDocument { try JSONDocument(parsing: Array(text.utf8)) }

    @Test func decodesFlatAndNestedAlike() throws {
        let flat = try parse("[1, 2.5, -3, 4e2, 5, 6]")
        let nested = try parse("[[1, 2.5, -3], [4e2, 5, 6]]")
        let a = try TensorJSON.decode(flat.rootValue, dataType: .float32, shape: [2, 3], what: "x")
        let b = try TensorJSON.decode(nested.rootValue, dataType: .float32, shape: [2, 3], what: "x")
        #expect(a.scalars(as: Float.self) == [1, 2.5, -3, 400, 5, 6])
        #expect(b.scalars(as: Float.self) == a.scalars(as: Float.self))
        let scalar = try TensorJSON.decode(try parse("[7]").rootValue[0], dataType: .int64, shape: [], what: "x")
        #expect(scalar.scalars(as: Int64.self) == [7])
    }

    @Test func integerRangesAndBooleans() throws {
        #expect(throws: APIError.self) {
            try TensorJSON.decode(try parse("[2147483648]").rootValue, dataType: .int32, shape: [1], what: "x")
        }
        #expect(throws: APIError.self) {
            try TensorJSON.decode(try parse("[-1]").rootValue, dataType: .uint8, shape: [1], what: "x")
        }
        let bools = try TensorJSON.decode(try parse("[true, false, 1, 0]").rootValue, dataType: .bool, shape: [4], what: "x")
        #expect(bools.scalars(as: Bool.self) == [true, false, true, false])
        #expect(throws: APIError.self) {
            try TensorJSON.decode(try parse("[2]").rootValue, dataType: .bool, shape: [1], what: "x")
        }
        let big = try TensorJSON.decode(try parse("[9223372036854775807]").rootValue, dataType: .int64, shape: [1], what: "x")
        #expect(big.scalars(as: Int64.self) == [Int64.max])
    }

    @Test func countMismatchesAndHugeShapes() throws {
        let doc = try parse("[1, 2, 3]")
        for shape in [[2, 2], [2], [1 << 40, 1 << 40], [-1, 3]] {
            #expect(throws: APIError.self) { try TensorJSON.decode(doc.rootValue, dataType: .float32, shape: shape, what: "x") }
        }
    }

    @Test func shapeOfNestedLists() throws {
        #expect(try TensorJSON.shape(of: try parse("[[1,2,3],[4,5,6]]").rootValue, what: "x") == [2, 3])
        #expect(try TensorJSON.shape(of: try parse("[5]").rootValue[0], what: "x") == [])
        #expect(try TensorJSON.shape(of: try parse("[]").rootValue, what: "x") == [0])
        #expect(throws: APIError.self) { try TensorJSON.shape(of: try parse("[[1,2],[3]]").rootValue, what: "x") }
        #expect(throws: APIError.self) { try TensorJSON.shape(of: try parse("[[1,2],3]").rootValue, what: "x") }
    }

    @Test func writerRoundTripsFloatsExactly() throws {
        let values: [Float] = [0, -0.0, 1, 0.1, 1e-30, 3.4028235e38, -123.456, Float.leastNonzeroMagnitude, .pi]
        var w = JSONWriter()
        w.flatArray(Tensor(values, shape: [values.count]))
        let parsed = try JSONSerialization.jsonObject(with: Data(w.bytes)) as? [Double]
        #expect(parsed?.map { Float($0) } == values)
        var special = JSONWriter()
        special.flatArray(Tensor([Float.nan, .infinity, -.infinity], shape: [3]))
        #expect(String(decoding: special.bytes, as: UTF8.self) == "[NaN,Infinity,-Infinity]")
    }

    @Test(arguments: [DataType.float16, .bfloat16])
    func sixteenBitFloatsRoundTripEveryFinitePatternThroughJSON(format: DataType) throws {
        // Every finite 16-bit value is written in a short form that reads back to the same bits.
        let bits = (0...0xFFFF).map { UInt16($0) }.filter { b in
            let v = format == .float16 ? HalfConversion.float(fromFloat16: b) : HalfConversion.float(fromBFloat16: b)
            return v.isFinite
        }
        let tensor = Tensor(uninitialized: format, shape: [bits.count])
        _ = tensor.mutableElements(as: UInt16.self).initialize(from: bits)
        var w = JSONWriter()
        w.flatArray(tensor)
        let back = try TensorJSON.decode(try parse(String(decoding: w.bytes, as: UTF8.self)).rootValue, dataType: format, shape: [bits.count], what: "x")
        let wrong = zip(back.elements(as: UInt16.self), bits).filter { $0 != $1 }
        #expect(wrong.isEmpty, "first: \(wrong.first.map { String($0.1, radix: 16) + " read back as " + String($0.0, radix: 16) } ?? "")")
        // Short: 0.1's nearest value is written as 0.1, not as its exact decimal expansion.
        var one = JSONWriter()
        let tenth = Tensor(uninitialized: format, shape: [1])
        tenth.mutableElements(as: UInt16.self)[0] =
            format == .float16 ? HalfConversion.float16Bits(Float(0.1)) : HalfConversion.bfloat16Bits(Float(0.1))
        one.flatArray(tenth)
        #expect(String(decoding: one.bytes, as: UTF8.self) == "[0.1]")
    }

    @Test func sixteenBitFloatsFromJSONRoundOnceAndOverflowToInfinity() throws {
        let doc = try parse("[0.1, 1e6, -1e6, 65519, 1.00390625]")
        let h = try TensorJSON.decode(doc.rootValue, dataType: .float16, shape: [5], what: "x")
        #expect(Array(h.elements(as: UInt16.self)) == [0x2E66, 0x7C00, 0xFC00, 0x7BFF, 0x3C04])
        let b = try TensorJSON.decode(doc.rootValue, dataType: .bfloat16, shape: [5], what: "x")
        #expect(Array(b.elements(as: UInt16.self)) == [0x3DCD, 0x4974, 0xC974, 0x4780, 0x3F80])
        #expect(throws: APIError.self) { try TensorJSON.decode(try parse("[true]").rootValue, dataType: .float16, shape: [1], what: "x") }
        let binary = try BinaryTensor.decode([0x00, 0x3C, 0x80, 0x3F][...], dataType: .bfloat16, shape: [2], what: "x")
        #expect(try binary.widenedToFloat32().scalars(as: Float.self) == [Float(bitPattern: 0x3C00_0000), 1])
    }

    @Test func writerNestsByShape() {
        var w = JSONWriter()
        let t = Tensor([Int32(1), 2, 3, 4, 5, 6], shape: [2, 3])
        w.nestedArray(t, shape: t.shape[...])
        #expect(String(decoding: w.bytes, as: UTF8.self) == "[[1,2,3],[4,5,6]]")
        var s = JSONWriter()
        s.string("a\"b\\c\n\u{1}")
        #expect(String(decoding: s.bytes, as: UTF8.self) == #""a\"b\\c\n\u0001""#)
    }

    @Test func malformedJSONSaysWhere() {
        do {
            _ = try parse("{\"a\": [1, 2,, 3]}")
            Issue.record("accepted malformed JSON")
        } catch let error as APIError {
            #expect(error.message.contains("line 1"))
            #expect(error.status == 400)
        } catch {
            Issue.record("unexpected error \(error)")
        }
    }
}
