import ArgumentParser
import Engine
import Tensors

/// Makes the generated inputs of `swerve check` and `swerve bench`: shapes from the declared ones
/// (symbolic dimensions from `--dim NAME=VALUE`, else `batch` for the first one when given, else 1),
/// floats (float16, bfloat16, float8 and float4 too) uniform in [0, 1) from a fixed seed, integers 1, booleans true. A value type; deterministic.
struct FeedGenerator {
    /// Values of named symbolic dimensions.
    var overrides: [String: Int]
    /// Value of a non-fixed first dimension (the batch) that `overrides` does not name; nil: 1.
    var batch: Int?
    var seed: UInt64 = 0x5EED

    /// Parses `["batch=8", "sequence=128"]`; throws a `ValidationError` naming the bad item.
    static func parseDims(_ items: [String]) throws -> [String: Int] {
        var dims: [String: Int] = [:]
        for item in items {
            let parts = item.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2, !parts[0].isEmpty, let value = Int(parts[1]), value > 0 else {
                throw ValidationError("--dim \(item): expected NAME=VALUE with a positive VALUE, e.g. --dim batch=8")
            }
            dims[parts[0]] = value
        }
        return dims
    }

    /// The concrete shape for a declared one.
    func shape(of info: ValueInfo) throws -> [Int] {
        guard let declared = info.shape else {
            throw EngineError.invalidInput("input '\(info.name)' declares no shape (rank unknown); Swerve cannot make an input for it")
        }
        return declared.enumerated().map { axis, dim in
            switch dim {
            case .fixed(let v): return v
            case .symbolic(let name): return overrides[name] ?? (axis == 0 ? batch : nil) ?? 1
            case .unknown: return (axis == 0 ? batch : nil) ?? 1
            }
        }
    }

    /// One tensor per declared input.
    func feeds(for inputs: [ValueInfo]) throws -> [String: Tensor] {
        var rng = SplitMix64(seed: seed)
        var feeds: [String: Tensor] = [:]
        for info in inputs {
            let shape = try shape(of: info)
            guard let bytes = Tensor.checkedByteCount(info.dataType ?? .float32, shape),
                bytes <= MemoryLimits.defaultRequestBytes
            else {
                throw EngineError.invalidInput(
                    "input '\(info.name)' of shape \(shape) is too large to generate (more than "
                        + "\(MemoryLimits.describe(MemoryLimits.defaultRequestBytes))); give its symbolic dims smaller values with --dim NAME=VALUE")
            }
            let n = Tensor.elementCount(shape)
            switch info.dataType ?? .float32 {
            case .float32: feeds[info.name] = Tensor((0..<n).map { _ in rng.nextUnitFloat() }, shape: shape)
            case .float64: feeds[info.name] = Tensor((0..<n).map { _ in Double(rng.nextUnitFloat()) }, shape: shape)
            case .int64: feeds[info.name] = Tensor([Int64](repeating: 1, count: n), shape: shape)
            case .int32: feeds[info.name] = Tensor([Int32](repeating: 1, count: n), shape: shape)
            case .int16: feeds[info.name] = Tensor([Int16](repeating: 1, count: n), shape: shape)
            case .int8: feeds[info.name] = Tensor([Int8](repeating: 1, count: n), shape: shape)
            case .uint8: feeds[info.name] = Tensor([UInt8](repeating: 1, count: n), shape: shape)
            case .uint16: feeds[info.name] = Tensor([UInt16](repeating: 1, count: n), shape: shape)
            case .uint32: feeds[info.name] = Tensor([UInt32](repeating: 1, count: n), shape: shape)
            case .uint64: feeds[info.name] = Tensor([UInt64](repeating: 1, count: n), shape: shape)
            case .bool: feeds[info.name] = Tensor([Bool](repeating: true, count: n), shape: shape)
            case .float16, .bfloat16:
                let type = info.dataType ?? .float16
                feeds[info.name] = try Tensor((0..<n).map { _ in rng.nextUnitFloat() }, shape: shape).narrowed(to: type)
            case let narrow where NarrowConversion.isNarrowFloat(narrow):
                feeds[info.name] = try Tensor((0..<n).map { _ in rng.nextUnitFloat() }, shape: shape).narrowed(toFloat: narrow)
            case let narrow where NarrowConversion.isNarrowInteger(narrow):
                // int4/uint4/int2/uint2 are held as one byte per element: 1 in each.
                feeds[info.name] = Tensor(dataType: narrow, shape: shape, storage: Tensor([UInt8](repeating: 1, count: n), shape: shape).storage)
            case let other:
                throw EngineError.invalidInput("input '\(info.name)' has type \(other.v2Name), which Swerve cannot generate")
            }
        }
        return feeds
    }
}

/// SplitMix64: a small seedable generator, so that generated inputs are the same on every run.
struct SplitMix64 {
    var state: UInt64
    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Uniform in [0, 1) with 24 random bits.
    mutating func nextUnitFloat() -> Float { Float(next() >> 40) / Float(1 << 24) }
}
