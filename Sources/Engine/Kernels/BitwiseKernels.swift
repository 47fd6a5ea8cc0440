import Tensors

enum BitAnd<Element: FixedWidthInteger>: BinaryOperation {
    static func apply(_ a: Element, _ b: Element) -> Element { a & b }
}
enum BitOr<Element: FixedWidthInteger>: BinaryOperation {
    static func apply(_ a: Element, _ b: Element) -> Element { a | b }
}
enum BitXor<Element: FixedWidthInteger>: BinaryOperation {
    static func apply(_ a: Element, _ b: Element) -> Element { a ^ b }
}
/// Left shift; a shift outside 0..<bit width gives 0. Signed values shift their two's-complement bits.
enum ShiftLeft<Element: FixedWidthInteger>: BinaryOperation {
    static func apply(_ a: Element, _ b: Element) -> Element {
        b < 0 || b >= Element.bitWidth ? 0 : a << b
    }
}
/// Right shift, arithmetic for signed types; a shift outside 0..<bit width gives the sign fill
/// (-1 for a negative signed value, else 0).
enum ShiftRight<Element: FixedWidthInteger>: BinaryOperation {
    static func apply(_ a: Element, _ b: Element) -> Element {
        b < 0 || b >= Element.bitWidth ? (a < 0 ? ~0 : 0) : a >> b
    }
}

/// BitwiseAnd, BitwiseOr, BitwiseXor (with numpy broadcasting), BitwiseNot and BitShift (`direction`
/// LEFT or RIGHT) on every integer type the engine holds.
struct BitwiseKernel: BufferedKernel {
    enum Op: String, Sendable {
        case and = "BitwiseAnd", or = "BitwiseOr", xor = "BitwiseXor", not = "BitwiseNot", shift = "BitShift"
    }
    static let types: [DataType] = [.int64, .int32, .int16, .int8, .uint64, .uint32, .uint16, .uint8]
    let op: Op
    let left: Bool

    init(context: NodeContext, op: Op) throws {
        try context.requireInputs(op == .not ? 1 : 2)
        self.op = op
        let direction = op == .shift ? try context.string("direction") : nil
        if op == .shift, direction != "LEFT" && direction != "RIGHT" {
            throw context.invalid("needs the attribute direction, LEFT or RIGHT")
        }
        left = direction == "LEFT"
    }

    func run(_ inputs: [Tensor?], into output: Tensor?) throws -> [Tensor] {
        let a = try Check.input(inputs, 0, "X")
        try Check.dataType(a, Self.types, "X")
        var b = a
        if op != .not {
            b = try Check.input(inputs, 1, "Y")
            guard b.dataType == a.dataType else {
                throw KernelError.failed("\(op.rawValue) needs inputs of one type, got \(a.dataType.v2Name) and \(b.dataType.v2Name)")
            }
        }
        switch a.dataType {
        case .int64: return [try run(Int64.self, a, b, output)]
        case .int32: return [try run(Int32.self, a, b, output)]
        case .int16: return [try run(Int16.self, a, b, output)]
        case .int8: return [try run(Int8.self, a, b, output)]
        case .uint64: return [try run(UInt64.self, a, b, output)]
        case .uint32: return [try run(UInt32.self, a, b, output)]
        case .uint16: return [try run(UInt16.self, a, b, output)]
        default: return [try run(UInt8.self, a, b, output)]
        }
    }

    private func run<T: FixedWidthInteger & TensorElement>(_: T.Type, _ a: Tensor, _ b: Tensor, _ output: Tensor?)
        throws -> Tensor
    {
        switch op {
        case .and: return try BinaryLoop<BitAnd<T>>.run(a, b, into: output)
        case .or: return try BinaryLoop<BitOr<T>>.run(a, b, into: output)
        case .xor: return try BinaryLoop<BitXor<T>>.run(a, b, into: output)
        case .shift where left: return try BinaryLoop<ShiftLeft<T>>.run(a, b, into: output)
        case .shift: return try BinaryLoop<ShiftRight<T>>.run(a, b, into: output)
        case .not:
            let out = try Output.tensor(output, a.dataType, a.shape)
            let s = a.elements(as: T.self)
            let d = out.mutableElements(as: T.self)
            for i in 0..<a.count { d[i] = ~s[i] }
            return out
        }
    }
}

/// Det: the determinant of each square matrix in the last two axes of a float32 `(..., M, M)`
/// tensor, by LU decomposition with partial pivoting in double precision.
struct DeterminantKernel: BufferedKernel {
    init(context: NodeContext) throws { try context.requireInputs(1) }

    func run(_ inputs: [Tensor?], into output: Tensor?) throws -> [Tensor] {
        let x = try Check.input(inputs, 0, "X")
        try Check.dataType(x, [.float32], "X")
        guard x.rank >= 2, x.shape[x.rank - 1] == x.shape[x.rank - 2] else {
            throw KernelError.shape("Det needs square matrices in the last two axes, got \(x.shape)")
        }
        let m = x.shape[x.rank - 1]
        let out = try Output.tensor(output, .float32, Array(x.shape.dropLast(2)))
        let d = out.mutableElements(as: Float.self)
        guard out.count > 0 else { return [out] }
        guard m > 0 else {
            for i in 0..<out.count { d[i] = 1 }
            return [out]
        }
        let s = x.elements(as: Float.self).baseAddress!
        withUnsafeTemporaryAllocation(of: Double.self, capacity: m * m) { a in
            for k in 0..<out.count {
                let src = s + k * m * m
                for i in 0..<(m * m) { a[i] = Double(src[i]) }
                var det: Double = 1
                for c in 0..<m {
                    var pivot = c
                    for r in (c + 1)..<m where abs(a[r * m + c]) > abs(a[pivot * m + c]) { pivot = r }
                    if a[pivot * m + c] == 0 {
                        det = 0
                        break
                    }
                    if pivot != c {
                        for j in 0..<m { a.swapAt(c * m + j, pivot * m + j) }
                        det = -det
                    }
                    let p = a[c * m + c]
                    det *= p
                    for r in (c + 1)..<m {
                        let f = a[r * m + c] / p
                        if f == 0 { continue }
                        for j in (c + 1)..<m { a[r * m + j] -= f * a[c * m + j] }
                    }
                }
                d[k] = Float(det)
            }
        }
        return [out]
    }
}
