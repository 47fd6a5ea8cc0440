import Tensors
/// A 3x3, stride 1, dilation 1, group 1 convolution (2-D, float32, constant weights) computed with
/// Winograd's minimal filtering algorithm F(2x2, 3x3) (Lavin & Gray, "Fast Algorithms for
/// Convolutional Neural Networks", 2015).
///
/// The output is cut into 2x2 tiles; each reads a 4x4 tile of the padded input (input tiles overlap
/// by 2, zero outside the image). Per tile, with the transforms
///
///     Bᵀ = | 1  0 -1  0 |     G = |  1    0    0  |     Aᵀ = | 1  1  1  0 |
///          | 0  1  1  0 |         | 1/2  1/2  1/2 |          | 0  1 -1 -1 |
///          | 0 -1  1  0 |         | 1/2 -1/2  1/2 |
///          | 0  1  0 -1 |         |  0    0    1  |
///
/// the output is Y = Aᵀ [ Σ_c (G g_{m,c} Gᵀ) ⊙ (Bᵀ d_c B) ] A: the sum over input channels of the
/// elementwise products is, for each of the 16 positions ξ of the 4x4 transformed tile, one matrix
/// product M[ξ] = U[ξ] · V[ξ] with U[ξ] [M, C] (the transformed weights) and V[ξ] [C, tiles] (the
/// transformed input). That is 16 multiplications per output tile and channel pair where the direct
/// convolution needs 36: 2.25x fewer, and the 16 products run on `PackedGemm`'s micro-kernel.
///
/// - At load: U = G g Gᵀ for every (out channel, in channel), computed in double precision, each of
///   the 16 U[ξ] packed as a `PackedMatrix`. Only these are kept (16/9 of the weights' size), not
///   the im2col-packed weights.
/// - Per run (`run`): tiles are numbered over the whole batch (image, tile row, tile column) and
///   processed in blocks of whole 16-tile GEMM panels (`WinogradConv.Blocking`), each block on one
///   thread: the input transform writes V straight into `PackedGemm`'s 16-column B panel layout
///   (no separate packing pass), the 16 GEMMs write M, and the output transform adds the bias,
///   applies the fused activation and writes the 2x2 outputs (clipped at the right and bottom edges
///   of odd-sized outputs). V and M live in the thread's `ThreadScratch` buffer (a few MB, so they
///   stay in L2/L3 between the transform and the GEMMs; no allocation on the request path).
///
/// Numerics: the transforms only add, subtract and halve, so the result differs from the direct
/// convolution by a few float32 roundings (about 1e-6 relative).
///
/// Immutable after init; `run` is safe from any number of threads at once.
final class WinogradConv: @unchecked Sendable {
    /// The weight shape [M, C, 3, 3] the transform was computed from.
    let shape: [Int]
    /// Output channels.
    let m: Int
    /// Input channels.
    let c: Int
    /// U[ξ] [M, C] for ξ = 4i + j (row i, column j of the 4x4 transformed tile), packed.
    let weights: [PackedMatrix]

    /// Whether a convolution takes this path: weights [M, C, 3, 3] (2-D), group 1, all strides and
    /// dilations 1. Padding and the input's size may be anything (the input is zero outside the
    /// image). Everything else keeps the im2col GEMM (`ConvKernel`).
    static func qualifies(weightShape: [Int], group: Int, strides: [Int]?, dilations: [Int]?) -> Bool {
        weightShape.count == 4 && weightShape[2] == 3 && weightShape[3] == 3 && weightShape[0] > 0
            && weightShape[1] > 0 && group == 1 && (strides ?? [1, 1]).allSatisfy { $0 == 1 }
            && (dilations ?? [1, 1]).allSatisfy { $0 == 1 }
    }

    /// Transforms and packs the weights `w` [M, C, 3, 3] (row-major).
    init(_ w: UnsafePointer<Float>, shape: [Int]) {
        precondition(shape.count == 4 && shape[2] == 3 && shape[3] == 3)
        self.shape = shape
        m = shape[0]
        c = shape[1]
        // All 16 U[ξ] in one pass over the weights: G g (4x3), then (G g) Gᵀ (4x4), in double,
        // written straight into the 16 packed matrices (a full-size temporary would leave a hole of
        // its size in the malloc heap: resident memory).
        // A 16-bit model's U is held as float16, each value rounded once from the double transform:
        // the one place packed weights are not exactly the model's (docs/architecture.md, "16-bit
        // floats"). float16 for bfloat16 weights too: its 11 bits round U 8x finer than bfloat16's
        // own unit. Only when every |U| (at most 2.25 max|g|) is finite in float16.
        let (rows, depth) = (m, c)
        let sixteenBit = PackedWeights.storage(rows: 1, columns: m * c * 9, stride: 0, w, elements: 16 * m * c) != .float32
        var largest: Float = 0
        for i in 0..<(m * c * 9) { largest = max(largest, abs(w[i])) }
        let storage: DataType = sixteenBit && 2.25 * largest <= 65504 ? .float16 : .float32
        let mats = (0..<16).map { _ in PackedMatrix(zeroRows: rows, k: depth, storage: storage) }
        let mr = PackedGemm.mr
        var gg = [Double](repeating: 0, count: 12)
        for p in 0..<(m + mr - 1) / mr {
            for r in 0..<min(mr, m - p * mr) {
                for q in 0..<c {
                    let k = w + ((p * mr + r) * c + q) * 9
                    for col in 0..<3 {
                        let (k0, k1, k2) = (Double(k[col]), Double(k[3 + col]), Double(k[6 + col]))
                        gg[col] = k0
                        gg[3 + col] = 0.5 * (k0 + k1 + k2)
                        gg[6 + col] = 0.5 * (k0 - k1 + k2)
                        gg[9 + col] = k2
                    }
                    let at = mats[0].offset(panel: p, step: q) + r
                    for i in 0..<4 {
                        let (r0, r1, r2) = (gg[3 * i], gg[3 * i + 1], gg[3 * i + 2])
                        mats[4 * i].set(r0, at: at)
                        mats[4 * i + 1].set(0.5 * (r0 + r1 + r2), at: at)
                        mats[4 * i + 2].set(0.5 * (r0 - r1 + r2), at: at)
                        mats[4 * i + 3].set(r2, at: at)
                    }
                }
            }
        }
        weights = mats
    }

    /// `y` [N, M, OH, OW] = conv(x [N, C, H, W]) + bias, then `epilogue`, for the geometry `geo`
    /// (3x3 window, stride 1, dilation 1; checked by the caller). Every element of `y` is written.
    func run(
        _ x: UnsafePointer<Float>, batch n: Int, _ geo: WindowGeometry, bias: UnsafePointer<Float>?,
        epilogue: Epilogue, _ y: UnsafeMutablePointer<Float>
    ) {
        let b = Blocking(self, batch: n, geo, threads: max(1, BLAS.threads))
        if b.tiles == 0 { return }
        let xAddress = Int(bitPattern: x)
        let yAddress = Int(bitPattern: y)
        let biasAddress = bias.map { Int(bitPattern: $0) } ?? 0
        let flops = 2 * 16 * m * c * b.blockTiles / b.parts
        let level = CPULevel.current
        Parallel.forEach(b.blocks * b.parts, costPerItem: flops) { items in
            let x = UnsafePointer<Float>(bitPattern: xAddress)!
            let y = UnsafeMutablePointer<Float>(bitPattern: yAddress)!
            let bias = UnsafePointer<Float>(bitPattern: biasAddress)
            ThreadScratch.withFloats(b.scratchFloats) { scratch in
                for item in items {
                    runBlock(item / b.parts, part: item % b.parts, b, x, geo, bias, epilogue, y, scratch, level)
                }
            }
        }
    }

    /// One block of tiles for the output channels of one part, on this thread.
    private func runBlock(
        _ block: Int, part: Int, _ b: Blocking, _ x: UnsafePointer<Float>, _ geo: WindowGeometry,
        _ bias: UnsafePointer<Float>?, _ epilogue: Epilogue, _ y: UnsafeMutablePointer<Float>,
        _ scratch: UnsafeMutablePointer<Float>, _ level: CPULevel
    ) {
        let tiles = b.tileRange(block)
        if tiles.isEmpty { return }
        let panels = b.panelRange(part)
        if panels.isEmpty { return }
        let rows = (panels.lowerBound * PackedGemm.mr)..<min(m, panels.upperBound * PackedGemm.mr)
        let v = scratch
        let out = v + 16 * b.vStride
        let mStride = rows.count * b.ldm
        let lines = out + 16 * b.partRows * b.ldm + 8
        let aScratch = lines + 8 * b.lineCapacity
        clearPanelTail(v, count: tiles.count, b)
        b.forEachSegment(tiles) { segment in
            inputTransform(segment, x, geo, b, v, lines)
        }
        for xi in 0..<16 {
            multiply(
                xi, v + xi * b.vStride, columns: tiles.count, panels: panels, out + xi * mStride, ldm: b.ldm,
                aScratch: aScratch, level: level)
        }
        b.forEachSegment(tiles) { segment in
            outputTransform(segment, out, mStride: mStride, ldm: b.ldm, rows: rows, geo, bias, epilogue, y)
        }
    }

    /// M[ξ][rows of `panels`, columns] = U[ξ] · V[ξ]: `PackedGemm`'s loop nest on V, which the input
    /// transform already laid out as B panels of the whole depth C (panel j at `v + j * C * 16`);
    /// the first K block's tiles start from zero instead of reading M. 16-bit weights are widened a
    /// K block at a time into `aScratch`.
    private func multiply(
        _ xi: Int, _ v: UnsafePointer<Float>, columns: Int, panels: Range<Int>, _ out: UnsafeMutablePointer<Float>,
        ldm: Int, aScratch: UnsafeMutablePointer<Float>, level: CPULevel
    ) {
        let (mr, nr) = (PackedGemm.mr, PackedGemm.nr)
        let fromZero = TileFinish(fromBias: true)
        var pc = 0
        while pc < c {
            let kcb = min(PackedGemm.kc, c - pc)
            let a = weights[xi].block(panels, pc: pc, kcb: kcb, scratch: aScratch)
            PackedGemm.kBlock(
                a, rows: m, panels: panels, kcb: kcb, columns: columns, b: v + pc * nr, bStride: c * nr,
                c: out, ldc: ldm, rowBase: panels.lowerBound * mr, finish: fromZero.block(first: pc == 0, last: false),
                level: level)
            pc += kcb
        }
    }
}
