extension WinogradConv {
    typealias V = SIMD8<Float>

    /// How one run's tiles are cut into blocks and the blocks into work items.
    ///
    /// Tiles are numbered over the batch (image, tile row, tile column), so a batch of small images
    /// still gives wide GEMMs. A block is a run of whole 16-tile GEMM panels (block boundaries are
    /// multiples of 16 tiles, so every tile sits at the same place of the same panel whatever the
    /// thread budget: results do not depend on it). A block holds at most `scratchBudget` floats of
    /// V and M (16 · (C + M) floats per tile: 2 MB, so they stay in L2/L3 between the transforms
    /// and the GEMMs), but at least `minimumBlockPanels` panels: each block streams all of U once,
    /// so fewer tiles per block would make the GEMMs wait on memory. (A 4 MB budget with at least
    /// 4 panels measured the same on resnet18 at batch 1 and 32.)
    ///
    /// With a thread budget above one, the blocks are spread over the threads (their count rounded
    /// to a multiple of the budget when there are few) when each thread gets at least
    /// `minimumSplitPanels` panels; with fewer tiles (deep layers of one image: 14x14 is 49 tiles,
    /// 7x7 is 16), each block's output channels are split into
    /// `parts` instead, each part on its own thread (each then transforms the block's input: cheap
    /// next to the GEMMs).
    struct Blocking {
        static let scratchBudget = 1 << 19
        static let minimumBlockPanels = 2
        static let minimumSplitPanels = 4

        let tilesH: Int
        let tilesW: Int
        let tiles: Int
        let tilePanels: Int
        let blocks: Int
        let parts: Int
        /// The most tiles a block holds.
        let blockTiles: Int
        /// Row stride of each M[ξ] [rows, tiles] (the block's panels times 16).
        let ldm: Int
        /// Floats per V[ξ]: C rows of `ldm` tiles, as 16-column panels.
        let vStride: Int
        /// Weight panels (6 output channels each) and the most rows a part holds.
        let weightPanels: Int
        let partRows: Int
        /// Floats per half line of input (`fillLine`: a segment's tiles + 1 even or odd columns,
        /// plus room for 8-lane stores and loads past them).
        let lineCapacity: Int
        /// Floats of per-thread scratch: V, M, 8 floats of slack for the output transform's
        /// vector loads, 8 half lines, and a K block of a part's 16-bit weights widened.
        let scratchFloats: Int

        init(_ conv: WinogradConv, batch n: Int, _ geo: WindowGeometry, threads: Int) {
            let nr = PackedGemm.nr
            tilesH = (geo.output[1] + 1) / 2
            tilesW = (geo.output[2] + 1) / 2
            tiles = n * tilesH * tilesW
            tilePanels = (tiles + nr - 1) / nr
            let maxPanels = max(Self.minimumBlockPanels, Self.scratchBudget / (16 * (conv.c + conv.m) * nr))
            var blocks = (tilePanels + maxPanels - 1) / maxPanels
            if threads > 1 {
                if blocks < threads {
                    if tilePanels >= threads * Self.minimumSplitPanels { blocks = threads }
                } else if blocks < 4 * threads {
                    blocks = (blocks + threads - 1) / threads * threads
                }
            }
            blocks = max(1, min(blocks, tilePanels))
            self.blocks = blocks
            weightPanels = (conv.m + PackedGemm.mr - 1) / PackedGemm.mr
            parts = blocks >= threads ? 1 : min(weightPanels, (threads + blocks - 1) / blocks)
            let blockPanels = (tilePanels + blocks - 1) / blocks
            blockTiles = min(tiles, blockPanels * nr)
            ldm = blockPanels * nr
            vStride = conv.c * ldm
            partRows = (weightPanels + parts - 1) / parts * PackedGemm.mr
            lineCapacity = tilesW + 24
            scratchFloats =
                16 * vStride + 16 * partRows * ldm + 8 + 8 * lineCapacity
                + conv.weights[0].scratchFloats(panels: partRows / PackedGemm.mr)
        }

        /// Tiles of block `block`.
        func tileRange(_ block: Int) -> Range<Int> {
            let lo = tilePanels * block / blocks * PackedGemm.nr
            let hi = tilePanels * (block + 1) / blocks * PackedGemm.nr
            return min(lo, tiles)..<min(hi, tiles)
        }

        /// Weight panels of part `part`.
        func panelRange(_ part: Int) -> Range<Int> {
            (weightPanels * part / parts)..<(weightPanels * (part + 1) / parts)
        }

        /// Calls `body` for each run of `tiles` within one tile row of one image.
        func forEachSegment(_ tiles: Range<Int>, _ body: (Segment) -> Void) {
            let perImage = tilesH * tilesW
            var t = tiles.lowerBound
            while t < tiles.upperBound {
                let r = t % perImage
                let tx = r % tilesW
                let count = min(tiles.upperBound - t, tilesW - tx)
                body(Segment(image: t / perImage, ty: r / tilesW, tx: tx, count: count, local: t - tiles.lowerBound))
                t += count
            }
        }
    }

    /// `count` tiles of one tile row: image, tile row, first tile column, and the first tile's
    /// index within its block.
    struct Segment {
        let image: Int
        let ty: Int
        let tx: Int
        let count: Int
        let local: Int
    }

    /// Zeroes the columns past `count` of the last 16-tile panel of every V[ξ] (the GEMM's edge
    /// kernels compute them and drop them; zero keeps stale floats, denormals say, out of them).
    func clearPanelTail(_ v: UnsafeMutablePointer<Float>, count: Int, _ b: Blocking) {
        let nr = PackedGemm.nr
        let used = count % nr
        if used == 0 { return }
        let panel = count / nr
        for xi in 0..<16 {
            var p = v + xi * b.vStride + panel * c * nr + used
            for _ in 0..<c {
                p.update(repeating: 0, count: nr - used)
                p += nr
            }
        }
    }

    /// V = Bᵀ d B for the segment's tiles in every input channel, written into the 16 V[ξ] in
    /// `PackedGemm`'s B panel layout (tile t, channel ch at `(t / 16) * C * 16 + ch * 16 + t % 16`).
    ///
    /// Per channel, each of the segment's four input rows is first split into its even and odd
    /// columns, zero outside the image (`fillLine`), so that the padding and the image's edges need
    /// no tests below; then 8 tiles at a time, one per SIMD8 lane, the 4 columns of the 8 tiles'
    /// 4x4 inputs are plain loads: even[l], odd[l], even[l + 1], odd[l + 1]. Chunks of 8 start at
    /// multiples of 8 in the block, so a full chunk is one 8-float store per ξ inside one panel; the
    /// partial chunks at a segment's ends store lane by lane.
    func inputTransform(
        _ s: Segment, _ x: UnsafePointer<Float>, _ geo: WindowGeometry, _ b: Blocking, _ v: UnsafeMutablePointer<Float>,
        _ lines: UnsafeMutablePointer<Float>
    ) {
        let (ih, iw) = (geo.input[1], geo.input[2])
        let iy0 = 2 * s.ty - geo.padBegin[1]
        let ix0 = 2 * s.tx - geo.padBegin[2]
        let cap = b.lineCapacity
        let vs = b.vStride
        for ch in 0..<c {
            let plane = x + (s.image * c + ch) * ih * iw
            for r in 0..<4 {
                Self.fillLine(
                    even: lines + 2 * r * cap, odd: lines + (2 * r + 1) * cap, plane, row: iy0 + r, from: ix0,
                    count: s.count + 1, ih: ih, iw: iw)
            }
            var j = 0
            while j < s.count {
                let t = s.local + j
                let lanes = min(8 - (t & 7), s.count - j)
                let r1 = Self.rowTransform(lines + 2 * cap + j, lines + 3 * cap + j)
                let r2 = Self.rowTransform(lines + 4 * cap + j, lines + 5 * cap + j)
                let d = v + (t >> 4) * c * 16 + ch * 16 + (t & 15)
                // Rows of Bᵀ applied to the row-transformed tile: ξ = 4 i + j.
                Self.put(r1.0 + r2.0, d + 4 * vs, lanes); Self.put(r1.1 + r2.1, d + 5 * vs, lanes)
                Self.put(r1.2 + r2.2, d + 6 * vs, lanes); Self.put(r1.3 + r2.3, d + 7 * vs, lanes)
                Self.put(r2.0 - r1.0, d + 8 * vs, lanes); Self.put(r2.1 - r1.1, d + 9 * vs, lanes)
                Self.put(r2.2 - r1.2, d + 10 * vs, lanes); Self.put(r2.3 - r1.3, d + 11 * vs, lanes)
                let r0 = Self.rowTransform(lines + j, lines + cap + j)
                Self.put(r0.0 - r2.0, d, lanes); Self.put(r0.1 - r2.1, d + vs, lanes)
                Self.put(r0.2 - r2.2, d + 2 * vs, lanes); Self.put(r0.3 - r2.3, d + 3 * vs, lanes)
                let r3 = Self.rowTransform(lines + 6 * cap + j, lines + 7 * cap + j)
                Self.put(r1.0 - r3.0, d + 12 * vs, lanes); Self.put(r1.1 - r3.1, d + 13 * vs, lanes)
                Self.put(r1.2 - r3.2, d + 14 * vs, lanes); Self.put(r1.3 - r3.3, d + 15 * vs, lanes)
                j += lanes
            }
        }
    }

    /// Y = Aᵀ M A + bias for the segment's tiles in output channels `rows`, then the activation,
    /// written into `y` (2x2 per tile, the second column or row dropped past the output's edge).
    /// 8 tiles at a time as in `inputTransform`; Relu is applied in registers, the other
    /// activations on the written rows.
    func outputTransform(
        _ s: Segment, _ mb: UnsafePointer<Float>, mStride ms: Int, ldm: Int, rows: Range<Int>, _ geo: WindowGeometry,
        _ bias: UnsafePointer<Float>?, _ epilogue: Epilogue, _ y: UnsafeMutablePointer<Float>
    ) {
        let (oh, ow) = (geo.output[1], geo.output[2])
        let oy = 2 * s.ty
        let second = oy + 1 < oh
        let ox0 = 2 * s.tx
        let span = min(2 * s.count, ow - ox0)
        let relu = epilogue.kind == .relu
        let after = epilogue.kind != .none && !relu
        for row in rows {
            let src = mb + (row - rows.lowerBound) * ldm
            let bv = V(repeating: bias?[row] ?? 0)
            let y0 = y + ((s.image * m + row) * oh + oy) * ow + ox0
            let y1 = y0 + ow
            var j = 0
            while j < s.count {
                let t = s.local + j
                let lanes = min(8 - (t & 7), s.count - j)
                let p = src + t
                // Columns of A per row r of M: (m_r0 + m_r1 + m_r2, m_r1 - m_r2 - m_r3).
                let (a0, b0) = Self.columnTransform(p, ms)
                let (a1, b1) = Self.columnTransform(p + 4 * ms, ms)
                let (a2, b2) = Self.columnTransform(p + 8 * ms, ms)
                let (a3, b3) = Self.columnTransform(p + 12 * ms, ms)
                var y00 = a0 + a1 + a2 + bv
                var y01 = b0 + b1 + b2 + bv
                var y10 = a1 - a2 - a3 + bv
                var y11 = b1 - b2 - b3 + bv
                if relu {
                    // As `Epilogue.clamp`: negative to 0, NaN kept.
                    y00.replace(with: 0, where: y00 .< 0)
                    y01.replace(with: 0, where: y01 .< 0)
                    y10.replace(with: 0, where: y10 .< 0)
                    y11.replace(with: 0, where: y11 .< 0)
                }
                let o = 2 * j
                if o + 16 <= span {
                    Self.storeInterleaved(y00, y01, y0 + o)
                    if second { Self.storeInterleaved(y10, y11, y1 + o) }
                } else {
                    for l in 0..<lanes {
                        let q = o + 2 * l
                        y0[q] = y00[l]
                        if q + 1 < span { y0[q + 1] = y01[l] }
                        if second {
                            y1[q] = y10[l]
                            if q + 1 < span { y1[q + 1] = y11[l] }
                        }
                    }
                }
                j += lanes
            }
            if after {
                epilogue.apply(y0, count: span)
                if second { epilogue.apply(y1, count: span) }
            }
        }
    }

    /// One row of 8 tiles' 4x4 inputs times B: (d0 - d2, d1 + d2, d2 - d1, d1 - d3), where column
    /// k of lane l's tile is `even[l]`, `odd[l]`, `even[l + 1]`, `odd[l + 1]` for k = 0...3.
    @inline(__always)
    static func rowTransform(_ even: UnsafeMutablePointer<Float>, _ odd: UnsafeMutablePointer<Float>) -> (V, V, V, V) {
        let (d0, d1, d2, d3) = (PackedGemm.load(even), PackedGemm.load(odd), PackedGemm.load(even + 1), PackedGemm.load(odd + 1))
        return (d0 - d2, d1 + d2, d2 - d1, d1 - d3)
    }

    /// One row of 8 tiles' M (the 4 values at `p`, `p + ms`, `p + 2 ms`, `p + 3 ms`) times A.
    @inline(__always)
    static func columnTransform(_ p: UnsafePointer<Float>, _ ms: Int) -> (V, V) {
        let m0 = PackedGemm.load(p)
        let m1 = PackedGemm.load(p + ms)
        let m2 = PackedGemm.load(p + 2 * ms)
        let m3 = PackedGemm.load(p + 3 * ms)
        return (m0 + m1 + m2, m1 - m2 - m3)
    }

    /// Stores a0, b0, a1, b1, ... a7, b7 at `p` (one output row of 8 tiles).
    @inline(__always)
    static func storeInterleaved(_ a: V, _ b: V, _ p: UnsafeMutablePointer<Float>) {
        let v = SIMD16<Float>(
            a[0], b[0], a[1], b[1], a[2], b[2], a[3], b[3], a[4], b[4], a[5], b[5], a[6], b[6], a[7], b[7])
        UnsafeMutableRawPointer(p).storeBytes(of: v, as: SIMD16<Float>.self)
    }

    /// Stores the first `lanes` lanes of `value` at `p`.
    @inline(__always)
    static func put(_ value: V, _ p: UnsafeMutablePointer<Float>, _ lanes: Int) {
        if lanes == 8 {
            PackedGemm.store(value, p)
            return
        }
        // 4, 2 and 1 lanes as the bits of `lanes` say: at most three stores, no lane loop.
        var q = UnsafeMutableRawPointer(p)
        var rest = value.lowHalf
        if lanes & 4 != 0 {
            q.storeBytes(of: rest, as: SIMD4<Float>.self)
            rest = value.highHalf
            q += 16
        }
        var pair = rest.lowHalf
        if lanes & 2 != 0 {
            q.storeBytes(of: pair, as: SIMD2<Float>.self)
            pair = rest.highHalf
            q += 8
        }
        if lanes & 1 != 0 { q.storeBytes(of: pair[0], as: Float.self) }
    }

    /// Input row `row` of `plane` [ih, iw] from column `x0` on, split into `count` even columns
    /// (`even[i]` = column x0 + 2i) and `count` odd ones, zero outside the image, each followed by 8
    /// zeros. Inside the row, 16 columns at a time (one load, split into its even and odd lanes).
    @inline(__always)
    static func fillLine(
        even: UnsafeMutablePointer<Float>, odd: UnsafeMutablePointer<Float>, _ plane: UnsafePointer<Float>, row: Int,
        from x0: Int, count: Int, ih: Int, iw: Int
    ) {
        if row < 0 || row >= ih {
            PatchSource.zero(even, count + 8)
            PatchSource.zero(odd, count + 8)
            return
        }
        let line = plane + row * iw
        var i = 0
        while i < count {
            let col = x0 + 2 * i
            if col >= 0 && col + 16 <= iw {
                let v = UnsafeRawPointer(line + col).loadUnaligned(as: SIMD16<Float>.self)
                PackedGemm.store(v.evenHalf, even + i)
                PackedGemm.store(v.oddHalf, odd + i)
                i += 8
            } else {
                even[i] = col >= 0 && col < iw ? line[col] : 0
                odd[i] = col + 1 >= 0 && col + 1 < iw ? line[col + 1] : 0
                i += 1
            }
        }
        PatchSource.zero(even + count, 8)
        PatchSource.zero(odd + count, 8)
    }
}
