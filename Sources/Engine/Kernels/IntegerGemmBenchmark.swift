import Glibc
import Tensors

/// The int8 GEMM against the engine's float32 packed SGEMM on one shape, for `swerve bench-gemm`
/// (bench/int8-gemm; figures in docs/benchmarks.md).
///
/// Both sides run what an operator would run per call, weights packed beforehand:
/// - `matmul` shapes (MatMul with constant weights, BERT's projections): float is
///   `PackedGemm.multiply` on `PackedColumns`; int8 is `IntegerGemm.multiply` with float output
///   (MatMulIntegerToFloat / DynamicQuantizeMatMul: per-column scales and a bias).
/// - `conv` shapes (a Conv's GEMM over im2col patches; rows = output pixels, k = input channels x
///   kernel, n = output channels): float is `PackedGemm.multiply` on `PackedMatrix` (the weights
///   as A, as Conv runs it); int8 is `IntegerGemm.multiply` with requantized uint8 output
///   (QLinearConv: int32 bias, per-channel scales).
/// Neither side includes quantizing the input or building the patches. The two are timed
/// alternately (float, int8, float, ...) so that load from other processes hits both alike; the
/// medians are reported. Runs on the calling thread with `threads` as the engine's budget.
public enum IntegerGemmBenchmark {
    public enum Kind: String, Sendable, CaseIterable { case matmul, conv }

    public struct Result: Sendable {
        public let floatMillis: Double
        public let int8Millis: Double
        public let path: IntegerGemm.Path
        /// Whether the weights were 7-bit (`PackedInt8Weights.sevenBit`).
        public let sevenBit: Bool
        public var ratio: Double { int8Millis / floatMillis }
    }

    /// `sevenBitWeights`: int8 weights within [-64, 64] (onnxruntime's `reduce_range`), which the
    /// AVX2 path multiplies with `vpmaddubsw`; otherwise full-range int8 weights.
    public static func run(
        kind: Kind, m: Int, n: Int, k: Int, threads: Int, iterations: Int, sevenBitWeights: Bool = false
    ) throws -> Result {
        var rng: UInt64 = 0x1234_5678
        func next() -> UInt64 {
            rng = rng &* 6364136223846793005 &+ 1442695040888963407
            return rng >> 33
        }
        let aFloat = (0..<(m * k)).map { _ in Float(next() % 2001) / 1000 - 1 }
        let bFloat = (0..<(k * n)).map { _ in Float(next() % 2001) / 1000 - 1 }
        let aBytes = (0..<(m * k)).map { _ in UInt8(truncatingIfNeeded: next()) }
        let bBytes = (0..<(k * n)).map { _ in
            sevenBitWeights ? UInt8(bitPattern: Int8(Int(next() % 129) - 64)) : UInt8(truncatingIfNeeded: next())
        }
        let columnScales = (0..<n).map { _ in Float(next() % 1000 + 1) * 1e-5 }
        let floatBias = (0..<n).map { _ in Float(next() % 2001) / 1000 - 1 }
        let intBias = (0..<n).map { _ in Int32(next() % 20_001) - 10_000 }
        let weights = try bBytes.withUnsafeBytes {
            try PackedInt8Weights($0.baseAddress!, k: k, n: n, layout: .rowMajor, signed: true)
        }
        var cFloat = [Float](repeating: 0, count: m * n)
        var cInt8 = [Float](repeating: 0, count: m * n)
        var cBytes = [UInt8](repeating: 0, count: m * n)
        let path = IntegerGemm.Path.current

        // The float side: weights packed once, as at load.
        let runFloat: () -> Void
        switch kind {
        case .matmul:
            let packed = bFloat.withUnsafeBufferPointer { PackedColumns($0.baseAddress!, k: k, n: n, transposed: false) }
            runFloat = {
                aFloat.withUnsafeBufferPointer { pa in
                    cFloat.withUnsafeMutableBufferPointer { pc in
                        PackedGemm.multiply(a: pa.baseAddress!, lda: k, m: m, packed, c: pc.baseAddress!, ldc: n)
                    }
                }
            }
        case .conv:
            // Weights [n, k] as A, patches [k, m] as B, output [n, m] (NCHW).
            let packed = bFloat.withUnsafeBufferPointer { PackedMatrix($0.baseAddress!, rows: n, k: k, lda: k) }
            runFloat = {
                aFloat.withUnsafeBufferPointer { pb in
                    cFloat.withUnsafeMutableBufferPointer { pc in
                        PackedGemm.multiply(packed, b: pb.baseAddress!, ldb: m, n: m, c: pc.baseAddress!, ldc: m)
                    }
                }
            }
        }
        let runInt8: () throws -> Void = {
            try aBytes.withUnsafeBytes { pa in
                let acts = IntegerGemm.Activations(pa.baseAddress!, rows: m, k: k, signed: false, zeroPoint: .tensor(131))
                try columnScales.withUnsafeBufferPointer { scales in
                    switch kind {
                    case .matmul:
                        try floatBias.withUnsafeBufferPointer { bias in
                            try cInt8.withUnsafeMutableBufferPointer { pc in
                                try IntegerGemm.multiply(
                                    acts, weights,
                                    output: .float(
                                        pc.baseAddress!, rowStride: n, scale: 0.02, columnScales: scales.baseAddress,
                                        bias: bias.baseAddress))
                            }
                        }
                    case .conv:
                        try intBias.withUnsafeBufferPointer { bias in
                            try cBytes.withUnsafeMutableBytes { pc in
                                try IntegerGemm.multiply(
                                    acts, weights,
                                    output: .quantized(
                                        pc.baseAddress!, rowStride: n, signed: false, scale: 0.5,
                                        columnScales: scales.baseAddress, zeroPoint: 3, bias: bias.baseAddress, range: nil))
                            }
                        }
                    }
                }
            }
        }
        return try BLAS.withThreads(threads) {
            for _ in 0..<3 {
                runFloat()
                try runInt8()
            }
            var floatTimes: [Double] = [], int8Times: [Double] = []
            for _ in 0..<max(1, iterations) {
                floatTimes.append(seconds(runFloat))
                int8Times.append(try seconds(runInt8))
            }
            func median(_ t: [Double]) -> Double { t.sorted()[t.count / 2] * 1000 }
            return Result(
                floatMillis: median(floatTimes), int8Millis: median(int8Times), path: path, sevenBit: weights.sevenBit)
        }
    }

    private static func seconds(_ body: () throws -> Void) rethrows -> Double {
        var a = timespec(), b = timespec()
        clock_gettime(CLOCK_MONOTONIC, &a)
        try body()
        clock_gettime(CLOCK_MONOTONIC, &b)
        return Double(b.tv_sec - a.tv_sec) + Double(b.tv_nsec - a.tv_nsec) * 1e-9
    }
}
