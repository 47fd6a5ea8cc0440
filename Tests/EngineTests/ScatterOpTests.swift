import Engine
import Tensors
import Testing

/// ScatterND, ScatterElements, DepthToSpace and SpaceToDepth beyond the ONNX conformance cases:
/// out-of-range indices, integer reductions, slices, and the two block orders against a direct
/// definition.
@Suite struct ScatterOpTests {
    @Test func scatterOutOfRangeIndicesFail() {
        let data = Tensor([Float](repeating: 0, count: 4), shape: [4])
        for index: Int64 in [4, -5, Int64.max, Int64.min] {
            let nd = engineError {
                _ = try runNode(
                    "ScatterND", inputs: ["x", "i", "u"], feeds: [("x", data)],
                    initializers: ["i": Tensor([index], shape: [1, 1]), "u": Tensor([1] as [Float], shape: [1])], opset: 18)
            }
            if case .invalidInput(let m)? = nd { #expect(m.contains("out of range")) } else {
                Issue.record("ScatterND index \(index): \(String(describing: nd))")
            }
            let el = engineError {
                _ = try runNode(
                    "ScatterElements", inputs: ["x", "i", "u"], feeds: [("x", data)],
                    initializers: ["i": Tensor([index], shape: [1]), "u": Tensor([1] as [Float], shape: [1])], opset: 18)
            }
            if case .invalidInput(let m)? = el { #expect(m.contains("out of range")) } else {
                Issue.record("ScatterElements index \(index): \(String(describing: el))")
            }
        }
    }

    @Test func scatterReductionsOnIntegersAndSlices() throws {
        // ScatterND with 1-tuples into a [3, 2] int64 tensor: whole rows, with a duplicate (add).
        let data = Tensor([1, 2, 3, 4, 5, 6] as [Int64], shape: [3, 2])
        let y = try runNode(
            "ScatterND", inputs: ["x", "i", "u"], feeds: [("x", data)],
            initializers: ["i": Tensor([2, -3, 2] as [Int64], shape: [3, 1]), "u": Tensor([10, 20, 30, 40, 50, 60] as [Int64], shape: [3, 2])],
            attributes: ["reduction": .string(Array("add".utf8))], opset: 16)[0]
        #expect(y.scalars(as: Int64.self) == [31, 42, 3, 4, 65, 86])
        // max/min are opset 18: refused before.
        #expect(throws: EngineError.self) {
            _ = try runNode(
                "ScatterElements", inputs: ["x", "i", "u"], feeds: [("x", data)],
                initializers: ["i": Tensor([0] as [Int64], shape: [1, 1]), "u": Tensor([9] as [Int64], shape: [1, 1])],
                attributes: ["reduction": .string(Array("max".utf8))], opset: 16)
        }
        let m = try runNode(
            "ScatterElements", inputs: ["x", "i", "u"], feeds: [("x", data)],
            initializers: ["i": Tensor([1, 0] as [Int64], shape: [1, 2]), "u": Tensor([9, 0] as [Int64], shape: [1, 2])],
            attributes: ["reduction": .string(Array("min".utf8)), "axis": .int(0)], opset: 18)[0]
        #expect(m.scalars(as: Int64.self) == [1, 0, 3, 4, 5, 6])
    }

    @Test(arguments: ["DCR", "CRD"])
    func depthToSpaceInvertsSpaceToDepth(mode: String) throws {
        var rng = TestRNG(seed: 92)
        let x = rng.tensor([2, 3, 6, 4])
        let attrs: [String: Attribute] = ["blocksize": .int(2), "mode": .string(Array(mode.utf8))]
        let depth = try runSimple("SpaceToDepth", [x], attributes: attrs, opset: 28)
        #expect(depth.shape == [2, 12, 3, 2])
        let back = try runSimple("DepthToSpace", [depth], attributes: attrs, opset: 13)
        #expect(back.shape == x.shape && back.scalars(as: Float.self) == x.scalars(as: Float.self))
        // Direct definition of DepthToSpace on `depth`.
        let d = depth.scalars(as: Float.self)
        let b = 2
        let (c, h, w) = (3, 3, 2)
        for (flat, v) in back.scalars(as: Float.self).enumerated() {
            let i = unravel(flat, [2, 3, 6, 4])
            let (bi, bj) = (i[2] % b, i[3] % b)
            let channel = mode == "DCR" ? (bi * b + bj) * c + i[1] : (i[1] * b + bi) * b + bj
            #expect(v == d[((i[0] * c * b * b + channel) * h + i[2] / b) * w + i[3] / b])
        }
        #expect(throws: EngineError.self) { try runSimple("DepthToSpace", [rng.tensor([1, 3, 2, 2])], attributes: attrs, opset: 13) }
    }
}
