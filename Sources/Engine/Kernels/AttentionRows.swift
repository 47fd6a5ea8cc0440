#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Tensors

/// Attention's `attn_mask`, broadcast right-aligned to `(batch, q heads, q length, total length)`:
/// where each (batch, head, query row) finds its row of the mask, and how long that row is (keys past
/// it are masked, as the spec pads a short mask).
struct AttentionMask: @unchecked Sendable {
    enum Values {
        case none
        case bool(UnsafePointer<Bool>)
        case float(UnsafePointer<Float>)
    }
    /// Keeps the mask's storage alive while the pointers are used.
    let tensor: Tensor?
    let values: Values
    let batchStride: Int
    let headStride: Int
    let rowStride: Int
    let length: Int

    init(_ mask: Tensor?, _ g: AttentionGeometry) throws {
        tensor = mask
        guard let mask else {
            values = .none
            (batchStride, headStride, rowStride, length) = (0, 0, 0, g.total)
            return
        }
        guard (1...4).contains(mask.rank) else {
            throw KernelError.shape("Attention's attn_mask has shape \(mask.shape); its rank must be 1 to 4")
        }
        let dims = [Int](repeating: 1, count: 4 - mask.rank) + mask.shape
        let target = [g.batch, g.qHeads, g.qLength]
        for a in 0..<3 where dims[a] != 1 && dims[a] != target[a] || dims[3] > g.total {
            throw KernelError.shape(
                "Attention's attn_mask \(mask.shape) does not broadcast to [\(g.batch), \(g.qHeads), \(g.qLength), "
                    + "\(g.total)] (batch, query heads, query length, total length)")
        }
        length = dims[3]
        rowStride = dims[2] == 1 ? 0 : length
        headStride = dims[1] == 1 ? 0 : dims[2] * length
        batchStride = dims[0] == 1 ? 0 : dims[1] * dims[2] * length
        switch mask.dataType {
        case .bool: values = mask.count == 0 ? .none : .bool(mask.elements(as: Bool.self).baseAddress!)
        case .float32: values = mask.count == 0 ? .none : .float(mask.elements(as: Float.self).baseAddress!)
        default:
            throw KernelError.failed("Attention's attn_mask has type \(mask.dataType.v2Name); it must be bool or FP32 (as Q)")
        }
    }

    func offset(_ b: Int, _ h: Int, _ i: Int) -> Int { b * batchStride + h * headStride + i * rowStride }
}

/// One Attention call's row work, shared read-only by the threads: for a (batch, head, block of query
/// rows), the scores by GEMM, the softcap, the mask and the softmax row by row, then P·V by GEMM.
struct AttentionRows: @unchecked Sendable {
    let g: AttentionGeometry
    let mask: AttentionMask
    let lengths: [Int]?
    let scale: Float
    let isCausal: Bool
    let softcap: Float
    let qkMode: Int
    let leftWindow: Int
    let rightWindow: Int

    /// Keys that query row i of batch row b may attend at most, from the causal, window, padding
    /// and mask-length limits (the mask's values then mask more within it).
    @inline(__always)
    func window(_ b: Int, _ i: Int) -> (lo: Int, hi: Int) {
        let offset = lengths.map { $0[b] - g.qLength } ?? g.pastLength
        let position = i + offset
        var lo = 0
        var hi = min(g.total, mask.length)
        if let lengths { hi = min(hi, lengths[b]) }
        if isCausal { hi = min(hi, position + 1) }
        if rightWindow >= 0 { hi = min(hi, position + rightWindow + 1) }
        if leftWindow >= 0 { lo = max(lo, position - leftWindow) }
        return (lo, max(lo, hi))
    }

    func run(
        batch b: Int, head h: Int, rows: Range<Int>, q: UnsafePointer<Float>, k: UnsafePointer<Float>?,
        keyLayout: AttentionGeometry.Layout, v: UnsafePointer<Float>?, valueLayout: AttentionGeometry.Layout,
        y: UnsafeMutablePointer<Float>, scores: UnsafeMutablePointer<Float>?, scratch: UnsafeMutablePointer<Float>
    ) {
        let kvHead = h / (g.qHeads / g.kvHeads)
        let m = rows.count
        // Columns some row of the block may attend (all of them when the scores are an output).
        var c0 = 0
        var c1 = g.total
        if scores == nil {
            c0 = window(b, rows.lowerBound).lo
            c1 = max(c0, window(b, rows.upperBound - 1).hi)
        }
        let cols = c1 - c0
        if cols > 0 {
            BLAS.gemm(
                transA: false, transB: true, m: m, n: cols, k: g.headSize, alpha: scale,
                a: q + g.query.offset(b, h, rows.lowerBound), lda: g.query.row,
                b: (k ?? UnsafePointer(scratch)) + keyLayout.offset(b, kvHead, c0), ldb: keyLayout.row, beta: 0,
                c: scratch, ldc: cols)
        }
        // The rows' 1 / sum of exponentials, applied to their rows of Y after P·V (one pass over
        // m x v head size instead of m x cols).
        let factors = scratch + m * cols
        for r in 0..<m {
            let i = rows.lowerBound + r
            let (lo, hi) = window(b, i)
            let out = scores.map { $0 + ((b * g.qHeads + h) * g.qLength + i) * g.total }
            factors[r] = row(
                scratch + r * cols, cols: cols, lo: min(max(lo - c0, 0), cols), hi: min(max(hi - c0, 0), cols),
                maskOffset: mask.offset(b, h, i) + c0, out: out)
        }
        let yBlock = y + g.output.offset(b, h, rows.lowerBound)
        BLAS.gemm(
            transA: false, transB: false, m: m, n: g.vHeadSize, k: cols, alpha: 1, a: scratch, lda: cols,
            b: (v ?? UnsafePointer(scratch)) + valueLayout.offset(b, kvHead, c0), ldb: valueLayout.row, beta: 0,
            c: yBlock, ldc: g.output.row)
        for r in 0..<m where factors[r] != 1 {
            let f = factors[r]
            let yr = yBlock + r * g.output.row
            for e in 0..<g.vHeadSize { yr[e] *= f }
        }
    }

    /// One row of scores, in place, into exponentials: softcap, the mask within [lo, hi), exp(s - max)
    /// (zeros when no key is allowed), zeros outside; returns the factor that makes them probabilities
    /// (1 / their sum; 1 when they already are). `out` takes the row at the stage `qkMode` says (mode
    /// 3: the probabilities, the row normalised here).
    private func row(
        _ s: UnsafeMutablePointer<Float>, cols: Int, lo: Int, hi: Int, maskOffset: Int, out: UnsafeMutablePointer<Float>?
    ) -> Float {
        if let out, qkMode == 0 { out.update(from: s, count: cols) }
        if softcap > 0 {
            let (from, to) = out == nil ? (lo, hi) : (0, cols)
            let c = softcap
            let r = 1 / softcap
            for j in from..<to { s[j] = c * tanhf(s[j] * r) }
        }
        if let out, qkMode == 1 { out.update(from: s, count: cols) }
        var allowed = false
        if lo < hi {
            switch mask.values {
            case .none:
                allowed = true
            case .float(let m):
                let mr = m + maskOffset
                for j in lo..<hi {
                    let a = mr[j]
                    if a == -.infinity {
                        s[j] = -.infinity
                    } else {
                        s[j] += a
                        allowed = true
                    }
                }
            case .bool(let m):
                let mr = m + maskOffset
                for j in lo..<hi {
                    if mr[j] { allowed = true } else { s[j] = -.infinity }
                }
            }
        }
        if let out, qkMode == 2 {
            for j in 0..<lo { s[j] = -.infinity }
            for j in hi..<cols { s[j] = -.infinity }
            out.update(from: s, count: cols)
        }
        let n = hi - lo
        var factor: Float = 1
        if allowed {
            let row = s + lo
            let top = SoftmaxKernel.rowMax(row, n)
            if top.isFinite {
                factor = 1 / Self.exponentiate(row, n, max: top)
                if out != nil && qkMode == 3 {
                    for j in 0..<n { row[j] *= factor }
                    factor = 1
                }
            } else if top == -.infinity {
                row.update(repeating: 0, count: n)
            } else {
                var sum: Float = 0
                for j in 0..<n {
                    row[j] = expf(row[j] - top)
                    sum += row[j]
                }
                for j in 0..<n { row[j] /= sum }
            }
        } else if n > 0 {
            (s + lo).update(repeating: 0, count: n)
        }
        if lo > 0 { s.update(repeating: 0, count: lo) }
        if cols > hi { (s + hi).update(repeating: 0, count: cols - hi) }
        if let out, qkMode == 3 { out.update(from: s, count: cols) }
        return factor
    }

    /// `row[j] = exp(row[j] - max)` sixteen lanes at a time (two independent AVX chains); returns
    /// their sum.
    @inline(__always)
    static func exponentiate(_ row: UnsafeMutablePointer<Float>, _ n: Int, max m: Float) -> Float {
        let raw = UnsafeMutableRawPointer(row)
        let vm = SIMD16<Float>(repeating: m)
        var acc = SIMD16<Float>()
        var j = 0
        while j + 16 <= n {
            let e = expOfNonPositive(raw.loadUnaligned(fromByteOffset: j * 4, as: SIMD16<Float>.self) - vm)
            raw.storeBytes(of: e, toByteOffset: j * 4, as: SIMD16<Float>.self)
            acc += e
            j += 16
        }
        var sum = acc.sum()
        while j < n {
            row[j] = expf(row[j] - m)
            sum += row[j]
            j += 1
        }
        return sum
    }

    /// exp(x) for x <= 0 (scores minus their row's maximum): `VectorMath.exp`'s range reduction and
    /// polynomial in fused multiply-adds, without its overflow handling (x never exceeds 0);
    /// exactly 0 below -87.34 (and for -inf), NaN stays NaN.
    @inline(__always)
    static func expOfNonPositive(_ x: SIMD16<Float>) -> SIMD16<Float> {
        typealias V = SIMD16<Float>
        let low = V(repeating: -87.3365478515625)
        let underflow = x .< low
        var v = x
        v.replace(with: low, where: underflow)
        let n = V(repeating: 0.5).addingProduct(v, V(repeating: 1.44269504088896341)).rounded(.down)
        var r = v.addingProduct(n, V(repeating: -0.693359375))
        r = r.addingProduct(n, V(repeating: 2.12194440e-4))
        let z = r * r
        var y = V(repeating: 1.3981999507e-3).addingProduct(V(repeating: 1.9875691500e-4), r)
        y = V(repeating: 8.3334519073e-3).addingProduct(y, r)
        y = V(repeating: 4.1665795894e-2).addingProduct(y, r)
        y = V(repeating: 1.6666665459e-1).addingProduct(y, r)
        y = V(repeating: 5.0000001201e-1).addingProduct(y, r)
        y = (r + 1).addingProduct(y, z)
        // 2^n for n in -126...0, built in the exponent bits.
        let bits = unsafeBitCast(n + 12_582_912, to: SIMD16<Int32>.self) &- 0x4B40_0000
        var result = y * unsafeBitCast((bits &+ 127) &<< 23, to: V.self)
        result.replace(with: V(), where: underflow)
        return result
    }
}
