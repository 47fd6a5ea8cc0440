import Tensors

/// GridSample(X [N, C, d1...dr], grid [N, o1...or, r]) -> [N, C, o1...or]: samples X at the
/// normalised positions of the grid (component 0 is the last spatial axis, x), by `mode` nearest
/// (halfway rounds to even), linear (N-linear) or cubic (N-cubic, Keys with a = -0.75), with
/// `padding_mode` zeros, border or reflection, and `align_corners`. Opset 16 names the modes
/// bilinear and bicubic and takes 4-D inputs only; opset 20 names them linear and cubic and takes
/// any number of spatial axes. FP32.
///
/// As onnxruntime and PyTorch: each tap outside the input reads 0 (zeros), the border pixel
/// (border) or the pixel reflected by the borders (reflection); for cubic this differs from the
/// ONNX reference, which first moves the coordinate itself inside. A non-finite coordinate reads 0.
///
/// Each output position's taps (offsets and weights over all spatial axes) are computed once and
/// shared by the channels; a channel plane is then sampled at a whole block of positions while it
/// is in cache (onnxruntime's order; position blocks across all channels thrashed the cache).
struct GridSampleKernel: BufferedKernel {
    enum Mode { case nearest, linear, cubic }
    enum Padding: String { case zeros, border, reflection }

    let mode: Mode
    let padding: Padding
    let alignCorners: Bool
    /// Opset 16's GridSample takes 4-D inputs only.
    let only2D: Bool

    init(context: NodeContext) throws {
        try context.requireInputs(2)
        let modern = context.opset >= 20
        let name = try context.string("mode", default: modern ? "linear" : "bilinear")
        switch (name, modern) {
        case ("nearest", _): mode = .nearest
        case ("linear", true), ("bilinear", false): mode = .linear
        case ("cubic", true), ("bicubic", false): mode = .cubic
        default:
            let names = modern ? "linear, nearest or cubic" : "bilinear, nearest or bicubic"
            throw context.invalid("has mode '\(name)'; opset \(context.opset) defines \(names)")
        }
        let pad = try context.string("padding_mode", default: "zeros")
        guard let p = Padding(rawValue: pad) else { throw context.invalid("has padding_mode '\(pad)' (zeros, border or reflection)") }
        padding = p
        alignCorners = try context.int("align_corners", default: 0) != 0
        only2D = !modern
    }

    func run(_ inputs: [Tensor?], into output: Tensor?) throws -> [Tensor] {
        let x = try Check.input(inputs, 0, "X")
        let grid = try Check.input(inputs, 1, "grid")
        try Check.dataType(x, [.float32], "GridSample's X")
        try Check.dataType(grid, [.float32], "GridSample's grid")
        let r = x.rank - 2
        guard r >= 1, !only2D || r == 2, grid.rank == x.rank, grid.shape[0] == x.shape[0], grid.shape[r + 1] == r else {
            throw KernelError.shape(
                "GridSample needs X [N, C, d1...dr] and grid [N, o1...or, r]\(only2D ? " with r = 2 before opset 20" : ""), got \(x.shape) and \(grid.shape)")
        }
        let (batches, channels) = (x.shape[0], x.shape[1])
        let dims = Array(x.shape[2...])
        let outShape = [batches, channels] + Array(grid.shape[1...r])
        let out = try Output.tensor(output, .float32, outShape)
        if out.count == 0 { return [out] }
        let points = grid.shape[1...r].reduce(1, *)
        let plane = dims.reduce(1, *)
        let src = x.elements(as: Float.self).baseAddress!
        let g = grid.elements(as: Float.self).baseAddress!
        let dst = out.mutableElements(as: Float.self).baseAddress!
        let tapsPerAxis = mode == .nearest ? 1 : mode == .linear ? 2 : 4
        let taps = (0..<r).reduce(1) { p, _ in p * tapsPerAxis }
        if plane == 0 {
            dst.initialize(repeating: 0, count: out.count)
            return [out]
        }
        let strides = Broadcast.contiguousStrides(dims)
        // Positions go in blocks whose taps fill about 4 MB; each block's taps are computed first
        // (in parallel over positions), then each channel plane is read for the whole block (in
        // parallel over channels), so that a plane stays in cache while it is sampled.
        let block = max(1, min(points, (1 << 19) / taps))
        let offsets = UnsafeMutablePointer<Int>.allocate(capacity: block * taps)
        let weights = UnsafeMutablePointer<Float>.allocate(capacity: block * taps)
        let counts = UnsafeMutablePointer<Int>.allocate(capacity: block)
        defer {
            offsets.deallocate()
            weights.deallocate()
            counts.deallocate()
        }
        for n in 0..<batches {
            for first in stride(from: 0, to: points, by: block) {
                let size = min(block, points - first)
                Parallel.forEach(size, costPerItem: 16 * r + 4 * taps) { range in
                    computeTaps(
                        g + (n * points + first) * r, range, r: r, taps: taps, dims: dims, strides: strides,
                        offsets: offsets, weights: weights, counts: counts)
                }
                Parallel.forEach(channels, costPerItem: size * (taps + 1) * 2) { range in
                    sampleChannels(
                        src + n * channels * plane, plane: plane, dst + n * channels * points + first, points: points,
                        range, size: size, taps: taps, offsets: offsets, weights: weights, counts: counts)
                }
            }
        }
        return [out]
    }

    /// The taps (offsets and weights over all spatial axes, zeros left out) of the positions in
    /// `range` of a block whose grid coordinates start at `coords`.
    private func computeTaps(
        _ coords: UnsafePointer<Float>, _ range: Range<Int>, r: Int, taps: Int, dims: [Int], strides: [Int],
        offsets: UnsafeMutablePointer<Int>, weights: UnsafeMutablePointer<Float>, counts: UnsafeMutablePointer<Int>
    ) {
        let axisOffsets = UnsafeMutablePointer<Int>.allocate(capacity: r * 4)
        let axisWeights = UnsafeMutablePointer<Float>.allocate(capacity: r * 4)
        let axisCounts = UnsafeMutablePointer<Int>.allocate(capacity: r)
        defer {
            axisOffsets.deallocate()
            axisWeights.deallocate()
            axisCounts.deallocate()
        }
        if r == 2 && mode == .linear && padding == .zeros {
            bilinearZerosTaps(coords, range, height: dims[0], width: dims[1], offsets: offsets, weights: weights, counts: counts)
            return
        }
        for slot in range {
            let point = coords + slot * r
            var valid = true
            for i in 0..<r {
                let count = axisTaps(
                    point[r - 1 - i], size: dims[i], stride: strides[i], offsets: axisOffsets + i * 4,
                    weights: axisWeights + i * 4)
                if count == 0 {
                    valid = false
                    break
                }
                axisCounts[i] = count
            }
            counts[slot] = 0
            if !valid { continue }
            let o = offsets + slot * taps
            let w = weights + slot * taps
            if r == 2 {
                // Rows by columns, directly.
                var k = 0
                for a in 0..<axisCounts[0] {
                    for b in 0..<axisCounts[1] {
                        o[k] = axisOffsets[a] + axisOffsets[4 + b]
                        w[k] = axisWeights[a] * axisWeights[4 + b]
                        k += 1
                    }
                }
                counts[slot] = k
                continue
            }
            // The product of the axes' taps, expanded in place from the back so that earlier
            // entries are still unread.
            var k = 1
            o[0] = 0
            w[0] = 1
            for i in 0..<r {
                let m = axisCounts[i]
                var next = k * m
                var j = k
                while j > 0 {
                    j -= 1
                    let (oj, wj) = (o[j], w[j])
                    for t in stride(from: m - 1, through: 0, by: -1) {
                        next -= 1
                        o[next] = oj + axisOffsets[i * 4 + t]
                        w[next] = wj * axisWeights[i * 4 + t]
                    }
                }
                k *= m
            }
            counts[slot] = k
        }
    }

    /// `computeTaps` for 2-D linear sampling with zeros padding (PyTorch's default), without the
    /// general per-axis machinery: the same taps in the same order.
    private func bilinearZerosTaps(
        _ coords: UnsafePointer<Float>, _ range: Range<Int>, height: Int, width: Int, offsets: UnsafeMutablePointer<Int>,
        weights: UnsafeMutablePointer<Float>, counts: UnsafeMutablePointer<Int>
    ) {
        let (h, w) = (Float(height), Float(width))
        for slot in range {
            let (gx, gy) = (coords[slot * 2], coords[slot * 2 + 1])
            let x = alignCorners ? (gx + 1) / 2 * (w - 1) : ((gx + 1) * w - 1) / 2
            let y = alignCorners ? (gy + 1) / 2 * (h - 1) : ((gy + 1) * h - 1) / 2
            // Outside by a pixel or more (or NaN): every tap reads 0.
            guard x > -1, x < w, y > -1, y < h else {
                counts[slot] = 0
                continue
            }
            let (fx, fy) = (x.rounded(.down), y.rounded(.down))
            let (tx, ty) = (x - fx, y - fy)
            let (x0, y0) = (Int(fx), Int(fy))
            let o = offsets + slot * 4
            let wt = weights + slot * 4
            var k = 0
            for dy in 0..<2 {
                let row = y0 + dy
                if row < 0 || row >= height { continue }
                let wy = dy == 0 ? 1 - ty : ty
                for dx in 0..<2 {
                    let column = x0 + dx
                    if column < 0 || column >= width { continue }
                    o[k] = row * width + column
                    wt[k] = wy * (dx == 0 ? 1 - tx : tx)
                    k += 1
                }
            }
            counts[slot] = k
        }
    }

    /// Samples the channels in `range` at a block's `size` positions from their taps; with four
    /// taps (2-D linear), four channels at a time share each position's loaded taps.
    private func sampleChannels(
        _ images: UnsafePointer<Float>, plane: Int, _ out: UnsafeMutablePointer<Float>, points: Int, _ range: Range<Int>,
        size: Int, taps: Int, offsets: UnsafeMutablePointer<Int>, weights: UnsafeMutablePointer<Float>,
        counts: UnsafeMutablePointer<Int>
    ) {
        var c = range.lowerBound
        if taps == 4 {
            while c + 4 <= range.upperBound {
                let image = images + c * plane
                let o4 = out + c * points
                for slot in 0..<size {
                    let (o, w) = (offsets + slot * 4, weights + slot * 4)
                    if counts[slot] == 4 {
                        let (a, b, e, f) = (o[0], o[1], o[2], o[3])
                        let (wa, wb, we, wf) = (w[0], w[1], w[2], w[3])
                        for k in 0..<4 {
                            let im = image + k * plane
                            o4[k * points + slot] = wa * im[a] + wb * im[b] + we * im[e] + wf * im[f]
                        }
                    } else {
                        for k in 0..<4 {
                            let im = image + k * plane
                            var acc: Float = 0
                            for t in 0..<counts[slot] { acc += w[t] * im[o[t]] }
                            o4[k * points + slot] = acc
                        }
                    }
                }
                c += 4
            }
        }
        while c < range.upperBound {
            let image = images + c * plane
            let o1 = out + c * points
            for slot in 0..<size {
                let (o, w) = (offsets + slot * taps, weights + slot * taps)
                var acc: Float = 0
                for t in 0..<counts[slot] { acc += w[t] * image[o[t]] }
                o1[slot] = acc
            }
            c += 1
        }
    }

    /// The taps of one axis for normalised coordinate `g`: element offsets (index times `stride`)
    /// and weights; returns how many (0: the position reads 0).
    @inline(__always)
    private func axisTaps(
        _ g: Float, size d: Int, stride: Int, offsets: UnsafeMutablePointer<Int>, weights: UnsafeMutablePointer<Float>
    ) -> Int {
        var v = alignCorners ? (g + 1) / 2 * Float(d - 1) : ((g + 1) * Float(d) - 1) / 2
        if mode == .nearest { v = v.rounded(.toNearestOrEven) }
        let (lo, hi): (Float, Float) = alignCorners ? (0, Float(d - 1)) : (-0.5, Float(d) - 0.5)
        // Linear and nearest move an outside coordinate in first (the same as moving their taps);
        // cubic moves only its taps, as onnxruntime and PyTorch do (the reference differs).
        if mode != .cubic && (v < lo || v > hi) {
            switch padding {
            case .zeros: break
            case .border: v = min(max(v, 0), Float(d - 1))
            case .reflection: v = Self.reflect(v, lo, hi)
            }
        }
        if v.isNaN { return 0 }
        switch padding {
        case .zeros:
            // Far outside: nothing to read.
            guard v > -4, v < Float(d) + 4 else { return 0 }
        case .border:
            // Every tap past -4 or d + 4 reads the edge pixel; the weights sum to 1.
            v = min(max(v, -4), Float(d) + 4)
        case .reflection:
            // Reflected taps repeat with period 2 (hi - lo), a whole number of pixels.
            let period = 2 * (hi - lo)
            if !v.isFinite {
                v = lo
            } else if abs(v) > Float(1 << 20) {
                v = period > 0 ? v.truncatingRemainder(dividingBy: period) : 0
            }
        }
        var count = 0
        switch mode {
        case .nearest:
            tap(Int(v), 1, d, lo, hi, stride, offsets, weights, &count)
        case .linear:
            let f = v.rounded(.down)
            let t = v - f
            let i = Int(f)
            tap(i, 1 - t, d, lo, hi, stride, offsets, weights, &count)
            tap(i + 1, t, d, lo, hi, stride, offsets, weights, &count)
        case .cubic:
            let f = v.rounded(.down)
            let i = Int(f)
            let c = Self.cubicCoefficients(v - f)
            tap(i - 1, c.0, d, lo, hi, stride, offsets, weights, &count)
            tap(i, c.1, d, lo, hi, stride, offsets, weights, &count)
            tap(i + 1, c.2, d, lo, hi, stride, offsets, weights, &count)
            tap(i + 2, c.3, d, lo, hi, stride, offsets, weights, &count)
        }
        return count
    }

    /// Appends tap `i` (weight `w`) of an axis of size `d` where it reads; nothing for a zero.
    @inline(__always)
    private func tap(
        _ i: Int, _ w: Float, _ d: Int, _ lo: Float, _ hi: Float, _ stride: Int, _ offsets: UnsafeMutablePointer<Int>,
        _ weights: UnsafeMutablePointer<Float>, _ count: inout Int
    ) {
        guard let j = index(i, d, lo, hi) else { return }
        offsets[count] = j * stride
        weights[count] = w
        count += 1
    }

    /// Where tap `i` of an axis of size `d` reads, nil for a zero (zeros padding).
    @inline(__always)
    private func index(_ i: Int, _ d: Int, _ lo: Float, _ hi: Float) -> Int? {
        if i >= 0 && i < d { return i }
        switch padding {
        case .zeros: return nil
        case .border: return min(max(i, 0), d - 1)
        case .reflection: return min(max(Int(Self.reflect(Float(i), lo, hi)), 0), d - 1)
        }
    }

    /// Reflects `x` by the borders until it lies in [lo, hi] (computed in double, as the reference).
    static func reflect(_ x: Float, _ lo: Float, _ hi: Float) -> Float {
        let (v, a, b) = (Double(x), Double(lo), Double(hi))
        let range = b - a
        guard range > 0, v.isFinite else { return v.isNaN ? x : lo }
        if v < a {
            let dx = a - v
            let n = (dx / range).rounded(.towardZero)
            let rest = dx - n * range
            return Float(n.truncatingRemainder(dividingBy: 2) == 0 ? a + rest : b - rest)
        }
        if v > b {
            let dx = v - b
            let n = (dx / range).rounded(.towardZero)
            let rest = dx - n * range
            return Float(n.truncatingRemainder(dividingBy: 2) == 0 ? b - rest : a + rest)
        }
        return x
    }

    /// Keys' cubic convolution weights (a = -0.75) of the taps at -1, 0, 1, 2 for fraction `t`.
    static func cubicCoefficients(_ t: Float) -> (Float, Float, Float, Float) {
        let a: Float = -0.75
        let x = abs(t)
        let c0 = ((a * (x + 1) - 5 * a) * (x + 1) + 8 * a) * (x + 1) - 4 * a
        let c1 = ((a + 2) * x - (a + 3)) * x * x + 1
        let c2 = ((a + 2) * (1 - x) - (a + 3)) * (1 - x) * (1 - x) + 1
        let c3 = ((a * (2 - x) - 5 * a) * (2 - x) + 8 * a) * (2 - x) - 4 * a
        return (c0, c1, c2, c3)
    }
}

/// AffineGrid(theta [N, 2, 3] or [N, 3, 4], size [N, C, H, W] or [N, C, D, H, W]) -> grid
/// [N, H, W, 2] or [N, D, H, W, 3]: theta applied to the homogeneous position (x, y[, z], 1) of
/// every output pixel, positions evenly spaced in [-1, 1] (pixel centres at the ends with
/// `align_corners`, pixel edges without). A size-1 axis with `align_corners` sits at 0, as in
/// PyTorch (onnxruntime puts it at 1, the ONNX reference at -1). FP32, computed in double.
struct AffineGridKernel: BufferedKernel {
    let alignCorners: Bool

    init(context: NodeContext) throws {
        try context.requireInputs(2)
        alignCorners = try context.int("align_corners", default: 0) != 0
    }

    func run(_ inputs: [Tensor?], into output: Tensor?) throws -> [Tensor] {
        let theta = try Check.input(inputs, 0, "theta")
        try Check.dataType(theta, [.float32], "AffineGrid's theta")
        let size = try IntInput.values(try Check.input(inputs, 1, "size"), "AffineGrid's size")
        guard size.count == 4 || size.count == 5 else {
            throw KernelError.shape("AffineGrid's size must hold 4 (N, C, H, W) or 5 (N, C, D, H, W) values, got \(size)")
        }
        let r = size.count - 2
        guard theta.shape == [size[0], r, r + 1] else {
            throw KernelError.shape("AffineGrid's theta must be [N, \(r), \(r + 1)] for size \(size), got \(theta.shape)")
        }
        let spatial = Array(size[2...])
        let outShape = [size[0]] + spatial + [r]
        try Check.computedShape(outShape, "AffineGrid")
        let out = try Output.tensor(output, .float32, outShape)
        if out.count == 0 { return [out] }
        // Positions along each axis, listed x first (the last spatial axis).
        let axes: [[Double]] = spatial.reversed().map { length in
            (0..<length).map { i in
                if alignCorners { return length == 1 ? 0 : -1 + 2 * Double(i) / Double(length - 1) }
                return (2 * Double(i) + 1) / Double(length) - 1
            }
        }
        let t = theta.elements(as: Float.self).baseAddress!
        let d = out.mutableElements(as: Float.self).baseAddress!
        let points = spatial.reduce(1, *)
        var position = [Double](repeating: 0, count: r)
        for n in 0..<size[0] {
            let m = t + n * r * (r + 1)
            for p in 0..<points {
                // Point p's coordinates: the last spatial axis varies fastest and is x.
                var rest = p
                for a in 0..<r {
                    let length = spatial[r - 1 - a]
                    position[a] = axes[a][rest % length]
                    rest /= length
                }
                let o = d + (n * points + p) * r
                for row in 0..<r {
                    var acc = Double(m[row * (r + 1) + r])
                    for a in 0..<r { acc += Double(m[row * (r + 1) + a]) * position[a] }
                    o[row] = Float(acc)
                }
            }
        }
        return [out]
    }
}
