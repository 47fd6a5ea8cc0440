@testable import Engine
import Tensors
import Testing

/// The engine's GEMM for packed constant weights (`PackedGemm`) against a double-precision
/// definition, over shapes that hit every edge: rows not a multiple of the 6-row panel, columns not a
/// multiple of the 16-column panel (1 to 8 and 9 to 15 left over), K and N over one cache block, and
/// the two ways a call is split between threads. Every case runs at each CPU level this machine
/// supports (`CPULevel`: the Swift AVX2 kernels and the C AVX-512 ones); levels it lacks are
/// skipped with a printed note.
@Suite struct PackedGemmTests {
    struct Shape: CustomStringConvertible, Sendable {
        var m: Int, n: Int, k: Int
        var description: String { "\(m)x\(n)x\(k)" }
    }

    static let shapes = [
        Shape(m: 6, n: 16, k: 1), Shape(m: 1, n: 1, k: 3), Shape(m: 7, n: 17, k: 5), Shape(m: 13, n: 49, k: 300),
        Shape(m: 64, n: 196, k: 576), Shape(m: 5, n: 1030, k: 260), Shape(m: 100, n: 9, k: 513),
    ]

    static func random(_ count: Int, seed: UInt64) -> [Float] {
        var rng = TestRNG(seed: seed)
        return rng.tensor([count]).scalars(as: Float.self)
    }

    /// `C0 + A B` in double precision.
    static func reference(_ a: [Float], _ b: [Float], _ c0: [Float], _ s: Shape) -> [Float] {
        var c = c0
        for i in 0..<s.m {
            for j in 0..<s.n {
                var sum = Double(c0[i * s.n + j])
                for p in 0..<s.k { sum += Double(a[i * s.k + p]) * Double(b[p * s.n + j]) }
                c[i * s.n + j] = Float(sum)
            }
        }
        return c
    }

    static func check(_ got: [Float], _ want: [Float], _ s: Shape, _ what: String) {
        var worst: Float = 0
        for (g, w) in zip(got, want) { worst = max(worst, abs(g - w) / (1 + abs(w))) }
        #expect(worst < 1e-4, "\(s) \(what): worst relative error \(worst)")
    }

    @Test(arguments: shapes)
    func matchesTheDefinition(_ s: Shape) {
        for level in CPULevel.testable { CPULevel.withLevel(level) { matchesTheDefinition(s, level) } }
    }

    func matchesTheDefinition(_ s: Shape, _ level: CPULevel) {
        let a = Self.random(s.m * s.k, seed: 1)
        let b = Self.random(s.k * s.n, seed: 2)
        let c0 = Self.random(s.m * s.n, seed: 3)
        let want = Self.reference(a, b, c0, s)
        let packed = a.withUnsafeBufferPointer { PackedMatrix($0.baseAddress!, rows: s.m, k: s.k, lda: s.k) }
        // The whole call, as the kernels make it.
        var c = c0
        b.withUnsafeBufferPointer { pb in
            c.withUnsafeMutableBufferPointer { pc in
                PackedGemm.multiply(packed, b: pb.baseAddress!, ldb: s.n, n: s.n, c: pc.baseAddress!, ldc: s.n)
            }
        }
        Self.check(c, want, s, "\(level) multiply")
        // The two ways of splitting it between threads, run here one task after the other.
        for splitN in [true, false] {
            var c = c0
            b.withUnsafeBufferPointer { pb in
                c.withUnsafeMutableBufferPointer { pc in
                    let tasks = 3
                    for t in 0..<tasks {
                        if splitN {
                            let lo = s.n * t / tasks, hi = s.n * (t + 1) / tasks
                            PackedGemm.run(
                                packed, panels: 0..<packed.panels, b: pb.baseAddress!, ldb: s.n, columns: lo..<hi,
                                c: pc.baseAddress!, ldc: s.n)
                        } else {
                            let lo = packed.panels * t / tasks, hi = packed.panels * (t + 1) / tasks
                            PackedGemm.run(
                                packed, panels: lo..<hi, b: pb.baseAddress!, ldb: s.n, columns: 0..<s.n,
                                c: pc.baseAddress!, ldc: s.n)
                        }
                    }
                }
            }
            Self.check(c, want, s, "\(level) " + (splitN ? "split by columns" : "split by rows"))
        }
    }

    /// The other orientation (Gemm, MatMul): B constant and packed in 16-column panels, from B as
    /// stored or transposed; fewer than 4 rows take the row-vector loop; both splits between tasks.
    /// Columns a multiple of 16 read A in place (`microDirect`) with the partial last row panel packed:
    /// rows over one 96-row block with 4 left (100), two K blocks (300, 513), exact panels (12).
    @Test(arguments: shapes + [
        Shape(m: 2, n: 33, k: 300), Shape(m: 3, n: 16, k: 7), Shape(m: 200, n: 40, k: 70),
        Shape(m: 100, n: 32, k: 300), Shape(m: 13, n: 64, k: 20), Shape(m: 12, n: 16, k: 513),
    ])
    func packedColumnsMatchTheDefinition(_ s: Shape) {
        for level in CPULevel.testable { CPULevel.withLevel(level) { packedColumnsMatchTheDefinition(s, level) } }
    }

    func packedColumnsMatchTheDefinition(_ s: Shape, _ level: CPULevel) {
        let a = Self.random(s.m * s.k, seed: 4)
        let b = Self.random(s.k * s.n, seed: 5)
        let c0 = Self.random(s.m * s.n, seed: 6)
        let want = Self.reference(a, b, c0, s)
        var bt = [Float](repeating: 0, count: s.k * s.n)
        for p in 0..<s.k { for j in 0..<s.n { bt[j * s.k + p] = b[p * s.n + j] } }
        for transposed in [false, true] {
            let packed = (transposed ? bt : b).withUnsafeBufferPointer {
                PackedColumns($0.baseAddress!, k: s.k, n: s.n, transposed: transposed)
            }
            var c = c0
            a.withUnsafeBufferPointer { pa in
                c.withUnsafeMutableBufferPointer { pc in
                    PackedGemm.multiply(a: pa.baseAddress!, lda: s.k, m: s.m, packed, c: pc.baseAddress!, ldc: s.n)
                }
            }
            Self.check(c, want, s, "\(level) " + (transposed ? "packed from B transposed" : "packed from B"))
            for splitN in [true, false] {
                var c = c0
                a.withUnsafeBufferPointer { pa in
                    c.withUnsafeMutableBufferPointer { pc in
                        let tasks = 3
                        for t in 0..<tasks {
                            if splitN {
                                PackedGemm.run(
                                    a: pa.baseAddress!, lda: s.k, rows: 0..<s.m, packed,
                                    panels: (packed.panels * t / tasks)..<(packed.panels * (t + 1) / tasks),
                                    c: pc.baseAddress!, ldc: s.n)
                            } else {
                                PackedGemm.run(
                                    a: pa.baseAddress!, lda: s.k, rows: (s.m * t / tasks)..<(s.m * (t + 1) / tasks), packed,
                                    panels: 0..<packed.panels, c: pc.baseAddress!, ldc: s.n)
                            }
                        }
                    }
                }
                Self.check(c, want, s, "\(level) " + (splitN ? "columns split by panels" : "columns split by rows"))
            }
        }
    }

    /// Weights held in a 16-bit type (a float16 or bfloat16 model's, `PackedWeights`) take half the
    /// bytes and give the product of the same weights held as float32: bit for bit for A packed
    /// (`PackedMatrix`: the same blocks in the same order) and for B packed with K up to one block;
    /// within float32 rounding of the definition where B's K is split into blocks (300, 513), at
    /// every CPU level, through `multiply` and both ways of splitting.
    @Test(arguments: [DataType.float16, .bfloat16])
    func sixteenBitWeightsGiveTheFloat32Product(_ format: DataType) {
        let shapes = Self.shapes + [Shape(m: 2, n: 33, k: 300), Shape(m: 3, n: 160, k: 7), Shape(m: 100, n: 32, k: 300)]
        for level in CPULevel.testable {
            CPULevel.withLevel(level) {
                for s in shapes {
                    let a = Self.random(s.m * s.k, seed: 7).map { HalfConversion.rounded($0, to: format) }
                    let b = Self.random(s.k * s.n, seed: 8).map { HalfConversion.rounded($0, to: format) }
                    let c0 = Self.random(s.m * s.n, seed: 9)
                    let want = Self.reference(a, b, c0, s)
                    // A packed (Conv's weights).
                    let (full, half) = a.withUnsafeBufferPointer {
                        (PackedMatrix($0.baseAddress!, rows: s.m, k: s.k, lda: s.k, storage: .float32),
                            PackedMatrix($0.baseAddress!, rows: s.m, k: s.k, lda: s.k, storage: format))
                    }
                    #expect(half.byteCount * 2 == full.byteCount)
                    func product(_ packed: PackedMatrix) -> [Float] {
                        var c = c0
                        b.withUnsafeBufferPointer { pb in
                            c.withUnsafeMutableBufferPointer { pc in
                                PackedGemm.multiply(packed, b: pb.baseAddress!, ldb: s.n, n: s.n, c: pc.baseAddress!, ldc: s.n)
                            }
                        }
                        return c
                    }
                    #expect(product(half) == product(full), "\(s) \(level) \(format) A packed")
                    // B packed (Gemm's and MatMul's weights), whole and split by rows and by panels.
                    let (columns, halfColumns) = b.withUnsafeBufferPointer {
                        (PackedColumns($0.baseAddress!, k: s.k, n: s.n, transposed: false, storage: .float32),
                            PackedColumns($0.baseAddress!, k: s.k, n: s.n, transposed: false, storage: format))
                    }
                    #expect(halfColumns.byteCount * 2 == columns.byteCount)
                    func product(_ packed: PackedColumns, split: Int) -> [Float] {
                        var c = c0
                        a.withUnsafeBufferPointer { pa in
                            c.withUnsafeMutableBufferPointer { pc in
                                if split == 0 {
                                    PackedGemm.multiply(a: pa.baseAddress!, lda: s.k, m: s.m, packed, c: pc.baseAddress!, ldc: s.n)
                                    return
                                }
                                for t in 0..<3 {
                                    let rows = split == 1 ? (s.m * t / 3)..<(s.m * (t + 1) / 3) : 0..<s.m
                                    let panels = split == 1 ? 0..<packed.panels : (packed.panels * t / 3)..<(packed.panels * (t + 1) / 3)
                                    PackedGemm.run(
                                        a: pa.baseAddress!, lda: s.k, rows: rows, packed, panels: panels, c: pc.baseAddress!, ldc: s.n)
                                }
                            }
                        }
                        return c
                    }
                    for split in 0..<3 {
                        let got = product(halfColumns, split: split)
                        Self.check(got, want, s, "\(level) \(format) B packed, split \(split)")
                        if s.k <= PackedGemm.kc {
                            #expect(got == product(columns, split: split), "\(s) \(level) \(format) B packed, split \(split)")
                        }
                    }
                }
            }
        }
    }

    /// Outside a 16-bit model, for weights that are not all values of the model's 16-bit type (a
    /// mixed-precision export's float32 layer), and below `minimumElements`, weights are packed as
    /// float32 (`PackedMatrix` and `PackedColumns` alike).
    @Test func weightsStayFloat32UnlessExactlySixteenBit() {
        let size = PackedWeights.minimumElements
        let exact = (0..<size).map { Float(Float16(Float($0 % 97) * 0.1)) }
        func storage(_ values: [Float], _ half: DataType?) -> DataType {
            PackedWeights.$storage.withValue(half) {
                values.withUnsafeBufferPointer { p in
                    let a = PackedMatrix(p.baseAddress!, rows: 2, k: values.count / 2, lda: values.count / 2).storage
                    let b = PackedColumns(p.baseAddress!, k: 2, n: values.count / 2, transposed: false).storage
                    #expect(a == b)
                    return a
                }
            }
        }
        #expect(storage(exact, .float16) == .float16)
        #expect(storage(exact, nil) == .float32)
        #expect(storage(Array(exact.dropLast(2)), .float16) == .float32)
        var inexact = exact
        inexact[size / 2] = 0.1
        #expect(storage(inexact, .float16) == .float32)
        // 2^-20 is no float16 value (its subnormals step by 2^-24, so it is one, but 2^-20 + 2^-30
        // is not) and bfloat16 holds 2^-20 exactly, not 2^-20 + 2^-40.
        var tiny = exact
        tiny[1] = 0x1p-20 + 0x1p-30
        #expect(storage(tiny, .float16) == .float32)
        tiny[1] = 0x1p-20
        #expect(storage(tiny.map { HalfConversion.rounded($0, to: .bfloat16) }, .bfloat16) == .bfloat16)
        tiny[1] = 0x1p-20 + 0x1p-40
        #expect(storage(tiny, .bfloat16) == .float32)
    }

    /// Gemm (both transB, a bias) and MatMul (batched A) with the weights as an initializer (packed)
    /// give what they give with the weights fed at run time (OpenBLAS).
    @Test func gemmAndMatMulWithPackedWeightsMatchOpenBLAS() throws {
        var rng = TestRNG(seed: 12)
        for transB in [false, true] {
            let a = rng.tensor([37, 45])
            let b = rng.tensor(transB ? [23, 45] : [45, 23])
            let c = rng.tensor([23])
            let attributes: [String: Attribute] = ["transB": .int(transB ? 1 : 0), "beta": .float(-1.3)]
            let packed = try runNode(
                "Gemm", inputs: ["a", "b", "c"], feeds: [("a", a)], initializers: ["b": b, "c": c], attributes: attributes,
                opset: 13)[0]
            let plain = try runNode(
                "Gemm", inputs: ["a", "b", "c"], feeds: [("a", a), ("b", b)], initializers: ["c": c], attributes: attributes,
                opset: 13)[0]
            expectClose(packed, plain.scalars(as: Float.self), shape: [37, 23])
        }
        for aShape in [[2, 3, 5], [5], [1, 5], [9, 5]] {
            let a = rng.tensor(aShape)
            let b = rng.tensor([5, 7])
            let packed = try runNode("MatMul", inputs: ["a", "b"], feeds: [("a", a)], initializers: ["b": b], opset: 13)[0]
            let plain = try runNode("MatMul", inputs: ["a", "b"], feeds: [("a", a), ("b", b)], opset: 13)[0]
            expectClose(packed, plain.scalars(as: Float.self), shape: plain.shape)
        }
    }

    /// A Conv whose weights are an initializer keeps only its packed copy: the plan passes nil for
    /// them and holds no tensor for the initializer, and the session's model has no initializers.
    @Test func packedWeightsAreHeldOnce() throws {
        var rng = TestRNG(seed: 11)
        let node = Node(name: "conv", opType: "Conv", inputs: ["x", "w"], outputs: ["y"], attributes: ["pads": .ints([1, 1, 1, 1])])
        let graph = Graph(
            nodes: [node], inputs: [ValueInfo(name: "x", dataType: .float32, shape: [.fixed(1), .fixed(3), .fixed(8), .fixed(8)])],
            outputs: [ValueInfo(name: "y", dataType: .float32, shape: nil)], initializers: ["w": rng.tensor([4, 3, 3, 3])])
        let session = try InferenceSession(model: GraphModel(graph: graph, opsets: ["": 13], irVersion: 8))
        #expect(session.model.graph.initializers.isEmpty)
        #expect(session.plan.initialSlots.allSatisfy { $0 == nil })
        #expect(session.plan.steps.first?.inputs.dropFirst().allSatisfy { $0 < 0 } == true)
        let y = try session.run(["x": rng.tensor([1, 3, 8, 8])])["y"]!
        #expect(y.shape == [1, 4, 8, 8])
    }
}
