#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CKernels
import Tensors

/// Elementwise float32 functions of one input: activations (Relu, Sigmoid, Tanh, LeakyRelu,
/// HardSigmoid, HardSwish, Elu, Selu, Celu, Softplus, Softsign, Mish, ThresholdedRelu, Shrink, Gelu,
/// Swish) and math (Erf, Exp, Log, Sqrt, Reciprocal, Neg, Abs, Sign, Floor, Ceil, Round, the
/// trigonometric and hyperbolic functions and their inverses), on float32 (the fast loops below) and
/// float64 (`real`, one generic loop). Neg, Abs, Sign and Relu also take the integer types (Neg and
/// Relu the signed ones; Neg and Abs wrap at the minimum).
/// Parameters come from the node's attributes (`alpha`, `beta`, `gamma`, Gelu's `approximate`).
struct UnaryKernel: BufferedKernel {
    enum Op: String, Sendable {
        case relu = "Relu", sigmoid = "Sigmoid", tanh = "Tanh", leakyRelu = "LeakyRelu"
        case hardSigmoid = "HardSigmoid", hardSwish = "HardSwish", elu = "Elu", selu = "Selu"
        case softplus = "Softplus", gelu = "Gelu", erf = "Erf", exp = "Exp", log = "Log", sqrt = "Sqrt"
        case reciprocal = "Reciprocal", neg = "Neg", abs = "Abs", floor = "Floor", ceil = "Ceil"
        case sin = "Sin", cos = "Cos", tan = "Tan", sign = "Sign", round = "Round", softsign = "Softsign"
        case thresholdedRelu = "ThresholdedRelu", celu = "Celu", mish = "Mish", shrink = "Shrink"
        case swish = "Swish", asin = "Asin", acos = "Acos", atan = "Atan", sinh = "Sinh", cosh = "Cosh"
        case asinh = "Asinh", acosh = "Acosh", atanh = "Atanh"
    }
    let op: Op
    let alpha: Float
    let beta: Float
    let gamma: Float
    /// Gelu's tanh approximation.
    let tanhApproximation: Bool

    init(context: NodeContext, op: Op) throws {
        try context.requireInputs(1)
        self.op = op
        switch op {
        case .leakyRelu: alpha = try context.float("alpha", default: 0.01)
        case .hardSigmoid: alpha = try context.float("alpha", default: 0.2)
        case .elu: alpha = try context.float("alpha", default: 1)
        case .selu: alpha = try context.float("alpha", default: 1.67326319217681884765625)
        case .thresholdedRelu, .celu, .swish: alpha = try context.float("alpha", default: 1)
        case .shrink: alpha = try context.float("lambd", default: 0.5)
        default: alpha = 0
        }
        switch op {
        case .hardSigmoid: beta = try context.float("beta", default: 0.5)
        case .shrink: beta = try context.float("bias", default: 0)
        default: beta = 0
        }
        gamma = op == .selu ? try context.float("gamma", default: 1.05070102214813232421875) : 0
        switch try context.string("approximate", default: "none") {
        case "none": tanhApproximation = false
        case "tanh": tanhApproximation = true
        default: throw context.invalid("has an unknown 'approximate' value (expected none or tanh)")
        }
    }

    func run(_ inputs: [Tensor?], into output: Tensor?) throws -> [Tensor] {
        let x = try Check.input(inputs, 0, "X")
        if x.dataType != .float32 {
            guard let out = try x.dataType.dispatch(Typed(kernel: self, x: x, output: output)) else {
                throw KernelError.unsupportedType(op.rawValue, x.dataType, supported: Self.types(op))
            }
            return [out]
        }
        let out = try Output.tensor(output, .float32, x.shape)
        let total = x.count
        if total == 0 { return [out] }
        let source = x.elements(as: Float.self).baseAddress!
        let destination = out.mutableElements(as: Float.self).baseAddress!
        let alpha = self.alpha
        let beta = self.beta
        // Blocks of 8192 values, split over the thread budget (the worker pool) when large enough.
        let block = 8192
        Parallel.forEach((total + block - 1) / block, costPerItem: block * 4, minimumWork: 1 << 20) { range in
            let n = min(total, range.upperBound * block) - range.lowerBound * block
            let s = source + range.lowerBound * block
            let d = destination + range.lowerBound * block
            switch op {
            case .relu: for i in 0..<n { d[i] = s[i] > 0 ? s[i] : 0 }
            case .sigmoid: Self.sigmoid(s, d, n)
            case .tanh: for i in 0..<n { d[i] = tanhf(s[i]) }
            case .leakyRelu: for i in 0..<n { d[i] = s[i] < 0 ? alpha * s[i] : s[i] }
            case .hardSigmoid: for i in 0..<n { d[i] = Swift.max(0, Swift.min(1, alpha * s[i] + beta)) }
            case .hardSwish: for i in 0..<n { d[i] = s[i] * Swift.max(0, Swift.min(1, s[i] / 6 + 0.5)) }
            case .elu: for i in 0..<n { d[i] = s[i] < 0 ? alpha * (expf(s[i]) - 1) : s[i] }
            case .selu:
                let g = gamma
                for i in 0..<n { d[i] = s[i] <= 0 ? g * alpha * (expf(s[i]) - 1) : g * s[i] }
            case .softplus: for i in 0..<n { d[i] = s[i] > 20 ? s[i] : log1pf(expf(s[i])) }
            case .gelu: Self.gelu(s, d, n, tanhApproximation: tanhApproximation)
            case .erf: VectorMath.map(s, d, n, VectorMath.erf) { erff($0) }
            case .exp: VectorMath.map(s, d, n, VectorMath.exp) { expf($0) }
            case .log: for i in 0..<n { d[i] = logf(s[i]) }
            case .sqrt: for i in 0..<n { d[i] = s[i].squareRoot() }
            case .reciprocal: for i in 0..<n { d[i] = 1 / s[i] }
            case .neg: for i in 0..<n { d[i] = -s[i] }
            case .abs: for i in 0..<n { d[i] = Swift.abs(s[i]) }
            case .floor: for i in 0..<n { d[i] = s[i].rounded(.down) }
            case .ceil: for i in 0..<n { d[i] = s[i].rounded(.up) }
            case .sin: for i in 0..<n { d[i] = sinf(s[i]) }
            case .cos: for i in 0..<n { d[i] = cosf(s[i]) }
            case .tan: for i in 0..<n { d[i] = tanf(s[i]) }
            case .sign: for i in 0..<n { d[i] = s[i] > 0 ? 1 : (s[i] < 0 ? -1 : s[i]) }
            case .round: for i in 0..<n { d[i] = s[i].rounded(.toNearestOrEven) }
            case .softsign: for i in 0..<n { d[i] = s[i] / (1 + Swift.abs(s[i])) }
            case .thresholdedRelu: for i in 0..<n { d[i] = s[i] > alpha ? s[i] : 0 }
            case .celu: for i in 0..<n { d[i] = Swift.max(0, s[i]) + Swift.min(0, alpha * (expf(s[i] / alpha) - 1)) }
            case .mish: for i in 0..<n { d[i] = s[i] * tanhf(s[i] > 20 ? s[i] : log1pf(expf(s[i]))) }
            case .shrink: for i in 0..<n { d[i] = s[i] < -alpha ? s[i] + beta : (s[i] > alpha ? s[i] - beta : 0) }
            case .swish: Self.swish(s, d, n, alpha: alpha)
            case .asin: for i in 0..<n { d[i] = asinf(s[i]) }
            case .acos: for i in 0..<n { d[i] = acosf(s[i]) }
            case .atan: for i in 0..<n { d[i] = atanf(s[i]) }
            case .sinh: for i in 0..<n { d[i] = sinhf(s[i]) }
            case .cosh: for i in 0..<n { d[i] = coshf(s[i]) }
            case .asinh: for i in 0..<n { d[i] = asinhf(s[i]) }
            case .acosh: for i in 0..<n { d[i] = acoshf(s[i]) }
            case .atanh: for i in 0..<n { d[i] = atanhf(s[i]) }
            }
        }
        return [out]
    }

    /// The element types an op implements: float32 and float64, the signed integers for Neg and
    /// Relu, every integer for Abs and Sign.
    static func types(_ op: Op) -> [DataType] {
        switch op {
        case .abs, .sign: return DataType.realNumbers
        case .neg, .relu: return DataType.signedNumbers
        default: return [.float32, .float64]
        }
    }

    /// The op on float64 (`real`) or an integer type.
    private struct Typed: NumericBody {
        let kernel: UnaryKernel
        let x: Tensor
        let output: Tensor?

        func integer<T: FixedWidthInteger & TensorElement>(_: T.Type) throws -> Tensor {
            let op = kernel.op
            guard UnaryKernel.types(op).contains(T.dataType) else {
                throw KernelError.unsupportedType(op.rawValue, T.dataType, supported: UnaryKernel.types(op))
            }
            let out = try Output.tensor(output, T.dataType, x.shape)
            let s = x.elements(as: T.self)
            let d = out.mutableElements(as: T.self)
            switch op {
            case .neg: for i in 0..<s.count { d[i] = 0 &- s[i] }
            case .abs: for i in 0..<s.count { d[i] = s[i] < 0 ? 0 &- s[i] : s[i] }
            case .sign: for i in 0..<s.count { d[i] = s[i] > 0 ? 1 : (s[i] == 0 ? 0 : 0 &- 1) }
            default: for i in 0..<s.count { d[i] = s[i] < 0 ? 0 : s[i] }  // relu
            }
            return out
        }

        func float<T: FloatElement>(_: T.Type) throws -> Tensor {
            let out = try Output.tensor(output, T.dataType, x.shape)
            kernel.real(x.elements(as: T.self), out.mutableElements(as: T.self))
            return out
        }
    }

    /// The op on any float type, one element at a time (float64; float32 runs the loops of `run`).
    fileprivate func real<T: FloatElement>(_ s: UnsafeBufferPointer<T>, _ d: UnsafeMutableBufferPointer<T>) {
        let alpha = T(self.alpha)
        let beta = T(self.beta)
        let gamma = T(self.gamma)
        func sigmoid(_ v: T) -> T {
            if v >= 0 { return 1 / (1 + (-v).exponential()) }
            let e = v.exponential()
            return e / (1 + e)
        }
        func softplus(_ v: T) -> T { v > 20 ? v : v.exponential().logOnePlus() }
        let f: (T) -> T
        switch op {
        case .relu: f = { $0 > 0 ? $0 : 0 }
        case .sigmoid: f = sigmoid
        case .tanh: f = { $0.hyperbolicTangent() }
        case .leakyRelu: f = { $0 < 0 ? alpha * $0 : $0 }
        case .hardSigmoid: f = { Swift.max(0, Swift.min(1, alpha * $0 + beta)) }
        case .hardSwish: f = { $0 * Swift.max(0, Swift.min(1, $0 / 6 + 0.5)) }
        case .elu: f = { $0 < 0 ? alpha * ($0.exponential() - 1) : $0 }
        case .selu: f = { $0 <= 0 ? gamma * alpha * ($0.exponential() - 1) : gamma * $0 }
        case .softplus: f = softplus
        case .gelu where tanhApproximation:
            let c = T(0.7978845608028654)  // sqrt(2 / pi)
            f = { 0.5 * $0 * (1 + (c * ($0 + 0.044715 * $0 * $0 * $0)).hyperbolicTangent()) }
        case .gelu: f = { 0.5 * $0 * (1 + ($0 * T(0.70710678118654752)).errorFunction()) }
        case .erf: f = { $0.errorFunction() }
        case .exp: f = { $0.exponential() }
        case .log: f = { $0.logarithm() }
        case .sqrt: f = { $0.squareRoot() }
        case .reciprocal: f = { 1 / $0 }
        case .neg: f = { -$0 }
        case .abs: f = { Swift.abs($0) }
        case .floor: f = { $0.rounded(.down) }
        case .ceil: f = { $0.rounded(.up) }
        case .sin: f = { $0.sine() }
        case .cos: f = { $0.cosine() }
        case .tan: f = { $0.tangent() }
        case .sign: f = { $0 > 0 ? 1 : ($0 < 0 ? -1 : $0) }
        case .round: f = { $0.rounded(.toNearestOrEven) }
        case .softsign: f = { $0 / (1 + Swift.abs($0)) }
        case .thresholdedRelu: f = { $0 > alpha ? $0 : 0 }
        case .celu: f = { Swift.max(0, $0) + Swift.min(0, alpha * (($0 / alpha).exponential() - 1)) }
        case .mish: f = { $0 * softplus($0).hyperbolicTangent() }
        case .shrink: f = { $0 < -alpha ? $0 + beta : ($0 > alpha ? $0 - beta : 0) }
        case .swish: f = { $0 * sigmoid(alpha * $0) }
        case .asin: f = { $0.arcSine() }
        case .acos: f = { $0.arcCosine() }
        case .atan: f = { $0.arcTangent() }
        case .sinh: f = { $0.hyperbolicSine() }
        case .cosh: f = { $0.hyperbolicCosine() }
        case .asinh: f = { $0.areaHyperbolicSine() }
        case .acosh: f = { $0.areaHyperbolicCosine() }
        case .atanh: f = { $0.areaHyperbolicTangent() }
        }
        for i in 0..<s.count { d[i] = f(s[i]) }
    }

    /// Gelu of `n` floats from `s` into `d` (may be the same): exact (erf, eight lanes at a time)
    /// or the tanh approximation. Also the fused activation of a MatMul/Gemm/Conv (`Epilogue`).
    static func gelu(_ s: UnsafePointer<Float>, _ d: UnsafeMutablePointer<Float>, _ n: Int, tanhApproximation: Bool) {
        if tanhApproximation {
            let c: Float = 0.7978845608028654  // sqrt(2 / pi)
            for i in 0..<n {
                let v = s[i]
                d[i] = 0.5 * v * (1 + tanhf(c * (v + 0.044715 * v * v * v)))
            }
        } else {
            VectorMath.map(s, d, n, { v in 0.5 * v * (1 + VectorMath.erf(v * 0.70710678118654752)) }) { v in
                0.5 * v * (1 + erff(v * 0.70710678118654752))
            }
        }
    }

    /// Sigmoid of `n` floats from `s` into `d` (may be the same), eight lanes at a time:
    /// 1 / (1 + exp(-x)) with the vector `exp`, which saturates to +inf below -87 (giving 0, where
    /// the scalar form gives a denormal) and is about 1 ulp elsewhere. Branch-free: the scalar
    /// form's sign test mispredicted on half of the values of an activation (EfficientNet-B0's
    /// largest SiLU took 12 ms for 1.2M values; see docs/benchmarks.md). Also the fused
    /// activation of a MatMul/Gemm/Conv (`Epilogue`).
    /// The bulk runs in C at the thread's CPU level (`Sources/CKernels/activations.c`: the same
    /// exp with fused multiply-adds, 16 lanes at AVX-512), the tail here.
    static func sigmoid(_ s: UnsafePointer<Float>, _ d: UnsafeMutablePointer<Float>, _ n: Int) {
        let done = CPULevel.current == .avx512 ? swerve_sigmoid_f32_avx512(s, d, n) : swerve_sigmoid_f32_avx2(s, d, n)
        VectorMath.map(s + done, d + done, n - done, { v in 1 / (1 + VectorMath.exp(-v)) }, sigmoid)
    }

    /// Swish, `x * sigmoid(alpha * x)` (SiLU at alpha 1), as `sigmoid(_:_:_:)` does it.
    static func swish(_ s: UnsafePointer<Float>, _ d: UnsafeMutablePointer<Float>, _ n: Int, alpha: Float) {
        let done = CPULevel.current == .avx512 ? swerve_swish_f32_avx512(s, d, n, alpha) : swerve_swish_f32_avx2(s, d, n, alpha)
        let a = SIMD8<Float>(repeating: alpha)
        VectorMath.map(s + done, d + done, n - done, { v in v / (1 + VectorMath.exp(-(a * v))) }) { v in v * sigmoid(alpha * v) }
    }

    /// Logistic function without overflow for large |x|.
    @inline(__always) static func sigmoid(_ v: Float) -> Float {
        if v >= 0 { return 1 / (1 + expf(-v)) }
        let e = expf(v)
        return e / (1 + e)
    }
}

/// IsNaN (float32 or float64 -> bool), IsInf, Not (bool -> bool).
struct PredicateKernel: BufferedKernel {
    enum Op: String, Sendable { case isNaN = "IsNaN", isInf = "IsInf", not = "Not" }
    let op: Op
    let detectPositive: Bool
    let detectNegative: Bool

    init(context: NodeContext, op: Op) throws {
        try context.requireInputs(1)
        self.op = op
        detectPositive = try context.int("detect_positive", default: 1) != 0
        detectNegative = try context.int("detect_negative", default: 1) != 0
    }

    func run(_ inputs: [Tensor?], into output: Tensor?) throws -> [Tensor] {
        let x = try Check.input(inputs, 0, "X")
        let out = try Output.tensor(output, .bool, x.shape)
        let d = out.mutableElements(as: Bool.self)
        if op == .not {
            try Check.dataType(x, [.bool], "X")
            let s = x.elements(as: Bool.self)
            for i in 0..<x.count { d[i] = !s[i] }
            return [out]
        }
        switch x.dataType {
        case .float32: classify(x.elements(as: Float.self), d)
        case .float64: classify(x.elements(as: Double.self), d)
        default: throw KernelError.unsupportedType(op.rawValue, x.dataType, supported: [.float32, .float64])
        }
        return [out]
    }

    private func classify<T: BinaryFloatingPoint>(_ s: UnsafeBufferPointer<T>, _ d: UnsafeMutableBufferPointer<Bool>) {
        if op == .isNaN {
            for i in 0..<s.count { d[i] = s[i].isNaN }
        } else {
            for i in 0..<s.count {
                d[i] = s[i].isInfinite && (s[i] > 0 ? detectPositive : detectNegative)
            }
        }
    }
}

/// Clip: bounds from attributes `min`/`max` before opset 11, from optional inputs 1 and 2 after (they
/// may be computed at run time). float32, float64 and every integer type (opset 11 on; opset 6's
/// attribute bounds are float32 only).
struct ClipKernel: BufferedKernel {
    let attributeBounds: (Float, Float)?

    init(context: NodeContext) throws {
        if context.opset < 11 {
            try context.requireInputs(1)
            attributeBounds = (
                try context.float("min", default: -Float.greatestFiniteMagnitude),
                try context.float("max", default: Float.greatestFiniteMagnitude)
            )
        } else {
            try context.requireInputs(1, 3)
            attributeBounds = nil
        }
    }

    func run(_ inputs: [Tensor?], into output: Tensor?) throws -> [Tensor] {
        let x = try Check.input(inputs, 0, "input")
        switch x.dataType {
        case .float32:
            var lo = -Float.infinity
            var hi = Float.infinity
            if let (a, b) = attributeBounds {
                lo = a
                hi = b
            } else {
                if let t = try bound(inputs, 1, x) { lo = t.elements(as: Float.self)[0] }
                if let t = try bound(inputs, 2, x) { hi = t.elements(as: Float.self)[0] }
            }
            return [try clip(x, Float.self, lo, hi, into: output)]
        default:
            guard attributeBounds == nil,
                let out = try x.dataType.dispatch(Bounded(kernel: self, x: x, inputs: inputs, output: output))
            else { throw KernelError.unsupportedType("Clip", x.dataType, supported: DataType.realNumbers) }
            return [out]
        }
    }

    /// Clip of another type: bounds default to the type's range.
    private struct Bounded: NumericBody {
        let kernel: ClipKernel
        let x: Tensor
        let inputs: [Tensor?]
        let output: Tensor?

        func integer<T: FixedWidthInteger & TensorElement>(_: T.Type) throws -> Tensor {
            try clip(T.self, T.min, T.max)
        }

        func float<T: FloatElement>(_: T.Type) throws -> Tensor {
            try clip(T.self, -T.infinity, T.infinity)
        }

        private func clip<T: Comparable & TensorElement>(_: T.Type, _ lowest: T, _ highest: T) throws -> Tensor {
            let lo = try kernel.bound(inputs, 1, x).map { $0.elements(as: T.self)[0] } ?? lowest
            let hi = try kernel.bound(inputs, 2, x).map { $0.elements(as: T.self)[0] } ?? highest
            return try kernel.clip(x, T.self, lo, hi, into: output)
        }
    }

    fileprivate func bound(_ inputs: [Tensor?], _ i: Int, _ x: Tensor) throws -> Tensor? {
        guard i < inputs.count, let t = inputs[i] else { return nil }
        guard t.dataType == x.dataType, t.count == 1 else {
            throw KernelError.failed("Clip's bound \(i) must be a single \(x.dataType.v2Name), got \(t.dataType.v2Name) \(t.shape)")
        }
        return t
    }

    fileprivate func clip<T: Comparable & TensorElement>(
        _ x: Tensor, _: T.Type, _ lo: T, _ hi: T, into output: Tensor?
    ) throws -> Tensor {
        let out = try Output.tensor(output, x.dataType, x.shape)
        let s = x.elements(as: T.self)
        let d = out.mutableElements(as: T.self)
        // NaN stays NaN (comparisons with NaN are false).
        for i in 0..<x.count {
            let v = s[i]
            d[i] = v < lo ? lo : (v > hi ? hi : v)
        }
        if lo > hi { for i in 0..<x.count { d[i] = hi } }
        return out
    }
}

/// PRelu: x < 0 ? slope * x : x, the slope broadcast (unidirectionally) to X. float32. Before opset 7
/// a 1-D slope of C values applies per channel (dimension 1).
struct PReluKernel: BufferedKernel {
    let legacy: Bool

    init(context: NodeContext) throws {
        try context.requireInputs(2)
        legacy = context.opset < 7
    }

    func run(_ inputs: [Tensor?], into output: Tensor?) throws -> [Tensor] {
        let x = try Check.input(inputs, 0, "X")
        var slope = try Check.input(inputs, 1, "slope")
        if legacy, slope.rank == 1, x.rank >= 2, slope.count == x.shape[1] {
            slope = slope.reshaped([slope.count] + [Int](repeating: 1, count: x.rank - 2))
        }
        try Check.dataType(x, Self.types, "X")
        guard slope.dataType == x.dataType else {
            throw KernelError.failed("PRelu's slope is \(slope.dataType.v2Name) and X \(x.dataType.v2Name); they must be one type")
        }
        guard Broadcast.shape([x.shape, slope.shape]) == x.shape else {
            throw KernelError.shape("PRelu's slope \(slope.shape) does not broadcast to X \(x.shape)")
        }
        switch x.dataType {
        case .float64: return [try BinaryLoop<RealPRelu<Double>>.run(x, slope, into: output)]
        case .int32: return [try BinaryLoop<IntPRelu<Int32>>.run(x, slope, into: output)]
        case .int64: return [try BinaryLoop<IntPRelu<Int64>>.run(x, slope, into: output)]
        // Unsigned values are never below zero: PRelu is the identity (as the spec's definition).
        case .uint32: return [try BinaryLoop<IntPRelu<UInt32>>.run(x, slope, into: output)]
        case .uint64: return [try BinaryLoop<IntPRelu<UInt64>>.run(x, slope, into: output)]
        default: return [try BinaryLoop<FloatPRelu>.run(x, slope, into: output)]
        }
    }

    /// The spec's types (opset 16; float16 and bfloat16 run as float32 inside a session).
    static let types: [DataType] = [.float32, .float64, .int32, .int64, .uint32, .uint64]
}

enum FloatPRelu: BinaryOperation { static func apply(_ a: Float, _ b: Float) -> Float { a < 0 ? a * b : a } }
enum RealPRelu<Element: FloatElement>: BinaryOperation { static func apply(_ a: Element, _ b: Element) -> Element { a < 0 ? a * b : a } }
/// Integer PRelu: the product wraps, as the other integer arithmetic does.
enum IntPRelu<Element: FixedWidthInteger>: BinaryOperation {
    static func apply(_ a: Element, _ b: Element) -> Element { a < 0 ? a &* b : a }
}
