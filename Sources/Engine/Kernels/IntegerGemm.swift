import CKernels
import Tensors

/// The engine's 8-bit integer GEMM, the kernel of the quantized operators (MatMulInteger,
/// ConvInteger, QLinearMatMul, QLinearConv, MatMulIntegerToFloat, DynamicQuantizeMatMul and the
/// QDQ patterns fused into them):
///
///     acc[i, j] = sum_k (a[i, k] - za[i]) * (b[k, j] - zb[j])        (exact, in int32)
///
/// for activations A [m, k] (uint8 or int8, read in place, packed per call) and constant weights
/// B [k, n] (`PackedInt8Weights`, uint8 or int8, packed at load), every signedness combination,
/// zero points per tensor or per row of A and per tensor or per column of B. Then `Output` says
/// what is stored: the int32 sums, floats `acc * scale * columnScales[j] + bias[j]`, or
/// requantized 8-bit values `saturate(roundHalfEven(acc * scale * columnScales[j]) + zero point)`.
///
/// How: the hardware multiplies uint8 by int8 (`vpdpbusd`), so int8 activations are shifted by
/// +128 while packed and uint8 weights by -128 while packed; the shifts and the zero points are
/// corrected with B's column sums (packed once) and A's row sums (computed while packing A, only
/// when B has a non-zero zero point):
///
///     sum (a' - za')(b' - zb') = sum a'b' + za' (K zb' - sum_k b') - zb' sum_k a'
///
/// Exactness: the int32 sums wrap modulo 2^32 as the instructions do; no sum can wrap below
/// K = 2^31 / (255 * 128), about 65 000 (K is a layer's input size, in the thousands at most).
/// Float and requantized outputs round once, in float32, as onnxruntime's MLAS does.
///
/// The kernel (`Path`) is chosen per call from `CPULevel.current` and the CPU's features.
/// Stateless; safe from any thread (each call packs A into its thread's scratch).
public enum IntegerGemm {
    /// The instruction sets of the kernels, best last.
    public enum Path: String, Sendable, CaseIterable, CustomStringConvertible {
        /// Swift loops on the same layouts: any CPU.
        case portable
        /// AVX2: `vpmaddubsw` when every weight is in [-64, 64] (`PackedInt8Weights.sevenBit`),
        /// else widening to int16 and `vpmaddwd` (never saturates; half the speed).
        case avx2
        /// AVX-VNNI: `vpdpbusd` on ymm (Alder Lake, Zen 5).
        case avxVNNI = "avx-vnni"
        /// AVX-512 VNNI: `vpdpbusd` on zmm (Ice Lake and later, Zen 4, Zen 5); needs level avx512.
        case avx512VNNI = "avx512-vnni"

        public var description: String { rawValue }

        /// Whether `features` can run this path.
        public func isSupported(by features: CPUFeatures) -> Bool {
            #if arch(x86_64)
            switch self {
            case .portable: return true
            case .avx2: return features.supports(.avx2)
            case .avxVNNI: return features.supports(.avx2) && features.avxVNNI
            case .avx512VNNI: return features.supports(.avx512) && features.avx512vnni
            }
            #else
            return self == .portable
            #endif
        }

        /// The best path at `level` on a CPU with `features`: AVX-512 VNNI only at level avx512
        /// (`SWERVE_CPU_LEVEL=avx2` keeps every kernel off the zmm registers).
        public static func best(level: CPULevel, features: CPUFeatures) -> Path {
            if level == .avx512 && Path.avx512VNNI.isSupported(by: features) { return .avx512VNNI }
            if Path.avxVNNI.isSupported(by: features) { return .avxVNNI }
            if Path.avx2.isSupported(by: features) { return .avx2 }
            return .portable
        }

        /// The path of calls on this thread now (`CPULevel.current`).
        public static var current: Path { best(level: CPULevel.current, features: .host) }

        /// The paths this machine runs, worst first (tests run each).
        public static var supported: [Path] { allCases.filter { $0.isSupported(by: .host) } }
    }

    /// The activations A [rows, k], 8-bit, read in place.
    public struct Activations {
        /// A per-tensor zero point, or one per row (MatMulInteger's per-row `a_zero_point`).
        public enum ZeroPoint {
            case tensor(Int32)
            /// `rows` values, read during the call.
            case rows(UnsafePointer<Int32>)
        }

        public var data: UnsafeRawPointer
        public var rows: Int
        public var k: Int
        /// Bytes from one row to the next (>= k).
        public var rowStride: Int
        /// int8 (true) or uint8.
        public var signed: Bool
        public var zeroPoint: ZeroPoint

        public init(_ data: UnsafeRawPointer, rows: Int, k: Int, rowStride: Int? = nil, signed: Bool, zeroPoint: ZeroPoint = .tensor(0)) {
            self.data = data
            self.rows = rows
            self.k = k
            self.rowStride = rowStride ?? k
            self.signed = signed
            self.zeroPoint = zeroPoint
        }
    }

    /// What the call stores in C [rows, n] (row stride `rowStride` elements). Pointers with
    /// `columns` in their name hold n values; each is read during the call only.
    public enum Output {
        /// The exact int32 sums (MatMulInteger, ConvInteger).
        case int32(UnsafeMutablePointer<Int32>, rowStride: Int)
        /// `Float(acc) * (scale * columnScales[j]) + bias[j]` (MatMulIntegerToFloat,
        /// DynamicQuantizeMatMul, a dequantized output): `scale` is typically A's scale times a
        /// per-tensor B scale, `columnScales` B's per-column scales (nil: 1), `bias` nil: none.
        case float(UnsafeMutablePointer<Float>, rowStride: Int, scale: Float, columnScales: UnsafePointer<Float>?,
            bias: UnsafePointer<Float>?)
        /// 8-bit values `clamp(roundHalfEven(Float(acc + bias[j]) * (scale * columnScales[j])),
        /// range - zeroPoint) + zeroPoint` (QLinearConv, QLinearMatMul, fused QDQ): `scale` is
        /// typically `aScale * bScale / yScale`; `bias` QLinearConv's int32 bias (nil: none);
        /// `range` within the type (a fused Relu narrows it), nil: the whole type.
        case quantized(UnsafeMutableRawPointer, rowStride: Int, signed: Bool, scale: Float,
            columnScales: UnsafePointer<Float>?, zeroPoint: Int32, bias: UnsafePointer<Int32>?,
            range: ClosedRange<Int32>?)
    }

    /// Below this many multiply-adds a call stays on one thread.
    static let parallelWork = 200_000

    /// C = A · B with `output`'s epilogue, on at most `threads` threads (default: the engine's
    /// budget), with `path`'s kernels (default `Path.current`; tests pass each supported one).
    ///
    /// Throws `EngineError.invalidInput` when A's depth is not B's, a stride is too short, an
    /// output zero point or range does not fit the type, or the scratch size overflows;
    /// `.deviceUnavailable` for a path this CPU lacks. Nothing is written then.
    public static func multiply(
        _ a: Activations, _ b: PackedInt8Weights, output: Output, threads: Int? = nil, path: Path? = nil
    ) throws {
        try multiply(a, b, output: output, threads: threads, path: path, variant: .standard)
    }

    /// Kernel variants the tests take besides a path's own choice.
    enum Variant {
        case standard
        /// AVX2: the widening kernel even for 7-bit weights.
        case widening
        /// AVX-VNNI: the EVEX twin of its kernel (AVX-512 VNNI + VL), on machines without AVX-VNNI.
        case evexTwin
    }

    static func multiply(
        _ a: Activations, _ b: PackedInt8Weights, output: Output, threads: Int?, path: Path?, variant: Variant
    ) throws {
        guard a.k == b.k else {
            throw EngineError.invalidInput("int8 GEMM: activations have depth \(a.k), weights \(b.k); they must match")
        }
        guard a.rows >= 0, a.rowStride >= a.k else {
            throw EngineError.invalidInput("int8 GEMM: \(a.rows) rows with row stride \(a.rowStride) for depth \(a.k)")
        }
        let path = path ?? .current
        let twinRuns = variant == .evexTwin && CPUFeatures.host.supports(.avx512) && CPUFeatures.host.avx512vnni
        guard path.isSupported(by: .host) || (path == .avxVNNI && twinRuns) else {
            throw EngineError.deviceUnavailable("int8 GEMM: this CPU cannot run the \(path) kernels")
        }
        var e = try epilogue(output, n: b.n, weights: b)
        let (m, n, k) = (a.rows, b.n, b.k)
        if m == 0 || n == 0 { return }
        // uint8 A with K a multiple of 4 is read in place (every group of 4 steps is 4 bytes of a
        // row); otherwise A is packed into 6-row panels (int8 shifted to uint8, K padded).
        let inPlace = !a.signed && k % 4 == 0
        // Scratch: A's panels (if packed), then A's row sums and shifted per-row zero points.
        let rowPanels = (m + 5) / 6
        let (panelBytes, o1) = inPlace ? (0, false) : rowPanels.multipliedReportingOverflow(by: 6 * b.paddedK)
        let (scratchBytes, o2) = panelBytes.addingReportingOverflow(8 * m + 64)
        guard !o1, !o2, scratchBytes < Int.max / 4 else {
            throw EngineError.invalidInput("int8 GEMM: \(m) x \(k) activations are too large to pack")
        }
        // Packed activations are a' = a + 128 for int8, so their zero point moves with them.
        let shift: Int32 = a.signed ? 128 : 0
        if case .tensor(let z) = a.zeroPoint { e.zero = z &+ shift }
        let needsRowSums = b.negatedZeroPoints != nil
        let bytes = a.data.assumingMemoryBound(to: UInt8.self)
        ThreadScratch.withFloats((scratchBytes + 3) / 4) { scratch in
            let raw = UnsafeMutableRawPointer(scratch)
            let sums = (raw + panelBytes).assumingMemoryBound(to: Int32.self)
            let rowZero = sums + m
            let source: PanelSource
            if inPlace {
                source = PanelSource(base: bytes, rowStride: a.rowStride, groupStride: 4, panelStride: 6 * a.rowStride)
                if needsRowSums { swerve_i8_row_sums(bytes, a.rowStride, m, k, 0, sums) }
            } else {
                let packed = raw.assumingMemoryBound(to: UInt8.self)
                swerve_i8_pack_a(bytes, a.rowStride, m, k, a.signed ? 1 : 0, packed, needsRowSums ? sums : nil)
                source = PanelSource(base: UnsafePointer(packed), rowStride: 4, groupStride: 24, panelStride: 6 * b.paddedK)
            }
            if case .rows(let zeros) = a.zeroPoint {
                for i in 0..<m { rowZero[i] = zeros[i] &+ shift }
                e.row_zero = UnsafePointer(rowZero)
            }
            e.row_sums = needsRowSums ? UnsafePointer(sums) : nil
            run(source, m: m, b, epilogue: e, threads: threads, path: path, variant: variant)
        }
    }

    /// Where the kernels read A: row r's group g (4 steps) at `base + r * rowStride + g *
    /// groupStride`, in 6-row panels `panelStride` apart (CKernels.h).
    struct PanelSource {
        var base: UnsafePointer<UInt8>
        var rowStride: Int, groupStride: Int, panelStride: Int
    }
}
