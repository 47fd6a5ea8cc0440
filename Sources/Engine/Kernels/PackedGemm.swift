import CKernels
import Glibc
import Tensors

/// The engine's own single-precision GEMM for a constant left operand:
/// `C[m, n] += A[m, k] · B[k, n]` (row-major), where A (a Conv's weights) is packed once at load
/// into `PackedMatrix` panels and B (the input, or its im2col patches) is packed per call into a
/// per-thread buffer.
///
/// Why not OpenBLAS here: `cblas_sgemm` repacks both operands on every call, and for a convolution
/// that means re-reading and re-laying-out the whole weight matrix per image (16 % of resnet18's
/// time, measured with perf). Packing the weights once removes that, and the kernel accumulates onto
/// C, which already holds the bias, so the epilogue is the only pass after it.
///
/// Layout (the classic Goto/BLIS loop nest): the micro-kernel computes an `mr` x `nr` (6 x 16) tile
/// of C from one A panel (`mr` rows, k-major) and one B panel (`nr` columns, k-major), keeping the 12
/// SIMD8 accumulators in registers (the Engine target is built for x86-64-v3, so each SIMD8 is one
/// AVX register and `addingProduct` one FMA). K is cut into blocks of `kc` so a B panel stays in L1
/// and a B block (`kc` x `nc`) in L2. Threads split N when it is wide enough, else the A panels.
/// Stateless apart from `PackedMatrix` (immutable after init); safe from any thread.
enum PackedGemm {
    static let mr = 6
    static let nr = 16
    static let kc = 256
    static let nc = 512
    /// A panels per L2 block (96 rows: 96 KiB of A at `kc` 256).
    static let mcPanels = 16
    /// Below this many float operations a call stays on one thread: waking the pool's threads
    /// costs more than the split saves.
    static let parallelFlops = 400_000

    /// `C[rows, n] += A · B` for the `A` of `packed` and a row-major `B` [packed.k, n] with row
    /// stride `ldb`; `C` has row stride `ldc`. Splits the work over the engine's thread budget.
    static func multiply(
        _ packed: PackedMatrix, b: UnsafePointer<Float>, ldb: Int, n: Int, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        multiply(packed, source: MatrixSource(b: b, ldb: ldb), n: n, c: c, ldc: ldc)
    }

    /// `C[rows, n] += A · B` where `source` packs the blocks of B [packed.k, n], on at most
    /// `threads` threads (default: the engine's budget). Each task's tiles start and end as
    /// `finish.tiles` says, and the task calls `finish.finish` on its block of C after its GEMM.
    static func multiply<Source: PanelSource, Finish: TaskFinish>(
        _ packed: PackedMatrix, source: Source, n: Int, c: UnsafeMutablePointer<Float>, ldc: Int, threads: Int? = nil,
        finish: Finish = NoFinish()
    ) {
        let m = packed.rows
        if m == 0 || n == 0 || packed.k == 0 { return }
        let panels = packed.panels
        let budget = max(1, threads ?? BLAS.threads)
        let flops = 2 * m * n * packed.k
        let tasks = Parallel.chunks(work: flops, minimumWork: parallelFlops, budget: budget)
        // Split N (each task packs only its own columns) when every task gets a few panels of it;
        // otherwise split the A panels (each task packs the same B block: cheap when N is narrow).
        let splitN = n >= tasks * nr * 4
        let cAddress = Int(bitPattern: c)
        let level = CPULevel.current
        Parallel.forEach(tasks, costPerItem: flops / tasks) { range in
            let c = UnsafeMutablePointer<Float>(bitPattern: cAddress)!
            for task in range {
                let (rows, columns, taskPanels): (Range<Int>, Range<Int>, Range<Int>)
                if splitN {
                    let lo = (n / nr) * task / tasks * nr
                    let hi = task == tasks - 1 ? n : (n / nr) * (task + 1) / tasks * nr
                    (rows, columns, taskPanels) = (0..<m, lo..<hi, 0..<panels)
                } else {
                    let lo = panels * task / tasks
                    let hi = panels * (task + 1) / tasks
                    (rows, columns, taskPanels) = (min(m, lo * mr)..<min(m, hi * mr), 0..<n, lo..<hi)
                }
                run(
                    packed, panels: taskPanels, source: source, columns: columns, c: c, ldc: ldc, finish: finish.tiles,
                    level: level)
                finish.finish(rows: rows, columns: columns, c: c, ldc: ldc)
            }
        }
    }

    /// One task on a row-major B (tests call it to check both ways of splitting).
    static func run(
        _ packed: PackedMatrix, panels: Range<Int>, b: UnsafePointer<Float>, ldb: Int, columns: Range<Int>,
        c: UnsafeMutablePointer<Float>, ldc: Int, finish: TileFinish = .accumulate, level: CPULevel = .current
    ) {
        run(
            packed, panels: panels, source: MatrixSource(b: b, ldb: ldb), columns: columns, c: c, ldc: ldc,
            finish: finish, level: level)
    }

    /// One task: the A panels `panels` against the B columns `columns`, on this thread; each tile
    /// starts and ends as `finish` says (by default it accumulates onto C).
    static func run<Source: PanelSource>(
        _ packed: PackedMatrix, panels: Range<Int>, source: Source, columns: Range<Int>,
        c: UnsafeMutablePointer<Float>, ldc: Int, finish: TileFinish = .accumulate, level: CPULevel = .current
    ) {
        if panels.isEmpty || columns.isEmpty { return }
        let k = packed.k
        // B's block, then (16-bit weights) the A block widened.
        ThreadScratch.withFloats(kc * nc + packed.scratchFloats(panels: panels.count)) { bp in
            var jc = columns.lowerBound
            while jc < columns.upperBound {
                let ncb = min(nc, columns.upperBound - jc)
                var pc = 0
                while pc < k {
                    let kcb = min(kc, k - pc)
                    let blockFinish = finish.block(first: pc == 0, last: pc + kcb == k)
                    source.pack(rows: pc..<(pc + kcb), columns: jc..<(jc + ncb), into: bp)
                    let a = packed.block(panels, pc: pc, kcb: kcb, scratch: bp + kc * nc)
                    kBlock(
                        a, rows: packed.rows, panels: panels, kcb: kcb, columns: ncb, b: UnsafePointer(bp), bStride: kcb * nr,
                        c: c + jc, ldc: ldc, rowBase: 0, finish: blockFinish, level: level)
                    pc += kcb
                }
                jc += ncb
            }
        }
    }

    /// One K block (`kcb` steps) of A's `panels` (A has `m` rows; panel p of the block at
    /// `a + (p - panels.lowerBound) * kcb * mr`, as `PackedMatrix.block` gives it) against `columns`
    /// columns of B in `nr`-wide panels (panel j at `b + j * bStride`, k-major), A in blocks of
    /// `mcPanels` panels (kept in L2) against each B panel (in L1). `c` is C's first column of the
    /// block at row `rowBase`. The loop nest of `run` and of `WinogradConv`'s 16 products; at
    /// `level` avx512 the whole block is one call of the C kernel (12 x 32 tiles on the same layout).
    @inline(__always)
    static func kBlock(
        _ a: UnsafePointer<Float>, rows m: Int, panels: Range<Int>, kcb: Int, columns: Int,
        b: UnsafePointer<Float>, bStride: Int, c: UnsafeMutablePointer<Float>, ldc: Int, rowBase: Int,
        finish: TileFinish, level: CPULevel
    ) {
        @inline(__always) func panel(_ p: Int) -> UnsafePointer<Float> { a + (p - panels.lowerBound) * kcb * mr }
        // Shallow blocks (K < 32: mobilenet_v2's 16-channel 1x1 convolution) stay on the AVX2
        // tiles: there the 12 x 32 tile's start and end (24 accumulators set, clamped and stored
        // per 16-32 FMAs each) cost more than its FMAs save (1.2-1.4x slower in the step profile;
        // 15-25 % in a C micro-bench at K 16, even at K 256).
        if level == .avx512 && kcb >= 32 {
            if panels.isEmpty || columns <= 0 { return }
            let first = panels.lowerBound * mr
            // A last panel of 1 to 4 columns (N = 49 leaves 1) goes to the row-vectorised `narrow`
            // tiles: as a 16-lane column vector it would cost a whole panel's FMAs (mobilenet_v2's
            // 1x1 convolutions at 7x7 were 1.4x slower that way).
            let tail = columns % nr
            let wide = tail > 0 && tail <= 4 ? columns - tail : columns
            if wide > 0 {
                var f = swerve_tile_finish(
                    bias: finish.bias.map { $0 + first }, from_bias: finish.fromBias ? 1 : 0,
                    clamp: finish.clamp ? 1 : 0, lo: finish.lo, hi: finish.hi)
                swerve_sgemm_packed_avx512(
                    kcb, a, min(m, panels.upperBound * mr) - first, b, bStride,
                    wide, c + (first - rowBase) * ldc, ldc, &f)
            }
            if wide < columns {
                let j = wide / nr
                for p in panels {
                    let row = p * mr
                    tile(
                        kcb, panel(p), b + j * bStride, c + (row - rowBase) * ldc + wide, ldc,
                        rows: min(mr, m - row), columns: columns - wide, finish: finish, row: row)
                }
            }
            return
        }
        let bPanels = (columns + nr - 1) / nr
        var ic = panels.lowerBound
        while ic < panels.upperBound {
            let icEnd = min(ic + mcPanels, panels.upperBound)
            for j in 0..<bPanels {
                let cols = min(nr, columns - j * nr)
                let bj = b + j * bStride
                for p in ic..<icEnd {
                    let row = p * mr
                    tile(
                        kcb, panel(p), bj, c + (row - rowBase) * ldc + j * nr, ldc,
                        rows: min(mr, m - row), columns: cols, finish: finish, row: row)
                }
            }
            ic = icEnd
        }
    }

    /// One C tile of `rows` (<= 6) x `columns` (<= 16) from one A panel and one B panel over `kc`
    /// steps: the full micro-kernel, or the edge kernel that fits the partial tile.
    /// `finish` (for this K block) and `row` (the tile's first row of C, for the bias) say how the
    /// tile starts and ends: the full tile does both in registers, edge tiles in C around the call.
    @inline(__always)
    static func tile(
        _ kc: Int, _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ c: UnsafeMutablePointer<Float>, _ ldc: Int,
        rows: Int, columns: Int, finish: TileFinish = .accumulate, row: Int = 0
    ) {
        if columns == nr && rows == mr {
            micro(kc, a, b, c, ldc, finish, bias: finish.bias.map { $0 + row })
            return
        }
        if finish.fromBias {
            for r in 0..<rows { (c + r * ldc).update(repeating: finish.bias?[row + r] ?? 0, count: columns) }
        }
        if columns == nr {
            partialRows(kc, a, b, c, ldc, rows: rows)
        } else if columns <= 4 {
            narrow(kc, a, b, c, ldc, rows: rows, columns: columns)
        } else {
            edge(kc, a, b, c, ldc, rows: rows, columns: columns)
        }
        if finish.clamp {
            for r in 0..<rows { Epilogue.clamp(c + r * ldc, columns, finish.lo, finish.hi) }
        }
    }

    /// The full 6 x 16 micro-kernel on a packed A panel; it accumulates onto C, or starts from the
    /// bias (`finish.fromBias`: C is not read) and/or clamps before its store (`finish.clamp`)
    /// instead of passes over C before and after.
    @inline(__always)
    static func micro(
        _ kc: Int, _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ c: UnsafeMutablePointer<Float>, _ ldc: Int,
        _ finish: TileFinish = .accumulate, bias: UnsafePointer<Float>? = nil
    ) {
        kernel(
            kc, PanelRows(p: a), b, c, c + ldc, c + 2 * ldc, c + 3 * ldc, c + 4 * ldc, c + 5 * ldc, finish, bias: bias)
    }

    /// The micro-kernel on six row pointers of C (16 floats each), accumulating.
    @inline(__always)
    static func micro(
        _ kc: Int, _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>,
        _ c0: UnsafeMutablePointer<Float>, _ c1: UnsafeMutablePointer<Float>, _ c2: UnsafeMutablePointer<Float>,
        _ c3: UnsafeMutablePointer<Float>, _ c4: UnsafeMutablePointer<Float>, _ c5: UnsafeMutablePointer<Float>
    ) {
        kernel(kc, PanelRows(p: a), b, c0, c1, c2, c3, c4, c5, .accumulate, bias: nil)
    }

    /// `C[6, 16] += A[6, kc] · B panel` with A read in place, six rows `lda` apart (as MLAS's
    /// kernels do), instead of a packed A panel. Not inlined: inside the caller's loops the
    /// compiler ran out of registers and spilled the accumulators.
    @inline(never)
    static func microDirect(
        _ kc: Int, _ a: UnsafePointer<Float>, _ lda: Int, _ b: UnsafePointer<Float>, _ c: UnsafeMutablePointer<Float>,
        _ ldc: Int
    ) {
        kernel(
            kc, StridedRows(a: a, lda: lda), b, c, c + ldc, c + 2 * ldc, c + 3 * ldc, c + 4 * ldc, c + 5 * ldc,
            .accumulate, bias: nil)
    }

    /// The one body of the 6 x 16 micro-kernel: 12 SIMD8 accumulators in registers, one 16-wide B
    /// row and six broadcast A values per k step, read through `A` (a packed panel or rows in place).
    @inline(__always)
    static func kernel<A: TileRows>(
        _ kc: Int, _ a: A, _ b: UnsafePointer<Float>,
        _ c0: UnsafeMutablePointer<Float>, _ c1: UnsafeMutablePointer<Float>, _ c2: UnsafeMutablePointer<Float>,
        _ c3: UnsafeMutablePointer<Float>, _ c4: UnsafeMutablePointer<Float>, _ c5: UnsafeMutablePointer<Float>,
        _ finish: TileFinish, bias: UnsafePointer<Float>?
    ) {
        var r00: V, r01: V, r10: V, r11: V, r20: V, r21: V, r30: V, r31: V, r40: V, r41: V, r50: V, r51: V
        if finish.fromBias {
            r00 = V(repeating: bias?[0] ?? 0); r01 = r00
            r10 = V(repeating: bias?[1] ?? 0); r11 = r10
            r20 = V(repeating: bias?[2] ?? 0); r21 = r20
            r30 = V(repeating: bias?[3] ?? 0); r31 = r30
            r40 = V(repeating: bias?[4] ?? 0); r41 = r40
            r50 = V(repeating: bias?[5] ?? 0); r51 = r50
        } else {
            r00 = load(c0); r01 = load(c0 + 8)
            r10 = load(c1); r11 = load(c1 + 8)
            r20 = load(c2); r21 = load(c2 + 8)
            r30 = load(c3); r31 = load(c3 + 8)
            r40 = load(c4); r41 = load(c4 + 8)
            r50 = load(c5); r51 = load(c5 + 8)
        }
        var pa = a
        var pb = b
        for _ in 0..<kc {
            let b0 = load(pb)
            let b1 = load(pb + 8)
            var av = V(repeating: pa.value(0))
            r00 = r00.addingProduct(av, b0)
            r01 = r01.addingProduct(av, b1)
            av = V(repeating: pa.value(1))
            r10 = r10.addingProduct(av, b0)
            r11 = r11.addingProduct(av, b1)
            av = V(repeating: pa.value(2))
            r20 = r20.addingProduct(av, b0)
            r21 = r21.addingProduct(av, b1)
            av = V(repeating: pa.value(3))
            r30 = r30.addingProduct(av, b0)
            r31 = r31.addingProduct(av, b1)
            av = V(repeating: pa.value(4))
            r40 = r40.addingProduct(av, b0)
            r41 = r41.addingProduct(av, b1)
            av = V(repeating: pa.value(5))
            r50 = r50.addingProduct(av, b0)
            r51 = r51.addingProduct(av, b1)
            pa.step()
            pb += 16
        }
        if finish.clamp {
            let lo = V(repeating: finish.lo)
            let hi = V(repeating: finish.hi)
            @inline(__always) func f(_ v: V) -> V { Epilogue.clamp(v, lo, hi) }
            r00 = f(r00); r01 = f(r01); r10 = f(r10); r11 = f(r11); r20 = f(r20); r21 = f(r21)
            r30 = f(r30); r31 = f(r31); r40 = f(r40); r41 = f(r41); r50 = f(r50); r51 = f(r51)
        }
        store(r00, c0); store(r01, c0 + 8)
        store(r10, c1); store(r11, c1 + 8)
        store(r20, c2); store(r21, c2 + 8)
        store(r30, c3); store(r31, c3 + 8)
        store(r40, c4); store(r41, c4 + 8)
        store(r50, c5); store(r51, c5 + 8)
    }

    /// Copies B[rows, columns] (row stride `ldb`) into `nr`-column panels, k-major, zero-padding the
    /// last panel's missing columns.
    @inline(__always)
    static func packB(
        _ b: UnsafePointer<Float>, ldb: Int, rows: Int, columns: Int, into out: UnsafeMutablePointer<Float>
    ) {
        var dst = out
        var j = 0
        while j < columns {
            let w = min(nr, columns - j)
            var src = b + j
            if w == nr {
                for _ in 0..<rows {
                    store(load(src), dst)
                    store(load(src + 8), dst + 8)
                    src += ldb
                    dst += nr
                }
            } else {
                for _ in 0..<rows {
                    dst.update(from: src, count: w)
                    (dst + w).update(repeating: 0, count: nr - w)
                    src += ldb
                    dst += nr
                }
            }
            j += nr
        }
    }

    typealias V = SIMD8<Float>

    @inline(__always)
    static func load(_ p: UnsafePointer<Float>) -> V { UnsafeRawPointer(p).loadUnaligned(as: V.self) }
    @inline(__always)
    static func load(_ p: UnsafeMutablePointer<Float>) -> V { UnsafeRawPointer(p).loadUnaligned(as: V.self) }
    @inline(__always)
    static func store(_ v: V, _ p: UnsafeMutablePointer<Float>) {
        UnsafeMutableRawPointer(p).storeBytes(of: v, as: V.self)
    }

    /// A tile of all 16 columns but fewer than 6 rows (the last A panel, whose missing rows are zero):
    /// the rows past the end of C go to a throwaway buffer on the stack.
    @inline(never)
    static func partialRows(
        _ kc: Int, _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ c: UnsafeMutablePointer<Float>, _ ldc: Int,
        rows: Int
    ) {
        withUnsafeTemporaryAllocation(of: Float.self, capacity: nr) { buffer in
            let spare = buffer.baseAddress!
            spare.initialize(repeating: 0, count: nr)
            func row(_ r: Int) -> UnsafeMutablePointer<Float> { r < rows ? c + r * ldc : spare }
            if rows <= 4 {
                micro4(kc, a, b, row(0), row(1), row(2), row(3))
            } else {
                micro(kc, a, b, row(0), row(1), row(2), row(3), row(4), row(5))
            }
        }
    }

    /// The first four rows of the micro-kernel (CNN channel counts 64, 256, ... leave 4 rows in
    /// the last panel): 8 accumulators.
    @inline(__always)
    static func micro4(
        _ kc: Int, _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>,
        _ c0: UnsafeMutablePointer<Float>, _ c1: UnsafeMutablePointer<Float>, _ c2: UnsafeMutablePointer<Float>,
        _ c3: UnsafeMutablePointer<Float>
    ) {
        var r00 = load(c0), r01 = load(c0 + 8)
        var r10 = load(c1), r11 = load(c1 + 8)
        var r20 = load(c2), r21 = load(c2 + 8)
        var r30 = load(c3), r31 = load(c3 + 8)
        var pa = a
        var pb = b
        for _ in 0..<kc {
            let b0 = load(pb)
            let b1 = load(pb + 8)
            var av = V(repeating: pa[0])
            r00 = r00.addingProduct(av, b0)
            r01 = r01.addingProduct(av, b1)
            av = V(repeating: pa[1])
            r10 = r10.addingProduct(av, b0)
            r11 = r11.addingProduct(av, b1)
            av = V(repeating: pa[2])
            r20 = r20.addingProduct(av, b0)
            r21 = r21.addingProduct(av, b1)
            av = V(repeating: pa[3])
            r30 = r30.addingProduct(av, b0)
            r31 = r31.addingProduct(av, b1)
            pa += 6
            pb += 16
        }
        store(r00, c0); store(r01, c0 + 8)
        store(r10, c1); store(r11, c1 + 8)
        store(r20, c2); store(r21, c2 + 8)
        store(r30, c3); store(r31, c3 + 8)
    }

    /// A tile of at most 4 columns (N = 49 leaves 1, N = 196 leaves 4): vectorised along the panel's
    /// 6 rows instead, one accumulator per column: per k step one 8-lane load of the A panel (lanes
    /// 6 and 7 read the next step's values, or `PackedMatrix`'s tail padding, and are dropped) and one
    /// FMA per column, against 6 per column for a 16-wide tile.
    @inline(never)
    static func narrow(
        _ kc: Int, _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ c: UnsafeMutablePointer<Float>, _ ldc: Int,
        rows: Int, columns: Int
    ) {
        var acc0 = V(), acc1 = V(), acc2 = V(), acc3 = V()
        var pa = a
        var pb = b
        if columns == 1 {
            // One column: four accumulators over alternating k steps (FMA latency, not throughput,
            // bounds a single chain), summed at the end.
            var k = 0
            while k &+ 4 <= kc {
                acc0 = acc0.addingProduct(load(pa), V(repeating: pb[0]))
                acc1 = acc1.addingProduct(load(pa + 6), V(repeating: pb[16]))
                acc2 = acc2.addingProduct(load(pa + 12), V(repeating: pb[32]))
                acc3 = acc3.addingProduct(load(pa + 18), V(repeating: pb[48]))
                pa += 24
                pb += 64
                k &+= 4
            }
            while k < kc {
                acc0 = acc0.addingProduct(load(pa), V(repeating: pb[0]))
                pa += 6
                pb += 16
                k &+= 1
            }
            let sum = (acc0 + acc1) + (acc2 + acc3)
            for r in 0..<rows { c[r * ldc] += sum[r] }
            return
        }
        for _ in 0..<kc {
            let av = load(pa)
            acc0 = acc0.addingProduct(av, V(repeating: pb[0]))
            acc1 = acc1.addingProduct(av, V(repeating: pb[1]))
            acc2 = acc2.addingProduct(av, V(repeating: pb[2]))
            acc3 = acc3.addingProduct(av, V(repeating: pb[3]))
            pa += 6
            pb += 16
        }
        for r in 0..<rows {
            let row = c + r * ldc
            row[0] += acc0[r]
            if columns > 1 { row[1] += acc1[r] }
            if columns > 2 { row[2] += acc2[r] }
            if columns > 3 { row[3] += acc3[r] }
        }
    }

    /// A partial tile (fewer than 16 columns of C): through a 6 x 16 buffer on the stack.
    @inline(never)
    static func edge(
        _ kc: Int, _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ c: UnsafeMutablePointer<Float>, _ ldc: Int,
        rows: Int, columns: Int
    ) {
        withUnsafeTemporaryAllocation(of: Float.self, capacity: mr * nr) { buffer in
            let t = buffer.baseAddress!
            t.initialize(repeating: 0, count: mr * nr)
            for r in 0..<rows { (t + r * nr).update(from: c + r * ldc, count: columns) }
            // Up to 8 columns: half the work (the B panel's other 8 columns are zero padding).
            if columns <= 8 { micro8(kc, a, b, t, nr) } else { micro(kc, a, b, t, nr) }
            for r in 0..<rows { (c + r * ldc).update(from: t + r * nr, count: columns) }
        }
    }

    /// `C[6, 8] += A panel · (first 8 columns of the B panel)`.
    @inline(__always)
    static func micro8(
        _ kc: Int, _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ c: UnsafeMutablePointer<Float>, _ ldc: Int
    ) {
        var r0 = load(c), r1 = load(c + ldc), r2 = load(c + 2 * ldc)
        var r3 = load(c + 3 * ldc), r4 = load(c + 4 * ldc), r5 = load(c + 5 * ldc)
        var pa = a
        var pb = b
        for _ in 0..<kc {
            let b0 = load(pb)
            r0 = r0.addingProduct(V(repeating: pa[0]), b0)
            r1 = r1.addingProduct(V(repeating: pa[1]), b0)
            r2 = r2.addingProduct(V(repeating: pa[2]), b0)
            r3 = r3.addingProduct(V(repeating: pa[3]), b0)
            r4 = r4.addingProduct(V(repeating: pa[4]), b0)
            r5 = r5.addingProduct(V(repeating: pa[5]), b0)
            pa += 6
            pb += 16
        }
        store(r0, c); store(r1, c + ldc); store(r2, c + 2 * ldc)
        store(r3, c + 3 * ldc); store(r4, c + 4 * ldc); store(r5, c + 5 * ldc)
    }
}

/// How each task of `PackedGemm.multiply` starts and ends its own block of C (rows x columns):
/// accumulating onto C (`NoFinish`), or a convolution's bias and activation (`BiasActivation`),
/// so those are done inside the tiles or by the task, split between the threads with the GEMM.
protocol TaskFinish: Sendable {
    /// How the task's tiles start and end (bias and clamp in registers).
    var tiles: TileFinish { get }
    /// What is left for the task to do on its block after its GEMM.
    func finish(rows: Range<Int>, columns: Range<Int>, c: UnsafeMutablePointer<Float>, ldc: Int)
}

struct NoFinish: TaskFinish {
    var tiles: TileFinish { .accumulate }
    @inline(__always) func finish(rows: Range<Int>, columns: Range<Int>, c: UnsafeMutablePointer<Float>, ldc: Int) {}
}

/// How the micro-kernel reads its six rows of A, one k step at a time.
protocol TileRows {
    /// A[r, the current step], for r in 0..<6.
    func value(_ r: Int) -> Float
    mutating func step()
}

/// A 6-row k-major panel (`PackedMatrix`, or A packed per call): a step's six values adjacent.
struct PanelRows: TileRows {
    var p: UnsafePointer<Float>
    @inline(__always) func value(_ r: Int) -> Float { p[r] }
    @inline(__always) mutating func step() { p += 6 }
}

/// Six rows of a row-major A read in place, `lda` apart.
struct StridedRows: TileRows {
    let a: UnsafePointer<Float>
    let lda: Int
    var q = 0
    @inline(__always) func value(_ r: Int) -> Float { a[r &* lda &+ q] }
    @inline(__always) mutating func step() { q &+= 1 }
}

/// How a GEMM tile starts and ends: from C's own values (accumulate), or from a per-row bias
/// without reading C; then optionally clamped to [lo, hi] before the store (Relu, Clip). The
/// bias goes in on the first K block and the clamp on the last (`block`).
struct TileFinish: @unchecked Sendable {
    /// Per row of C (nil: 0).
    var bias: UnsafePointer<Float>? = nil
    var fromBias = false
    var clamp = false
    var lo: Float = -.infinity
    var hi: Float = .infinity

    static let accumulate = TileFinish()

    /// This finish for one K block.
    @inline(__always)
    func block(first: Bool, last: Bool) -> TileFinish {
        var f = self
        f.fromBias = fromBias && first
        f.clamp = clamp && last
        return f
    }
}

/// C's rows start from `bias[row]` (0 without a bias) and end with `epilogue` applied: both inside
/// the tiles when the epilogue is a clamp (none, Relu, Clip), else the activation as a pass over
/// the task's block after its GEMM.
struct BiasActivation: TaskFinish, @unchecked Sendable {
    let bias: UnsafePointer<Float>?
    let epilogue: Epilogue

    var tiles: TileFinish {
        let bounds = epilogue.clampBounds
        return TileFinish(
            bias: bias, fromBias: true, clamp: bounds != nil && epilogue.kind != .none, lo: bounds?.lo ?? -.infinity,
            hi: bounds?.hi ?? .infinity)
    }

    func finish(rows: Range<Int>, columns: Range<Int>, c: UnsafeMutablePointer<Float>, ldc: Int) {
        if epilogue.kind == .none || epilogue.clampBounds != nil || rows.isEmpty { return }
        if columns.count == ldc {
            epilogue.apply(c + rows.lowerBound * ldc, count: rows.count * ldc)
        } else {
            for r in rows { epilogue.apply(c + r * ldc + columns.lowerBound, count: columns.count) }
        }
    }
}

/// Where B comes from: packs B[rows, columns] into `PackedGemm.nr`-column panels, k-major (panel j
/// at `out + j * rows.count * nr`), zero-padding the last panel's missing columns.
protocol PanelSource: Sendable {
    func pack(rows: Range<Int>, columns: Range<Int>, into out: UnsafeMutablePointer<Float>)
}

/// B as a row-major matrix with row stride `ldb`.
struct MatrixSource: PanelSource, @unchecked Sendable {
    let b: UnsafePointer<Float>
    let ldb: Int

    func pack(rows: Range<Int>, columns: Range<Int>, into out: UnsafeMutablePointer<Float>) {
        PackedGemm.packB(b + rows.lowerBound * ldb + columns.lowerBound, ldb: ldb, rows: rows.count,
            columns: columns.count, into: out)
    }
}

/// B as the im2col matrix of one image and group of a 2-D convolution, read straight from the
/// input: row r = (channel, ky, kx), column n = (oy, ox), value x[channel, oy*sh - ph + ky*dh,
/// ox*sw - pw + kx*dw] or 0 in the padding. No im2col buffer is written.
struct PatchSource: PanelSource, @unchecked Sendable {
    let x: UnsafePointer<Float>
    let g: WindowGeometry

    func pack(rows: Range<Int>, columns: Range<Int>, into out: UnsafeMutablePointer<Float>) {
        let nr = PackedGemm.nr
        let (ih, iw, ow) = (g.input[1], g.input[2], g.output[2])
        let (kh, kw, sh, sw) = (g.kernel[1], g.kernel[2], g.strides[1], g.strides[2])
        let (dh, dw, ph, pw) = (g.dilations[1], g.dilations[2], g.padBegin[1], g.padBegin[2])
        let kcb = rows.count
        let ncb = columns.count
        let taps = kh * kw
        // B rows are first built contiguously, eight at a time (one copy per output row: long
        // runs), then dealt into the 16-column panels, where those eight rows are adjacent.
        let group = 8
        let stride = ncb + nr
        withUnsafeTemporaryAllocation(of: Float.self, capacity: group * stride) { buffer in
            let lines = buffer.baseAddress!
            var r0 = rows.lowerBound
            while r0 < rows.upperBound {
                let count = min(group, rows.upperBound &- r0)
                for i in 0..<count {
                    let r = r0 &+ i
                    let line = lines + i &* stride
                    let ch = r / taps
                    let ky = (r % taps) / kw
                    let kx = r % kw
                    let plane = x + ch * ih * iw
                    let (lo, hi) = ConvKernel.validRange(ow, stride: sw, pad: pw, kOff: kx * dw, size: iw)
                    var t = 0
                    var oy = columns.lowerBound / ow
                    var ox = columns.lowerBound % ow
                    while t < ncb {
                        let run = min(ncb &- t, ow &- ox)
                        let iy = oy &* sh &- ph &+ ky &* dh
                        if iy < 0 || iy >= ih {
                            Self.zero(line + t, run)
                        } else {
                            let src = plane + (iy &* iw &- pw &+ kx &* dw)
                            let a = min(max(ox, lo), ox &+ run)
                            let b = max(min(ox &+ run, hi), a)
                            if a > ox { Self.zero(line + t, a &- ox) }
                            if sw == 1 {
                                Self.copy(line + (t &+ a &- ox), src + a, b &- a)
                            } else {
                                var o = a
                                if sw == 2 {
                                    // Eight outputs per 16-float load (its even lanes), while the
                                    // load stays inside the plane.
                                    let end = plane + ih &* iw
                                    let raw = UnsafeRawPointer(src)
                                    while o &+ 8 <= b && src + (2 &* o &+ 16) <= end {
                                        let v = raw.loadUnaligned(fromByteOffset: 8 &* o, as: SIMD16<Float>.self)
                                        UnsafeMutableRawPointer(line + (t &+ o &- ox)).storeBytes(of: v.evenHalf, as: SIMD8<Float>.self)
                                        o &+= 8
                                    }
                                }
                                while o < b {
                                    line[t &+ o &- ox] = src[o &* sw]
                                    o &+= 1
                                }
                            }
                            if b < ox &+ run { Self.zero(line + (t &+ b &- ox), ox &+ run &- b) }
                        }
                        t &+= run
                        ox &+= run
                        if ox == ow {
                            ox = 0
                            oy &+= 1
                        }
                    }
                    Self.zero(line + ncb, nr)
                }
                var panel = out + (r0 &- rows.lowerBound) &* nr
                var j = 0
                while j < ncb {
                    var dst = panel
                    var src = lines + j
                    for _ in 0..<count {
                        PackedGemm.store(PackedGemm.load(src), dst)
                        PackedGemm.store(PackedGemm.load(src + 8), dst + 8)
                        dst += nr
                        src += stride
                    }
                    panel += kcb &* nr
                    j &+= nr
                }
                r0 &+= count
            }
        }
    }
}

extension PatchSource {
    /// Copies `count` floats: libc for long runs, else 8-lane moves then single floats.
    @inline(__always)
    static func copy(_ dst: UnsafeMutablePointer<Float>, _ src: UnsafePointer<Float>, _ count: Int) {
        if count >= 256 {
            dst.update(from: src, count: count)
            return
        }
        if count >= 8 {
            // 8-lane moves; the last one overlaps the previous instead of a scalar tail.
            var i = 0
            while i &+ 8 <= count {
                PackedGemm.store(PackedGemm.load(src + i), dst + i)
                i &+= 8
            }
            if i < count { PackedGemm.store(PackedGemm.load(src + (count &- 8)), dst + (count &- 8)) }
            return
        }
        var i = 0
        while i < count {
            dst[i] = src[i]
            i &+= 1
        }
    }

    @inline(__always)
    static func zero(_ dst: UnsafeMutablePointer<Float>, _ count: Int) {
        if count >= 8 {
            var i = 0
            while i &+ 8 <= count {
                PackedGemm.store(PackedGemm.V(), dst + i)
                i &+= 8
            }
            if i < count { PackedGemm.store(PackedGemm.V(), dst + (count &- 8)) }
            return
        }
        var i = 0
        while i < count {
            dst[i] = 0
            i &+= 1
        }
    }
}

/// How packed weights are held: float32, or a 16-bit float type for a model whose weights are 16-bit
/// (`PackedWeights.storage`). A 16-bit matrix is widened a K block at a time into a thread's scratch
/// just before its GEMM (`PackedMatrix.block`, `PackedColumns`' `run`), so the GEMM kernels only ever
/// see float32 and the weights take half the memory. See docs/architecture.md, "16-bit floats".
enum PackedWeights {
    /// The 16-bit type packed weights are held in while a model is built (`InferenceSession.init`
    /// sets it for a model whose initializers are float16 or bfloat16); nil: float32.
    @TaskLocal static var storage: DataType?

    /// Packed weights of fewer elements than this stay float32 in a 16-bit model: they sit in
    /// cache, so halving them saves little memory, and widening them costs time (an encoder of
    /// 64-wide layers ran 1.09x its fp32 twin at batch 1 with them widened). A task-local so tests
    /// can lower it.
    @TaskLocal static var minimumElements = 1 << 15

    /// The type to hold the weights (`rows` of `columns` values, `stride` apart, at `p`) in: the
    /// current 16-bit type when every value is exactly one of it (so widening gives back the float32
    /// the plan computed) and they (or `elements`, the held count when it differs) are at least
    /// `minimumElements`; else float32.
    static func storage(
        rows: Int, columns: Int, stride: Int, _ p: UnsafePointer<Float>, elements: Int? = nil
    ) -> DataType {
        guard let half = storage, (elements ?? rows * columns) >= minimumElements else { return .float32 }
        for r in 0..<rows {
            let row = p + r * stride
            for i in 0..<columns where HalfConversion.rounded(row[i], to: half) != row[i] { return .float32 }
        }
        return half
    }

    /// `value` in the bits of 16-bit `format` (ties to even), rounded once from double.
    @inline(__always)
    static func bits(_ value: Double, _ format: DataType) -> UInt16 {
        format == .bfloat16 ? HalfConversion.bfloat16Bits(fromDouble: value) : HalfConversion.float16Bits(fromDouble: value)
    }
}

/// A constant matrix A [rows, k] (row-major) laid out once for `PackedGemm`: `ceil(rows / 6)`
/// panels of 6 rows, each k-major (for every step q, the 6 values A[r..r+6, q]), the last panel's
/// missing rows zero; the steps cut into the GEMM's K blocks (`PackedGemm.kc`), block after block,
/// and within a block panel after panel. So a K block of consecutive panels (what `kBlock` runs
/// against each B panel) is one contiguous stretch of memory, which the hardware prefetcher
/// follows when the weights come from L3 or DRAM, instead of a 6 KB run per panel with a jump to
/// the next panel's part of the block. Held as float32 or, for a 16-bit model, in its 16-bit type
/// (`storage`), widened a block at a time by `block`. Immutable after init; owns its buffer.
final class PackedMatrix: @unchecked Sendable {
    let rows: Int
    let k: Int
    let panels: Int
    /// float32, float16 or bfloat16: the element type of the buffer.
    let storage: DataType
    private let data: UnsafeMutableRawPointer
    /// The ledger the buffer is charged to (the load's, so the version's memory account has it).
    private let ledger: MemoryLedger
    /// Bytes of the buffer.
    let byteCount: Int

    /// Packs A, in the current 16-bit type when every value is one (`PackedWeights`).
    convenience init(_ a: UnsafePointer<Float>, rows: Int, k: Int, lda: Int) {
        self.init(a, rows: rows, k: k, lda: lda, storage: PackedWeights.storage(rows: rows, columns: k, stride: lda, a))
    }

    convenience init(_ a: UnsafePointer<Float>, rows: Int, k: Int, lda: Int, storage: DataType) {
        self.init(zeroRows: rows, k: k, storage: storage)
        let mr = PackedGemm.mr
        for p in 0..<panels {
            for r in 0..<min(mr, rows - p * mr) {
                let src = a + (p * mr + r) * lda
                for q in 0..<k { set(Double(src[q]), at: offset(panel: p, step: q) + r) }
            }
        }
    }

    /// A zero matrix of `rows` x `k` in the packed layout, for a builder that writes it through
    /// `set` and `offset` before the matrix is shared (`WinogradConv`, which computes 16
    /// matrices in one pass over the weights, with no full-size temporary).
    init(zeroRows rows: Int, k: Int, storage: DataType = .float32) {
        let mr = PackedGemm.mr
        self.rows = rows
        self.k = k
        self.storage = storage
        panels = (rows + mr - 1) / mr
        // 8 floats of tail padding: `narrow` reads 8 lanes at the last k step of the last panel.
        let count = panels * mr * k + 8
        byteCount = count * storage.byteSize
        ledger = MemoryLedger.chargeCurrentUnchecked(byteCount)
        data = .allocate(byteCount: byteCount, alignment: 64)
        data.initializeMemory(as: UInt8.self, repeating: 0, count: byteCount)
    }

    deinit {
        data.deallocate()
        ledger.credit(byteCount)
    }

    /// Where A[p * 6 + r, q] lives: `offset(panel: p, step: q) + r`.
    @inline(__always)
    func offset(panel p: Int, step q: Int) -> Int {
        let kc = PackedGemm.kc
        let start = q / kc * kc
        return start * panels * PackedGemm.mr + (p * min(kc, k - start) + q - start) * PackedGemm.mr
    }

    /// Writes element `index` of the buffer (rounded once to a 16-bit `storage`); only while the
    /// matrix is being built, before any other thread can see it.
    @inline(__always)
    func set(_ value: Double, at index: Int) {
        if storage == .float32 {
            data.assumingMemoryBound(to: Float.self)[index] = Float(value)
        } else {
            data.assumingMemoryBound(to: UInt16.self)[index] = PackedWeights.bits(value, storage)
        }
    }

    /// Panel `p` from step `pc`, the start of a K block (a multiple of `PackedGemm.kc`): the block's
    /// steps of the panel follow one another, and the next panel's follow them. float32 only.
    @inline(__always)
    func panel(_ p: Int, block pc: Int) -> UnsafePointer<Float> {
        UnsafePointer(data.assumingMemoryBound(to: Float.self) + offset(panel: p, step: pc))
    }

    /// Floats of scratch `block` needs for `panels` panels (0 when held as float32).
    func scratchFloats(panels: Int) -> Int { storage == .float32 ? 0 : panels * PackedGemm.mr * PackedGemm.kc + 8 }

    /// The K block from step `pc` (`kcb` steps) of `panels` as float32, panel p at
    /// `result + (p - panels.lowerBound) * kcb * 6`: the buffer itself when held as float32, else
    /// widened into `scratch` (`scratchFloats(panels:)` floats; the 8 past the block are readable).
    @inline(__always)
    func block(_ panels: Range<Int>, pc: Int, kcb: Int, scratch: UnsafeMutablePointer<Float>) -> UnsafePointer<Float> {
        let at = offset(panel: panels.lowerBound, step: pc)
        if storage == .float32 { return UnsafePointer(data.assumingMemoryBound(to: Float.self) + at) }
        HalfConversion.widen(
            data.assumingMemoryBound(to: UInt16.self) + at, format: storage, into: scratch,
            count: panels.count * PackedGemm.mr * kcb)
        return UnsafePointer(scratch)
    }
}

/// One growable float buffer per thread, for per-call packing (no allocation on the request path
/// once a thread has run a call of the largest size). Freed when the thread exits.
enum ThreadScratch {
    private struct Header {
        var capacity: Int
        var data: UnsafeMutablePointer<Float>
    }

    private static let key: pthread_key_t = {
        var key = pthread_key_t()
        let created = pthread_key_create(&key) { raw in
            guard let raw else { return }
            let header = raw.assumingMemoryBound(to: Header.self)
            header.pointee.data.deallocate()
            header.deallocate()
        }
        precondition(created == 0, "pthread_key_create failed: \(created)")
        return key
    }()

    /// Calls `body` with this thread's buffer of at least `count` floats (contents undefined).
    /// Not reentrant: `body` must not call `withFloats` itself.
    static func withFloats<R>(_ count: Int, _ body: (UnsafeMutablePointer<Float>) -> R) -> R {
        var header = pthread_getspecific(key)?.assumingMemoryBound(to: Header.self)
        if header == nil {
            let h = UnsafeMutablePointer<Header>.allocate(capacity: 1)
            h.initialize(to: Header(capacity: count, data: .allocate(capacity: count)))
            pthread_setspecific(key, h)
            header = h
        } else if header!.pointee.capacity < count {
            header!.pointee.data.deallocate()
            header!.pointee = Header(capacity: count, data: .allocate(capacity: count))
        }
        return body(header!.pointee.data)
    }
}

/// A constant matrix B [k, n] (the weights of Gemm and MatMul) laid out once for `PackedGemm`:
/// `ceil(n / 16)` panels of 16 columns, each k-major (for every p in 0..<k, the 16 values
/// B[p, j..j+16]), the last panel's missing columns zero. Built from B as stored, row-major
/// [k, n], or transposed ([n, k], Gemm's transB). Held as float32 or, for a 16-bit model, in its
/// 16-bit type (`storage`; `PackedGemm.run` widens it a K block and a few panels at a time).
/// Immutable after init; owns its buffer.
final class PackedColumns: @unchecked Sendable {
    let k: Int
    let n: Int
    let panels: Int
    /// float32, float16 or bfloat16: the element type of the buffer.
    let storage: DataType
    private let data: UnsafeMutableRawPointer
    /// The ledger the buffer is charged to (the load's, so the version's memory account has it).
    private let ledger: MemoryLedger
    /// Bytes of the buffer.
    let byteCount: Int

    /// Packs B, in the current 16-bit type when every value is one (`PackedWeights`).
    convenience init(_ b: UnsafePointer<Float>, k: Int, n: Int, transposed: Bool) {
        self.init(b, k: k, n: n, transposed: transposed, storage: PackedWeights.storage(rows: 1, columns: k * n, stride: 0, b))
    }

    init(_ b: UnsafePointer<Float>, k: Int, n: Int, transposed: Bool, storage: DataType) {
        let nr = PackedGemm.nr
        self.k = k
        self.n = n
        self.storage = storage
        panels = (n + nr - 1) / nr
        let count = max(1, panels * nr * k)
        byteCount = count * storage.byteSize
        ledger = MemoryLedger.chargeCurrentUnchecked(byteCount)
        data = .allocate(byteCount: byteCount, alignment: 64)
        data.initializeMemory(as: UInt8.self, repeating: 0, count: byteCount)
        let floats = data.assumingMemoryBound(to: Float.self)
        let halves = data.assumingMemoryBound(to: UInt16.self)
        for j in 0..<panels {
            for col in 0..<min(nr, n - j * nr) {
                let c = j * nr + col
                for p in 0..<k {
                    let v = transposed ? b[c * k + p] : b[p * n + c]
                    let at = j * nr * k + p * nr + col
                    if storage == .float32 { floats[at] = v } else { halves[at] = PackedWeights.bits(Double(v), storage) }
                }
            }
        }
    }

    deinit {
        data.deallocate()
        ledger.credit(byteCount)
    }

    /// The float32 panels (float32 storage only).
    var floatPanels: ColumnPanels { ColumnPanels(base: UnsafePointer(data.assumingMemoryBound(to: Float.self)), first: 0, k: k, n: n) }

    /// Steps `pc..<pc + kcb` of `panels` widened to float32 into `scratch` (at least
    /// `panels.count * kcb * 16` floats), as panels of depth `kcb`.
    func widen(_ panels: Range<Int>, pc: Int, kcb: Int, into scratch: UnsafeMutablePointer<Float>) -> ColumnPanels {
        let nr = PackedGemm.nr
        let halves = UnsafePointer(data.assumingMemoryBound(to: UInt16.self))
        for j in panels {
            HalfConversion.widen(
                halves + j * nr * k + pc * nr, format: storage, into: scratch + (j - panels.lowerBound) * kcb * nr,
                count: kcb * nr)
        }
        return ColumnPanels(base: UnsafePointer(scratch), first: panels.lowerBound, k: kcb, n: n)
    }

    /// Starts bringing what `widen(panels, pc:, kcb:)` will read into L2 (16-bit storage).
    func prefetch(_ panels: Range<Int>, pc: Int, kcb: Int) {
        let nr = PackedGemm.nr
        let halves = UnsafePointer(data.assumingMemoryBound(to: UInt16.self))
        for j in panels { swerve_prefetch_l2(halves + j * nr * k + pc * nr, kcb * nr * 2) }
    }
}

/// Float32 B panels as the kernels read them: panel j (columns `j * 16 ..< j * 16 + 16` of the
/// `n`) at `base + (j - first) * k * 16`, k-major over `k` steps. All of a float32
/// `PackedColumns`, or a widened K block of a few panels of a 16-bit one.
struct ColumnPanels {
    let base: UnsafePointer<Float>
    let first: Int
    let k: Int
    let n: Int

    @inline(__always)
    func panel(_ j: Int) -> UnsafePointer<Float> { base + (j - first) * PackedGemm.nr * k }
}

extension PackedGemm {
    /// `C[m, n] += A[m, k] · B` for a row-major A (row stride `lda`) and the packed constant B;
    /// C has row stride `ldc`. Fewer than 4 rows take a row-vector loop over the panels (the
    /// 6-row tile would be mostly padding). Splits the work over the engine's thread budget.
    ///
    /// `epilogue` (an activation) is applied by each task to its own block of C right after its
    /// GEMM, on the task's thread while the block is in its cache.
    static func multiply(
        a: UnsafePointer<Float>, lda: Int, m: Int, _ packed: PackedColumns, c: UnsafeMutablePointer<Float>, ldc: Int,
        epilogue: Epilogue = .none
    ) {
        let (k, n) = (packed.k, packed.n)
        if m == 0 || n == 0 || k == 0 { return }
        let flops = 2 * m * n * k
        let tasks = Parallel.chunks(work: flops, minimumWork: parallelFlops)
        let rowPanels = (m + mr - 1) / mr
        // Split the B panels when there are enough of them, else the rows.
        let splitN = packed.panels >= tasks * 2 || rowPanels < tasks
        let level = CPULevel.current
        let aAddress = Int(bitPattern: a)
        let cAddress = Int(bitPattern: c)
        Parallel.forEach(tasks, costPerItem: flops / tasks) { range in
            let a = UnsafePointer<Float>(bitPattern: aAddress)!
            let c = UnsafeMutablePointer<Float>(bitPattern: cAddress)!
            for task in range {
                let (rows, columns): (Range<Int>, Range<Int>)
                if splitN {
                    let lo = packed.panels * task / tasks
                    let hi = packed.panels * (task + 1) / tasks
                    run(a: a, lda: lda, rows: 0..<m, packed, panels: lo..<hi, c: c, ldc: ldc, level: level)
                    (rows, columns) = (0..<m, min(n, lo * nr)..<min(n, hi * nr))
                } else {
                    let lo = rowPanels * task / tasks * mr
                    let hi = min(m, rowPanels * (task + 1) / tasks * mr)
                    run(a: a, lda: lda, rows: lo..<hi, packed, panels: 0..<packed.panels, c: c, ldc: ldc, level: level)
                    (rows, columns) = (lo..<hi, 0..<n)
                }
                if epilogue.kind != .none && !columns.isEmpty {
                    for r in rows { epilogue.apply(c + r * ldc + columns.lowerBound, count: columns.count) }
                }
            }
        }
    }

    /// One task: rows `rows` of A against the B panels `panels`, on this thread. At `level`
    /// avx512 each K block (the whole K below 4 rows) is one call of the C kernel, which reads A in
    /// place for every row count (12 x 32 tiles down to 1 x 64; partial panels through masks, so A
    /// is never packed).
    static func run(
        a: UnsafePointer<Float>, lda: Int, rows: Range<Int>, _ packed: PackedColumns, panels: Range<Int>,
        c: UnsafeMutablePointer<Float>, ldc: Int, level: CPULevel = .current
    ) {
        if rows.isEmpty || panels.isEmpty { return }
        if packed.storage == .float32 {
            run(a: a, lda: lda, rows: rows, packed.floatPanels, panels: panels, c: c, ldc: ldc, level: level, aScratch: nil)
            return
        }
        // 16-bit weights: K blocks of `kc` steps and groups of panels widened into scratch, each
        // multiplied on the float32 path and added onto C. A group has about as many columns as
        // the task has rows (2 to 16 panels at K 256: 32 to 256 KiB), which balances writing the
        // widened group (cheapest when it stays in L1) against reading A again for each group
        // (a 768-wide encoder: 32 KiB groups cost batch 8 3-10 %, 256 KiB ones batch 1). The next
        // group is prefetched before a group's GEMM: the widening pass alone has no arithmetic to
        // hide DRAM behind (without it a 768-wide encoder at batch 1 ran 1.03-1.10x its fp32 twin,
        // the widening 12 % of its time).
        let k = packed.k
        let depth = min(kc, k)
        let group = min(16, max(2, rows.count / 16)) * kc / depth
        let aFloats = mcPanels * mr * kc + 8
        ThreadScratch.withFloats(aFloats + group * depth * nr) { scratch in
            var pc = 0
            while pc < k {
                let kcb = min(kc, k - pc)
                var j = panels.lowerBound
                while j < panels.upperBound {
                    let chunk = j..<min(j + group, panels.upperBound)
                    let widened = packed.widen(chunk, pc: pc, kcb: kcb, into: scratch + aFloats)
                    if chunk.upperBound < panels.upperBound {
                        packed.prefetch(chunk.upperBound..<min(chunk.upperBound + group, panels.upperBound), pc: pc, kcb: kcb)
                    } else if pc + kcb < k {
                        packed.prefetch(panels.lowerBound..<min(panels.lowerBound + group, panels.upperBound), pc: pc + kcb, kcb: min(kc, k - pc - kcb))
                    }
                    run(
                        a: a + pc, lda: lda, rows: rows, widened, panels: chunk, c: c, ldc: ldc, level: level,
                        aScratch: scratch)
                    j = chunk.upperBound
                }
                pc += kcb
            }
        }
    }

    /// One task on float32 panels (all of them, or a widened block of a 16-bit matrix); the AVX2
    /// path packs partial A panels into `aScratch` (`mcPanels * mr * kc + 8` floats).
    private static func run(
        a: UnsafePointer<Float>, lda: Int, rows: Range<Int>, _ packed: ColumnPanels, panels: Range<Int>,
        c: UnsafeMutablePointer<Float>, ldc: Int, level: CPULevel, aScratch: UnsafeMutablePointer<Float>?
    ) {
        let (k, n) = (packed.k, packed.n)
        if level == .avx512 {
            let first = panels.lowerBound * nr
            let columns = min(n, panels.upperBound * nr) - first
            // K blocks keep a B block in cache for the next row tiles; up to 3 rows there are no
            // next tiles, and one pass over the whole depth reads each panel as one sequential
            // stream (a C micro-bench, 1 x 784 x 512: 24 us against 40 us in blocks of 256).
            let depth = rows.count < 4 ? k : kc
            var pc = 0
            while pc < k {
                let kcb = min(depth, k - pc)
                swerve_sgemm_direct_avx512(
                    kcb, a + rows.lowerBound * lda + pc, lda, rows.count, packed.panel(panels.lowerBound) + pc * nr, k * nr,
                    columns, c + rows.lowerBound * ldc + first, ldc)
                pc += kcb
            }
            return
        }
        if rows.count < 4 {
            for r in rows {
                for j in panels {
                    rowVector(k, a + r * lda, packed.panel(j), c + r * ldc + j * nr, columns: min(nr, n - j * nr))
                }
            }
            return
        }
        let mc = mcPanels * mr
        // With B's columns a multiple of 16 every tile but a partial last row panel is full: those
        // read A where it is (six row pointers, as MLAS's kernels do) instead of packing A first,
        // which for a large A (tiny BERT's [4096, 512] at batch 32) was a scattering copy of all
        // of it; only the partial panel is packed.
        let direct = n % nr == 0
        // A block: up to `mc` rows x `kc` in 6-row k-major panels, plus the tail `narrow` may read.
        func blocks(_ ap: UnsafeMutablePointer<Float>) {
            var pc = 0
            while pc < k {
                let kcb = min(kc, k - pc)
                var ic = rows.lowerBound
                while ic < rows.upperBound {
                    let mcb = min(mc, rows.upperBound - ic)
                    if direct {
                        let full = mcb / mr
                        let rest = mcb - full * mr
                        if rest > 0 { packA(a + (ic + full * mr) * lda + pc, lda: lda, rows: rest, depth: kcb, into: ap) }
                        for j in panels {
                            let col = j * nr
                            let bPanel = packed.panel(j) + pc * nr
                            for p in 0..<full {
                                let row = ic + p * mr
                                microDirect(kcb, a + row * lda + pc, lda, bPanel, c + row * ldc + col, ldc)
                            }
                            if rest > 0 {
                                let row = ic + full * mr
                                tile(kcb, UnsafePointer(ap), bPanel, c + row * ldc + col, ldc, rows: rest, columns: nr)
                            }
                        }
                        ic += mcb
                        continue
                    }
                    let aPanels = (mcb + mr - 1) / mr
                    packA(a + ic * lda + pc, lda: lda, rows: mcb, depth: kcb, into: ap)
                    for j in panels {
                        let col = j * nr
                        let cols = min(nr, n - col)
                        let bPanel = packed.panel(j) + pc * nr
                        for p in 0..<aPanels {
                            let row = ic + p * mr
                            let aPanel = UnsafePointer(ap + p * mr * kcb)
                            let cTile = c + row * ldc + col
                            tile(kcb, aPanel, bPanel, cTile, ldc, rows: min(mr, rows.upperBound - row), columns: cols)
                        }
                    }
                    ic += mcb
                }
                pc += kcb
            }
        }
        if let aScratch { blocks(aScratch) } else { ThreadScratch.withFloats(mc * kc + 8, blocks) }
    }

    /// Copies A[rows, depth] (row stride `lda`) into 6-row k-major panels (panel p at
    /// `out + p * 6 * depth`), zero-padding the last panel's missing rows.
    static func packA(_ a: UnsafePointer<Float>, lda: Int, rows: Int, depth: Int, into out: UnsafeMutablePointer<Float>) {
        var p = 0
        while p * mr < rows {
            let panel = out + p * mr * depth
            let valid = min(mr, rows - p * mr)
            for r in 0..<mr {
                if r < valid {
                    let src = a + (p * mr + r) * lda
                    var q = 0
                    while q < depth {
                        panel[q &* 6 &+ r] = src[q]
                        q &+= 1
                    }
                } else {
                    var q = 0
                    while q < depth {
                        panel[q &* 6 &+ r] = 0
                        q &+= 1
                    }
                }
            }
            p += 1
        }
    }

    /// One row of C, 16 columns (or the `columns` left in the last panel): c += a · panel.
    @inline(__always)
    static func rowVector(
        _ k: Int, _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ c: UnsafeMutablePointer<Float>, columns: Int
    ) {
        var s0 = V(), s1 = V(), t0 = V(), t1 = V()
        var p = 0
        var pb = b
        while p &+ 2 <= k {
            let x0 = V(repeating: a[p])
            let x1 = V(repeating: a[p &+ 1])
            s0 = s0.addingProduct(x0, load(pb))
            s1 = s1.addingProduct(x0, load(pb + 8))
            t0 = t0.addingProduct(x1, load(pb + 16))
            t1 = t1.addingProduct(x1, load(pb + 24))
            pb += 32
            p &+= 2
        }
        if p < k {
            let x0 = V(repeating: a[p])
            s0 = s0.addingProduct(x0, load(pb))
            s1 = s1.addingProduct(x0, load(pb + 8))
        }
        let lo = s0 + t0
        let hi = s1 + t1
        if columns == nr {
            store(load(c) + lo, c)
            store(load(c + 8) + hi, c + 8)
        } else {
            for i in 0..<columns { c[i] += i < 8 ? lo[i] : hi[i - 8] }
        }
    }
}
