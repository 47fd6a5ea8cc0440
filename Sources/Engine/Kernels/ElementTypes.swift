#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Tensors

/// A computation written once for every numeric element type, run for a tensor's type by
/// `DataType.dispatch(_:)`: a kernel puts its inputs in a small struct conforming to this and
/// implements `integer` (wrapping arithmetic) and `float` (Float and Double). The switch in
/// `dispatch` calls each with a concrete Swift type, so the compiler specializes the body per type
/// (no generic calls in the inner loops). Kernels keep their own float32 fast paths ahead of it.
protocol NumericBody {
    associatedtype Result
    func integer<T: FixedWidthInteger & TensorElement>(_: T.Type) throws -> Result
    func float<T: FloatElement>(_: T.Type) throws -> Result
}

/// A computation that needs only an order on the elements (comparisons, ArgMax, TopK, Max/Min):
/// one `run` serves integers and floats.
protocol ComparableBody: NumericBody {
    func run<T: Comparable & TensorElement>(_: T.Type) throws -> Result
}

extension ComparableBody {
    func integer<T: FixedWidthInteger & TensorElement>(_ type: T.Type) throws -> Result { try run(type) }
    func float<T: FloatElement>(_ type: T.Type) throws -> Result { try run(type) }
}

extension DataType {
    /// Integer element types, signed then unsigned, widest first.
    static let integers: [DataType] = [.int64, .int32, .int16, .int8, .uint64, .uint32, .uint16, .uint8]
    /// float32, float64 and every integer type: what `dispatch` runs.
    static let realNumbers: [DataType] = [.float32, .float64] + integers
    /// The signed types (Neg, Abs and Sign of a signed value).
    static let signedNumbers: [DataType] = [.float32, .float64, .int64, .int32, .int16, .int8]

    /// Runs `body` for this element type; nil for bool, float16, bfloat16, string and the narrow types.
    @inline(__always)
    func dispatch<B: NumericBody>(_ body: B) throws -> B.Result? {
        switch self {
        case .float32: return try body.float(Float.self)
        case .float64: return try body.float(Double.self)
        case .int64: return try body.integer(Int64.self)
        case .int32: return try body.integer(Int32.self)
        case .int16: return try body.integer(Int16.self)
        case .int8: return try body.integer(Int8.self)
        case .uint64: return try body.integer(UInt64.self)
        case .uint32: return try body.integer(UInt32.self)
        case .uint16: return try body.integer(UInt16.self)
        case .uint8: return try body.integer(UInt8.self)
        case .bool, .float16, .bfloat16, .string: return nil
        // The narrow types: Cast converts them (`NarrowConversion`); no arithmetic runs on them.
        case .float8e4m3fn, .float8e4m3fnuz, .float8e5m2, .float8e5m2fnuz, .float8e8m0, .float4e2m1, .int4, .uint4, .int2,
            .uint2:
            return nil
        }
    }
}

/// Float and Double with the C math functions the kernels use, so that a float kernel is written
/// once for both (the names differ from C's so that the conformances can call C's).
protocol FloatElement: BinaryFloatingPoint & TensorElement {
    func exponential() -> Self
    func logarithm() -> Self
    func power(_ e: Self) -> Self
    func hyperbolicTangent() -> Self
    func errorFunction() -> Self
    func logOnePlus() -> Self
    func sine() -> Self
    func cosine() -> Self
    func tangent() -> Self
    func arcSine() -> Self
    func arcCosine() -> Self
    func arcTangent() -> Self
    func hyperbolicSine() -> Self
    func hyperbolicCosine() -> Self
    func areaHyperbolicSine() -> Self
    func areaHyperbolicCosine() -> Self
    func areaHyperbolicTangent() -> Self
}

extension Float: FloatElement {
    @inline(__always) func exponential() -> Float { expf(self) }
    @inline(__always) func logarithm() -> Float { logf(self) }
    @inline(__always) func power(_ e: Float) -> Float { powf(self, e) }
    @inline(__always) func hyperbolicTangent() -> Float { tanhf(self) }
    @inline(__always) func errorFunction() -> Float { erff(self) }
    @inline(__always) func logOnePlus() -> Float { log1pf(self) }
    @inline(__always) func sine() -> Float { sinf(self) }
    @inline(__always) func cosine() -> Float { cosf(self) }
    @inline(__always) func tangent() -> Float { tanf(self) }
    @inline(__always) func arcSine() -> Float { asinf(self) }
    @inline(__always) func arcCosine() -> Float { acosf(self) }
    @inline(__always) func arcTangent() -> Float { atanf(self) }
    @inline(__always) func hyperbolicSine() -> Float { sinhf(self) }
    @inline(__always) func hyperbolicCosine() -> Float { coshf(self) }
    @inline(__always) func areaHyperbolicSine() -> Float { asinhf(self) }
    @inline(__always) func areaHyperbolicCosine() -> Float { acoshf(self) }
    @inline(__always) func areaHyperbolicTangent() -> Float { atanhf(self) }
}

extension Double: FloatElement {
    @inline(__always) func exponential() -> Double { exp(self) }
    @inline(__always) func logarithm() -> Double { log(self) }
    @inline(__always) func power(_ e: Double) -> Double { pow(self, e) }
    @inline(__always) func hyperbolicTangent() -> Double { tanh(self) }
    @inline(__always) func errorFunction() -> Double { erf(self) }
    @inline(__always) func logOnePlus() -> Double { log1p(self) }
    @inline(__always) func sine() -> Double { sin(self) }
    @inline(__always) func cosine() -> Double { cos(self) }
    @inline(__always) func tangent() -> Double { tan(self) }
    @inline(__always) func arcSine() -> Double { asin(self) }
    @inline(__always) func arcCosine() -> Double { acos(self) }
    @inline(__always) func arcTangent() -> Double { atan(self) }
    @inline(__always) func hyperbolicSine() -> Double { sinh(self) }
    @inline(__always) func hyperbolicCosine() -> Double { cosh(self) }
    @inline(__always) func areaHyperbolicSine() -> Double { asinh(self) }
    @inline(__always) func areaHyperbolicCosine() -> Double { acosh(self) }
    @inline(__always) func areaHyperbolicTangent() -> Double { atanh(self) }
}

extension KernelError {
    /// "`op` supports FP32, FP64, ..., got `type`": a tensor of a type the kernel does not implement.
    static func unsupportedType(_ op: String, _ type: DataType, supported: [DataType]) -> KernelError {
        .failed("\(op) supports \(supported.map(\.v2Name).joined(separator: ", ")), got \(type.v2Name)")
    }
}
