#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Tensors

enum OpEqual<Element: Equatable>: BinaryOperation { static func apply(_ a: Element, _ b: Element) -> Bool { a == b } }
enum OpLess<Element: Comparable>: BinaryOperation { static func apply(_ a: Element, _ b: Element) -> Bool { a < b } }
enum OpLessEqual<Element: Comparable>: BinaryOperation {
    static func apply(_ a: Element, _ b: Element) -> Bool { a <= b }
}
enum OpGreater<Element: Comparable>: BinaryOperation { static func apply(_ a: Element, _ b: Element) -> Bool { a > b } }
enum OpGreaterEqual<Element: Comparable>: BinaryOperation {
    static func apply(_ a: Element, _ b: Element) -> Bool { a >= b }
}
enum OpAnd: BinaryOperation { static func apply(_ a: Bool, _ b: Bool) -> Bool { a && b } }
enum OpOr: BinaryOperation { static func apply(_ a: Bool, _ b: Bool) -> Bool { a || b } }
enum OpXor: BinaryOperation { static func apply(_ a: Bool, _ b: Bool) -> Bool { a != b } }

/// Comparisons (Equal, Less, LessOrEqual, Greater, GreaterOrEqual) with numpy broadcasting, giving
/// BOOL; float32, float64, every integer type (and bool for Equal). And, Or, Xor on BOOL.
struct CompareKernel: BufferedKernel {
    enum Op: String, Sendable {
        case equal = "Equal", less = "Less", lessEqual = "LessOrEqual", greater = "Greater"
        case greaterEqual = "GreaterOrEqual", and = "And", or = "Or", xor = "Xor"
    }
    let op: Op

    init(context: NodeContext, op: Op) throws {
        try context.requireInputs(2)
        if context.opset < 7, context.has("axis") { throw context.unsupported() }
        self.op = op
    }

    func run(_ inputs: [Tensor?], into output: Tensor?) throws -> [Tensor] {
        let a = try Check.input(inputs, 0, "A")
        let b = try Check.input(inputs, 1, "B")
        guard a.dataType == b.dataType else {
            throw KernelError.failed(
                "\(op.rawValue) needs inputs of one type, got \(a.dataType.v2Name) and \(b.dataType.v2Name)")
        }
        switch op {
        case .and, .or, .xor:
            try Check.dataType(a, [.bool], "A")
            switch op {
            case .and: return [try BinaryLoop<OpAnd>.run(a, b, into: output)]
            case .or: return [try BinaryLoop<OpOr>.run(a, b, into: output)]
            default: return [try BinaryLoop<OpXor>.run(a, b, into: output)]
            }
        default: break
        }
        if a.dataType == .bool && op == .equal { return [try BinaryLoop<OpEqual<Bool>>.run(a, b, into: output)] }
        guard let out = try a.dataType.dispatch(Comparison(op: op, a: a, b: b, output: output)) else {
            throw KernelError.unsupportedType(op.rawValue, a.dataType, supported: DataType.realNumbers)
        }
        return [out]
    }

    private struct Comparison: ComparableBody {
        typealias Result = Tensor
        let op: Op
        let a: Tensor
        let b: Tensor
        let output: Tensor?

        func run<T: Comparable & TensorElement>(_: T.Type) throws -> Tensor {
            switch op {
            case .equal: return try BinaryLoop<OpEqual<T>>.run(a, b, into: output)
            case .less: return try BinaryLoop<OpLess<T>>.run(a, b, into: output)
            case .lessEqual: return try BinaryLoop<OpLessEqual<T>>.run(a, b, into: output)
            case .greater: return try BinaryLoop<OpGreater<T>>.run(a, b, into: output)
            default: return try BinaryLoop<OpGreaterEqual<T>>.run(a, b, into: output)
            }
        }
    }
}

enum FloatPow<Element: FloatElement>: BinaryOperation { static func apply(_ a: Element, _ b: Element) -> Element { a.power(b) } }
enum FloatFmod<Element: FloatElement>: BinaryOperation {
    static func apply(_ a: Element, _ b: Element) -> Element { a.truncatingRemainder(dividingBy: b) }
}
/// Float Mod with fmod = 0: the remainder takes the divisor's sign (Python's %).
enum FloatMod<Element: FloatElement>: BinaryOperation {
    static func apply(_ a: Element, _ b: Element) -> Element {
        let r = a.truncatingRemainder(dividingBy: b)
        return r != 0 && ((r < 0) != (b < 0)) ? r + b : r
    }
}
/// Integer Mod with the sign of the divisor (Python's %), or of the dividend with `fmod` = 1.
enum IntMod<Element: FixedWidthInteger>: BinaryOperation {
    static func apply(_ a: Element, _ b: Element) -> Element {
        let r = a.remainderReportingOverflow(dividingBy: b).partialValue
        return r != 0 && ((r < 0) != (b < 0)) ? r &+ b : r
    }
}
enum IntFmod<Element: FixedWidthInteger>: BinaryOperation {
    static func apply(_ a: Element, _ b: Element) -> Element { a.remainderReportingOverflow(dividingBy: b).partialValue }
}
/// Integer power by squaring, wrapping on overflow; a negative exponent gives the truncated
/// quotient 1 / a^-b (1 for 1, +-1 for -1, 0 otherwise).
enum IntPow<Element: FixedWidthInteger>: BinaryOperation {
    static func apply(_ a: Element, _ b: Element) -> Element {
        if b < 0 { return a == 1 ? 1 : (a == 0 &- 1 ? (b & 1 == 0 ? 1 : a) : 0) }
        var result: Element = 1
        var base = a
        var e = b
        while e > 0 {
            if e & 1 == 1 { result = result &* base }
            base = base &* base
            e >>= 1
        }
        return result
    }
}
enum OpMax<Element: Comparable>: BinaryOperation {
    /// NaN propagates (as numpy.maximum).
    static func apply(_ a: Element, _ b: Element) -> Element { a != a ? a : (a < b ? b : a) }
}
enum OpMin<Element: Comparable>: BinaryOperation {
    static func apply(_ a: Element, _ b: Element) -> Element { a != a ? a : (b < a ? b : a) }
}

/// Pow (the exponent may have another numeric type: it is converted to the base's type; integer
/// powers wrap) and Mod (`fmod` attribute; integer Mod follows the divisor's sign, fmod the
/// dividend's), with numpy broadcasting, on float32, float64 and every integer type.
struct PowModKernel: BufferedKernel {
    let isPow: Bool
    let fmod: Bool

    init(context: NodeContext, isPow: Bool) throws {
        try context.requireInputs(2)
        self.isPow = isPow
        fmod = try context.int("fmod", default: 0) != 0
    }

    func run(_ inputs: [Tensor?], into output: Tensor?) throws -> [Tensor] {
        let a = try Check.input(inputs, 0, "A")
        var b = try Check.input(inputs, 1, "B")
        if isPow && b.dataType != a.dataType { b = try CastKernel.convert(b, to: a.dataType) }
        guard a.dataType == b.dataType else {
            throw KernelError.failed("Mod needs inputs of one type, got \(a.dataType.v2Name) and \(b.dataType.v2Name)")
        }
        guard let out = try a.dataType.dispatch(PowMod(isPow: isPow, fmod: fmod, a: a, b: b, output: output)) else {
            throw KernelError.unsupportedType(isPow ? "Pow" : "Mod", a.dataType, supported: DataType.realNumbers)
        }
        return [out]
    }

    private struct PowMod: NumericBody {
        let isPow: Bool
        let fmod: Bool
        let a: Tensor
        let b: Tensor
        let output: Tensor?

        func integer<T: FixedWidthInteger & TensorElement>(_: T.Type) throws -> Tensor {
            if isPow { return try BinaryLoop<IntPow<T>>.run(a, b, into: output) }
            if b.elements(as: T.self).contains(0) { throw KernelError.failed("integer modulo by zero in Mod") }
            return fmod ? try BinaryLoop<IntFmod<T>>.run(a, b, into: output) : try BinaryLoop<IntMod<T>>.run(a, b, into: output)
        }

        func float<T: FloatElement>(_: T.Type) throws -> Tensor {
            if isPow { return try BinaryLoop<FloatPow<T>>.run(a, b, into: output) }
            return fmod ? try BinaryLoop<FloatFmod<T>>.run(a, b, into: output) : try BinaryLoop<FloatMod<T>>.run(a, b, into: output)
        }
    }
}

/// Sum, Mean, Max, Min over one or more inputs with numpy broadcasting (float32 and float64; Sum,
/// Max and Min also every integer type, Sum wrapping). Folds the inputs left to right into the output: the first two straight into it
/// (input 0 broadcast-copied first when those two alone do not have the output's shape), each later
/// one in place.
struct VariadicKernel: BufferedKernel {
    enum Op: String, Sendable { case sum = "Sum", mean = "Mean", max = "Max", min = "Min" }
    let op: Op

    init(context: NodeContext, op: Op) throws {
        guard context.inputCount >= 1, (0..<context.inputCount).allSatisfy(context.hasInput) else {
            throw context.invalid("needs one or more inputs")
        }
        self.op = op
    }

    func run(_ inputs: [Tensor?], into output: Tensor?) throws -> [Tensor] {
        let first = try Check.input(inputs, 0, "data_0")
        var xs = [first]
        var shape = first.shape
        for i in 1..<max(inputs.count, 1) {
            let x = try Check.input(inputs, i, "data_\(i)")
            guard x.dataType == first.dataType else {
                throw KernelError.failed("\(op.rawValue) needs inputs of one type, got \(first.dataType.v2Name) and \(x.dataType.v2Name)")
            }
            guard let s = Broadcast.shape([shape, x.shape]) else {
                throw KernelError.shape("shapes \(shape) and \(x.shape) do not broadcast")
            }
            shape = s
            xs.append(x)
        }
        let supported = op == .mean ? [.float32, .float64] : DataType.realNumbers
        if xs.count > 1 || op == .mean, !supported.contains(first.dataType) {
            throw KernelError.unsupportedType(op.rawValue, first.dataType, supported: supported)
        }
        let out = try Output.tensor(output, first.dataType, shape)
        var rest = xs.dropFirst()
        if xs.count >= 2 && Broadcast.shape([xs[0].shape, xs[1].shape]) == shape {
            try combine(xs[0], xs[1], into: out)
            rest = rest.dropFirst()
        } else if out.count > 0 {
            StridedCopy.copy(
                first.rawBytes.baseAddress!, strides: Broadcast.strides(of: first.shape, broadcastTo: shape), shape: shape,
                to: out.mutableBytes.baseAddress!, elementSize: first.dataType.byteSize)
        }
        // In place: each element of `out` is read once, then written.
        for x in rest { try combine(out, x, into: out) }
        if op == .mean, out.dataType == .float32 {
            let d = out.mutableElements(as: Float.self)
            let r = Float(inputs.count)
            for i in 0..<d.count { d[i] /= r }
        } else if op == .mean {
            let d = out.mutableElements(as: Double.self)
            let r = Double(inputs.count)
            for i in 0..<d.count { d[i] /= r }
        }
        return [out]
    }

    /// out = a op b.
    private func combine(_ a: Tensor, _ b: Tensor, into out: Tensor) throws {
        if a.dataType == .float32 {
            switch op {
            case .sum, .mean: _ = try BinaryLoop<FloatAdd>.run(a, b, into: out)
            case .max: _ = try BinaryLoop<OpMax<Float>>.run(a, b, into: out)
            case .min: _ = try BinaryLoop<OpMin<Float>>.run(a, b, into: out)
            }
        } else {
            _ = try a.dataType.dispatch(Combine(op: op, a: a, b: b, out: out))
        }
    }

    private struct Combine: NumericBody {
        let op: Op
        let a: Tensor
        let b: Tensor
        let out: Tensor

        func integer<T: FixedWidthInteger & TensorElement>(_: T.Type) throws {
            switch op {
            case .sum, .mean: _ = try BinaryLoop<IntAdd<T>>.run(a, b, into: out)
            case .max: _ = try BinaryLoop<OpMax<T>>.run(a, b, into: out)
            case .min: _ = try BinaryLoop<OpMin<T>>.run(a, b, into: out)
            }
        }

        func float<T: FloatElement>(_: T.Type) throws {
            switch op {
            case .sum, .mean: _ = try BinaryLoop<RealAdd<T>>.run(a, b, into: out)
            case .max: _ = try BinaryLoop<OpMax<T>>.run(a, b, into: out)
            case .min: _ = try BinaryLoop<OpMin<T>>.run(a, b, into: out)
            }
        }
    }
}
