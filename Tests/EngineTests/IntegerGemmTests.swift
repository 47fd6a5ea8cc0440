@testable import Engine
import Tensors
import Testing

/// The int8 GEMM (`IntegerGemm`, `PackedInt8Weights`) on every path this machine runs, against a
/// scalar definition computed here from the unpacked bytes in Int64: every signedness of A and
/// B, zero points per tensor, per row of A and per column of B, odd sizes, the 8-bit edge values,
/// and the three outputs (int32, float, requantized u8/s8 with bias and a clamp range). uint8
/// activations with K a multiple of 4 are read in place, the others packed: the shapes have both.
@Suite struct IntegerGemmTests {
    /// A kernel to test: a path, and a variant of it.
    struct Kernel: CustomStringConvertible {
        var path: IntegerGemm.Path
        var variant: IntegerGemm.Variant = .standard
        var description: String { "\(path)\(variant == .standard ? "" : " (\(variant))")" }
    }

    /// Every path this machine runs; AVX2's widening kernel on 7-bit weights too; and, on a
    /// machine with AVX-512 VNNI but no AVX-VNNI (Zen 4), the AVX-VNNI tile's EVEX twin.
    static let kernels: [Kernel] = {
        var list = IntegerGemm.Path.supported.map { Kernel(path: $0) }
        if IntegerGemm.Path.avx2.isSupported(by: .host) { list.append(Kernel(path: .avx2, variant: .widening)) }
        let host = CPUFeatures.host
        if !host.avxVNNI && host.supports(.avx512) && host.avx512vnni {
            list.append(Kernel(path: .avxVNNI, variant: .evexTwin))
        }
        return list
    }()

    /// One problem: A [m, k] and B [k, n] as bytes, with their types and zero points.
    struct Problem {
        var m: Int, n: Int, k: Int
        var aSigned: Bool, bSigned: Bool
        var a: [UInt8], b: [UInt8]
        /// One value, or m (per row).
        var aZero: [Int32]
        /// One value, or n (per column).
        var bZero: [Int32]

        func value(_ byte: UInt8, signed: Bool) -> Int64 { signed ? Int64(Int8(bitPattern: byte)) : Int64(byte) }

        /// The exact sums, from the definition.
        func sums() -> [Int32] {
            var out = [Int32](repeating: 0, count: m * n)
            for i in 0..<m {
                let za = Int64(aZero.count == 1 ? aZero[0] : aZero[i])
                for j in 0..<n {
                    let zb = Int64(bZero.count == 1 ? bZero[0] : bZero[j])
                    var s: Int64 = 0
                    for q in 0..<k { s += (value(a[i * k + q], signed: aSigned) - za) * (value(b[q * n + j], signed: bSigned) - zb) }
                    out[i * n + j] = Int32(s)
                }
            }
            return out
        }

        /// Random bytes with the edge values (0, 255, 0x80, 0x7f, ...) mixed in; `bLimit` keeps
        /// B's values (as their type) within [-bLimit, bLimit] when set.
        static func random(
            m: Int, n: Int, k: Int, aSigned: Bool, bSigned: Bool, zeros: Zeros, bLimit: Int? = nil, seed: UInt64
        ) -> Problem {
            var rng = TestRNG(seed: seed)
            let edges: [UInt8] = [0, 255, 0x80, 0x7f, 1, 0x81]
            func byte() -> UInt8 {
                let r = rng.next()
                return r % 5 == 0 ? edges[Int(r / 5 % UInt64(edges.count))] : UInt8(truncatingIfNeeded: r >> 17)
            }
            let a = (0..<(m * k)).map { _ in byte() }
            var b = (0..<(k * n)).map { _ in byte() }
            if let limit = bLimit {
                b = b.map { x in
                    let v = (bSigned ? Int(Int8(bitPattern: x)) : Int(x) - 128) % (limit + 1)
                    return bSigned ? UInt8(bitPattern: Int8(v)) : UInt8(v + 128)
                }
            }
            func zero(_ signed: Bool) -> Int32 {
                let r = Int32(truncatingIfNeeded: rng.next() % 256)
                return signed ? r - 128 : r
            }
            let aZero: [Int32], bZero: [Int32]
            switch zeros {
            case .none: (aZero, bZero) = ([0], [0])
            case .tensor: (aZero, bZero) = ([zero(aSigned)], [zero(bSigned)])
            case .perRowAndColumn: (aZero, bZero) = ((0..<m).map { _ in zero(aSigned) }, (0..<n).map { _ in zero(bSigned) })
            case .extremes: (aZero, bZero) = ([aSigned ? -128 : 255], [bSigned ? 127 : 0])
            }
            return Problem(m: m, n: n, k: k, aSigned: aSigned, bSigned: bSigned, a: a, b: b, aZero: aZero, bZero: bZero)
        }

        func packed(transposed: Bool = false) throws -> PackedInt8Weights {
            if !transposed {
                return try b.withUnsafeBytes {
                    try PackedInt8Weights($0.baseAddress!, k: k, n: n, layout: .rowMajor, signed: bSigned, zeroPoints: bZero)
                }
            }
            var t = [UInt8](repeating: 0, count: k * n)
            for q in 0..<k { for j in 0..<n { t[j * k + q] = b[q * n + j] } }
            return try t.withUnsafeBytes {
                try PackedInt8Weights($0.baseAddress!, k: k, n: n, layout: .columnMajor, signed: bSigned, zeroPoints: bZero)
            }
        }

        /// Runs `output` (made from C's buffer) with A stored `pad` bytes wider than k per row.
        func run<T>(
            _ weights: PackedInt8Weights, kernel: Kernel, fill: T, pad: Int = 0,
            threads: Int = 1, _ output: (UnsafeMutablePointer<T>) -> IntegerGemm.Output
        ) throws -> [T] {
            var wide = [UInt8](repeating: 0xAA, count: m * (k + pad))
            for i in 0..<m { for q in 0..<k { wide[i * (k + pad) + q] = a[i * k + q] } }
            var c = [T](repeating: fill, count: m * n)
            try wide.withUnsafeBytes { pa in
                try aZero.withUnsafeBufferPointer { zeros in
                    let zero: IntegerGemm.Activations.ZeroPoint = aZero.count == 1 && m != 1 || m == 0
                        ? .tensor(aZero[0]) : .rows(zeros.baseAddress!)
                    let acts = IntegerGemm.Activations(
                        pa.baseAddress!, rows: m, k: k, rowStride: k + pad, signed: aSigned, zeroPoint: zero)
                    try c.withUnsafeMutableBufferPointer { pc in
                        try BLAS.withThreads(threads) {
                            try IntegerGemm.multiply(
                                acts, weights, output: output(pc.baseAddress!), threads: threads, path: kernel.path,
                                variant: kernel.variant)
                        }
                    }
                }
            }
            return c
        }
    }

    enum Zeros: CaseIterable { case none, tensor, perRowAndColumn, extremes }

    /// The float epilogue's definition (float32, in the kernels' order).
    static func dequantized(_ sums: [Int32], n: Int, scale: Float, columnScales: [Float]?, bias: [Float]?) -> [Float] {
        sums.enumerated().map { index, s in
            let j = index % n
            let f = Float(s) * (columnScales.map { scale * $0[j] } ?? scale)
            return bias.map { f + $0[j] } ?? f
        }
    }

    /// The requantizing epilogue's definition: round half to even, saturate to `range`.
    static func requantized(
        _ sums: [Int32], n: Int, scale: Float, columnScales: [Float]?, zero: Int32, bias: [Int32]?, range: ClosedRange<Int32>
    ) -> [Int32] {
        sums.enumerated().map { index, s in
            let j = index % n
            let acc = s &+ (bias?[j] ?? 0)
            let f = Float(acc) * (columnScales.map { scale * $0[j] } ?? scale)
            let q = Int64(f.rounded(.toNearestOrEven)) + Int64(zero)
            return Int32(min(max(q, Int64(range.lowerBound)), Int64(range.upperBound)))
        }
    }

    static let shapes: [(Int, Int, Int)] = [
        (1, 1, 1), (3, 17, 63), (17, 3, 65), (63, 65, 17), (65, 63, 257), (257, 33, 3), (1, 257, 65), (6, 16, 4),
        (7, 100, 1), (2, 80, 130),
        // K a multiple of 4: uint8 A is read in place (1 to 5 rows left in the last panel).
        (5, 33, 64), (65, 17, 256), (13, 70, 768), (4, 65, 12),
    ]

    @Test(arguments: shapes)
    func int32SumsOnEveryPath(_ shape: (Int, Int, Int)) throws {
        let (m, n, k) = shape
        var seed: UInt64 = 1
        for aSigned in [false, true] {
            for bSigned in [false, true] {
                for zeros in Zeros.allCases {
                    seed += 1
                    let p = Problem.random(m: m, n: n, k: k, aSigned: aSigned, bSigned: bSigned, zeros: zeros, seed: seed)
                    let want = p.sums()
                    let weights = try p.packed(transposed: seed % 2 == 0)
                    for kernel in Self.kernels {
                        let got = try p.run(weights, kernel: kernel, fill: Int32.min, pad: Int(seed % 3)) {
                            .int32($0, rowStride: n)
                        }
                        #expect(got == want, "\(kernel) \(m)x\(n)x\(k) a signed \(aSigned) b signed \(bSigned) \(zeros)")
                    }
                }
            }
        }
    }

    /// Float outputs (per-tensor and per-column scales, with and without bias) and requantized
    /// u8 and s8 outputs (int32 bias, per-column multipliers, a Relu-like range, and scales large
    /// enough that many values saturate) equal their float32 definitions on every path.
    @Test(arguments: [(5, 37, 70), (64, 48, 96), (1, 19, 9)])
    func epilogues(_ shape: (Int, Int, Int)) throws {
        let (m, n, k) = shape
        var rng = TestRNG(seed: 77)
        let p = Problem.random(m: m, n: n, k: k, aSigned: false, bSigned: true, zeros: .tensor, seed: 5)
        let sums = p.sums()
        let weights = try p.packed()
        let columnScales = (0..<n).map { _ in 0.001 + abs(rng.float()) * 0.01 }
        let bias = (0..<n).map { _ in rng.float() * 3 }
        let intBias = (0..<n).map { _ in Int32(truncatingIfNeeded: rng.next() % 20_001) - 10_000 }
        for kernel in Self.kernels {
            for (scales, b) in [(nil, nil), (columnScales, nil), (columnScales, bias), (nil, bias)] as [([Float]?, [Float]?)] {
                let want = Self.dequantized(sums, n: n, scale: 0.37, columnScales: scales, bias: b)
                let got = try scales.withOptionalPointer { ps in
                    try b.withOptionalPointer { pb in
                        try p.run(weights, kernel: kernel, fill: Float.nan) {
                            .float($0, rowStride: n, scale: 0.37, columnScales: ps, bias: pb)
                        }
                    }
                }
                #expect(got == want, "\(kernel) float scales \(scales != nil) bias \(b != nil)")
            }
            for signed in [false, true] {
                let type: ClosedRange<Int32> = signed ? -128...127 : 0...255
                let cases: [(Float, [Float]?, Int32, [Int32]?, ClosedRange<Int32>?)] = [
                    (0.01, nil, signed ? 3 : 131, nil, nil),
                    (4, columnScales, signed ? -5 : 120, intBias, nil),  // most values saturate
                    (0.02, columnScales, signed ? -20 : 10, intBias, signed ? -20...127 : 10...255),  // fused Relu
                    (1e-4, nil, signed ? -128 : 255, intBias, nil),
                ]
                for (scale, scales, zero, ib, range) in cases {
                    let want = Self.requantized(
                        sums, n: n, scale: scale, columnScales: scales, zero: zero, bias: ib, range: range ?? type)
                    let got = try scales.withOptionalPointer { ps in
                        try ib.withOptionalPointer { pib in
                            try p.run(weights, kernel: kernel, fill: UInt8(0x5A)) {
                                .quantized(
                                    UnsafeMutableRawPointer($0), rowStride: n, signed: signed, scale: scale,
                                    columnScales: ps, zeroPoint: zero, bias: pib, range: range)
                            }
                        }
                    }
                    let values = got.map { signed ? Int32(Int8(bitPattern: $0)) : Int32($0) }
                    #expect(values == want, "\(kernel) requantized signed \(signed) scale \(scale) zero \(zero)")
                }
            }
        }
        #expect(scalesSaturate(sums, intBias, columnScales), "the saturating case must leave the 8-bit range")
    }

    /// Whether some value of the saturating case leaves the type (so that case tests saturation).
    func scalesSaturate(_ sums: [Int32], _ bias: [Int32], _ scales: [Float]) -> Bool {
        sums.enumerated().contains { abs(Float($1 &+ bias[$0 % bias.count]) * 4 * scales[$0 % scales.count]) > 300 }
    }

    /// AVX2's `vpmaddubsw` kernel is taken for weights within [-64, 64] and is exact at the
    /// limit (every A 255 against weights of -64 and 64: pair sums of -32640 and 32640); one
    /// weight of 65 sends the weights to the widening kernel, which is exact for any weight.
    @Test func sevenBitWeightsAndTheWideningKernel() throws {
        for bSigned in [true, false] {
            var p = Problem.random(m: 13, n: 35, k: 67, aSigned: false, bSigned: bSigned, zeros: .tensor, bLimit: 64, seed: 9)
            for i in 0..<p.a.count where i % 3 != 0 { p.a[i] = 255 }
            for q in 0..<p.b.count where q % 4 < 2 {
                let v: Int = (q / 4) % 2 == 0 ? 64 : -64
                p.b[q] = bSigned ? UInt8(bitPattern: Int8(v)) : UInt8(v + 128)
            }
            let weights = try p.packed()
            #expect(weights.sevenBit)
            let want = p.sums()
            for kernel in Self.kernels {
                let got = try p.run(weights, kernel: kernel, fill: Int32.min) { .int32($0, rowStride: p.n) }
                #expect(got == want, "\(kernel) b signed \(bSigned)")
            }
            p.b[5] = bSigned ? 65 : 128 + 65
            let wide = try p.packed()
            #expect(!wide.sevenBit)
            let wantWide = p.sums()
            for kernel in Self.kernels {
                #expect(try p.run(wide, kernel: kernel, fill: Int32.min) { .int32($0, rowStride: p.n) } == wantWide, "\(kernel)")
            }
        }
        // The extreme products everywhere: 255 x -128 (u8 x s8), -128 x -128 (s8 x s8), 255 x 255 (u8 x u8).
        for (aSigned, bSigned, aByte, bByte) in [(false, true, UInt8(255), UInt8(0x80)), (true, true, 0x80, 0x80), (false, false, 255, 255)] {
            var p = Problem.random(m: 7, n: 21, k: 257, aSigned: aSigned, bSigned: bSigned, zeros: .none, seed: 3)
            p.a = [UInt8](repeating: aByte, count: p.a.count)
            p.b = [UInt8](repeating: bByte, count: p.b.count)
            let weights = try p.packed()
            for kernel in Self.kernels {
                #expect(try p.run(weights, kernel: kernel, fill: Int32.min) { .int32($0, rowStride: p.n) } == p.sums(), "\(kernel)")
            }
        }
    }

    /// Two threads, splitting rows (tall A, 2 column panels) and splitting columns (short A, 40
    /// column panels), give the one-thread sums.
    @Test func splitsOverThreads() throws {
        for (m, n, k) in [(300, 20, 64), (12, 640, 100), (64, 64, 64)] {
            let p = Problem.random(m: m, n: n, k: k, aSigned: true, bSigned: true, zeros: .perRowAndColumn, seed: 11)
            let weights = try p.packed()
            let want = p.sums()
            for kernel in Self.kernels {
                let got = try p.run(weights, kernel: kernel, fill: Int32.min, threads: 2) { .int32($0, rowStride: n) }
                #expect(got == want, "\(kernel) \(m)x\(n)x\(k)")
            }
        }
    }

    @Test func choosesThePathForTheLevel() {
        var f = CPULevelTests.avx512Machine
        #expect(IntegerGemm.Path.best(level: .avx512, features: f) == .avx2)
        f.avx512vnni = true
        #expect(IntegerGemm.Path.best(level: .avx512, features: f) == .avx512VNNI)
        #expect(IntegerGemm.Path.best(level: .avx2, features: f) == .avx2)
        f.avxVNNI = true
        #expect(IntegerGemm.Path.best(level: .avx2, features: f) == .avxVNNI)
        #expect(IntegerGemm.Path.best(level: .avx2, features: CPUFeatures()) == .portable)
        #expect(IntegerGemm.Path.supported.contains(.portable))
        for level in CPULevel.testable {
            CPULevel.withLevel(level) { #expect(IntegerGemm.Path.current.isSupported(by: .host)) }
        }
        for path in IntegerGemm.Path.allCases where !path.isSupported(by: .host) {
            let twin = path == .avxVNNI && Self.kernels.contains { $0.path == .avxVNNI }
            print(
                "note: int8 GEMM path \(path) not run: this CPU lacks it"
                    + (twin ? " (its tile ran with the EVEX encoding of the same instruction)" : ""))
        }
    }

    @Test func rejectsWhatDoesNotFit() throws {
        let p = Problem.random(m: 3, n: 5, k: 8, aSigned: false, bSigned: true, zeros: .none, seed: 1)
        let weights = try p.packed()
        #expect(throws: EngineError.self) {
            try p.b.withUnsafeBytes { try PackedInt8Weights($0.baseAddress!, k: 8, n: 5, layout: .rowMajor, signed: true, zeroPoints: [1, 2]) }
        }
        #expect(throws: EngineError.self) {
            try p.b.withUnsafeBytes { try PackedInt8Weights($0.baseAddress!, k: 8, n: 5, layout: .rowMajor, signed: true, zeroPoints: [200]) }
        }
        var c = [Int32](repeating: 0, count: 15)
        p.a.withUnsafeBytes { pa in
            c.withUnsafeMutableBufferPointer { pc in
                let wrongDepth = IntegerGemm.Activations(pa.baseAddress!, rows: 3, k: 7, signed: false)
                #expect(throws: EngineError.self) { try IntegerGemm.multiply(wrongDepth, weights, output: .int32(pc.baseAddress!, rowStride: 5)) }
                let acts = IntegerGemm.Activations(pa.baseAddress!, rows: 3, k: 8, signed: false)
                #expect(throws: EngineError.self) { try IntegerGemm.multiply(acts, weights, output: .int32(pc.baseAddress!, rowStride: 4)) }
                #expect(throws: EngineError.self) {
                    try IntegerGemm.multiply(
                        acts, weights,
                        output: .quantized(
                            UnsafeMutableRawPointer(pc.baseAddress!), rowStride: 5, signed: true, scale: 1, columnScales: nil,
                            zeroPoint: 200, bias: nil, range: nil))
                }
            }
        }
        #expect(c.allSatisfy { $0 == 0 })
    }
}

extension Optional {
    /// Calls `body` with a pointer to the array's elements, or nil.
    fileprivate func withOptionalPointer<E, R>(_ body: (UnsafePointer<E>?) throws -> R) rethrows -> R where Wrapped == [E] {
        guard let array = self else { return try body(nil) }
        return try array.withUnsafeBufferPointer { try body($0.baseAddress) }
    }
}
