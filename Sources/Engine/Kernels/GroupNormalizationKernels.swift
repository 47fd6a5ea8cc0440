import Tensors

/// GroupNormalization (opsets 18 and 21): X [N, C, ...] normalised to zero mean and unit variance
/// per image and group of C / num_groups consecutive channels, then y = scale * x̂ + bias. In
/// opset 18 scale and bias have one value per group, from opset 21 one per channel. `stash_type`
/// 1 (float32 statistics) is the only one supported.
struct GroupNormalizationKernel: BufferedKernel {
    let groups: Int
    let epsilon: Float
    /// Whether scale and bias hold one value per channel (opset 21) or per group (opset 18).
    let perChannel: Bool

    init(context: NodeContext) throws {
        try context.requireInputs(3)
        guard let g = try context.int("num_groups") else { throw context.invalid("has no 'num_groups'") }
        guard g >= 1 else { throw context.invalid("has num_groups \(g); it must be 1 or more") }
        groups = g
        epsilon = try context.float("epsilon", default: 1e-5)
        if try context.int("stash_type", default: 1) != 1 { throw context.unsupported() }
        perChannel = context.opset >= 21
    }

    func run(_ inputs: [Tensor?], into output: Tensor?) throws -> [Tensor] {
        let x = try Check.input(inputs, 0, "X")
        let scale = try Check.input(inputs, 1, "scale")
        let bias = try Check.input(inputs, 2, "bias")
        if x.dataType == .float64 {
            return [try DoubleNormalization.group(x, scale, bias, groups: groups, perChannel: perChannel, epsilon, into: output)]
        }
        try Check.dataType(x, [.float32], "X")
        try Check.dataType(scale, [.float32], "scale")
        try Check.dataType(bias, [.float32], "bias")
        guard x.rank >= 2, x.shape[1] % groups == 0 else {
            throw KernelError.shape("GroupNormalization needs X [N, C, ...] with C divisible by num_groups \(groups), got \(x.shape)")
        }
        let c = x.shape[1]
        let expected = perChannel ? c : groups
        guard scale.count == expected, bias.count == expected else {
            throw KernelError.shape(
                "GroupNormalization's scale \(scale.shape) and bias \(bias.shape) need \(expected) values (one per \(perChannel ? "channel" : "group"))")
        }
        let out = try Output.tensor(output, .float32, x.shape)
        if x.count == 0 { return [out] }
        let inner = x.shape[2...].reduce(1, *)
        let perGroup = c / groups
        let n = perGroup * inner
        let rows = x.shape[0] * groups
        let px = x.elements(as: Float.self).baseAddress!
        let py = out.mutableElements(as: Float.self).baseAddress!
        let ps = scale.elements(as: Float.self).baseAddress!
        let pb = bias.elements(as: Float.self).baseAddress!
        let (groups, epsilon, perChannel) = (self.groups, self.epsilon, self.perChannel)
        Parallel.forEach(rows, costPerItem: n * 8, minimumWork: 1 << 20) { range in
            for r in range {
                let src = px + r * n
                let dst = py + r * n
                let mean = LayerNormalizationKernel.rowSum(src, n) { $0 } / Float(n)
                let sq = LayerNormalizationKernel.rowSum(src, n) { v in
                    let d = v - mean
                    return d * d
                }
                let inv = 1 / (sq / Float(n) + epsilon).squareRoot()
                let g = r % groups
                for j in 0..<perGroup {
                    let k = perChannel ? g * perGroup + j : g
                    let a = ps[k] * inv
                    let b = pb[k] - mean * a
                    let s = src + j * inner
                    let d = dst + j * inner
                    for i in 0..<inner { d[i] = s[i] * a + b }
                }
            }
        }
        return [out]
    }
}

/// LpNormalization: x divided by its L1 (p = 1) or L2 (p = 2) norm along `axis` (default -1);
/// where the norm is 0 the output is 0.
struct LpNormalizationKernel: BufferedKernel {
    let axis: Int
    let p: Int

    init(context: NodeContext) throws {
        try context.requireInputs(1)
        axis = try context.int("axis", default: -1)
        p = try context.int("p", default: 2)
        guard p == 1 || p == 2 else { throw context.invalid("has p \(p); only 1 and 2 are defined") }
    }

    func run(_ inputs: [Tensor?], into output: Tensor?) throws -> [Tensor] {
        let x = try Check.input(inputs, 0, "input")
        try Check.dataType(x, [.float32], "input")
        let a = try Check.axis(axis, rank: max(x.rank, 1))
        let out = try Output.tensor(output, .float32, x.shape)
        if x.count == 0 { return [out] }
        let dims = x.rank == 0 ? [1] : x.shape
        let outer = dims[..<a].reduce(1, *)
        let length = dims[a]
        let inner = dims[(a + 1)...].reduce(1, *)
        let px = x.elements(as: Float.self).baseAddress!
        let py = out.mutableElements(as: Float.self).baseAddress!
        let l1 = p == 1
        @inline(__always) func scaled(_ norm: Float) -> Float { norm == 0 ? 0 : 1 / norm }
        Parallel.forEach(outer, costPerItem: length * inner * 3, minimumWork: 1 << 20) { range in
            if inner == 1 {
                for o in range {
                    let src = px + o * length
                    let dst = py + o * length
                    let sum = l1
                        ? LayerNormalizationKernel.rowSum(src, length) { pointwiseMax($0, -$0) }
                        : LayerNormalizationKernel.rowSum(src, length) { $0 * $0 }
                    let k = scaled(l1 ? sum : sum.squareRoot())
                    for i in 0..<length { dst[i] = src[i] * k }
                }
                return
            }
            // The norms of a block's `inner` columns, accumulated plane by plane.
            for o in range {
                let src = px + o * length * inner
                let dst = py + o * length * inner
                withUnsafeTemporaryAllocation(of: Float.self, capacity: inner) { acc in
                    let sums = acc.baseAddress!
                    sums.update(repeating: 0, count: inner)
                    for j in 0..<length {
                        let s = src + j * inner
                        if l1 {
                            for i in 0..<inner { sums[i] += abs(s[i]) }
                        } else {
                            for i in 0..<inner { sums[i] += s[i] * s[i] }
                        }
                    }
                    for i in 0..<inner { sums[i] = scaled(l1 ? sums[i] : sums[i].squareRoot()) }
                    for j in 0..<length {
                        let s = src + j * inner
                        let d = dst + j * inner
                        for i in 0..<inner { d[i] = s[i] * sums[i] }
                    }
                }
            }
        }
        return [out]
    }
}

/// MeanVarianceNormalization: (x - mean) / (std + 1e-9) with mean and (population) standard
/// deviation over `axes` (default [0, 2, 3]), as the operator's function body defines it.
struct MeanVarianceNormalizationKernel: BufferedKernel {
    let axes: [Int]

    init(context: NodeContext) throws {
        try context.requireInputs(1)
        axes = try context.ints("axes", default: [0, 2, 3])
    }

    func run(_ inputs: [Tensor?], into output: Tensor?) throws -> [Tensor] {
        let x = try Check.input(inputs, 0, "X")
        try Check.dataType(x, [.float32], "X")
        let rank = x.rank
        var reduced = [Bool](repeating: false, count: rank)
        for axis in axes {
            let a = try Check.axis(axis, rank: rank, "axes")
            guard !reduced[a] else { throw KernelError.shape("MeanVarianceNormalization's axes \(axes) repeat axis \(a)") }
            reduced[a] = true
        }
        let out = try Output.tensor(output, .float32, x.shape)
        if x.count == 0 || rank == 0 { return [out] }
        // Each element's statistic: strides over the kept dimensions (0 along reduced ones).
        var statStrides = [Int](repeating: 0, count: rank)
        var xStrides = [Int](repeating: 0, count: rank)
        var stats = 1
        var step = 1
        for d in stride(from: rank - 1, through: 0, by: -1) {
            xStrides[d] = step
            step *= x.shape[d]
            if !reduced[d] {
                statStrides[d] = stats
                stats *= x.shape[d]
            }
        }
        let count = Float(x.count / stats)
        let inner = x.shape[rank - 1]
        let innerStep = statStrides[rank - 1]
        let odometer = Odometer(shape: Array(x.shape.dropLast()), strides: [Array(xStrides.dropLast()), Array(statStrides.dropLast())])
        let px = x.elements(as: Float.self).baseAddress!
        let py = out.mutableElements(as: Float.self).baseAddress!
        let buffer = try Tensor(allocating: .float32, shape: [2, stats], zeroed: true)
        let mean = buffer.mutableElements(as: Float.self).baseAddress!
        let deviation = mean + stats
        odometer.walk(0..<odometer.rows) { _, offsets in
            let src = px + offsets[0]
            let m = mean + offsets[1]
            if innerStep == 0 {
                m[0] += LayerNormalizationKernel.rowSum(src, inner) { $0 }
            } else {
                for i in 0..<inner { m[i] += src[i] }
            }
        }
        for s in 0..<stats { mean[s] /= count }
        odometer.walk(0..<odometer.rows) { _, offsets in
            let src = px + offsets[0]
            let m = mean + offsets[1]
            let v = deviation + offsets[1]
            if innerStep == 0 {
                let mu = m[0]
                v[0] += LayerNormalizationKernel.rowSum(src, inner) { d in (d - mu) * (d - mu) }
            } else {
                for i in 0..<inner { v[i] += (src[i] - m[i]) * (src[i] - m[i]) }
            }
        }
        // 1 / (std + 1e-9), in place of the sums of squares.
        for s in 0..<stats { deviation[s] = 1 / ((deviation[s] / count).squareRoot() + 1e-9) }
        odometer.walk(0..<odometer.rows) { _, offsets in
            let src = px + offsets[0]
            let dst = py + offsets[0]
            let m = mean + offsets[1]
            let k = deviation + offsets[1]
            if innerStep == 0 {
                let (mu, scale) = (m[0], k[0])
                for i in 0..<inner { dst[i] = (src[i] - mu) * scale }
            } else {
                for i in 0..<inner { dst[i] = (src[i] - m[i]) * k[i] }
            }
        }
        return [out]
    }
}
