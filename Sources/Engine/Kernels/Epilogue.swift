import Tensors

/// An activation fused into the Conv, Gemm or MatMul that produces its input (by `GraphOptimizer`),
/// applied to each block of output right after its sgemm while it is still in cache.
///
/// Carried on the producing node as the internal attributes `__activation` (string), `__alpha` and
/// `__beta` (floats); the kernel reads them through `init(context:)`. An immutable value.
struct Epilogue: Sendable, Equatable {
    enum Kind: String, Sendable {
        case none, relu, clip, leakyRelu = "leakyrelu", sigmoid, hardSwish = "hardswish", gelu, swish
    }

    let kind: Kind
    /// Clip's lower bound, LeakyRelu's slope, Swish's alpha; for Gelu, 1 for the tanh
    /// approximation, 0 for erf.
    let alpha: Float
    /// Clip's upper bound.
    let beta: Float

    static let none = Epilogue(kind: .none, alpha: 0, beta: 0)

    static let activationAttribute = "__activation"
    static let alphaAttribute = "__alpha"
    static let betaAttribute = "__beta"

    init(kind: Kind, alpha: Float, beta: Float) {
        self.kind = kind
        self.alpha = alpha
        self.beta = beta
    }

    /// The epilogue a node carries (none when it has no `__activation` attribute).
    init(context: NodeContext) throws {
        guard let name = try context.string(Self.activationAttribute) else {
            self = .none
            return
        }
        guard let kind = Kind(rawValue: name) else { throw context.invalid("has an unknown fused activation '\(name)'") }
        self.init(
            kind: kind, alpha: try context.float(Self.alphaAttribute, default: 0),
            beta: try context.float(Self.betaAttribute, default: 0))
    }

    /// The attributes that describe this epilogue on a node.
    var attributes: [String: Attribute] {
        [Self.activationAttribute: .string(Array(kind.rawValue.utf8)), Self.alphaAttribute: .float(alpha),
            Self.betaAttribute: .float(beta)]
    }

    /// The activation as a clamp to [lo, hi] when it is one (none, Relu, Clip), for kernels that
    /// apply it in registers; nil for the others.
    var clampBounds: (lo: Float, hi: Float)? {
        switch kind {
        case .none: return (-.infinity, .infinity)
        case .relu: return (0, .infinity)
        case .clip: return (alpha, beta)
        case .leakyRelu, .sigmoid, .hardSwish, .gelu, .swish: return nil
        }
    }

    /// Applies the activation in place to `count` floats at `p`.
    func apply(_ p: UnsafeMutablePointer<Float>, count: Int) {
        switch kind {
        case .none: return
        case .relu: Self.clamp(p, count, 0, .infinity)
        case .clip: Self.clamp(p, count, alpha, beta)
        case .leakyRelu:
            for i in 0..<count where p[i] < 0 { p[i] *= alpha }
        case .sigmoid:
            UnaryKernel.sigmoid(p, p, count)
        case .hardSwish:
            for i in 0..<count { p[i] = p[i] * Swift.max(0, Swift.min(1, p[i] / 6 + 0.5)) }
        case .gelu:
            UnaryKernel.gelu(p, p, count, tanhApproximation: alpha != 0)
        case .swish:
            UnaryKernel.swish(p, p, count, alpha: alpha)
        }
    }

    /// Applies the activation in place to `count` doubles at `p` (float64 Conv, Gemm and MatMul;
    /// scalar loops, the same formulas as the float32 ones).
    func apply(_ p: UnsafeMutablePointer<Double>, count: Int) {
        let alpha = Double(self.alpha)
        let beta = Double(self.beta)
        func sigmoid(_ v: Double) -> Double { 1 / (1 + (-v).exponential()) }
        switch kind {
        case .none: return
        case .relu: for i in 0..<count where p[i] < 0 { p[i] = 0 }
        case .clip:
            for i in 0..<count {
                if p[i] < alpha { p[i] = alpha } else if p[i] > beta { p[i] = beta }
            }
        case .leakyRelu: for i in 0..<count where p[i] < 0 { p[i] *= alpha }
        case .sigmoid: for i in 0..<count { p[i] = sigmoid(p[i]) }
        case .hardSwish: for i in 0..<count { p[i] = p[i] * Swift.max(0, Swift.min(1, p[i] / 6 + 0.5)) }
        case .gelu:
            for i in 0..<count {
                let v = p[i]
                if alpha != 0 {
                    p[i] = 0.5 * v * (1 + ((2 / Double.pi).squareRoot() * (v + 0.044715 * v * v * v)).hyperbolicTangent())
                } else {
                    p[i] = 0.5 * v * (1 + (v / 2.0.squareRoot()).errorFunction())
                }
            }
        case .swish: for i in 0..<count { p[i] = p[i] * sigmoid(alpha * p[i]) }
        }
    }

    /// Applies the activation in place to `count` integers at `p` (integer Gemm and MatMul). Of the
    /// fusable activations only Relu and Clip allow integer inputs in the spec (a fused Clip's
    /// bounds are float32 constants, so on integers it has none: infinite bounds clamp nothing);
    /// the others are refused with an error that names the type.
    func apply<T: FixedWidthInteger>(_ p: UnsafeMutablePointer<T>, count: Int) throws {
        switch kind {
        case .none: return
        case .relu: for i in 0..<count where p[i] < 0 { p[i] = 0 }
        case .clip:
            // Integer bounds: the smallest integer >= alpha and the largest <= beta, saturated to T.
            let lo = alpha.isInfinite && alpha < 0 ? T.min : T.saturating(Double(alpha).rounded(.up))
            let hi = beta.isInfinite && beta > 0 ? T.max : T.saturating(Double(beta).rounded(.down))
            for i in 0..<count {
                if p[i] < lo { p[i] = lo } else if p[i] > hi { p[i] = hi }
            }
        case .leakyRelu, .sigmoid, .hardSwish, .gelu, .swish:
            throw KernelError.failed(
                "a fused \(kind.rawValue) activation on \(T.self) values: the ONNX spec allows it on floating-point "
                    + "tensors only; cast the product to float first")
        }
    }

    /// `min(max(v, lo), hi)` lane by lane as compare-and-select (NaN stays NaN, as in Relu and
    /// Clip), for kernels that clamp in registers.
    @inline(__always)
    static func clamp(_ v: SIMD8<Float>, _ lo: SIMD8<Float>, _ hi: SIMD8<Float>) -> SIMD8<Float> {
        var r = v
        r.replace(with: lo, where: r .< lo)
        r.replace(with: hi, where: r .> hi)
        return r
    }

    /// `p[i] = min(max(p[i], lo), hi)` as compare-and-select (NaN stays NaN, as in Relu and Clip); a
    /// plain loop that the compiler vectorises.
    static func clamp(_ p: UnsafeMutablePointer<Float>, _ count: Int, _ lo: Float, _ hi: Float) {
        for i in 0..<count {
            var v = p[i]
            v = v < lo ? lo : v
            v = v > hi ? hi : v
            p[i] = v
        }
    }
}

extension Epilogue {
    /// The epilogue equivalent to the activation node of `context` (its constant inputs given),
    /// or nil when its attributes or inputs do not allow one. Read through the operator records
    /// (`OperatorRecord.epilogue`) of the activations.
    static func equivalent(to context: NodeContext) -> Epilogue? {
        let node = context.node
        let opset = context.opset
        switch node.opType {
        case "Relu" where node.inputs.count == 1:
            return Epilogue(kind: .relu, alpha: 0, beta: .infinity)
        case "Sigmoid" where node.inputs.count == 1:
            return Epilogue(kind: .sigmoid, alpha: 0, beta: 0)
        case "HardSwish" where node.inputs.count == 1:
            return Epilogue(kind: .hardSwish, alpha: 0, beta: 0)
        case "Gelu" where node.inputs.count == 1:
            switch (try? context.string("approximate", default: "none")) {
            case "none": return Epilogue(kind: .gelu, alpha: 0, beta: 0)
            case "tanh": return Epilogue(kind: .gelu, alpha: 1, beta: 0)
            default: return nil
            }
        case "Swish" where node.inputs.count == 1:
            guard let alpha = try? context.float("alpha", default: 1) else { return nil }
            return Epilogue(kind: .swish, alpha: alpha, beta: 0)
        case "LeakyRelu" where node.inputs.count == 1:
            guard let alpha = try? context.float("alpha", default: 0.01) else { return nil }
            return Epilogue(kind: .leakyRelu, alpha: alpha, beta: 0)
        case "Clip":
            if opset < 11 {
                guard node.inputs.count == 1, let lo = try? context.float("min", default: -.greatestFiniteMagnitude),
                    let hi = try? context.float("max", default: .greatestFiniteMagnitude)
                else { return nil }
                return Epilogue(kind: .clip, alpha: lo, beta: hi)
            }
            var bounds: [Float] = [-.infinity, .infinity]
            for k in 1..<max(node.inputs.count, 1) where !node.inputs[k].isEmpty {
                guard k <= 2, let t = context.constantInput(k), t.dataType == .float32, t.count == 1 else { return nil }
                bounds[k - 1] = t.scalars(as: Float.self)[0]
            }
            return Epilogue(kind: .clip, alpha: bounds[0], beta: bounds[1])
        default:
            return nil
        }
    }
}
