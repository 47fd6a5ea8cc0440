@testable import Engine
import Tensors
import Testing

extension CPULevel {
    /// The levels this machine runs; prints a note for each one it lacks (CI machines may have no
    /// AVX-512), so a green run says what it did not cover.
    static let testable: [CPULevel] = {
        for level in CPULevel.allCases where !CPUFeatures.host.supports(level) {
            print(
                "note: CPU level \(level) not tested: this CPU lacks "
                    + CPUFeatures.host.missing(for: level).joined(separator: ", "))
        }
        return CPUFeatures.host.supportedLevels
    }()
}

/// The CPU level choice (`CPULevelChoice`, `SWERVE_CPU_LEVEL`) and every level's kernels against
/// the scalar definition: tile starts and ends (bias, clamp), and whole Conv, Winograd, Gemm and
/// MatMul nodes against the same node with its weights fed at run time (OpenBLAS, not dispatched).
@Suite struct CPULevelTests {
    static var avx512Machine: CPUFeatures {
        var f = CPUFeatures()
        (f.avx2, f.fma, f.f16c, f.bmi1, f.bmi2, f.lzcnt, f.movbe, f.osYMM) = (true, true, true, true, true, true, true, true)
        (f.avx512f, f.avx512bw, f.avx512vl, f.avx512dq, f.osZMM) = (true, true, true, true, true)
        return f
    }

    @Test func choosesTheBestLevelOrTheOneAskedFor() {
        let big = Self.avx512Machine
        var small = big
        small.avx512bw = false
        #expect(CPULevelChoice.choose(features: big, requested: nil).level == .avx512)
        #expect(CPULevelChoice.choose(features: big, requested: "").level == .avx512)
        #expect(CPULevelChoice.choose(features: small, requested: nil).level == .avx2)
        let asked = CPULevelChoice.choose(features: big, requested: "AVX2")
        #expect(asked.level == .avx2 && asked.problem == nil)
        #expect(CPULevelChoice.choose(features: big, requested: "x86-64-v3").level == .avx2)
        let lacking = CPULevelChoice.choose(features: small, requested: "avx512")
        #expect(lacking.level == .avx2)
        #expect(lacking.problem?.contains("lacks avx512bw") == true)
        let unknown = CPULevelChoice.choose(features: big, requested: "sse9")
        #expect(unknown.level == .avx512)
        #expect(unknown.problem?.contains("is not a level") == true)
        // The OS must save ZMM state, whatever cpuid says of the instructions.
        var noState = big
        noState.osZMM = false
        #expect(CPULevelChoice.choose(features: noState, requested: nil).level == .avx2)
    }

    @Test func hostReportNamesTheLevelAndFlags() {
        let report = CPULevelChoice.process.report
        #expect(report.contains(CPULevel.active.rawValue))
        #expect(report.contains("flags:"))
        #expect(CPUFeatures.host.supports(.avx2))  // the engine's baseline (the executable checks it)
    }

    /// Tiles that start from the bias and clamp (a Conv's bias and Relu/Clip), over a K of two
    /// blocks, rows and columns with partial panels, at every level.
    @Test(arguments: [(13, 49, 300), (6, 16, 5), (64, 196, 40), (25, 40, 513)])
    func biasAndClampTiles(_ shape: (Int, Int, Int)) {
        let (m, n, k) = shape
        let a = PackedGemmTests.random(m * k, seed: 21)
        let b = PackedGemmTests.random(k * n, seed: 22)
        let bias = PackedGemmTests.random(m, seed: 23)
        let (lo, hi): (Float, Float) = (-0.5, 0.75)
        var want = [Float](repeating: 0, count: m * n)
        for i in 0..<m {
            for j in 0..<n {
                var sum = Double(bias[i])
                for p in 0..<k { sum += Double(a[i * k + p]) * Double(b[p * n + j]) }
                want[i * n + j] = min(max(Float(sum), lo), hi)
            }
        }
        let packed = a.withUnsafeBufferPointer { PackedMatrix($0.baseAddress!, rows: m, k: k, lda: k) }
        for level in CPULevel.testable {
            var c = [Float](repeating: .nan, count: m * n)  // never read: the tiles start from the bias
            bias.withUnsafeBufferPointer { pbias in
                b.withUnsafeBufferPointer { pb in
                    c.withUnsafeMutableBufferPointer { pc in
                        let finish = TileFinish(bias: pbias.baseAddress!, fromBias: true, clamp: true, lo: lo, hi: hi)
                        PackedGemm.run(
                            packed, panels: 0..<packed.panels, b: pb.baseAddress!, ldb: n, columns: 0..<n,
                            c: pc.baseAddress!, ldc: n, finish: finish, level: level)
                    }
                }
            }
            PackedGemmTests.check(c, want, .init(m: m, n: n, k: k), "\(level) bias and clamp")
        }
    }

    /// Gemm (transA, transB, alpha, beta), MatMul with a fused bias and Relu, Conv with a bias and
    /// Relu (im2col patches and a 1x1), and a 3x3 Conv (Winograd) with packed weights at each
    /// level give what the same node gives with its weights fed at run time (OpenBLAS).
    @Test func nodesMatchAtEveryLevel() throws {
        var rng = TestRNG(seed: 31)
        for level in CPULevel.testable {
            try CPULevel.withLevel(level) {
                for (transA, transB) in [(false, false), (true, false), (false, true), (true, true)] {
                    let a = rng.tensor(transA ? [45, 37] : [37, 45])
                    let b = rng.tensor(transB ? [23, 45] : [45, 23])
                    let c = rng.tensor([37, 23])
                    let attributes: [String: Attribute] = [
                        "transA": .int(transA ? 1 : 0), "transB": .int(transB ? 1 : 0), "alpha": .float(0.7),
                        "beta": .float(-1.3),
                    ]
                    let packed = try runNode(
                        "Gemm", inputs: ["a", "b", "c"], feeds: [("a", a)], initializers: ["b": b, "c": c],
                        attributes: attributes, opset: 13)[0]
                    let plain = try runNode(
                        "Gemm", inputs: ["a", "b", "c"], feeds: [("a", a), ("b", b)], initializers: ["c": c],
                        attributes: attributes, opset: 13)[0]
                    expectClose(packed, plain.scalars(as: Float.self), shape: [37, 23])
                }
                for aShape in [[1, 70], [2, 70], [3, 70], [13, 70], [2, 9, 70]] {
                    let a = rng.tensor(aShape)
                    let b = rng.tensor([70, 50])
                    let packed = try runNode("MatMul", inputs: ["a", "b"], feeds: [("a", a)], initializers: ["b": b], opset: 13)[0]
                    let plain = try runNode("MatMul", inputs: ["a", "b"], feeds: [("a", a), ("b", b)], opset: 13)[0]
                    expectClose(packed, plain.scalars(as: Float.self), shape: plain.shape)
                }
                for (kernel, stride, channels) in [(3, 1, 20), (3, 2, 13), (1, 1, 40), (5, 1, 7)] {
                    let x = rng.tensor([1, channels, 11, 10])
                    let w = rng.tensor([19, channels, kernel, kernel])
                    let bias = rng.tensor([19])
                    let attributes: [String: Attribute] = [
                        "pads": .ints(Array(repeating: kernel / 2, count: 4)), "strides": .ints([stride, stride]),
                    ]
                    let packed = try runNode(
                        "Conv", inputs: ["x", "w", "b"], feeds: [("x", x)], initializers: ["w": w, "b": bias],
                        attributes: attributes, opset: 13)[0]
                    let plain = try runNode(
                        "Conv", inputs: ["x", "w", "b"], feeds: [("x", x), ("w", w)], initializers: ["b": bias],
                        attributes: attributes, opset: 13)[0]
                    expectClose(packed, plain.scalars(as: Float.self), shape: plain.shape)
                }
            }
        }
    }
}
