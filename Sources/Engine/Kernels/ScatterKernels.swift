import Tensors

/// How ScatterND and ScatterElements combine an update with the value already there (`reduction`,
/// opset 16: none, add, mul; opset 18: max, min).
enum ScatterReduction: String, Sendable {
    case none, add, mul, max, min

    init(context: NodeContext) throws {
        let name = try context.string("reduction", default: "none")
        guard let r = ScatterReduction(rawValue: name), context.opset >= 18 || (r != .max && r != .min),
            context.opset >= 16 || r == .none
        else { throw context.invalid("has reduction '\(name)', not defined in opset \(context.opset)") }
        self = r
    }

    /// Applies the updates: `pairs` calls its body with (destination element, update element)
    /// for every update in order. `none` is a byte copy for any element type; the others are for
    /// FP32, INT64 and INT32 (integers wrap).
    func apply(_ out: Tensor, _ updates: Tensor, _ op: String, _ pairs: ((Int, Int) -> Void) throws -> Void) throws {
        switch (self, out.dataType) {
        case (.none, _):
            let size = out.dataType.byteSize
            let d = out.mutableBytes.baseAddress!
            let s = updates.rawBytes.baseAddress!
            try pairs { (d + $0 * size).copyMemory(from: s + $1 * size, byteCount: size) }
        case (_, .float32): try combine(Float.self, out, updates, pairs, +, *)
        case (_, .int64): try combine(Int64.self, out, updates, pairs, &+, &*)
        case (_, .int32): try combine(Int32.self, out, updates, pairs, &+, &*)
        default:
            throw KernelError.failed("\(op) with reduction '\(rawValue)' supports FP32, INT64 and INT32, got \(out.dataType.v2Name)")
        }
    }

    private func combine<T: Comparable>(
        _: T.Type, _ out: Tensor, _ updates: Tensor, _ pairs: ((Int, Int) -> Void) throws -> Void,
        _ add: @escaping (T, T) -> T, _ mul: @escaping (T, T) -> T
    ) throws {
        let d = out.mutableElements(as: T.self).baseAddress!
        let s = updates.elements(as: T.self).baseAddress!
        switch self {
        case .add: try pairs { d[$0] = add(d[$0], s[$1]) }
        case .mul: try pairs { d[$0] = mul(d[$0], s[$1]) }
        case .max: try pairs { d[$0] = Swift.max(d[$0], s[$1]) }
        case .min: try pairs { d[$0] = Swift.min(d[$0], s[$1]) }
        case .none: try pairs { d[$0] = s[$1] }
        }
    }
}

/// ScatterND(data, indices, updates): a copy of data where each index tuple (last axis of indices,
/// negative values count from the end) receives its slice of updates, combined by `reduction`.
struct ScatterNDKernel: BufferedKernel {
    let reduction: ScatterReduction

    init(context: NodeContext) throws {
        try context.requireInputs(3)
        reduction = try ScatterReduction(context: context)
    }

    func run(_ inputs: [Tensor?], into output: Tensor?) throws -> [Tensor] {
        let x = try Check.input(inputs, 0, "data")
        let idxTensor = try Check.input(inputs, 1, "indices")
        let updates = try Check.input(inputs, 2, "updates")
        let indices = try IntInput.values(idxTensor, "ScatterND's indices")
        guard updates.dataType == x.dataType else {
            throw KernelError.failed("ScatterND's updates are \(updates.dataType.v2Name), data \(x.dataType.v2Name)")
        }
        guard x.rank >= 1, idxTensor.rank >= 1 else {
            throw KernelError.shape("ScatterND needs data and indices of rank 1 or more, got \(x.shape) and \(idxTensor.shape)")
        }
        let k = idxTensor.shape[idxTensor.rank - 1]
        guard k <= x.rank, updates.shape == Array(idxTensor.shape.dropLast()) + Array(x.shape[k...]) else {
            throw KernelError.shape("ScatterND cannot scatter updates \(updates.shape) into data \(x.shape) with indices \(idxTensor.shape)")
        }
        let out = try Output.tensor(output, x.dataType, x.shape)
        if out.count == 0 { return [out] }
        out.mutableBytes.baseAddress!.copyMemory(from: x.rawBytes.baseAddress!, byteCount: x.byteCount)
        let slice = x.shape[k...].reduce(1, *)
        let strides = Broadcast.contiguousStrides(x.shape)
        let tuples = idxTensor.shape.dropLast().reduce(1, *)
        func offset(_ t: Int) throws -> Int {
            var offset = 0
            for j in 0..<k {
                offset += try IndexCheck.normalize(indices[t * k + j], x.shape[j], "ScatterND") * strides[j]
            }
            return offset
        }
        if reduction == .none {
            // Whole slices at a time (the common case: BART's, swin's index_put), not element by element.
            let bytes = slice * x.dataType.byteSize
            let d = out.mutableBytes.baseAddress!
            let s = updates.rawBytes.baseAddress!
            for t in 0..<tuples {
                let at = try offset(t) * x.dataType.byteSize
                (d + at).copyMemory(from: s + t * bytes, byteCount: bytes)
            }
            return [out]
        }
        try reduction.apply(out, updates, "ScatterND") { body in
            for t in 0..<tuples {
                let base = try offset(t)
                for e in 0..<slice { body(base + e, t * slice + e) }
            }
        }
        return [out]
    }
}

/// ScatterElements(data, indices, updates) along `axis`: updates[i...] goes to data at i... with
/// the `axis` coordinate replaced by indices[i...] (negative counts from the end), combined by
/// `reduction`.
struct ScatterElementsKernel: BufferedKernel {
    let axis: Int
    let reduction: ScatterReduction

    init(context: NodeContext) throws {
        try context.requireInputs(3)
        axis = try context.int("axis", default: 0)
        reduction = try ScatterReduction(context: context)
    }

    func run(_ inputs: [Tensor?], into output: Tensor?) throws -> [Tensor] {
        let x = try Check.input(inputs, 0, "data")
        let idxTensor = try Check.input(inputs, 1, "indices")
        let updates = try Check.input(inputs, 2, "updates")
        let indices = try IntInput.values(idxTensor, "ScatterElements' indices")
        guard updates.dataType == x.dataType else {
            throw KernelError.failed("ScatterElements' updates are \(updates.dataType.v2Name), data \(x.dataType.v2Name)")
        }
        let a = try Check.axis(axis, rank: x.rank)
        guard idxTensor.shape == updates.shape, idxTensor.rank == x.rank,
            (0..<x.rank).allSatisfy({ $0 == a || idxTensor.shape[$0] <= x.shape[$0] })
        else {
            throw KernelError.shape(
                "ScatterElements cannot scatter updates \(updates.shape) with indices \(idxTensor.shape) into data \(x.shape) on axis \(axis)")
        }
        let out = try Output.tensor(output, x.dataType, x.shape)
        if out.count == 0 { return [out] }
        out.mutableBytes.baseAddress!.copyMemory(from: x.rawBytes.baseAddress!, byteCount: x.byteCount)
        let xs = Broadcast.contiguousStrides(x.shape)
        let shape = idxTensor.shape
        try reduction.apply(out, updates, "ScatterElements") { body in
            try IndexCheck.forEachElement(
                indices, shape: shape, strides: xs, axis: a, size: x.shape[a], "ScatterElements", body)
        }
        return [out]
    }
}

/// DepthToSpace and SpaceToDepth (`mode` DCR, the default, or CRD) on NCHW with
/// `blocksize` b: out[n, c, h*b+i, w*b+j] = in[n, channel(c, i, j), h, w] and its inverse. Any
/// element type (byte copies).
struct DepthSpaceKernel: BufferedKernel {
    let toSpace: Bool
    let block: Int
    /// CRD: channel c*b*b + i*b + j; DCR: (i*b + j)*C' + c.
    let crd: Bool

    init(context: NodeContext, toSpace: Bool) throws {
        try context.requireInputs(1)
        self.toSpace = toSpace
        guard let b = try context.int("blocksize"), b >= 1, b <= 1 << 16 else {
            throw context.invalid("needs a 'blocksize' of 1 or more")
        }
        block = b
        // DepthToSpace has `mode` from opset 11, SpaceToDepth from opset 28.
        let mode = try context.string("mode", default: "DCR")
        guard mode == "DCR" || mode == "CRD" else { throw context.invalid("has mode '\(mode)' (DCR or CRD)") }
        crd = mode == "CRD"
    }

    func run(_ inputs: [Tensor?], into output: Tensor?) throws -> [Tensor] {
        let x = try Check.input(inputs, 0, "input")
        let op = toSpace ? "DepthToSpace" : "SpaceToDepth"
        guard x.rank == 4 else { throw KernelError.shape("\(op) needs a 4-D NCHW input, got \(x.shape)") }
        let b = block
        let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        // The space side (C', H*b, W*b) and the depth side (C'*b*b, H, W).
        let (cs, hs, ws): (Int, Int, Int)
        if toSpace {
            guard c % (b * b) == 0 else { throw KernelError.shape("DepthToSpace: channels \(c) are not a multiple of \(b * b)") }
            let (hh, o1) = h.multipliedReportingOverflow(by: b)
            let (ww, o2) = w.multipliedReportingOverflow(by: b)
            guard !o1, !o2 else { throw KernelError.shape("DepthToSpace output of \(x.shape) with blocksize \(b) is too large") }
            (cs, hs, ws) = (c / (b * b), hh, ww)
        } else {
            guard h % b == 0, w % b == 0 else { throw KernelError.shape("SpaceToDepth: \(h)x\(w) is not a multiple of blocksize \(b)") }
            let (cc, o) = c.multipliedReportingOverflow(by: b * b)
            guard !o else { throw KernelError.shape("SpaceToDepth output of \(x.shape) with blocksize \(b) is too large") }
            _ = cc
            (cs, hs, ws) = (c, h, w)
        }
        let (hd, wd) = (hs / b, ws / b)
        let outShape = toSpace ? [n, cs, hs, ws] : [n, cs * b * b, hd, wd]
        let out = try Output.tensor(output, x.dataType, outShape)
        if out.count == 0 { return [out] }
        let size = x.dataType.byteSize
        let src = x.rawBytes.baseAddress!
        let dst = out.mutableBytes.baseAddress!
        let depthChannels = cs * b * b
        for ni in 0..<n {
            for ci in 0..<cs {
                for i in 0..<b {
                    for j in 0..<b {
                        let dc = crd ? (ci * b + i) * b + j : (i * b + j) * cs + ci
                        let depthPlane = (ni * depthChannels + dc) * hd * wd
                        let spacePlane = (ni * cs + ci) * hs * ws
                        for hi in 0..<hd {
                            let depthRow = depthPlane + hi * wd
                            let spaceRow = spacePlane + (hi * b + i) * ws + j
                            if toSpace {
                                for wi in 0..<wd {
                                    (dst + (spaceRow + wi * b) * size).copyMemory(from: src + (depthRow + wi) * size, byteCount: size)
                                }
                            } else {
                                for wi in 0..<wd {
                                    (dst + (depthRow + wi) * size).copyMemory(from: src + (spaceRow + wi * b) * size, byteCount: size)
                                }
                            }
                        }
                    }
                }
            }
        }
        return [out]
    }
}

/// TensorScatter(past_cache, update, write_indices): a copy of the cache in which, for each batch
/// entry b, the `update` rows along `axis` (default -2, never 0) are written from position
/// write_indices[b] (0 when the input is absent) on; `mode` linear requires them to fit, circular
/// wraps them around the cache's length. Any element type (byte copies).
struct TensorScatterKernel: BufferedKernel {
    let axis: Int
    let circular: Bool

    init(context: NodeContext) throws {
        try context.requireInputs(2, 3)
        axis = try context.int("axis", default: -2)
        let mode = try context.string("mode", default: "linear")
        guard mode == "linear" || mode == "circular" else { throw context.invalid("has mode '\(mode)' (linear or circular)") }
        circular = mode == "circular"
    }

    func run(_ inputs: [Tensor?], into output: Tensor?) throws -> [Tensor] {
        let cache = try Check.input(inputs, 0, "past_cache")
        let update = try Check.input(inputs, 1, "update")
        guard update.dataType == cache.dataType else {
            throw KernelError.failed("TensorScatter's update is \(update.dataType.v2Name), the cache \(cache.dataType.v2Name)")
        }
        let a = try Check.axis(axis, rank: cache.rank)
        guard a != 0 else { throw KernelError.shape("TensorScatter's axis \(axis) is the batch axis of \(cache.shape)") }
        var expected = cache.shape
        expected[a] = update.rank == cache.rank ? update.shape[a] : -1
        guard update.shape == expected, update.shape[a] <= cache.shape[a] else {
            throw KernelError.shape("TensorScatter cannot write update \(update.shape) into cache \(cache.shape) along axis \(axis)")
        }
        let batches = cache.shape[0]
        var writes = [Int](repeating: 0, count: batches)
        if let w = try IntInput.optional(inputs, 2, "TensorScatter's write_indices") {
            guard w.count == batches else {
                throw KernelError.shape("TensorScatter's write_indices hold \(w.count) values for a batch of \(batches)")
            }
            writes = w
        }
        let length = cache.shape[a]
        let steps = update.shape[a]
        for w in writes where w < 0 || (!circular && w + steps > length) {
            throw KernelError.shape("TensorScatter's write index \(w) with \(steps) updates does not fit a cache of \(length)")
        }
        let out = try Output.tensor(output, cache.dataType, cache.shape)
        if out.count == 0 { return [out] }
        out.mutableBytes.baseAddress!.copyMemory(from: cache.rawBytes.baseAddress!, byteCount: cache.byteCount)
        if update.count == 0 { return [out] }
        let row = cache.shape[(a + 1)...].reduce(1, *) * cache.dataType.byteSize
        let perBatch = cache.shape[1..<a].reduce(1, *)
        let src = update.rawBytes.baseAddress!
        let dst = out.mutableBytes.baseAddress!
        for b in 0..<batches {
            for p in 0..<perBatch {
                let prefix = b * perBatch + p
                for s in 0..<steps {
                    var t = writes[b] + s
                    if circular { t %= length }
                    (dst + (prefix * length + t) * row).copyMemory(from: src + (prefix * steps + s) * row, byteCount: row)
                }
            }
        }
        return [out]
    }
}
