#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Tensors

/// BatchNormalization: y = (x - mean) / sqrt(var + epsilon) * scale + B per channel (dimension 1).
/// At inference mean and var are inputs. With `training_mode` = 1 (opsets 14+) they are the batch's
/// own statistics (mean and population variance over every axis but 1), and the optional outputs
/// 1 and 2 are the running statistics updated with `momentum`:
/// running = input * momentum + batch * (1 - momentum). A training-mode step mixes the rows of a
/// batch, so `BatchSplit` keeps a batch whole through it. The legacy attributes of opsets 6-9
/// (`is_test`, `spatial`, `consumed_inputs`) are accepted; `spatial` = 0 and the legacy training
/// outputs of opsets before 14 are not supported.
struct BatchNormalizationKernel: BufferedKernel {
    let epsilon: Float
    let momentum: Double
    /// Statistics from the batch (training_mode = 1) rather than from the mean and var inputs.
    let training: Bool

    init(context: NodeContext) throws {
        try context.requireInputs(5)
        epsilon = try context.float("epsilon", default: 1e-5)
        momentum = Double(try context.float("momentum", default: 0.9))
        training = try context.int("training_mode", default: 0) != 0
        if try context.int("spatial", default: 1) == 0 { throw context.unsupported() }
        let statistics = (1..<context.node.outputs.count).contains(where: context.hasOutput)
        if statistics && !(training && context.opset >= 14 && context.node.outputs.count <= 3) {
            throw context.unsupported()
        }
    }

    func run(_ inputs: [Tensor?], into output: Tensor?) throws -> [Tensor] {
        let x = try Check.input(inputs, 0, "X")
        let params = try (1...4).map { try Check.input(inputs, $0, ["scale", "B", "mean", "var"][$0 - 1]) }
        if x.dataType == .float64 && !training { return [try DoubleNormalization.batch(x, params, epsilon, into: output)] }
        try Check.dataType(x, [.float32], "X")
        guard x.rank >= 2 else { throw KernelError.shape("BatchNormalization needs X of rank 2 or more, got \(x.shape)") }
        let c = x.shape[1]
        for p in params {
            try Check.dataType(p, [.float32], "BatchNormalization parameter")
            guard p.count == c else {
                throw KernelError.shape("BatchNormalization parameter of shape \(p.shape) does not match \(c) channels of \(x.shape)")
            }
        }
        let scale = params[0].elements(as: Float.self)
        let bias = params[1].elements(as: Float.self)
        let out = try Output.tensor(output, .float32, x.shape)
        let inner = x.shape[2...].reduce(1, *)
        let images = x.shape[0]
        let src = x.elements(as: Float.self)
        var mean = Array(params[2].elements(as: Float.self))
        var variance = Array(params[3].elements(as: Float.self))
        var extra: [Tensor] = []
        if training {
            // The batch's statistics in double (two passes), then the running ones.
            let n = Double(images * inner)
            let runningMean = try Tensor(allocating: .float32, shape: [c])
            let runningVar = try Tensor(allocating: .float32, shape: [c])
            let rm = runningMean.mutableElements(as: Float.self)
            let rv = runningVar.mutableElements(as: Float.self)
            for ch in 0..<c {
                var sum = 0.0
                for img in 0..<images {
                    let off = (img * c + ch) * inner
                    for i in 0..<inner { sum += Double(src[off + i]) }
                }
                let m = n > 0 ? sum / n : 0
                var squares = 0.0
                for img in 0..<images {
                    let off = (img * c + ch) * inner
                    for i in 0..<inner {
                        let d = Double(src[off + i]) - m
                        squares += d * d
                    }
                }
                let v = n > 0 ? squares / n : 0
                rm[ch] = Float(Double(mean[ch]) * momentum + m * (1 - momentum))
                rv[ch] = Float(Double(variance[ch]) * momentum + v * (1 - momentum))
                mean[ch] = Float(m)
                variance[ch] = Float(v)
            }
            extra = [runningMean, runningVar]
        }
        let dst = out.mutableElements(as: Float.self).baseAddress
        guard let base = src.baseAddress, let dst, x.count > 0 else { return [out] + extra }
        for n in 0..<images {
            for ch in 0..<c {
                let a = scale[ch] / (variance[ch] + epsilon).squareRoot()
                let b = bias[ch] - mean[ch] * a
                let off = (n * c + ch) * inner
                for i in 0..<inner { dst[off + i] = base[off + i] * a + b }
            }
        }
        return [out] + extra
    }
}

/// InstanceNormalization: per (image, channel) mean and variance over the spatial dimensions.
struct InstanceNormalizationKernel: BufferedKernel {
    let epsilon: Float

    init(context: NodeContext) throws {
        try context.requireInputs(3)
        epsilon = try context.float("epsilon", default: 1e-5)
    }

    func run(_ inputs: [Tensor?], into output: Tensor?) throws -> [Tensor] {
        let x = try Check.input(inputs, 0, "input")
        let scale = try Check.input(inputs, 1, "scale")
        let bias = try Check.input(inputs, 2, "B")
        if x.dataType == .float64 { return [try DoubleNormalization.instance(x, scale, bias, epsilon, into: output)] }
        try Check.dataType(x, [.float32], "input")
        guard x.rank >= 2, scale.count == x.shape[1], bias.count == x.shape[1] else {
            throw KernelError.shape("InstanceNormalization: scale \(scale.shape) and B \(bias.shape) must match channels of \(x.shape)")
        }
        let out = try Output.tensor(output, .float32, x.shape)
        let groups = x.shape[0] * x.shape[1]
        let inner = x.shape[2...].reduce(1, *)
        if x.count == 0 { return [out] }
        let sc = scale.elements(as: Float.self)
        let bs = bias.elements(as: Float.self)
        LayerNormalizationKernel.normalize(
            x.elements(as: Float.self).baseAddress!, out.mutableElements(as: Float.self).baseAddress!, rows: groups,
            n: inner, epsilon: epsilon
        ) { row, v in v * sc[row % x.shape[1]] + bs[row % x.shape[1]] }
        return [out]
    }
}

/// LayerNormalization (opset 17): normalises over the dimensions from `axis` (default -1), then
/// scales and shifts with Scale and the optional B (broadcast over those dimensions). The optional
/// Mean and InvStdDev outputs are produced when asked for.
struct LayerNormalizationKernel: BufferedKernel {
    let axis: Int
    let epsilon: Float
    /// Whether the node asks for Mean or InvStdDev (else they are not allocated).
    let statsRequested: Bool

    init(context: NodeContext) throws {
        try context.requireInputs(2, 3)
        axis = try context.int("axis", default: -1)
        epsilon = try context.float("epsilon", default: 1e-5)
        if try context.int("stash_type", default: 1) != 1 { throw context.unsupported() }
        statsRequested = context.hasOutput(1) || context.hasOutput(2)
    }

    func run(_ inputs: [Tensor?], into output: Tensor?) throws -> [Tensor] {
        let x = try Check.input(inputs, 0, "X")
        let scale = try Check.input(inputs, 1, "Scale")
        let bias = inputs.count > 2 ? inputs[2] : nil
        if x.dataType == .float64 {
            return try DoubleNormalization.layer(x, scale, bias, axis: axis, epsilon, stats: statsRequested, into: output)
        }
        try Check.dataType(x, [.float32], "X")
        let a = try Check.axis(axis, rank: x.rank)
        let rows = x.shape[..<a].reduce(1, *)
        let n = x.shape[a...].reduce(1, *)
        let normShape = Array(x.shape[a...])
        // Scale and B broadcast to the normalised shape.
        let sc = try Self.expanded(scale, normShape, "Scale")
        let bs = try bias.map { try Self.expanded($0, normShape, "B") }
        let out = try Output.tensor(output, .float32, x.shape)
        var statShape = x.shape
        for d in a..<x.rank { statShape[d] = 1 }
        // Mean and InvStdDev only when the node has those outputs; otherwise a scratch for them.
        let meanOut = statsRequested ? try Tensor(allocating: .float32, shape: statShape) : nil
        let invOut = statsRequested ? try Tensor(allocating: .float32, shape: statShape) : nil
        let results = [out] + [meanOut, invOut].compactMap { $0 }
        if x.count == 0 { return results }
        return withUnsafeTemporaryAllocation(of: Float.self, capacity: statsRequested ? 0 : 2 * rows) { scratch in
            let mp = meanOut?.mutableElements(as: Float.self).baseAddress ?? scratch.baseAddress!
            let ip = invOut?.mutableElements(as: Float.self).baseAddress ?? scratch.baseAddress! + rows
            normalizeRows(x, out, rows: rows, n: n, scale: sc, bias: bs, stats: (mp, ip))
            return results
        }
    }

    private func normalizeRows(
        _ x: Tensor, _ out: Tensor, rows: Int, n: Int, scale sc: Tensor, bias bs: Tensor?,
        stats: (UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>)
    ) {
        let (mp, ip) = stats
        let s = sc.elements(as: Float.self).baseAddress!
        let b = bs?.elements(as: Float.self).baseAddress
        let px = x.elements(as: Float.self).baseAddress!
        let d = out.mutableElements(as: Float.self).baseAddress!
        let epsilon = self.epsilon
        // Rows split over the thread budget (the worker pool) when there is enough work.
        Parallel.forEach(rows, costPerItem: n * 8, minimumWork: 1 << 20) { range in
            let lo = range.lowerBound
            Self.normalize(px + lo * n, d + lo * n, rows: range.count, n: n, epsilon: epsilon, stats: (mp + lo, ip + lo)) {
                _, v in v
            }
            for r in range {
                let row = d + r * n
                if let b {
                    for i in 0..<n { row[i] = row[i] * s[i] + b[i] }
                } else {
                    for i in 0..<n { row[i] *= s[i] }
                }
            }
        }
    }

    /// `t` (FP32) broadcast to the normalised shape `shape`, copied only when it differs (the scale
    /// and bias of LayerNormalization and RMSNormalization).
    static func expanded(_ t: Tensor, _ shape: [Int], _ what: String, op: String = "LayerNormalization") throws -> Tensor {
        try Check.dataType(t, [.float32], what)
        if t.shape == shape { return t }
        guard let b = Broadcast.shape([t.shape, shape]), b == shape else {
            throw KernelError.shape("\(op)'s \(what) \(t.shape) does not broadcast to \(shape)")
        }
        return try StridedCopy.tensor(t, shape: shape, strides: Broadcast.strides(of: t.shape, broadcastTo: shape))
    }

    /// Sum of `f(x[i])` over a row, eight lanes at a time (then the tail).
    @inline(__always)
    static func rowSum(_ x: UnsafePointer<Float>, _ n: Int, _ f: (SIMD8<Float>) -> SIMD8<Float>) -> Float {
        let raw = UnsafeRawPointer(x)
        var acc = SIMD8<Float>()
        var i = 0
        while i + 8 <= n {
            acc += f(raw.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self))
            i += 8
        }
        var tail = SIMD8<Float>()
        for k in 0..<(n - i) { tail[k] = x[i + k] }
        // Padding lanes must add nothing: mask them out after f.
        var t = f(tail)
        for k in (n - i)..<8 { t[k] = 0 }
        return acc.sum() + t.sum()
    }

    /// Normalises `rows` rows of `n` values to zero mean and unit variance (two passes per row), then
    /// maps each value through `affine(row, value)`. Writes mean and 1/std per row to `stats` if given.
    @inline(__always)
    static func normalize(
        _ src: UnsafePointer<Float>, _ dst: UnsafeMutablePointer<Float>, rows: Int, n: Int, epsilon: Float,
        stats: (UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>)? = nil, _ affine: (Int, Float) -> Float
    ) {
        for r in 0..<rows {
            let x = src + r * n
            let y = dst + r * n
            let mean = rowSum(x, n) { $0 } / Float(n)
            let sq = rowSum(x, n) { v in
                let d = v - mean
                return d * d
            }
            let inv = 1 / (sq / Float(n) + epsilon).squareRoot()
            for i in 0..<n { y[i] = affine(r, (x[i] - mean) * inv) }
            if let stats {
                stats.0[r] = mean
                stats.1[r] = inv
            }
        }
    }
}

/// LRN across channels: y = x / (bias + alpha / size * sum of x^2 over `size` neighbouring channels)^beta.
struct LRNKernel: BufferedKernel {
    let alpha: Float
    let beta: Float
    let bias: Float
    let size: Int

    init(context: NodeContext) throws {
        try context.requireInputs(1)
        alpha = try context.float("alpha", default: 1e-4)
        beta = try context.float("beta", default: 0.75)
        bias = try context.float("bias", default: 1)
        guard let s = try context.int("size"), s > 0 else { throw context.invalid("needs a positive 'size'") }
        size = s
    }

    func run(_ inputs: [Tensor?], into output: Tensor?) throws -> [Tensor] {
        let x = try Check.input(inputs, 0, "X")
        try Check.dataType(x, [.float32], "X")
        guard x.rank >= 2 else { throw KernelError.shape("LRN needs X of rank 2 or more, got \(x.shape)") }
        let out = try Output.tensor(output, .float32, x.shape)
        if x.count == 0 { return [out] }
        let c = x.shape[1]
        let inner = x.shape[2...].reduce(1, *)
        let src = x.elements(as: Float.self).baseAddress!
        let dst = out.mutableElements(as: Float.self).baseAddress!
        let lo = (size - 1) / 2
        let hi = size - 1 - lo
        let k = alpha / Float(size)
        // The running sums of squares in this thread's scratch.
        ThreadScratch.withFloats(inner) { sums in
            for n in 0..<x.shape[0] {
                let img = src + n * c * inner
                for ch in 0..<c {
                    for i in 0..<inner { sums[i] = 0 }
                    for j in max(0, ch - lo)...min(c - 1, ch + hi) {
                        let p = img + j * inner
                        for i in 0..<inner { sums[i] += p[i] * p[i] }
                    }
                    let o = (n * c + ch) * inner
                    for i in 0..<inner { dst[o + i] = src[o + i] / powf(bias + k * sums[i], beta) }
                }
            }
        }
        return [out]
    }
}

/// The float64 paths of BatchNormalization (inference), InstanceNormalization,
/// LayerNormalization and GroupNormalization: scalar loops in Double with two-pass statistics
/// (the float32 kernels vectorise; float64 models are rare and small). Stateless.
enum DoubleNormalization {
    /// Mean and 1 / sqrt(variance + epsilon) of `n` values (population variance, two passes).
    static func stats(_ x: UnsafePointer<Double>, _ n: Int, _ epsilon: Double) -> (mean: Double, inv: Double) {
        var sum = 0.0
        for i in 0..<n { sum += x[i] }
        let mean = n > 0 ? sum / Double(n) : 0
        var squares = 0.0
        for i in 0..<n {
            let d = x[i] - mean
            squares += d * d
        }
        return (mean, 1 / ((n > 0 ? squares / Double(n) : 0) + epsilon).squareRoot())
    }

    static func batch(_ x: Tensor, _ params: [Tensor], _ epsilon: Float, into output: Tensor?) throws -> Tensor {
        guard x.rank >= 2 else { throw KernelError.shape("BatchNormalization needs X of rank 2 or more, got \(x.shape)") }
        let c = x.shape[1]
        for p in params {
            try Check.dataType(p, [.float64], "BatchNormalization parameter")
            guard p.count == c else {
                throw KernelError.shape("BatchNormalization parameter of shape \(p.shape) does not match \(c) channels of \(x.shape)")
            }
        }
        let out = try Output.tensor(output, .float64, x.shape)
        if x.count == 0 { return out }
        let (scale, bias, mean, variance) = (
            params[0].elements(as: Double.self), params[1].elements(as: Double.self), params[2].elements(as: Double.self),
            params[3].elements(as: Double.self)
        )
        let inner = x.shape[2...].reduce(1, *)
        let src = x.elements(as: Double.self).baseAddress!
        let dst = out.mutableElements(as: Double.self).baseAddress!
        for img in 0..<x.shape[0] {
            for ch in 0..<c {
                let a = scale[ch] / (variance[ch] + Double(epsilon)).squareRoot()
                let b = bias[ch] - mean[ch] * a
                let off = (img * c + ch) * inner
                for i in 0..<inner { dst[off + i] = src[off + i] * a + b }
            }
        }
        return out
    }

    static func instance(_ x: Tensor, _ scale: Tensor, _ bias: Tensor, _ epsilon: Float, into output: Tensor?) throws -> Tensor {
        try Check.dataType(scale, [.float64], "scale")
        try Check.dataType(bias, [.float64], "B")
        guard x.rank >= 2, scale.count == x.shape[1], bias.count == x.shape[1] else {
            throw KernelError.shape("InstanceNormalization: scale \(scale.shape) and B \(bias.shape) must match channels of \(x.shape)")
        }
        let out = try Output.tensor(output, .float64, x.shape)
        if x.count == 0 { return out }
        let c = x.shape[1]
        let inner = x.shape[2...].reduce(1, *)
        let (sc, bs) = (scale.elements(as: Double.self), bias.elements(as: Double.self))
        let src = x.elements(as: Double.self).baseAddress!
        let dst = out.mutableElements(as: Double.self).baseAddress!
        for r in 0..<(x.shape[0] * c) {
            let (mean, inv) = stats(src + r * inner, inner, Double(epsilon))
            for i in 0..<inner { dst[r * inner + i] = (src[r * inner + i] - mean) * inv * sc[r % c] + bs[r % c] }
        }
        return out
    }

    /// LayerNormalization; Mean and InvStdDev (when the node has them) are float32, the stash type.
    static func layer(
        _ x: Tensor, _ scale: Tensor, _ bias: Tensor?, axis: Int, _ epsilon: Float, stats wanted: Bool, into output: Tensor?
    ) throws -> [Tensor] {
        let a = try Check.axis(axis, rank: x.rank)
        let rows = x.shape[..<a].reduce(1, *)
        let n = x.shape[a...].reduce(1, *)
        let normShape = Array(x.shape[a...])
        let sc = try expanded(scale, normShape, "Scale")
        let bs = try bias.map { try expanded($0, normShape, "B") }
        let out = try Output.tensor(output, .float64, x.shape)
        var statShape = x.shape
        for d in a..<x.rank { statShape[d] = 1 }
        let meanOut = wanted ? try Tensor(allocating: .float32, shape: statShape) : nil
        let invOut = wanted ? try Tensor(allocating: .float32, shape: statShape) : nil
        let results = [out] + [meanOut, invOut].compactMap { $0 }
        if x.count == 0 { return results }
        let s = sc.elements(as: Double.self)
        let b = bs?.elements(as: Double.self)
        let src = x.elements(as: Double.self).baseAddress!
        let dst = out.mutableElements(as: Double.self).baseAddress!
        for r in 0..<rows {
            let (mean, inv) = stats(src + r * n, n, Double(epsilon))
            for i in 0..<n { dst[r * n + i] = (src[r * n + i] - mean) * inv * s[i] + (b?[i] ?? 0) }
            meanOut?.mutableElements(as: Float.self)[r] = Float(mean)
            invOut?.mutableElements(as: Float.self)[r] = Float(inv)
        }
        return results
    }

    /// `t` (float64) broadcast to `shape`.
    static func expanded(_ t: Tensor, _ shape: [Int], _ what: String) throws -> Tensor {
        try Check.dataType(t, [.float64], what)
        if t.shape == shape { return t }
        guard let b = Broadcast.shape([t.shape, shape]), b == shape else {
            throw KernelError.shape("LayerNormalization's \(what) \(t.shape) does not broadcast to \(shape)")
        }
        return try StridedCopy.tensor(t, shape: shape, strides: Broadcast.strides(of: t.shape, broadcastTo: shape))
    }

    /// GroupNormalization: `groups` groups of channels per image, scale and bias per channel
    /// (`perChannel`, opset 21) or per group.
    static func group(
        _ x: Tensor, _ scale: Tensor, _ bias: Tensor, groups: Int, perChannel: Bool, _ epsilon: Float, into output: Tensor?
    ) throws -> Tensor {
        try Check.dataType(scale, [.float64], "scale")
        try Check.dataType(bias, [.float64], "bias")
        guard x.rank >= 2, x.shape[1] % groups == 0 else {
            throw KernelError.shape("GroupNormalization needs X [N, C, ...] with C divisible by num_groups \(groups), got \(x.shape)")
        }
        let c = x.shape[1]
        let expected = perChannel ? c : groups
        guard scale.count == expected, bias.count == expected else {
            throw KernelError.shape(
                "GroupNormalization's scale \(scale.shape) and bias \(bias.shape) need \(expected) values (one per \(perChannel ? "channel" : "group"))")
        }
        let out = try Output.tensor(output, .float64, x.shape)
        if x.count == 0 { return out }
        let inner = x.shape[2...].reduce(1, *)
        let perGroup = c / groups
        let n = perGroup * inner
        let (ps, pb) = (scale.elements(as: Double.self), bias.elements(as: Double.self))
        let src = x.elements(as: Double.self).baseAddress!
        let dst = out.mutableElements(as: Double.self).baseAddress!
        for r in 0..<(x.shape[0] * groups) {
            let (mean, inv) = stats(src + r * n, n, Double(epsilon))
            let g = r % groups
            for j in 0..<perGroup {
                let k = perChannel ? g * perGroup + j : g
                for i in 0..<inner {
                    let at = r * n + j * inner + i
                    dst[at] = (src[at] - mean) * inv * ps[k] + pb[k]
                }
            }
        }
        return out
    }
}
