import Tensors

/// Converts between JSON arrays and tensors: the JSON side of the V2 and V1 protocols.
enum TensorJSON {
    /// Reads `data` (a flat or nested array of numbers or booleans, or a single scalar) as a
    /// tensor of `dataType` and `shape`, row-major. `what` names the input in errors.
    static func decode(_ data: JSONValue, dataType: DataType, shape: [Int], what: String) throws(APIError) -> Tensor {
        try decode(rows: [data], dataType: dataType, shape: shape, what: what)
    }

    /// Like `decode(_:dataType:shape:what:)` for data given as consecutive pieces (V1 instances:
    /// one piece per row), read one after the other.
    static func decode(rows: [JSONValue], dataType: DataType, shape: [Int], what: String) throws(APIError) -> Tensor {
        var total = 1
        for d in shape {
            guard d >= 0 else { throw .badRequest("\(what): shape \(shape) has a negative dimension") }
            let (product, overflow) = total.multipliedReportingOverflow(by: d)
            guard !overflow, product <= (1 << 40) else { throw .badRequest("\(what): shape \(shape) is too large") }
            total = product
        }
        // Count the values before allocating: a shape of 2^40 with three values is refused here,
        // not after allocating terabytes for it.
        let values = rows.reduce(0) { $0 + leafCount($1, atMost: total) }
        if values > total {
            throw .badRequest("\(what): data has more values than the shape's \(total); make data match the shape")
        }
        guard values == total else {
            throw .badRequest("\(what): shape \(shape) needs \(total) values but data has \(values); make data match the shape")
        }
        let tensor = Tensor(zeros: dataType, shape: shape)
        var filler = Filler(what: what, dataType: dataType, expected: total)
        switch dataType {
        case .float32: try filler.fill(rows, tensor.mutableElements(as: Float.self)) { $0.double.map(Float.init) }
        case .float64: try filler.fill(rows, tensor.mutableElements(as: Double.self)) { $0.double }
        case .int64: try filler.fill(rows, tensor.mutableElements(as: Int64.self)) { $0.int }
        case .int32: try filler.fill(rows, tensor.mutableElements(as: Int32.self)) { $0.int.flatMap { Int32(exactly: $0) } }
        case .int16: try filler.fill(rows, tensor.mutableElements(as: Int16.self)) { $0.int.flatMap { Int16(exactly: $0) } }
        case .int8: try filler.fill(rows, tensor.mutableElements(as: Int8.self)) { $0.int.flatMap { Int8(exactly: $0) } }
        case .uint8: try filler.fill(rows, tensor.mutableElements(as: UInt8.self)) { $0.int.flatMap { UInt8(exactly: $0) } }
        case .uint16: try filler.fill(rows, tensor.mutableElements(as: UInt16.self)) { $0.int.flatMap { UInt16(exactly: $0) } }
        case .uint32: try filler.fill(rows, tensor.mutableElements(as: UInt32.self)) { $0.int.flatMap { UInt32(exactly: $0) } }
        case .uint64: try filler.fill(rows, tensor.mutableElements(as: UInt64.self)) { $0.int.flatMap { UInt64(exactly: $0) } }
        case .bool:
            try filler.fill(rows, tensor.mutableElements(as: Bool.self)) { v in
                if let b = v.bool { return b }
                if let i = v.int, i == 0 || i == 1 { return i == 1 }
                return nil
            }
        case .float16:
            // Numbers, rounded once from the decimal to the nearest float16 (ties to even).
            try filler.fill(rows, tensor.mutableElements(as: UInt16.self)) { $0.double.map { HalfConversion.float16Bits(fromDouble: $0) } }
        case .bfloat16:
            try filler.fill(rows, tensor.mutableElements(as: UInt16.self)) { $0.double.map { HalfConversion.bfloat16Bits(fromDouble: $0) } }
        case .string:
            throw .badRequest("\(what): datatype BYTES is not supported; use a numeric datatype or BOOL")
        case .float8e4m3fn, .float8e4m3fnuz, .float8e5m2, .float8e5m2fnuz, .float8e8m0, .float4e2m1, .int4, .uint4, .int2,
            .uint2:
            // No request names these (`DataType(v2Name:)`), and no served model has them.
            throw .badRequest("\(what): \(dataType.v2Name) is not a KServe V2 datatype; send FP32, INT8 or UINT8")
        }
        guard filler.written == total else {
            throw .badRequest("\(what): shape \(shape) needs \(total) values but data has \(filler.written); make data match the shape")
        }
        return tensor
    }

    /// The number of values in `value` as the filler will find them in well-formed (rectangular)
    /// data: an array of scalars counts its length, a scalar 1; visits only arrays, and stops
    /// once past `limit`. Ragged data may count differently here; the filler then refuses it.
    static func leafCount(_ value: JSONValue, atMost limit: Int) -> Int {
        guard value.isArray else { return 1 }
        let n = value.count
        if n == 0 || !value[0].isArray { return n }
        var total = 0
        for i in 0..<n {
            total += leafCount(value[i], atMost: limit)
            if total > limit { return total }
        }
        return total
    }

    /// Walks nested arrays and writes the leaves in row-major order.
    struct Filler {
        let what: String
        let dataType: DataType
        let expected: Int
        var written = 0

        mutating func fill<T>(
            _ rows: [JSONValue], _ out: UnsafeMutableBufferPointer<T>, _ convert: (JSONValue) -> T?
        ) throws(APIError) {
            for row in rows { try fill(row, out, convert) }
        }

        mutating func fill<T>(
            _ value: JSONValue, _ out: UnsafeMutableBufferPointer<T>, _ convert: (JSONValue) -> T?
        ) throws(APIError) {
            if value.isArray {
                for i in 0..<value.count { try fill(value[i], out, convert) }
                return
            }
            guard written < expected else {
                throw .badRequest("\(what): data has more values than the shape's \(expected); make data match the shape")
            }
            guard let converted = convert(value) else {
                throw .badRequest(
                    "\(what): \(value.typeName) \(Filler.sample(value)) at position \(written) is not a valid \(dataType.v2Name) value")
            }
            out[written] = converted
            written += 1
        }

        static func sample(_ v: JSONValue) -> String {
            if let d = v.double { return "(\(d))" }
            if let s = v.string { return "(\"\(s.prefix(20))\")" }
            return ""
        }
    }

    /// The shape of a nested JSON array (rectangular), `[]` for a scalar. Used by V1, whose
    /// requests carry no shapes.
    static func shape(of value: JSONValue, what: String) throws(APIError) -> [Int] {
        var shape: [Int] = []
        var node = value
        while node.isArray {
            shape.append(node.count)
            if node.count == 0 { break }
            node = node[0]
        }
        try checkRectangular(value, shape[...], what: what)
        return shape
    }

    private static func checkRectangular(_ value: JSONValue, _ shape: ArraySlice<Int>, what: String) throws(APIError) {
        guard let first = shape.first else {
            if value.isArray { throw .badRequest("\(what): nested lists are ragged (not all rows have the same length)") }
            return
        }
        guard value.isArray, value.count == first else {
            throw .badRequest("\(what): nested lists are ragged (not all rows have the same length)")
        }
        for i in 0..<value.count { try checkRectangular(value[i], shape.dropFirst(), what: what) }
    }
}
