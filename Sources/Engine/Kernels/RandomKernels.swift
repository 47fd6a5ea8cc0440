import Synchronization
import Tensors

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A stream of pseudo-random numbers (xoshiro256**, seeded through splitmix64), one per node that
/// draws them. With the node's `seed` attribute the stream is reproducible: the same model gives
/// the same sequence of runs, as onnxruntime's seeded generators do (each run continues the stream,
/// so two runs differ); without it the seed comes from the system's generator.
///
/// Shared by every run of the node's kernel: the state sits behind a mutex and a run draws all its
/// numbers in one locked call.
final class RandomStream: Sendable {
    private let state: Mutex<(UInt64, UInt64, UInt64, UInt64)>

    /// A stream seeded with `seed`, or from the system's generator when nil.
    init(seed: UInt64?) {
        var s: UInt64 = seed ?? UInt64.random(in: .min ... .max)
        func splitmix() -> UInt64 {
            s &+= 0x9E37_79B9_7F4A_7C15
            var z = s
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        state = Mutex((splitmix(), splitmix(), splitmix(), splitmix()))
    }

    /// Calls `body` with a generator of uniform doubles in [0, 1), holding the stream for the call.
    func draw<R>(_ body: (() -> Double) -> R) -> R {
        state.withLock { s in
            body {
                let result = ((s.1 &* 5) << 7 | (s.1 &* 5) >> 57) &* 9
                let t = s.1 << 17
                s.2 ^= s.0
                s.3 ^= s.1
                s.1 ^= s.2
                s.0 ^= s.3
                s.2 ^= t
                s.3 = s.3 << 45 | s.3 >> 19
                return Double(result >> 11) * 0x1.0p-53
            }
        }
    }

    /// `count` uniform values in [low, high).
    func uniform(_ count: Int, low: Double, high: Double) -> [Double] {
        draw { next in (0..<count).map { _ in low + (high - low) * next() } }
    }

    /// `count` normal values (Box-Muller) with the given mean and standard deviation.
    func normal(_ count: Int, mean: Double, scale: Double) -> [Double] {
        draw { next in
            var values: [Double] = []
            values.reserveCapacity(count + 1)
            while values.count < count {
                let u1 = 1 - next()  // (0, 1]: log is finite
                let u2 = next()
                let r = (-2 * log(u1)).squareRoot()
                values.append(mean + scale * r * cos(2 * Double.pi * u2))
                values.append(mean + scale * r * sin(2 * Double.pi * u2))
            }
            return Array(values.prefix(count))
        }
    }
}

/// What the random operators share: the `seed` attribute's stream and the output element type.
enum RandomDraw {
    /// Element types a random value is written as (through Cast's conversion).
    static let outputTypes: [DataType] = [.float32, .float64, .int64, .int32, .int16, .int8, .uint8, .bool]

    /// The stream of the node's `seed` attribute (a float for the generators, an int for Dropout).
    static func stream(_ context: NodeContext) throws -> RandomStream {
        switch context.node.attributes["seed"] {
        case nil: return RandomStream(seed: nil)
        case .int(let v)?: return RandomStream(seed: UInt64(bitPattern: Int64(v)))
        case .float?: return RandomStream(seed: UInt64(try context.float("seed")!.bitPattern))
        default: throw context.invalid("has a 'seed' attribute that is neither an int nor a float")
        }
    }

    /// The `dtype` attribute, else `fallback`; refused when the engine cannot hold the values.
    static func dataType(_ context: NodeContext, default fallback: DataType?) throws -> DataType? {
        guard let raw = try context.int("dtype") else { return fallback }
        guard let t = DataType(rawValue: Int32(truncatingIfNeeded: raw)), outputTypes.contains(t) else {
            throw context.unsupported()
        }
        return t
    }

    /// `values` as a tensor of `shape` and type `type`.
    static func tensor(_ values: [Double], _ shape: [Int], _ type: DataType) throws -> Tensor {
        if type == .float64 { return Tensor(values, shape: shape) }
        let floats = Tensor(values.map { Float($0) }, shape: shape)
        return try CastKernel.convert(floats, to: type)
    }
}

/// RandomUniform and RandomNormal (shape from the `shape` attribute) and their `Like` forms (shape,
/// and by default type, of the input). `low`/`high` and `mean`/`scale` as the spec defaults them.
struct RandomKernel: Kernel {
    enum Distribution { case uniform, normal }
    let distribution: Distribution
    let stream: RandomStream
    /// The attribute's shape, nil for the `Like` forms.
    let shape: [Int]?
    let dataType: DataType?
    let a: Double
    let b: Double

    init(context: NodeContext, distribution: Distribution, like: Bool) throws {
        try context.requireInputs(like ? 1 : 0, like ? 1 : 0)
        self.distribution = distribution
        stream = try RandomDraw.stream(context)
        if like {
            shape = nil
        } else {
            guard let dims = try context.ints("shape"), dims.allSatisfy({ $0 >= 0 }) else {
                throw context.invalid("needs a 'shape' attribute of non-negative dimensions")
            }
            shape = dims
        }
        dataType = try RandomDraw.dataType(context, default: like ? nil : .float32)
        switch distribution {
        case .uniform:
            a = Double(try context.float("low", default: 0))
            b = Double(try context.float("high", default: 1))
        case .normal:
            a = Double(try context.float("mean", default: 0))
            b = Double(try context.float("scale", default: 1))
        }
    }

    func run(_ inputs: [Tensor?]) throws -> [Tensor] {
        let like = shape == nil ? try Check.input(inputs, 0, "input") : nil
        let dims = shape ?? like!.shape
        let type = dataType ?? like!.dataType
        guard RandomDraw.outputTypes.contains(type) else {
            throw KernelError.failed("\(type.v2Name) random values are not supported; use dtype FLOAT")
        }
        let count = Tensor.elementCount(dims)
        let values =
            distribution == .uniform ? stream.uniform(count, low: a, high: b) : stream.normal(count, mean: a, scale: b)
        return [try RandomDraw.tensor(values, dims, type)]
    }
}

/// Bernoulli: 1 with the probability its input gives, else 0, in `dtype` (default: the input's).
struct BernoulliKernel: Kernel {
    let stream: RandomStream
    let dataType: DataType?

    init(context: NodeContext) throws {
        try context.requireInputs(1)
        stream = try RandomDraw.stream(context)
        dataType = try RandomDraw.dataType(context, default: nil)
    }

    func run(_ inputs: [Tensor?]) throws -> [Tensor] {
        let p = try Check.input(inputs, 0, "input")
        try Check.dataType(p, [.float32, .float64], "input")
        let probabilities = p.doubleValues()
        let values = stream.draw { next in probabilities.map { next() < $0 ? 1.0 : 0.0 } }
        return [try RandomDraw.tensor(values, p.shape, dataType ?? p.dataType)]
    }
}

/// Multinomial: `sample_size` class indices per row of unnormalised log-probabilities
/// ([batch, classes]), as int32 (default) or int64.
struct MultinomialKernel: Kernel {
    let stream: RandomStream
    let samples: Int
    let dataType: DataType

    init(context: NodeContext) throws {
        try context.requireInputs(1)
        stream = try RandomDraw.stream(context)
        samples = try context.int("sample_size", default: 1)
        let raw = try context.int("dtype", default: Int(DataType.int32.rawValue))
        guard samples >= 0, let t = DataType(rawValue: Int32(truncatingIfNeeded: raw)), [.int32, .int64].contains(t) else {
            throw context.invalid("needs sample_size >= 0 and dtype INT32 or INT64")
        }
        dataType = t
    }

    func run(_ inputs: [Tensor?]) throws -> [Tensor] {
        let x = try Check.input(inputs, 0, "input")
        try Check.dataType(x, [.float32], "input")
        guard x.rank == 2 else { throw KernelError.shape("Multinomial needs input of shape [batch, classes], got \(x.shape)") }
        let (rows, classes) = (x.shape[0], x.shape[1])
        let logits = x.elements(as: Float.self)
        var picks = [Double](repeating: 0, count: rows * samples)
        stream.draw { next in
            var cumulative = [Double](repeating: 0, count: classes)
            for r in 0..<rows {
                let row = logits[(r * classes)..<((r + 1) * classes)]
                let top = row.max().map(Double.init) ?? 0
                var total = 0.0
                for (c, v) in row.enumerated() {
                    total += exp(Double(v) - top)
                    cumulative[c] = total
                }
                for s in 0..<samples {
                    let u = next() * total
                    let c = cumulative.firstIndex { u < $0 } ?? classes - 1
                    picks[r * samples + s] = Double(c)
                }
            }
        }
        let indices = Tensor(picks.map { Int64($0) }, shape: [rows, samples])
        return [try CastKernel.convert(indices, to: dataType)]
    }
}

/// Dropout. At inference (no `training_mode`, or a false one, or ratio 0) the output is the input and
/// the optional mask is all true; the optimizer removes such a node when it has no mask output. In
/// training mode each element is kept with probability 1 - ratio and scaled by 1 / (1 - ratio);
/// the mask says which were kept. `ratio` is an input from opset 12 (default 0.5), an attribute
/// before.
struct DropoutKernel: Kernel {
    let wantsMask: Bool
    let stream: RandomStream
    /// The attribute of opsets 7-10; opset 12+ reads input 1.
    let ratioAttribute: Float

    init(context: NodeContext) throws {
        try context.requireInputs(1, 3)
        wantsMask = context.hasOutput(1)
        stream = try RandomDraw.stream(context)
        ratioAttribute = try context.float("ratio", default: 0.5)
    }

    func run(_ inputs: [Tensor?]) throws -> [Tensor] {
        let x = try Check.input(inputs, 0, "data")
        let training = inputs.count > 2 ? inputs[2].map { $0.count == 1 && $0.doubleValues()[0] != 0 } ?? false : false
        let ratio = inputs.count > 1 ? inputs[1].map { Float($0.doubleValues().first ?? 0.5) } ?? 0.5 : ratioAttribute
        guard training, ratio > 0 else {
            guard wantsMask else { return [x] }
            let mask = try Tensor(allocating: .bool, shape: x.shape)
            if mask.count > 0 { mask.mutableElements(as: Bool.self).initialize(repeating: true) }
            return [x, mask]
        }
        guard ratio < 1 else { throw KernelError.failed("Dropout ratio must be in [0, 1), got \(ratio)") }
        try Check.dataType(x, [.float32], "data")
        let out = try Tensor(allocating: .float32, shape: x.shape)
        let mask = try Tensor(allocating: .bool, shape: x.shape)
        let src = x.elements(as: Float.self)
        let dst = out.mutableElements(as: Float.self)
        let keep = mask.mutableElements(as: Bool.self)
        let scale = 1 / (1 - ratio)
        stream.draw { next in
            for i in 0..<src.count {
                keep[i] = next() >= Double(ratio)
                dst[i] = keep[i] ? src[i] * scale : 0
            }
        }
        return wantsMask ? [out, mask] : [out]
    }
}
