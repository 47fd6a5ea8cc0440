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
        // Count the values before allocating: the shape is the client's word, the data is what
        // was sent, and a declared shape must not reserve more memory than the body could fill.
        var given = 0
        for row in rows { given += leafCount(row) }
        guard given <= total else {
            throw .badRequest("\(what): data has more values than the shape's \(total); make data match the shape")
        }
        guard given == total else {
            throw .badRequest("\(what): shape \(shape) needs \(total) values but data has \(given); make data match the shape")
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
        case .float16, .bfloat16, .string:
            throw .badRequest("\(what): datatype \(dataType.v2Name) is not supported in JSON yet; use FP32, FP64, INTn, UINTn or BOOL")
        }
        guard filler.written == total else {
            throw .badRequest("\(what): shape \(shape) needs \(total) values but data has \(filler.written); make data match the shape")
        }
        return tensor
    }

    /// The number of non-array values in a (nested) array; 1 for a scalar.
    private static func leafCount(_ value: JSONValue) -> Int {
        guard case .array(let items) = value.node else { return 1 }
        var n = 0
        for item in items { n += leafCount(JSONValue(node: item)) }
        return n
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
