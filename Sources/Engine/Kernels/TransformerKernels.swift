import Tensors

/// RMSNormalization (opset 23): each row of the axes from `axis` on is divided by
/// sqrt(mean(x^2) + epsilon) and multiplied by Scale (broadcast to those axes). float32;
/// `stash_type` other than 1 (float32 statistics) is not supported.
struct RMSNormalizationKernel: BufferedKernel {
    let axis: Int
    let epsilon: Float

    init(context: NodeContext) throws {
        try context.requireInputs(2)
        axis = try context.int("axis", default: -1)
        epsilon = try context.float("epsilon", default: 1e-5)
        if try context.int("stash_type", default: 1) != 1 { throw context.unsupported() }
    }

    func run(_ inputs: [Tensor?], into output: Tensor?) throws -> [Tensor] {
        let x = try Check.input(inputs, 0, "X")
        try Check.dataType(x, [.float32], "X")
        let a = try Check.axis(axis, rank: x.rank)
        let rows = x.shape[..<a].reduce(1, *)
        let n = x.shape[a...].reduce(1, *)
        let scale = try LayerNormalizationKernel.expanded(
            try Check.input(inputs, 1, "scale"), Array(x.shape[a...]), "scale", op: "RMSNormalization")
        let out = try Output.tensor(output, .float32, x.shape)
        guard x.count > 0 else { return [out] }
        let s = scale.elements(as: Float.self).baseAddress!
        let px = x.elements(as: Float.self).baseAddress!
        let d = out.mutableElements(as: Float.self).baseAddress!
        let epsilon = self.epsilon
        Parallel.forEach(rows, costPerItem: n * 4, minimumWork: 1 << 20) { range in
            for r in range {
                let row = px + r * n
                let y = d + r * n
                let meanSquare = LayerNormalizationKernel.rowSum(row, n) { $0 * $0 } / Float(n)
                let inverse = 1 / (meanSquare + epsilon).squareRoot()
                for i in 0..<n { y[i] = row[i] * inverse * s[i] }
            }
        }
        return [out]
    }
}

/// RotaryEmbedding (opset 23): rotates the first `rotary_embedding_dim` values of each head (all of
/// them by default) by the angles whose cosines and sines the caches hold, pairing value j with
/// j + dim/2 (or 2j with 2j+1 when `interleaved`); the rest pass through. Input is 4-D
/// `(batch, heads, sequence, head size)` or 3-D `(batch, sequence, heads * head size)` with
/// `num_heads`. With `position_ids` `(batch, sequence)` the caches are `(positions, dim/2)` tables;
/// without, they are `(batch, sequence, dim/2)`. float32.
struct RotaryEmbeddingKernel: BufferedKernel {
    let interleaved: Bool
    let rotaryDim: Int
    let numHeads: Int

    init(context: NodeContext) throws {
        try context.requireInputs(3, 4)
        interleaved = try context.int("interleaved", default: 0) != 0
        rotaryDim = try context.int("rotary_embedding_dim", default: 0)
        numHeads = try context.int("num_heads", default: 0)
        guard rotaryDim >= 0, rotaryDim % 2 == 0, numHeads >= 0 else {
            throw context.invalid(
                "has rotary_embedding_dim \(rotaryDim) and num_heads \(numHeads); they must not be negative "
                    + "and the dimension must be even")
        }
    }

    func run(_ inputs: [Tensor?], into output: Tensor?) throws -> [Tensor] {
        let x = try Check.input(inputs, 0, "input")
        let cosCache = try Check.input(inputs, 1, "cos_cache")
        let sinCache = try Check.input(inputs, 2, "sin_cache")
        let positions = inputs.count > 3 ? inputs[3] : nil
        for (t, name) in [(x, "input"), (cosCache, "cos_cache"), (sinCache, "sin_cache")] {
            try Check.dataType(t, [.float32], name)
        }
        guard x.rank == 3 || x.rank == 4 else {
            throw KernelError.shape("RotaryEmbedding's input has shape \(x.shape); it must be 3-D or 4-D")
        }
        let batch = x.shape[0]
        let heads: Int
        let length: Int
        let headSize: Int
        if x.rank == 4 {
            (heads, length, headSize) = (x.shape[1], x.shape[2], x.shape[3])
        } else {
            guard numHeads > 0, x.shape[2] % numHeads == 0 else {
                throw KernelError.shape(
                    "RotaryEmbedding with a 3-D input \(x.shape) needs num_heads dividing its last dimension (got \(numHeads))")
            }
            (heads, length, headSize) = (numHeads, x.shape[1], x.shape[2] / numHeads)
        }
        let dim = rotaryDim == 0 ? headSize : rotaryDim
        guard dim <= headSize, dim % 2 == 0 else {
            throw KernelError.shape("RotaryEmbedding's rotary dimension \(dim) does not fit head size \(headSize) (or is odd)")
        }
        let half = dim / 2
        // Where row (b, s) of the caches is: a position's row, or the (b, s) row itself.
        var cacheRows: [Int]
        if let positions {
            try Check.dataType(positions, [.int64], "position_ids")
            guard positions.shape == [batch, length], cosCache.rank == 2 else {
                throw KernelError.shape(
                    "RotaryEmbedding's position_ids \(positions.shape) must be [\(batch), \(length)] and the caches "
                        + "2-D, got cos_cache \(cosCache.shape)")
            }
            let table = cosCache.shape[0]
            cacheRows = try positions.elements(as: Int64.self).map { p in
                guard p >= 0, p < table else {
                    throw KernelError.shape("RotaryEmbedding's position id \(p) is outside the caches' \(table) rows")
                }
                return Int(p)
            }
        } else {
            guard cosCache.rank == 3, cosCache.shape[0] == batch, cosCache.shape[1] == length else {
                throw KernelError.shape(
                    "RotaryEmbedding without position_ids needs caches of [\(batch), \(length), \(half)], got \(cosCache.shape)")
            }
            cacheRows = Array(0..<(batch * length))
        }
        guard cosCache.shape == sinCache.shape, cosCache.shape.last == half else {
            throw KernelError.shape(
                "RotaryEmbedding's cos_cache \(cosCache.shape) and sin_cache \(sinCache.shape) must match, "
                    + "with last dimension \(half) (half the rotary dimension)")
        }
        let out = try Output.tensor(output, .float32, x.shape)
        guard x.count > 0 else { return [out] }
        let px = x.elements(as: Float.self).baseAddress!
        let py = out.mutableElements(as: Float.self).baseAddress!
        let pc = cosCache.elements(as: Float.self).baseAddress!
        let ps = sinCache.elements(as: Float.self).baseAddress!
        let fourD = x.rank == 4
        let interleaved = self.interleaved
        for b in 0..<batch {
            for s in 0..<length {
                let c = pc + cacheRows[b * length + s] * half
                let sn = ps + cacheRows[b * length + s] * half
                for h in 0..<heads {
                    let offset = fourD ? ((b * heads + h) * length + s) * headSize : ((b * length + s) * heads + h) * headSize
                    let src = px + offset
                    let dst = py + offset
                    if interleaved {
                        for j in 0..<half {
                            let (x1, x2) = (src[2 * j], src[2 * j + 1])
                            dst[2 * j] = c[j] * x1 - sn[j] * x2
                            dst[2 * j + 1] = sn[j] * x1 + c[j] * x2
                        }
                    } else {
                        for j in 0..<half {
                            let (x1, x2) = (src[j], src[half + j])
                            dst[j] = c[j] * x1 - sn[j] * x2
                            dst[half + j] = sn[j] * x1 + c[j] * x2
                        }
                    }
                    if dim < headSize { (dst + dim).update(from: src + dim, count: headSize - dim) }
                }
            }
        }
        return [out]
    }
}
