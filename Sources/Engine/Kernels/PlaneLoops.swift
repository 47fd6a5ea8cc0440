/// Loops over one 2-D channel plane for depthwise convolution and max pooling, eight lanes at a time:
/// - depthwise: the plane is copied into a zero-bordered scratch (stride 2 (no horizontal
///   dilation): split into its even and odd columns on the way), so every tap of every output
///   reads inside it with no bounds checks and with contiguous loads; four output rows are
///   accumulated at once (four independent SIMD8 accumulators hide the add latency); the epilogue
///   runs per row (3x3 stride 1: in registers);
/// - max pooling: row by row, each output row updated by every tap while it is in L1, the valid
///   output range of each horizontal tap computed once per plane.
/// Used by `ConvKernel` (depthwise groups, strides 1 and 2) and `PoolKernel` (MaxPool) for 2-D
/// windows; other cases keep the generic loops. Stateless.
enum PlaneLoops {
    /// Scratch layout for `depthwise`: the input plane copied into a zero-bordered buffer wide and
    /// tall enough that every tap of every output (rounded up to eight) reads inside it.
    struct PaddedPlane {
        let rows: Int
        let cols: Int
        let rowTop: Int
        let colLeft: Int
        let outWidth8: Int

        init(_ g: WindowGeometry) {
            outWidth8 = (g.output[2] + 7) / 8 * 8
            rowTop = g.padBegin[1]
            colLeft = g.padBegin[2]
            let outRows4 = (g.output[1] + 3) / 4 * 4
            rows = max((outRows4 - 1) * g.strides[1] + (g.kernel[1] - 1) * g.dilations[1] + 1, g.input[1] + rowTop)
            cols = max(outWidth8 * g.strides[2] + (g.kernel[2] - 1) * g.dilations[2] + 16, g.input[2] + colLeft)
            split = g.strides[2] == 2 && g.dilations[2] == 1
        }

        /// Stride 2 (no horizontal dilation): the plane is also split into even and odd columns
        /// (`halfCols` each per row), so every tap is a contiguous 8-lane load.
        let split: Bool
        var halfCols: Int { (cols + 1) / 2 }

        /// Floats of the zero-bordered plane copy (none when split: the even/odd copy replaces it).
        var planeCount: Int { split ? 0 : rows * cols }

        /// Floats of scratch: the plane, four output rows, and the even/odd copy when split.
        var count: Int { planeCount + 4 * outWidth8 + (split ? rows * 2 * halfCols : 0) }
    }

    /// `y` = bias + w (*) x, then `epilogue`, for strides 1 and 2. `scratch` holds
    /// `PaddedPlane(g).count` floats whose border is zero (the caller zeroes it once per call; each
    /// plane overwrites only the interior).
    static func depthwise(
        _ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>, bias: Float, _ y: UnsafeMutablePointer<Float>,
        _ g: WindowGeometry, _ epilogue: Epilogue, _ layout: PaddedPlane, _ scratch: UnsafeMutablePointer<Float>
    ) {
        let (ih, iw, oh, ow) = (g.input[1], g.input[2], g.output[1], g.output[2])
        let (kh, kw, sh, sw) = (g.kernel[1], g.kernel[2], g.strides[1], g.strides[2])
        let (dh, dw) = (g.dilations[1], g.dilations[2])
        let cols = layout.cols
        let plane = UnsafeRawPointer(scratch)
        let tmp = scratch + layout.planeCount
        let t = UnsafeMutableRawPointer(tmp)
        let w8 = layout.outWidth8
        if layout.split {
            // Stride 2: the even/odd split is built straight from the input rows (no padded copy
            // first: one pass over the plane instead of two). Its border rows stay zero; every
            // entry of an interior row is written.
            let half = layout.halfCols
            let split = tmp + 4 * w8
            let left = layout.colLeft
            for r in 0..<ih {
                let src = x + r * iw
                let even = split + (r + layout.rowTop) * 2 * half
                let odd = even + half
                @inline(__always) func value(_ j: Int) -> Float {
                    let c = j &- left
                    return j < cols && c >= 0 && c < iw ? src[c] : 0
                }
                var i = 0
                while i < half && 2 &* i &- left < 0 {
                    even[i] = value(2 &* i)
                    odd[i] = value(2 &* i &+ 1)
                    i &+= 1
                }
                let raw = UnsafeRawPointer(src)
                @inline(__always) func pairs8(_ i: Int) {
                    let v = raw.loadUnaligned(fromByteOffset: (2 &* i &- left) &* 4, as: SIMD16<Float>.self)
                    UnsafeMutableRawPointer(even + i).storeBytes(of: v.evenHalf, as: SIMD8<Float>.self)
                    UnsafeMutableRawPointer(odd + i).storeBytes(of: v.oddHalf, as: SIMD8<Float>.self)
                }
                while i &+ 8 <= half && 2 &* i &- left &+ 16 <= iw && 2 &* i &+ 16 <= cols {
                    pairs8(i)
                    i &+= 8
                }
                // One more block ending at the input's last full pair (it may overlap the last).
                let last = (iw &+ left &- 16) >> 1
                if last > i && 2 &* last &- left >= 0 && last &+ 8 <= half && 2 &* last &+ 16 <= cols {
                    pairs8(last)
                    i = last &+ 8
                }
                // Past the input only zeros, which the scratch already holds (zeroed once per call).
                while i < half && 2 &* i &- left < iw {
                    even[i] = value(2 &* i)
                    odd[i] = value(2 &* i &+ 1)
                    i &+= 1
                }
            }
            if kh == 3 && kw == 3 && sh == 2 && dh == 1, let bounds = epilogue.clampBounds {
                let rowBytes = 2 &* half &* 4
                depthwise3x3(
                    UnsafeRawPointer(split), w, bias: bias, y, oh: oh, ow: ow, w8: w8, bounds, t, tapRow: rowBytes,
                    outRow: 2 &* rowBytes, taps: (0, half &* 4, 4))
                return
            }
            y.update(repeating: bias, count: oh * ow)
            depthwiseSplit(UnsafeRawPointer(split), w, y, g, epilogue, layout, t)
            return
        }
        for r in 0..<ih {
            (scratch + (r + layout.rowTop) * cols + layout.colLeft).update(from: x + r * iw, count: iw)
        }
        if kh == 3 && kw == 3 && sh == 1 && sw == 1 && dh == 1 && dw == 1, let bounds = epilogue.clampBounds {
            depthwise3x3(
                plane, w, bias: bias, y, oh: oh, ow: ow, w8: w8, bounds, t, tapRow: cols &* 4, outRow: cols &* 4,
                taps: (0, 4, 8))
            return
        }
        // The other loops add onto the bias.
        y.update(repeating: bias, count: oh * ow)
        // Four output rows at a time: four independent accumulators hide the add latency.
        for y0 in stride(from: 0, to: oh, by: 4) {
            var o = 0
            while o < w8 {
                var acc0 = SIMD8<Float>()
                var acc1 = SIMD8<Float>()
                var acc2 = SIMD8<Float>()
                var acc3 = SIMD8<Float>()
                let rowStep = sh * cols * 4
                for a in 0..<kh {
                    let base = ((y0 * sh + a * dh) * cols + o * sw) * 4
                    for b in 0..<kw {
                        let wv = SIMD8<Float>(repeating: w[a * kw + b])
                        let at = base + b * dw * 4
                        if sw == 1 {
                            acc0 = acc0.addingProduct(wv, plane.loadUnaligned(fromByteOffset: at, as: SIMD8<Float>.self))
                            acc1 = acc1.addingProduct(
                                wv, plane.loadUnaligned(fromByteOffset: at + rowStep, as: SIMD8<Float>.self))
                            acc2 = acc2.addingProduct(
                                wv, plane.loadUnaligned(fromByteOffset: at + 2 * rowStep, as: SIMD8<Float>.self))
                            acc3 = acc3.addingProduct(
                                wv, plane.loadUnaligned(fromByteOffset: at + 3 * rowStep, as: SIMD8<Float>.self))
                        } else {
                            acc0 += wv * plane.loadUnaligned(fromByteOffset: at, as: SIMD16<Float>.self).evenHalf
                            acc1 += wv * plane.loadUnaligned(fromByteOffset: at + rowStep, as: SIMD16<Float>.self).evenHalf
                            acc2 += wv * plane.loadUnaligned(fromByteOffset: at + 2 * rowStep, as: SIMD16<Float>.self).evenHalf
                            acc3 += wv * plane.loadUnaligned(fromByteOffset: at + 3 * rowStep, as: SIMD16<Float>.self).evenHalf
                        }
                    }
                }
                storeRows(t, w8, o, acc0, acc1, acc2, acc3)
                o += 8
            }
            addRows(tmp, w8, into: y, firstRow: y0, rows: min(4, oh - y0), ow: ow, epilogue)
        }
    }

    /// The common case, 3x3 stride 1 (MobileNet's), with the nine weights held in registers and the
    /// taps unrolled: four output rows of eight columns per step, 36 FMAs, started from the bias and
    /// clamped (Relu, Clip: `bounds`) in registers, stored straight into the output (the last,
    /// partial block of a row through the four-row buffer `t`).
    ///
    /// The input layout comes as byte steps, so that stride 2 runs the same loop on the even/odd
    /// split (`PaddedPlane.split`): `tapRow` between the three rows of a window, `outRow` between
    /// the windows of consecutive output rows, `taps` the offsets of the three columns of a window
    /// row (stride 1: 0, 4, 8; stride 2: even column o, odd column o, even column o + 1).
    static func depthwise3x3(
        _ plane: UnsafeRawPointer, _ w: UnsafePointer<Float>, bias: Float, _ y: UnsafeMutablePointer<Float>, oh: Int,
        ow: Int, w8: Int, _ bounds: (lo: Float, hi: Float), _ t: UnsafeMutableRawPointer, tapRow row: Int, outRow: Int,
        taps: (Int, Int, Int)
    ) {
        typealias V = SIMD8<Float>
        let w0 = V(repeating: w[0]), w1 = V(repeating: w[1]), w2 = V(repeating: w[2])
        let w3 = V(repeating: w[3]), w4 = V(repeating: w[4]), w5 = V(repeating: w[5])
        let w6 = V(repeating: w[6]), w7 = V(repeating: w[7]), w8v = V(repeating: w[8])
        let (t0, t1, t2) = taps
        let tmp = t.assumingMemoryBound(to: Float.self)
        @inline(__always) func at(_ p: UnsafeRawPointer, _ offset: Int) -> V { p.loadUnaligned(fromByteOffset: offset, as: V.self) }
        /// One output row: taps from three input rows starting at `p`.
        @inline(__always) func tap(_ acc: V, _ p: UnsafeRawPointer) -> V {
            var a = acc
            a = a.addingProduct(w0, at(p, t0))
            a = a.addingProduct(w1, at(p, t1))
            a = a.addingProduct(w2, at(p, t2))
            a = a.addingProduct(w3, at(p, row &+ t0))
            a = a.addingProduct(w4, at(p, row &+ t1))
            a = a.addingProduct(w5, at(p, row &+ t2))
            a = a.addingProduct(w6, at(p, 2 &* row &+ t0))
            a = a.addingProduct(w7, at(p, 2 &* row &+ t1))
            a = a.addingProduct(w8v, at(p, 2 &* row &+ t2))
            return a
        }
        let b = V(repeating: bias)
        let lo = V(repeating: bounds.lo)
        let hi = V(repeating: bounds.hi)
        @inline(__always) func clamp(_ v: V) -> V { Epilogue.clamp(v, lo, hi) }
        let out = UnsafeMutableRawPointer(y)
        var y0 = 0
        while y0 < oh {
            let rows = min(4, oh &- y0)
            var o = 0
            while o < w8 {
                let p = plane + (y0 &* outRow &+ o &* 4)
                let acc0 = clamp(tap(b, p))
                let acc1 = clamp(tap(b, p + outRow))
                let acc2 = clamp(tap(b, p + 2 &* outRow))
                let acc3 = clamp(tap(b, p + 3 &* outRow))
                if o &+ 8 <= ow {
                    let at = (y0 &* ow &+ o) &* 4
                    out.storeBytes(of: acc0, toByteOffset: at, as: V.self)
                    if rows > 1 { out.storeBytes(of: acc1, toByteOffset: at &+ ow &* 4, as: V.self) }
                    if rows > 2 { out.storeBytes(of: acc2, toByteOffset: at &+ ow &* 8, as: V.self) }
                    if rows > 3 { out.storeBytes(of: acc3, toByteOffset: at &+ ow &* 12, as: V.self) }
                } else {
                    storeRows(t, w8, o, acc0, acc1, acc2, acc3)
                    for r in 0..<rows {
                        let dst: UnsafeMutablePointer<Float> = y + ((y0 &+ r) &* ow &+ o)
                        let src: UnsafePointer<Float> = UnsafePointer(tmp) + (r &* w8 &+ o)
                        dst.update(from: src, count: ow &- o)
                    }
                }
                o &+= 8
            }
            y0 &+= 4
        }
    }

    /// Stride-2 depthwise on the even/odd split copy (`split`: per padded row, `halfCols` even
    /// columns then `halfCols` odd ones): output column o, tap b reads padded column 2o + b, which is
    /// even column o + b/2 or odd column o + (b-1)/2. Same accumulation and epilogue as `depthwise`.
    static func depthwiseSplit(
        _ split: UnsafeRawPointer, _ w: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ g: WindowGeometry,
        _ epilogue: Epilogue, _ layout: PaddedPlane, _ t: UnsafeMutableRawPointer
    ) {
        let (oh, ow) = (g.output[1], g.output[2])
        let (kh, kw, sh, dh) = (g.kernel[1], g.kernel[2], g.strides[1], g.dilations[1])
        let half = layout.halfCols
        let rowFloats = 2 * half
        let w8 = layout.outWidth8
        let tmp = t.assumingMemoryBound(to: Float.self)
        for y0 in stride(from: 0, to: oh, by: 4) {
            var o = 0
            while o < w8 {
                var acc0 = SIMD8<Float>()
                var acc1 = SIMD8<Float>()
                var acc2 = SIMD8<Float>()
                var acc3 = SIMD8<Float>()
                let rowStep = sh &* rowFloats &* 4
                for a in 0..<kh {
                    let base = ((y0 &* sh &+ a &* dh) &* rowFloats &+ o) &* 4
                    for b in 0..<kw {
                        let wv = SIMD8<Float>(repeating: w[a &* kw &+ b])
                        let at = base &+ (b & 1 == 0 ? b >> 1 : half &+ (b >> 1)) &* 4
                        acc0 = acc0.addingProduct(wv, split.loadUnaligned(fromByteOffset: at, as: SIMD8<Float>.self))
                        acc1 = acc1.addingProduct(
                            wv, split.loadUnaligned(fromByteOffset: at &+ rowStep, as: SIMD8<Float>.self))
                        acc2 = acc2.addingProduct(
                            wv, split.loadUnaligned(fromByteOffset: at &+ 2 &* rowStep, as: SIMD8<Float>.self))
                        acc3 = acc3.addingProduct(
                            wv, split.loadUnaligned(fromByteOffset: at &+ 3 &* rowStep, as: SIMD8<Float>.self))
                    }
                }
                storeRows(t, w8, o, acc0, acc1, acc2, acc3)
                o += 8
            }
            addRows(tmp, w8, into: y, firstRow: y0, rows: min(4, oh - y0), ow: ow, epilogue)
        }
    }

    /// Stores four rows of eight outputs (at column `o`) into the four-row buffer `t` (rows `w8` apart).
    @inline(__always)
    static func storeRows(
        _ t: UnsafeMutableRawPointer, _ w8: Int, _ o: Int, _ r0: SIMD8<Float>, _ r1: SIMD8<Float>, _ r2: SIMD8<Float>,
        _ r3: SIMD8<Float>
    ) {
        t.storeBytes(of: r0, toByteOffset: o &* 4, as: SIMD8<Float>.self)
        t.storeBytes(of: r1, toByteOffset: (w8 &+ o) &* 4, as: SIMD8<Float>.self)
        t.storeBytes(of: r2, toByteOffset: (2 &* w8 &+ o) &* 4, as: SIMD8<Float>.self)
        t.storeBytes(of: r3, toByteOffset: (3 &* w8 &+ o) &* 4, as: SIMD8<Float>.self)
    }

    /// Adds `rows` rows of the four-row buffer onto the output (which holds the bias) from row
    /// `firstRow`, then applies the epilogue to each.
    @inline(__always)
    static func addRows(
        _ tmp: UnsafePointer<Float>, _ w8: Int, into y: UnsafeMutablePointer<Float>, firstRow: Int, rows: Int, ow: Int,
        _ epilogue: Epilogue
    ) {
        for r in 0..<rows {
            let dst = y + (firstRow + r) * ow
            let src = tmp + r * w8
            for i in 0..<ow { dst[i] += src[i] }
            epilogue.apply(dst, count: ow)
        }
    }

    /// Max pooling of one plane (padding ignored; NaN propagates, as the generic loop).
    static func maxPool(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ g: WindowGeometry) {
        let (ih, iw, oh, ow) = (g.input[1], g.input[2], g.output[1], g.output[2])
        let (kh, kw, sh, sw) = (g.kernel[1], g.kernel[2], g.strides[1], g.strides[2])
        let (dh, dw, ph, pw) = (g.dilations[1], g.dilations[2], g.padBegin[1], g.padBegin[2])
        withUnsafeTemporaryAllocation(of: Int.self, capacity: 2 * kw) { range in
            for b in 0..<kw {
                let (lo, hi) = ConvKernel.validRange(ow, stride: sw, pad: pw, kOff: b * dw, size: iw)
                range[2 * b] = lo
                range[2 * b + 1] = hi
            }
            for yo in 0..<oh {
                let dst = y + yo * ow
                dst.update(repeating: -.infinity, count: ow)
                for a in 0..<kh {
                    let yi = yo * sh - ph + a * dh
                    if yi < 0 || yi >= ih { continue }
                    let row = x + yi * iw
                    for b in 0..<kw where range[2 * b] < range[2 * b + 1] {
                        maxRow(dst, row + b * dw - pw, range[2 * b], range[2 * b + 1], sw, iw - b * dw + pw)
                    }
                }
            }
        }
    }

    @inline(__always)
    static func maxRow(
        _ dst: UnsafeMutablePointer<Float>, _ src: UnsafePointer<Float>, _ lo: Int, _ hi: Int, _ stride: Int, _ limit: Int
    ) {
        let d = UnsafeMutableRawPointer(dst)
        let s = UnsafeRawPointer(src)
        var o = lo
        if stride == 1 {
            while o + 8 <= hi {
                let x = s.loadUnaligned(fromByteOffset: o * 4, as: SIMD8<Float>.self)
                var y = d.loadUnaligned(fromByteOffset: o * 4, as: SIMD8<Float>.self)
                y.replace(with: x, where: (x .> y) .| (x .!= x))
                d.storeBytes(of: y, toByteOffset: o * 4, as: SIMD8<Float>.self)
                o += 8
            }
        } else if stride == 2 {
            while o + 8 <= hi && o * 2 + 16 <= limit {
                let x = s.loadUnaligned(fromByteOffset: o * 8, as: SIMD16<Float>.self).evenHalf
                var y = d.loadUnaligned(fromByteOffset: o * 4, as: SIMD8<Float>.self)
                y.replace(with: x, where: (x .> y) .| (x .!= x))
                d.storeBytes(of: y, toByteOffset: o * 4, as: SIMD8<Float>.self)
                o += 8
            }
        }
        while o < hi {
            let v = src[o * stride]
            if v > dst[o] || v != v { dst[o] = v }
            o += 1
        }
    }
}
