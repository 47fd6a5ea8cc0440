import CShuffle

/// Depthwise convolution (any kernel up to 9x9: MobileNet's 3x3, EfficientNet's and MobileNetV3's
/// 5x5, ConvNeXt's 7x7; strides 1 and 2, no dilation) on eight channels at a time, with the
/// vector lanes running across channels instead of along a row: the channel-blocked layout of
/// onnxruntime's NCHWc kernels, used inside this kernel only (tensors stay NCHW).
/// - The eight input planes are transposed, eight positions at a time (an 8x8 transpose in
///   registers, `CShuffle`), into a zero-bordered scratch that holds one 8-channel vector per
///   padded position.
/// - Each output position is one FMA per tap on such vectors (four positions per call; 3x3
///   weights in registers, larger kernels' taps loaded per tap), started from the bias and clamped
///   in registers (none, Relu, Clip); other activations (SiLU, HardSwish...) run on the block's
///   eight output planes right after it, while they are in cache.
/// - Eight output positions are transposed back and stored as eight runs, one per channel.
///
/// Every lane holds a channel whatever the plane's width, so the small planes of MobileNet's later
/// layers (7x7, 14x14) no longer pay for row and plane edges, and stride 2 needs no even/odd split.
/// Rows of eight or more positions go eight at a time along the row, the last eight of a row
/// overlapping the ones before (recomputed to the same values); narrower planes go in flat
/// (row-major) order across row ends, the last eight of the plane overlapping likewise, so a plane
/// needs eight positions. Used by `ConvKernel` for every full block of eight depthwise channels (`supports`); the
/// remaining channels and other geometries keep `PlaneLoops`. Stateless.
enum DepthwiseBlocks {
    typealias V = SIMD8<Float>
    /// Channels per block (the vector width).
    static let channels = 8

    /// The largest kernel side the blocked loops take.
    static let maxSide = 9

    /// Whether the blocked loops can run a depthwise convolution of geometry `g`.
    static func supports(_ g: WindowGeometry) -> Bool {
        g.kernel[0] == 1 && (1...maxSide).contains(g.kernel[1]) && (1...maxSide).contains(g.kernel[2])
            && g.input[0] == 1 && g.output[0] == 1 && g.dilations[1] == 1 && g.dilations[2] == 1
            && (1...2).contains(g.strides[1]) && (1...2).contains(g.strides[2])
            && g.input[1] * g.input[2] >= channels && g.output[1] * g.output[2] >= channels
    }

    /// Floats of one block's weights as `block` takes them (`interleave`) for kernel `g`.
    static func tapFloats(_ g: WindowGeometry) -> Int { g.kernel[1] * g.kernel[2] * channels }

    /// The scratch one thread needs: the padded input of a block, `rows` x `cols` positions of
    /// eight floats, exactly the positions the output's windows read.
    struct Layout {
        let rows: Int
        let cols: Int

        init(_ g: WindowGeometry) {
            rows = (g.output[1] - 1) * g.strides[1] + g.kernel[1]
            cols = (g.output[2] - 1) * g.strides[2] + g.kernel[2]
        }

        /// Floats of scratch: the padded block, then 64 floats of staging (`pack`'s sink,
        /// `convolve`'s eight output vectors).
        var count: Int { (rows * cols + 8) * DepthwiseBlocks.channels }

        /// Where the staging area starts in the scratch.
        var staging: Int { rows * cols * DepthwiseBlocks.channels }
    }

    /// Zeroes the positions of `scratch` that no input position fills (the padding), once per call:
    /// each block overwrites only the others.
    static func zeroBorder(_ scratch: UnsafeMutablePointer<Float>, _ g: WindowGeometry, _ layout: Layout) {
        let top = min(g.padBegin[1], layout.rows)
        let left = min(g.padBegin[2], layout.cols)
        let inRows = top..<max(top, min(g.padBegin[1] + g.input[1], layout.rows))
        let inCols = left..<max(left, min(g.padBegin[2] + g.input[2], layout.cols))
        let rowFloats = layout.cols * channels
        for r in 0..<layout.rows {
            let row = scratch + r * rowFloats
            guard inRows.contains(r) else {
                row.update(repeating: 0, count: rowFloats)
                continue
            }
            row.update(repeating: 0, count: inCols.lowerBound * channels)
            (row + inCols.upperBound * channels).update(repeating: 0, count: (layout.cols - inCols.upperBound) * channels)
        }
    }

    /// The weights of eight channels (`taps` per channel, as stored) interleaved for `block`: tap
    /// after tap, eight channels each, so that each tap is one vector load. `ConvKernel` does it
    /// once at load for constant weights.
    static func interleave(_ w: UnsafePointer<Float>, taps: Int, into out: UnsafeMutablePointer<Float>) {
        for t in 0..<taps {
            for c in 0..<channels { out[t * channels + c] = w[c * taps + t] }
        }
    }

    /// One block: eight input planes from `x` (`inStride` floats apart), their weights from
    /// `taps` (`interleave`d), biases from `bias` (nil: zero), into eight output planes from `y`
    /// (`outStride` floats apart), then `epilogue` on them. `scratch` holds `layout.count` floats
    /// with a zero border (`zeroBorder`).
    static func block(
        _ x: UnsafePointer<Float>, inStride: Int, taps w: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
        _ y: UnsafeMutablePointer<Float>, outStride: Int, _ g: WindowGeometry, _ epilogue: Epilogue,
        _ layout: Layout, _ scratch: UnsafeMutablePointer<Float>
    ) {
        pack(x, inStride, g, layout, scratch)
        let bounds = epilogue.clampBounds ?? (-.infinity, .infinity)
        if g.kernel[1] == 3 && g.kernel[2] == 3 {
            convolve(scratch, w, bias: bias, y, outStride, g, bounds, layout)
        } else {
            convolveAnySize(scratch, w, bias: bias, y, outStride, g, bounds, layout)
        }
        if epilogue.clampBounds == nil {
            let count = g.output[1] * g.output[2]
            for c in 0..<channels { epilogue.apply(y + c * outStride, count: count) }
        }
    }

    /// Transposes the eight input planes into the scratch: position (r, c) of the input lands at
    /// padded position (r + top, c + left) as one vector of its eight channels (8x8 transposes,
    /// `CShuffle`). Rows of eight or more used positions go eight columns at a time (the last
    /// block of a row overlapping the one before); narrower planes go in flat order (`packFlat`).
    /// Input positions that no window reads are left out.
    static func pack(
        _ x: UnsafePointer<Float>, _ stride: Int, _ g: WindowGeometry, _ layout: Layout, _ scratch: UnsafeMutablePointer<Float>
    ) {
        let (iw, top, left) = (g.input[2], g.padBegin[1], g.padBegin[2])
        let used = min(iw, layout.cols &- left)
        guard used >= 8 else { return packFlat(x, stride, g, layout, scratch) }
        for r in 0..<min(g.input[1], layout.rows &- top) {
            let src = x + r &* iw
            let dst = scratch + ((r &+ top) &* layout.cols &+ left) &* 8
            var c = 0
            while c < used {
                let at = min(c, used &- 8)
                swerve_transpose8(src + at, stride, dst + at &* 8, 8)
                c = at &+ 8
            }
        }
    }

    /// `pack` in flat (row-major) order across row ends, eight positions at a time, the last block
    /// overlapping the one before; positions outside the scratch and repeated ones go to the sink
    /// (the staging area).
    static func packFlat(
        _ x: UnsafePointer<Float>, _ stride: Int, _ g: WindowGeometry, _ layout: Layout, _ scratch: UnsafeMutablePointer<Float>
    ) {
        let (ih, iw) = (g.input[1], g.input[2])
        let (top, left) = (g.padBegin[1], g.padBegin[2])
        let (rows, cols) = (layout.rows, layout.cols)
        let count = ih &* iw
        let sink = scratch + layout.staging
        var f = 0
        while f < count {
            let start = min(f, count &- 8)
            var r = start / iw
            var c = start &- r &* iw
            let skip = f &- start
            @inline(__always) func next(_ k: Int) -> UnsafeMutablePointer<Float> {
                let d = k >= skip && r &+ top < rows && c &+ left < cols ? scratch + ((r &+ top) &* cols &+ c &+ left) &* 8 : sink
                c &+= 1
                if c == iw {
                    c = 0
                    r &+= 1
                }
                return d
            }
            let d0 = next(0), d1 = next(1), d2 = next(2), d3 = next(3)
            let d4 = next(4), d5 = next(5), d6 = next(6), d7 = next(7)
            swerve_transpose8_scatter(x + start, stride, d0, d1, d2, d3, d4, d5, d6, d7)
            f = start &+ 8
        }
    }

    /// The nine taps' weights of a block, one vector of eight channels each.
    struct Taps {
        let w0, w1, w2, w3, w4, w5, w6, w7, w8: V

        /// From a block's `interleave`d weights.
        init(_ w: UnsafePointer<Float>) {
            let p = UnsafeRawPointer(w)
            @inline(__always) func tap(_ t: Int) -> V { p.loadUnaligned(fromByteOffset: t &* 32, as: V.self) }
            (w0, w1, w2, w3, w4, w5, w6, w7, w8) = (tap(0), tap(1), tap(2), tap(3), tap(4), tap(5), tap(6), tap(7), tap(8))
        }
    }

    /// Four windows at byte offsets `o` of the scratch `s`, tap by tap from the bias `b`, clamped to
    /// [lo, hi], stored at `out` (four vectors). `r1` is the byte step between the scratch's rows.
    ///
    /// Not inlined: inlined into `convolve`'s loop, LLVM split every vector operation into two
    /// 4-lane halves (the layers ran 1.3-1.7 times slower); called, it is 36 FMAs on full vectors.
    @inline(never)
    static func windows(
        _ s: UnsafeRawPointer, _ o: (Int, Int, Int, Int), _ w: Taps, _ r1: Int, _ b: V, _ lo: V, _ hi: V,
        _ out: UnsafeMutableRawPointer
    ) {
        var a0 = b, a1 = b, a2 = b, a3 = b
        /// One tap (`d` bytes into each window) for the four windows.
        @inline(__always) func tap(_ wv: V, _ d: Int) {
            a0 = a0.addingProduct(wv, s.loadUnaligned(fromByteOffset: o.0 &+ d, as: V.self))
            a1 = a1.addingProduct(wv, s.loadUnaligned(fromByteOffset: o.1 &+ d, as: V.self))
            a2 = a2.addingProduct(wv, s.loadUnaligned(fromByteOffset: o.2 &+ d, as: V.self))
            a3 = a3.addingProduct(wv, s.loadUnaligned(fromByteOffset: o.3 &+ d, as: V.self))
        }
        let r2 = 2 &* r1
        tap(w.w0, 0)
        tap(w.w1, 32)
        tap(w.w2, 64)
        tap(w.w3, r1)
        tap(w.w4, r1 &+ 32)
        tap(w.w5, r1 &+ 64)
        tap(w.w6, r2)
        tap(w.w7, r2 &+ 32)
        tap(w.w8, r2 &+ 64)
        out.storeBytes(of: Epilogue.clamp(a0, lo, hi), toByteOffset: 0, as: V.self)
        out.storeBytes(of: Epilogue.clamp(a1, lo, hi), toByteOffset: 32, as: V.self)
        out.storeBytes(of: Epilogue.clamp(a2, lo, hi), toByteOffset: 64, as: V.self)
        out.storeBytes(of: Epilogue.clamp(a3, lo, hi), toByteOffset: 96, as: V.self)
    }

    /// `windows` for four consecutive positions of a row, starting at byte offset `o`, with
    /// column stride 1 (`alongRow1`) or 2 (`alongRow2`): each input vector of a tap row is loaded
    /// once and used by every window that reads it (6 or 9 loads per tap row instead of 12), so
    /// the loads no longer outnumber the FMAs. Not inlined, as `windows`. (A second set of
    /// accumulators for the middle tap row, for eight FMA chains instead of four, measured 2-5 %
    /// slower.)
    @inline(never)
    static func alongRow1(
        _ s: UnsafeRawPointer, _ o: Int, _ w: Taps, _ r1: Int, _ b: V, _ lo: V, _ hi: V, _ out: UnsafeMutableRawPointer
    ) {
        alongRow(s, o, stride: 1, w, r1, b, lo, hi, out)
    }

    @inline(never)
    static func alongRow2(
        _ s: UnsafeRawPointer, _ o: Int, _ w: Taps, _ r1: Int, _ b: V, _ lo: V, _ hi: V, _ out: UnsafeMutableRawPointer
    ) {
        alongRow(s, o, stride: 2, w, r1, b, lo, hi, out)
    }

    /// The body of `alongRow1` and `alongRow2` (`stride` a constant there): per tap row, window k
    /// reads columns `k * stride + 0, 1, 2`; the repeated loads of one column are one load after
    /// the compiler's common-subexpression pass.
    @inline(__always)
    static func alongRow(
        _ s: UnsafeRawPointer, _ o: Int, stride: Int, _ w: Taps, _ r1: Int, _ b: V, _ lo: V, _ hi: V,
        _ out: UnsafeMutableRawPointer
    ) {
        var a0 = b, a1 = b, a2 = b, a3 = b
        @inline(__always) func row(_ p: UnsafeRawPointer, _ wa: V, _ wb: V, _ wc: V) {
            @inline(__always) func window(_ acc: V, _ k: Int) -> V {
                let c = k &* stride &* 32
                var v = acc.addingProduct(wa, p.loadUnaligned(fromByteOffset: c, as: V.self))
                v = v.addingProduct(wb, p.loadUnaligned(fromByteOffset: c &+ 32, as: V.self))
                return v.addingProduct(wc, p.loadUnaligned(fromByteOffset: c &+ 64, as: V.self))
            }
            a0 = window(a0, 0)
            a1 = window(a1, 1)
            a2 = window(a2, 2)
            a3 = window(a3, 3)
        }
        row(s + o, w.w0, w.w1, w.w2)
        row(s + (o &+ r1), w.w3, w.w4, w.w5)
        row(s + (o &+ 2 &* r1), w.w6, w.w7, w.w8)
        out.storeBytes(of: Epilogue.clamp(a0, lo, hi), toByteOffset: 0, as: V.self)
        out.storeBytes(of: Epilogue.clamp(a1, lo, hi), toByteOffset: 32, as: V.self)
        out.storeBytes(of: Epilogue.clamp(a2, lo, hi), toByteOffset: 64, as: V.self)
        out.storeBytes(of: Epilogue.clamp(a3, lo, hi), toByteOffset: 96, as: V.self)
    }

    /// The output positions, eight at a time: four windows per call (`alongRow1`/`alongRow2`
    /// along rows, `windows` in flat order), then the
    /// transpose back to one run per channel through the staging area. Rows of eight or more
    /// positions go along the row (the last block overlapping the one before), narrower ones in
    /// flat order across row ends.
    static func convolve(
        _ scratch: UnsafeMutablePointer<Float>, _ w: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
        _ y: UnsafeMutablePointer<Float>, _ outStride: Int, _ g: WindowGeometry, _ bounds: (lo: Float, hi: Float),
        _ layout: Layout
    ) {
        let (oh, ow, sh, sw) = (g.output[1], g.output[2], g.strides[1], g.strides[2])
        let s = UnsafeRawPointer(scratch)
        let staging = scratch + layout.staging
        let stage = UnsafeMutableRawPointer(staging)
        let w = Taps(w)
        let b = bias.map { UnsafeRawPointer($0).loadUnaligned(as: V.self) } ?? V()
        let lo = V(repeating: bounds.lo)
        let hi = V(repeating: bounds.hi)
        let rowBytes = layout.cols &* 32
        let rowStep = sh &* rowBytes
        let colStep = sw &* 32
        /// Eight positions at byte offsets `o` into the output at `y + start`.
        @inline(__always) func eight(_ o: (Int, Int, Int, Int, Int, Int, Int, Int), _ start: Int) {
            windows(s, (o.0, o.1, o.2, o.3), w, rowBytes, b, lo, hi, stage)
            windows(s, (o.4, o.5, o.6, o.7), w, rowBytes, b, lo, hi, stage + 128)
            swerve_transpose8(staging, 8, y + start, outStride)
        }
        if ow >= 8 {
            for r in 0..<oh {
                var c = 0
                while c < ow {
                    let at = min(c, ow &- 8)
                    let o = r &* rowStep &+ at &* colStep
                    if sw == 1 {
                        alongRow1(s, o, w, rowBytes, b, lo, hi, stage)
                        alongRow1(s, o &+ 4 &* colStep, w, rowBytes, b, lo, hi, stage + 128)
                    } else {
                        alongRow2(s, o, w, rowBytes, b, lo, hi, stage)
                        alongRow2(s, o &+ 4 &* colStep, w, rowBytes, b, lo, hi, stage + 128)
                    }
                    swerve_transpose8(staging, 8, y + (r &* ow &+ at), outStride)
                    c = at &+ 8
                }
            }
            return
        }
        let count = oh &* ow
        var f = 0
        while f < count {
            let start = min(f, count &- 8)
            var r = start / ow
            var c = start &- r &* ow
            @inline(__always) func next() -> Int {
                let o = r &* rowStep &+ c &* colStep
                c &+= 1
                if c == ow {
                    c = 0
                    r &+= 1
                }
                return o
            }
            eight((next(), next(), next(), next(), next(), next(), next(), next()), start)
            f = start &+ 8
        }
    }

    /// `convolve` for kernels other than 3x3: four positions per call along rows
    /// (`anyAlongRow`, each tap's weight vector loaded once for the four) or in flat order
    /// (`anyWindows`), then the same transpose back.
    static func convolveAnySize(
        _ scratch: UnsafeMutablePointer<Float>, _ w: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
        _ y: UnsafeMutablePointer<Float>, _ outStride: Int, _ g: WindowGeometry, _ bounds: (lo: Float, hi: Float),
        _ layout: Layout
    ) {
        let (oh, ow, sh, sw) = (g.output[1], g.output[2], g.strides[1], g.strides[2])
        let kernel = AnyKernel(w: UnsafeRawPointer(w), rows: g.kernel[1], cols: g.kernel[2], rowBytes: layout.cols &* 32)
        let s = UnsafeRawPointer(scratch)
        let staging = scratch + layout.staging
        let stage = UnsafeMutableRawPointer(staging)
        let b = bias.map { UnsafeRawPointer($0).loadUnaligned(as: V.self) } ?? V()
        let lo = V(repeating: bounds.lo)
        let hi = V(repeating: bounds.hi)
        let rowStep = sh &* kernel.rowBytes
        let colStep = sw &* 32
        if ow >= 8 {
            for r in 0..<oh {
                var c = 0
                while c < ow {
                    let at = min(c, ow &- 8)
                    let o = r &* rowStep &+ at &* colStep
                    anyWindows(s, (o, o &+ colStep, o &+ 2 &* colStep, o &+ 3 &* colStep), kernel, b, lo, hi, stage)
                    let o4 = o &+ 4 &* colStep
                    anyWindows(
                        s, (o4, o4 &+ colStep, o4 &+ 2 &* colStep, o4 &+ 3 &* colStep), kernel, b, lo, hi, stage + 128)
                    swerve_transpose8(staging, 8, y + (r &* ow &+ at), outStride)
                    c = at &+ 8
                }
            }
            return
        }
        let count = oh &* ow
        var f = 0
        while f < count {
            let start = min(f, count &- 8)
            var r = start / ow
            var c = start &- r &* ow
            @inline(__always) func next() -> Int {
                let o = r &* rowStep &+ c &* colStep
                c &+= 1
                if c == ow {
                    c = 0
                    r &+= 1
                }
                return o
            }
            anyWindows(s, (next(), next(), next(), next()), kernel, b, lo, hi, stage)
            anyWindows(s, (next(), next(), next(), next()), kernel, b, lo, hi, stage + 128)
            swerve_transpose8(staging, 8, y + start, outStride)
            f = start &+ 8
        }
    }

    /// A kernel of any size for `anyWindows`: its interleaved taps and the scratch's row step.
    struct AnyKernel {
        let w: UnsafeRawPointer
        let rows: Int
        let cols: Int
        let rowBytes: Int
    }

    /// Four windows at byte offsets `o` of the scratch `s`, tap by tap from the bias `b` (each
    /// tap's weights loaded once for the four), clamped to [lo, hi], stored at `out`. Not inlined,
    /// as `windows`.
    @inline(never)
    static func anyWindows(
        _ s: UnsafeRawPointer, _ o: (Int, Int, Int, Int), _ k: AnyKernel, _ b: V, _ lo: V, _ hi: V,
        _ out: UnsafeMutableRawPointer
    ) {
        var a0 = b, a1 = b, a2 = b, a3 = b
        var tap = k.w
        var row = 0
        for _ in 0..<k.rows {
            for j in 0..<k.cols {
                let wv = tap.loadUnaligned(as: V.self)
                let d = row &+ j &* 32
                a0 = a0.addingProduct(wv, s.loadUnaligned(fromByteOffset: o.0 &+ d, as: V.self))
                a1 = a1.addingProduct(wv, s.loadUnaligned(fromByteOffset: o.1 &+ d, as: V.self))
                a2 = a2.addingProduct(wv, s.loadUnaligned(fromByteOffset: o.2 &+ d, as: V.self))
                a3 = a3.addingProduct(wv, s.loadUnaligned(fromByteOffset: o.3 &+ d, as: V.self))
                tap += 32
            }
            row &+= k.rowBytes
        }
        out.storeBytes(of: Epilogue.clamp(a0, lo, hi), toByteOffset: 0, as: V.self)
        out.storeBytes(of: Epilogue.clamp(a1, lo, hi), toByteOffset: 32, as: V.self)
        out.storeBytes(of: Epilogue.clamp(a2, lo, hi), toByteOffset: 64, as: V.self)
        out.storeBytes(of: Epilogue.clamp(a3, lo, hi), toByteOffset: 96, as: V.self)
    }
}
