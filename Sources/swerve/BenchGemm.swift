import ArgumentParser
import Engine

/// `swerve bench-gemm`: the int8 GEMM against the float32 packed SGEMM at BERT-base and
/// resnet50-like shapes (`IntegerGemmBenchmark`); hidden from `--help`, run by bench/int8-gemm.
struct BenchGemm: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench-gemm",
        abstract: "Time the int8 GEMM against the float32 packed SGEMM on model shapes (no model needed).",
        shouldDisplay: false)

    /// BERT-base at sequence 128 (Q/K/V/output projections, FFN up and down) and resnet50's
    /// convolutions at 224 x 224, batch 1, as im2col GEMMs (rows = output pixels).
    static let defaultShapes = [
        "matmul:128:768:768", "matmul:128:3072:768", "matmul:128:768:3072",
        "conv:3136:64:64", "conv:3136:64:576", "conv:3136:256:64", "conv:784:128:1152", "conv:784:512:128",
        "conv:196:256:2304", "conv:196:1024:256", "conv:49:512:4608", "conv:49:2048:512",
    ]

    @Option(name: .customLong("shape"), help: "KIND:M:N:K with KIND matmul or conv (repeatable; default: BERT-base and resnet50 shapes).")
    var shapes: [String] = []

    @Option(name: .customLong("threads"), help: "Engine threads (repeatable). [default: 1 and 2]")
    var threadCounts: [Int] = []

    @Option(help: "Timed iterations per side (medians are reported).")
    var iterations = 30

    @Flag(help: "int8 weights within [-64, 64] (onnxruntime's reduce_range; the AVX2 path's vpmaddubsw kernel).")
    var sevenBitWeights = false

    func validate() throws {
        guard iterations > 0, threadCounts.allSatisfy({ $0 > 0 }) else {
            throw ValidationError("--iterations and --threads must be positive")
        }
        for text in shapes { _ = try Self.parse(text) }
    }

    static func parse(_ text: String) throws -> (IntegerGemmBenchmark.Kind, Int, Int, Int) {
        let parts = text.split(separator: ":").map(String.init)
        guard parts.count == 4, let kind = IntegerGemmBenchmark.Kind(rawValue: parts[0]),
            let m = Int(parts[1]), let n = Int(parts[2]), let k = Int(parts[3]), m > 0, n > 0, k > 0, m * n * k < 1 << 36
        else {
            throw ValidationError("--shape \(text): expected KIND:M:N:K, KIND matmul or conv, sizes positive (for example matmul:128:768:768)")
        }
        return (kind, m, n, k)
    }

    func run() throws {
        print("cpu: \(CPUModel.name); flags: \(CPUFeatures.host.flags)")
        print("level: \(CPULevelChoice.process.report)")
        print("int8 path: \(IntegerGemm.Path.current); weights: \(sevenBitWeights ? "7-bit [-64, 64]" : "full-range int8")")
        print("kind    m     n     k     threads  float_ms  int8_ms  int8/float")
        for text in shapes.isEmpty ? Self.defaultShapes : shapes {
            let (kind, m, n, k) = try Self.parse(text)
            for threads in threadCounts.isEmpty ? [1, 2] : threadCounts {
                let r = try IntegerGemmBenchmark.run(
                    kind: kind, m: m, n: n, k: k, threads: threads, iterations: iterations, sevenBitWeights: sevenBitWeights)
                func pad(_ s: String, _ width: Int) -> String { s + String(repeating: " ", count: max(1, width - s.count)) }
                func f(_ v: Double) -> String { String(Double(Int((v * 1000).rounded())) / 1000) }
                print(
                    pad(kind.rawValue, 8) + pad(String(m), 6) + pad(String(n), 6) + pad(String(k), 6) + pad(String(threads), 9)
                        + pad(f(r.floatMillis), 10) + pad(f(r.int8Millis), 9) + String(Double(Int((r.ratio * 100).rounded())) / 100))
            }
        }
    }
}
