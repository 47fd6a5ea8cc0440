import Engine
import Tensors
import Testing

/// GridSample, AffineGrid, Unique, Compress, ReverseSequence, CumProd and TensorScatter beyond
/// the ONNX conformance cases: direct definitions, coordinates that must not trap, mode names by
/// opset, and requests that must fail cleanly.
@Suite struct IndexingOpTests {
    static func text(_ s: String) -> Attribute { .string(Array(s.utf8)) }

    func gridSample(_ x: Tensor, _ grid: Tensor, mode: String, padding: String = "zeros", align: Int = 0, opset: Int = 20)
        throws -> Tensor
    {
        try runNode(
            "GridSample", inputs: ["x", "g"], feeds: [("x", x), ("g", grid)],
            attributes: ["mode": Self.text(mode), "padding_mode": Self.text(padding), "align_corners": .int(align)],
            opset: opset)[0]
    }

    @Test(arguments: [0, 1])
    func gridSampleBilinearMatchesTheDefinition(align: Int) throws {
        var rng = TestRNG(seed: 141)
        let (n, c, h, w, oh, ow) = (2, 6, 5, 6, 4, 7)
        let x = rng.floats(n * c * h * w)
        let g = rng.floats(n * oh * ow * 2).map { $0 * 1.3 }
        let y = try gridSample(
            Tensor(x, shape: [n, c, h, w]), Tensor(g, shape: [n, oh, ow, 2]), mode: "linear", align: align
        ).scalars(as: Float.self)
        for b in 0..<n {
            for p in 0..<(oh * ow) {
                let (gx, gy) = (g[(b * oh * ow + p) * 2], g[(b * oh * ow + p) * 2 + 1])
                let px = align == 1 ? (gx + 1) / 2 * Float(w - 1) : ((gx + 1) * Float(w) - 1) / 2
                let py = align == 1 ? (gy + 1) / 2 * Float(h - 1) : ((gy + 1) * Float(h) - 1) / 2
                let (x0, y0) = (Int(px.rounded(.down)), Int(py.rounded(.down)))
                let (fx, fy) = (px - Float(x0), py - Float(y0))
                for ch in 0..<c {
                    func at(_ i: Int, _ j: Int) -> Float {
                        i >= 0 && i < h && j >= 0 && j < w ? x[((b * c + ch) * h + i) * w + j] : 0
                    }
                    let e = (1 - fy) * ((1 - fx) * at(y0, x0) + fx * at(y0, x0 + 1))
                        + fy * ((1 - fx) * at(y0 + 1, x0) + fx * at(y0 + 1, x0 + 1))
                    let got = y[(b * c + ch) * oh * ow + p]
                    #expect(abs(got - e) <= 1e-5, "batch \(b) point \(p) channel \(ch)")
                }
            }
        }
    }

    @Test func gridSampleFarAndNonFiniteCoordinatesDoNotTrap() throws {
        let x = Tensor([1, 2, 3, 4, 5, 6] as [Float], shape: [1, 1, 2, 3])
        let far: [Float] = [.nan, 0, .infinity, 0, -.infinity, 0, 1e30, 0, -1e30, 0, 7e6, 0.5]
        let grid = Tensor(far, shape: [1, 1, 6, 2])
        for mode in ["nearest", "linear", "cubic"] {
            for padding in ["zeros", "border", "reflection"] {
                let y = try gridSample(x, grid, mode: mode, padding: padding).scalars(as: Float.self)
                #expect(y.count == 6)
                // NaN reads 0; zeros padding far out reads 0.
                #expect(y[0] == 0, "\(mode) \(padding)")
                if padding == "zeros" { #expect(y.allSatisfy { $0 == 0 }, "\(mode) zeros: \(y)") }
                if padding == "border" {
                    // Row 0.5 (halfway between rows 0 and 1; nearest rounds to row 0), far right: the
                    // last column; far left: the first.
                    let (right, left): (Float, Float) = mode == "nearest" ? (3, 1) : (4.5, 2.5)
                    #expect(abs(y[1] - right) < 1e-4 && abs(y[3] - right) < 1e-4, "\(mode) border: \(y)")
                    #expect(abs(y[2] - left) < 1e-4 && abs(y[4] - left) < 1e-4, "\(mode) border: \(y)")
                }
                if padding == "reflection" { #expect(y.allSatisfy { $0.isFinite }, "\(mode) reflection: \(y)") }
            }
        }
    }

    @Test func gridSampleModeNamesFollowTheOpset() throws {
        let x = Tensor([1, 2, 3, 4] as [Float], shape: [1, 1, 2, 2])
        let g = Tensor([0, 0] as [Float], shape: [1, 1, 1, 2])
        for (mode, opset) in [("linear", 16), ("cubic", 16), ("bilinear", 20), ("bicubic", 22), ("area", 20)] {
            let e = engineError { _ = try gridSample(x, g, mode: mode, opset: opset) }
            if case .invalidModel(let m)? = e { #expect(m.contains(mode)) } else {
                Issue.record("mode \(mode) at opset \(opset): \(String(describing: e))")
            }
        }
        // Opset 16 takes 4-D inputs only; opset 20 takes 3-D (one spatial axis).
        let x1 = Tensor([1, 2, 3] as [Float], shape: [1, 1, 3])
        let g1 = Tensor([0] as [Float], shape: [1, 1, 1])
        let e = engineError { _ = try gridSample(x1, g1, mode: "bilinear", opset: 16) }
        if case .invalidInput? = e {} else { Issue.record("3-D at opset 16: \(String(describing: e))") }
        #expect(try gridSample(x1, g1, mode: "linear", opset: 20).scalars(as: Float.self) == [2])
    }

    @Test(arguments: [0, 1])
    func affineGridIdentityResamplesTheInput(align: Int) throws {
        // GridSample(AffineGrid(identity)) with align_corners is the input itself, in 2-D and 3-D.
        var rng = TestRNG(seed: 142)
        for spatial in [[3, 4], [2, 3, 4]] {
            let r = spatial.count
            let theta = (0..<r).flatMap { i in (0...r).map { j in Float(i == j ? 1 : 0) } }
            let size = [2, 3] + spatial
            let grid = try runNode(
                "AffineGrid", inputs: ["t", "s"], feeds: [("t", Tensor(theta + theta, shape: [2, r, r + 1]))],
                initializers: ["s": Tensor(size.map { Int64($0) }, shape: [size.count])],
                attributes: ["align_corners": .int(align)], opset: 20)[0]
            #expect(grid.shape == [2] + spatial + [r])
            let x = rng.tensor(size)
            let y = try gridSample(x, grid, mode: "linear", align: align)
            let (got, want) = (y.scalars(as: Float.self), x.scalars(as: Float.self))
            #expect(zip(got, want).allSatisfy { abs($0 - $1) <= 1e-5 }, "\(spatial)")
        }
        // A size-1 axis sits at 0 with align_corners, at the centre without.
        let g = try runNode(
            "AffineGrid", inputs: ["t", "s"], feeds: [("t", Tensor([1, 0, 0, 0, 1, 0] as [Float], shape: [1, 2, 3]))],
            initializers: ["s": Tensor([1, 1, 1, 1] as [Int64], shape: [4])], attributes: ["align_corners": .int(align)],
            opset: 20)[0]
        #expect(g.scalars(as: Float.self) == [0, 0])
    }

    // MARK: Unique

    /// The direct definition: distinct values with first index, inverse and count.
    func referenceUnique(_ v: [Int64], sorted: Bool) -> (y: [Int64], first: [Int], inverse: [Int], counts: [Int]) {
        var firstOf: [Int64: Int] = [:]
        var seen: [Int64] = []
        for (i, e) in v.enumerated() where firstOf[e] == nil {
            firstOf[e] = i
            seen.append(e)
        }
        let y = sorted ? seen.sorted() : seen
        let place = Dictionary(uniqueKeysWithValues: y.enumerated().map { ($1, $0) })
        return (y, y.map { firstOf[$0]! }, v.map { place[$0]! }, y.map { e in v.filter { $0 == e }.count })
    }

    @Test(arguments: [true, false])
    func uniqueMatchesTheDefinition(sorted: Bool) throws {
        var rng = TestRNG(seed: 143)
        let v = (0..<500).map { _ in Int64(rng.int(in: -40...40)) }
        let out = try runNode(
            "Unique", inputs: ["x"], feeds: [("x", Tensor(v, shape: [20, 25]))], attributes: ["sorted": .int(sorted ? 1 : 0)],
            outputs: ["y", "i", "inv", "c"], opset: 11)
        let e = referenceUnique(v, sorted: sorted)
        #expect(out[0].scalars(as: Int64.self) == e.y)
        #expect(out[1].scalars(as: Int64.self).map { Int($0) } == e.first)
        #expect(out[2].scalars(as: Int64.self).map { Int($0) } == e.inverse)
        #expect(out[3].scalars(as: Int64.self).map { Int($0) } == e.counts)
    }

    @Test func uniqueSlicesAlongAnAxis() throws {
        // [2, 4, 2] along axis 1: columns 0 and 2 equal, column 3 smallest.
        let x: [Int32] = [1, 2, 5, 5, 1, 2, 0, 0, 3, 4, 6, 6, 3, 4, 0, 9]
        for (sorted, order) in [(1, [3, 0, 1]), (0, [0, 1, 3])] {
            let out = try runNode(
                "Unique", inputs: ["x"], feeds: [("x", Tensor(x, shape: [2, 4, 2]))],
                attributes: ["sorted": .int(sorted), "axis": .int(1)], outputs: ["y", "i", "inv", "c"], opset: 11)
            #expect(out[0].shape == [2, 3, 2])
            #expect(out[1].scalars(as: Int64.self) == order.map { Int64($0) })
            let y = out[0].scalars(as: Int32.self)
            for (p, column) in order.enumerated() {
                for o in 0..<2 {
                    #expect(Array(y[((o * 3 + p) * 2)..<((o * 3 + p) * 2 + 2)]) == Array(x[((o * 4 + column) * 2)..<((o * 4 + column) * 2 + 2)]))
                }
            }
            let counts = out[3].scalars(as: Int64.self)
            #expect(counts == order.map { $0 == 0 ? 2 : 1 })
        }
    }

    @Test func uniqueFloatsCompareAsNumbers() throws {
        let x = Tensor([0, -0.0, .nan, 1, .nan, -2] as [Float], shape: [6])
        let out = try runNode("Unique", inputs: ["x"], feeds: [("x", x)], outputs: ["y", "i", "inv", "c"], opset: 11)
        let y = out[0].scalars(as: Float.self)
        #expect(y.count == 4 && y[0] == -2 && y[1] == 0 && y[2] == 1 && y[3].isNaN)
        #expect(out[2].scalars(as: Int64.self) == [1, 1, 3, 2, 3, 0])
        #expect(out[3].scalars(as: Int64.self) == [1, 2, 1, 2])
    }

    // MARK: Compress, ReverseSequence, CumProd, TensorScatter

    @Test func compressFlattensWithoutAnAxis() throws {
        let x = Tensor([1, 2, 3, 4, 5, 6] as [Float], shape: [2, 3])
        let y = try runNode(
            "Compress", inputs: ["x", "c"], feeds: [("x", x)],
            initializers: ["c": Tensor([false, true, false, true] as [Bool], shape: [4])], opset: 11)[0]
        #expect(y.shape == [2] && y.scalars(as: Float.self) == [2, 4])
        let none = try runNode(
            "Compress", inputs: ["x", "c"], feeds: [("x", x)], initializers: ["c": Tensor([false, false] as [Bool], shape: [2])],
            attributes: ["axis": .int(0)], opset: 11)[0]
        #expect(none.shape == [0, 3])
    }

    @Test func reverseSequenceRefusesBadLengthsAndAxes() {
        let x = Tensor([Float](repeating: 1, count: 12), shape: [3, 4])
        for lens: [Int64] in [[1, 2, 5], [0, -1, 1]] {
            let e = engineError {
                _ = try runNode(
                    "ReverseSequence", inputs: ["x", "l"], feeds: [("x", x)], initializers: ["l": Tensor(lens, shape: [3])],
                    attributes: ["batch_axis": .int(0), "time_axis": .int(1)], opset: 10)
            }
            if case .invalidInput(let m)? = e { #expect(m.contains("sequence length")) } else {
                Issue.record("lengths \(lens): \(String(describing: e))")
            }
        }
        let axes = engineError {
            _ = try runNode(
                "ReverseSequence", inputs: ["x", "l"], feeds: [("x", x)], initializers: ["l": Tensor([1, 1, 1] as [Int64], shape: [3])],
                attributes: ["batch_axis": .int(0), "time_axis": .int(0)], opset: 10)
        }
        if case .invalidModel? = axes {} else { Issue.record("equal axes: \(String(describing: axes))") }
    }

    @Test func cumProdMatchesRunningProducts() throws {
        var rng = TestRNG(seed: 144)
        let x = (0..<24).map { _ in Int64(rng.int(in: -3...3)) }
        for (exclusive, reverse) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
            let y = try runNode(
                "CumProd", inputs: ["x", "a"], feeds: [("x", Tensor(x, shape: [2, 3, 4]))],
                initializers: ["a": Tensor([Int64(1)], shape: [])],
                attributes: ["exclusive": .int(exclusive), "reverse": .int(reverse)], opset: 26)[0].scalars(as: Int64.self)
            for o in 0..<2 {
                for i in 0..<4 {
                    var acc: Int64 = 1
                    for step in 0..<3 {
                        let t = reverse == 1 ? 2 - step : step
                        let at = (o * 3 + t) * 4 + i
                        if exclusive == 1 {
                            #expect(y[at] == acc)
                            acc *= x[at]
                        } else {
                            acc *= x[at]
                            #expect(y[at] == acc)
                        }
                    }
                }
            }
        }
    }

    @Test func tensorScatterWrapsOnlyWhenCircular() throws {
        let cache = Tensor((0..<8).map { Float($0) }, shape: [2, 4, 1])
        let update = Tensor([10, 11, 20, 21] as [Float], shape: [2, 2, 1])
        let writes = Tensor([3, 1] as [Int64], shape: [2])
        let y = try runNode(
            "TensorScatter", inputs: ["c", "u", "w"], feeds: [("c", cache), ("u", update)], initializers: ["w": writes],
            attributes: ["mode": Self.text("circular"), "axis": .int(1)], opset: 24)[0]
        #expect(y.scalars(as: Float.self) == [11, 1, 2, 10, 4, 20, 21, 7])
        let e = engineError {
            _ = try runNode(
                "TensorScatter", inputs: ["c", "u", "w"], feeds: [("c", cache), ("u", update)], initializers: ["w": writes],
                attributes: ["axis": .int(1)], opset: 24)
        }
        if case .invalidInput(let m)? = e { #expect(m.contains("does not fit")) } else {
            Issue.record("linear overflow: \(String(describing: e))")
        }
        let batchAxis = engineError {
            _ = try runNode(
                "TensorScatter", inputs: ["c", "u"], feeds: [("c", cache), ("u", update)], attributes: ["axis": .int(0)], opset: 24)
        }
        if case .invalidInput? = batchAxis {} else { Issue.record("axis 0: \(String(describing: batchAxis))") }
    }
}
