import Engine
import Foundation
import Tensors
import Testing

/// Resize and Upsample beyond the ONNX conformance cases: realistic 1x64x56x56 feature maps
/// against a direct per-element definition (nearest and bilinear, each coordinate mode), integer
/// element types, and scales or sizes that must be refused before anything is allocated.
@Suite struct ResizeTests {
    static func string(_ s: String) -> Attribute { .string(Array(s.utf8)) }

    /// Resize-19 of `x` with constant scales (or sizes).
    func resize(_ x: Tensor, scales: [Float]? = nil, sizes: [Int64]? = nil, _ attributes: [String: Attribute]) throws -> Tensor {
        var initializers: [String: Tensor] = [:]
        var inputs = ["x", "", "", ""]
        if let scales {
            initializers["scales"] = Tensor(scales, shape: [scales.count])
            inputs[2] = "scales"
        }
        if let sizes {
            initializers["sizes"] = Tensor(sizes, shape: [sizes.count])
            inputs[3] = "sizes"
        }
        while inputs.last == "" { inputs.removeLast() }
        return try runNode("Resize", inputs: inputs, feeds: [("x", x)], initializers: initializers, attributes: attributes, opset: 19)[0]
    }

    /// The source coordinate of output position `o` per the ONNX definition, computed directly in
    /// FP32 as onnxruntime does.
    static func source(_ o: Int, inSize: Int, outSize: Int, scale: Float, mode: String) -> Double {
        let y = Float(o)
        switch mode {
        case "align_corners": return Double(outSize == 1 ? 0 : y * Float(inSize - 1) / Float(outSize - 1))
        case "asymmetric": return Double(y / scale)
        case "pytorch_half_pixel": return Double(outSize > 1 ? (y + 0.5) / scale - 0.5 : -0.5)
        default: return Double((y + 0.5) / scale - 0.5)
        }
    }

    /// Per element: nearest (round half down, or floor) or bilinear with clamped taps.
    static func reference(_ x: [Float], _ shape: [Int], _ oh: Int, _ ow: Int, linear: Bool, mode: String, floor: Bool) -> [Float] {
        let (planes, h, w) = (shape[0] * shape[1], shape[2], shape[3])
        let (sy, sx) = (Float(oh) / Float(h), Float(ow) / Float(w))
        var out = [Float](repeating: 0, count: planes * oh * ow)
        func clamp(_ v: Int, _ n: Int) -> Int { min(max(v, 0), n - 1) }
        for p in 0..<planes {
            for oy in 0..<oh {
                let yc = source(oy, inSize: h, outSize: oh, scale: sy, mode: mode)
                for ox in 0..<ow {
                    let xc = source(ox, inSize: w, outSize: ow, scale: sx, mode: mode)
                    let v: Float
                    if linear {
                        let (y0, x0) = (Int(yc.rounded(.down)), Int(xc.rounded(.down)))
                        let (fy, fx) = (Float(yc - Double(y0)), Float(xc - Double(x0)))
                        func at(_ yy: Int, _ xx: Int) -> Float { x[(p * h + clamp(yy, h)) * w + clamp(xx, w)] }
                        let top = at(y0, x0) * (1 - fx) + at(y0, x0 + 1) * fx
                        let bottom = at(y0 + 1, x0) * (1 - fx) + at(y0 + 1, x0 + 1) * fx
                        v = top * (1 - fy) + bottom * fy
                    } else {
                        func pick(_ c: Double) -> Int {
                            if floor { return Int(c.rounded(.down)) }
                            let f = c.rounded(.down)
                            return Int(c - f <= 0.5 ? f : f + 1)
                        }
                        v = x[(p * h + clamp(pick(yc), h)) * w + clamp(pick(xc), w)]
                    }
                    out[(p * oh + oy) * ow + ox] = v
                }
            }
        }
        return out
    }

    @Test(arguments: [
        ("linear", "half_pixel"), ("linear", "align_corners"), ("linear", "asymmetric"), ("linear", "pytorch_half_pixel"),
        ("nearest", "half_pixel"), ("nearest", "asymmetric"), ("nearest", "align_corners"),
    ])
    func featureMapMatchesTheDefinition(mode: String, coordinates: String) throws {
        var rng = TestRNG(seed: 93)
        let shape = [1, 64, 56, 56]
        let x = rng.tensor(shape)
        let xs = x.scalars(as: Float.self)
        let floor = mode == "nearest" && coordinates == "asymmetric"
        var attributes: [String: Attribute] = ["mode": Self.string(mode), "coordinate_transformation_mode": Self.string(coordinates)]
        if floor { attributes["nearest_mode"] = Self.string("floor") }
        // 2x up (FPN, YOLO), and odd sizes both ways (UNet-like skip connections).
        for (oh, ow, byScale) in [(112, 112, true), (75, 41, false), (28, 28, true)] {
            let y = byScale
                ? try resize(x, scales: [1, 1, Float(oh) / 56, Float(ow) / 56], attributes)
                : try resize(x, sizes: [1, 64, Int64(oh), Int64(ow)], attributes)
            #expect(y.shape == [1, 64, oh, ow])
            let expected = Self.reference(xs, shape, oh, ow, linear: mode == "linear", mode: coordinates, floor: floor)
            let got = y.scalars(as: Float.self)
            var worst: Float = 0
            for i in 0..<expected.count { worst = max(worst, abs(got[i] - expected[i])) }
            #expect(worst <= 1e-5, "\(mode) \(coordinates) to \(oh)x\(ow): max error \(worst)")
        }
    }

    @Test func nearestOnIntegersAndBytes() throws {
        let x = Tensor((0..<6).map { Int64($0) }, shape: [1, 1, 2, 3])
        let y = try resize(x, scales: [1, 1, 2, 2], ["mode": Self.string("nearest")])
        #expect(y.shape == [1, 1, 4, 6])
        #expect(Array(y.scalars(as: Int64.self).prefix(12)) == [0, 0, 1, 1, 2, 2, 0, 0, 1, 1, 2, 2])
        let b = try resize(Tensor([true, false], shape: [2]), sizes: [5], ["mode": Self.string("nearest")])
        #expect(b.scalars(as: Bool.self) == [true, true, true, false, false])
        // Linear is FP32 only: a clean failure.
        #expect(throws: EngineError.self) { try resize(x, scales: [1, 1, 2, 2], ["mode": Self.string("linear")]) }
    }

    @Test func nearestRoundsFP32CoordinatesAsOnnxruntime() throws {
        // 17 / 1.7 is 10 in FP32 (onnxruntime) but 9.99999971 in FP64: floor must give 10.
        let x = Tensor((0..<20).map { Float($0) }, shape: [1, 1, 1, 20])
        let y = try resize(
            x, scales: [1, 1, 1, 1.7],
            ["mode": Self.string("nearest"), "coordinate_transformation_mode": Self.string("asymmetric"), "nearest_mode": Self.string("floor")])
        #expect(y.shape == [1, 1, 1, 34])
        #expect(y.scalars(as: Float.self)[17] == 10)
    }

    @Test func hugeScalesAndSizesAreRefused() {
        var rng = TestRNG(seed: 94)
        let x = rng.tensor([1, 2, 56, 56])
        for scales: [Float] in [[1, 1, 1e9, 1e9], [1, 1, .infinity, 1], [1, 1, -2, 2], [1, 1, .nan, 1], [1e30, 1, 1, 1]] {
            let error = engineError { _ = try resize(x, scales: scales, ["mode": Self.string("linear")]) }
            guard case .invalidInput? = error else {
                Issue.record("scales \(scales): expected invalidInput, got \(String(describing: error))")
                continue
            }
        }
        for sizes: [Int64] in [[1, 2, Int64.max, 2], [1, 2, -1, 4], [1, 2, 3]] {
            let error = engineError { _ = try resize(x, sizes: sizes, ["mode": Self.string("nearest")]) }
            guard case .invalidInput? = error else {
                Issue.record("sizes \(sizes): expected invalidInput, got \(String(describing: error))")
                continue
            }
        }
    }

    @Test func sizesFedAtRunTime() throws {
        // Sizes that are not constants (computed from Shape in exports): the output shape is known
        // only when it runs.
        let x = Tensor((0..<4).map { Float($0) }, shape: [1, 1, 2, 2])
        let y = try runNode(
            "Resize", inputs: ["x", "", "", "s"], feeds: [("x", x), ("s", Tensor([1, 1, 3, 3] as [Int64], shape: [4]))],
            attributes: ["mode": Self.string("linear"), "coordinate_transformation_mode": Self.string("align_corners")],
            opset: 13)[0]
        #expect(y.scalars(as: Float.self) == [0, 0.5, 1, 1, 1.5, 2, 2, 2.5, 3])
    }

    @Test func upsampleOpsets7And9() throws {
        let x = Tensor((0..<4).map { Float($0) }, shape: [1, 1, 2, 2])
        let seven = try runNode(
            "Upsample", inputs: ["x"], feeds: [("x", x)],
            attributes: ["scales": .floats([1, 1, 2, 2]), "mode": Self.string("nearest")], opset: 7)[0]
        #expect(seven.scalars(as: Float.self) == [0, 0, 1, 1, 0, 0, 1, 1, 2, 2, 3, 3, 2, 2, 3, 3])
        let nine = try runNode(
            "Upsample", inputs: ["x", "s"], feeds: [("x", x)], initializers: ["s": Tensor([1, 1, 1, 2] as [Float], shape: [4])],
            attributes: ["mode": Self.string("linear")], opset: 9)[0]
        // Asymmetric coordinates, clamped at the right edge.
        #expect(nine.scalars(as: Float.self) == [0, 0.5, 1, 1, 2, 2.5, 3, 3])
    }

    /// Not a benchmark: a loose bound that catches a per-element slow path (a few ms expected).
    @Test func bilinearFeatureMapIsFast() throws {
        var rng = TestRNG(seed: 95)
        let x = rng.tensor([1, 64, 56, 56])
        let attributes: [String: Attribute] = ["mode": Self.string("linear")]
        let graph = Graph(
            nodes: [Node(name: "r", opType: "Resize", inputs: ["x", "", "s"], outputs: ["y"], attributes: attributes)],
            inputs: [ValueInfo(name: "x", dataType: .float32, shape: [1, 64, 56, 56].map { .fixed($0) })],
            outputs: [ValueInfo(name: "y", dataType: nil, shape: nil)],
            initializers: ["s": Tensor([1, 1, 2, 2] as [Float], shape: [4])])
        let session = try InferenceSession(model: GraphModel(graph: graph, opsets: ["": 19], irVersion: 8))
        _ = try session.run(["x": x])
        let start = ContinuousClock.now
        for _ in 0..<10 { _ = try session.run(["x": x]) }
        let each = (ContinuousClock.now - start) / 10
        print("Resize bilinear 1x64x56x56 -> 112x112: \(each) per run")
        #expect(each < .milliseconds(200))
    }
}
