import Engine
import Tensors
import Testing

/// DeformConv against a direct definition written from the ONNX operator's text (every tap samples
/// X at its regular position plus its offset, linearly per spatial dimension with zero outside X,
/// times the mask), over 1 to 3 spatial dimensions, groups, offset groups, strides, dilations and
/// pads; with zero offsets against Conv itself; on one and two threads, each twice (the second run
/// goes through the shape plan's arena).
@Suite struct DeformConvTests {
    struct Case: CustomStringConvertible, Sendable {
        var n = 1, c = 4, m = 6, spatial = [6, 7], kernel = [3, 3], group = 1, offsetGroup = 1
        var strides: [Int]? = nil, dilations: [Int]? = nil, pads: [Int]? = nil
        var bias = true, mask = true
        /// Offsets drawn from [-scale, scale): large ones sample outside X.
        var scale: Float = 1.5
        var description: String {
            "n\(n) c\(c) m\(m) \(spatial) k\(kernel) g\(group) og\(offsetGroup) s\(strides ?? []) d\(dilations ?? []) "
                + "p\(pads ?? [])\(bias ? " B" : "")\(mask ? " mask" : "") offsets ±\(scale)"
        }
    }

    static let cases: [Case] = [
        Case(),
        Case(n: 2, strides: [2, 2], pads: [1, 1, 1, 1], bias: false, mask: false),
        Case(n: 2, c: 4, m: 4, group: 2, offsetGroup: 2, dilations: [2, 1], pads: [2, 0, 1, 1]),
        Case(c: 6, m: 4, group: 2, offsetGroup: 3, strides: [1, 2], pads: [0, 1, 1, 0]),  // offset groups across groups
        Case(c: 4, m: 2, spatial: [5, 5], kernel: [2, 2], scale: 6),  // many samples fully outside X
        Case(c: 3, m: 2, spatial: [9], kernel: [3], strides: [2], dilations: [2], pads: [1, 2]),
        Case(n: 2, c: 2, m: 3, spatial: [4, 5, 3], kernel: [2, 3, 2], strides: [1, 2, 1], pads: [1, 0, 1, 0, 1, 0]),
        // C/group * kernel = 576 rows: several blocks of output positions per image and group.
        Case(n: 2, c: 64, m: 5, spatial: [12, 11], offsetGroup: 4, pads: [1, 1, 1, 1]),
    ]

    /// Linear interpolation of plane `x` (of `shape`) at `point`, zero outside.
    static func sample(_ x: ArraySlice<Float>, _ shape: [Int], _ point: [Float]) -> Float {
        let r = shape.count
        var total: Float = 0
        for corner in 0..<(1 << r) {
            var weight: Float = 1
            var flat = 0
            var inside = true
            for d in 0..<r {
                let low = point[d].rounded(.down)
                let high = corner >> (r - 1 - d) & 1 == 1
                let at = Int(low) + (high ? 1 : 0)
                weight *= high ? point[d] - low : 1 - (point[d] - low)
                if at < 0 || at >= shape[d] { inside = false }
                flat = flat * shape[d] + at
            }
            if inside { total += weight * x[x.startIndex + flat] }
        }
        return total
    }

    static func outputShape(_ p: Case) -> [Int] {
        let r = p.spatial.count
        return (0..<r).map { i in
            let extent = (p.kernel[i] - 1) * (p.dilations?[i] ?? 1) + 1
            return (p.spatial[i] + (p.pads?[i] ?? 0) + (p.pads?[i + r] ?? 0) - extent) / (p.strides?[i] ?? 1) + 1
        }
    }

    /// y[n, o, q] = b[o] + sum over the group's channels ci and taps t of
    /// w[o, ci, t] * mask[n, og, t, q] * x[n, ci] sampled at q * stride - pad + t * dilation + offset[n, og, t, :, q].
    static func reference(
        _ x: [Float], _ w: [Float], _ offset: [Float], _ b: [Float]?, _ mask: [Float]?, _ p: Case, out: [Int]
    ) -> [Float] {
        let r = p.spatial.count
        let (cg, mg) = (p.c / p.group, p.m / p.group)
        let (inSize, outSize, taps) = (volume(p.spatial), volume(out), volume(p.kernel))
        let channelsPerOffsetGroup = p.c / p.offsetGroup
        var y = [Float](repeating: 0, count: p.n * p.m * outSize)
        for img in 0..<p.n {
            for o in 0..<p.m {
                let g = o / mg
                for q in 0..<outSize {
                    let qi = unravel(q, out)
                    var sum = b?[o] ?? 0
                    for ci in 0..<cg {
                        let channel = g * cg + ci
                        let og = channel / channelsPerOffsetGroup
                        let plane = x[((img * p.c + channel) * inSize)..<((img * p.c + channel + 1) * inSize)]
                        for t in 0..<taps {
                            let ti = unravel(t, p.kernel)
                            let point = (0..<r).map { d -> Float in
                                let regular = qi[d] * (p.strides?[d] ?? 1) - (p.pads?[d] ?? 0) + ti[d] * (p.dilations?[d] ?? 1)
                                return Float(regular) + offset[(((img * p.offsetGroup + og) * taps + t) * r + d) * outSize + q]
                            }
                            let scale = mask?[((img * p.offsetGroup + og) * taps + t) * outSize + q] ?? 1
                            sum += w[(o * cg + ci) * taps + t] * scale * sample(plane, p.spatial, point)
                        }
                    }
                    y[(img * p.m + o) * outSize + q] = sum
                }
            }
        }
        return y
    }

    static func attributes(_ p: Case) -> [String: Attribute] {
        var a: [String: Attribute] = ["group": .int(p.group), "kernel_shape": .ints(p.kernel)]
        if p.offsetGroup != 1 { a["offset_group"] = .int(p.offsetGroup) }
        if let v = p.strides { a["strides"] = .ints(v) }
        if let v = p.dilations { a["dilations"] = .ints(v) }
        if let v = p.pads { a["pads"] = .ints(v) }
        return a
    }

    /// A session of one `opType` node on fed x, offset and mask with the weights and bias as
    /// initializers, on `threads` threads.
    static func session(
        _ opType: String, _ p: Case, inputs: [String], feeds: [(String, Tensor)], initializers: [String: Tensor],
        threads: Int
    ) throws -> InferenceSession {
        var attributes = Self.attributes(p)
        if opType == "Conv" { attributes["offset_group"] = nil }
        let node = Node(name: "node0", opType: opType, inputs: inputs, outputs: ["y"], attributes: attributes)
        let graph = Graph(
            nodes: [node],
            inputs: feeds.map { ValueInfo(name: $0.0, dataType: .float32, shape: $0.1.shape.map { .fixed($0) }) },
            outputs: [ValueInfo(name: "y", dataType: nil, shape: nil)], initializers: initializers)
        return try InferenceSession(
            model: GraphModel(graph: graph, opsets: ["": 22], irVersion: 10), options: SessionOptions(blasThreads: threads))
    }

    @Test(arguments: cases)
    func deformConvMatchesTheDefinition(_ p: Case) throws {
        var rng = TestRNG(seed: 21)
        let out = Self.outputShape(p)
        let taps = volume(p.kernel)
        let x = rng.tensor([p.n, p.c] + p.spatial)
        let w = rng.tensor([p.m, p.c / p.group] + p.kernel)
        let b = rng.tensor([p.m])
        let offset = Tensor(
            rng.floats(p.n * p.offsetGroup * taps * p.spatial.count * volume(out)).map { $0 * p.scale },
            shape: [p.n, p.offsetGroup * taps * p.spatial.count] + out)
        let mask = Tensor(
            rng.floats(p.n * p.offsetGroup * taps * volume(out)).map { ($0 + 1) / 2 }, shape: [p.n, p.offsetGroup * taps] + out)
        let expected = Self.reference(
            x.scalars(as: Float.self), w.scalars(as: Float.self), offset.scalars(as: Float.self),
            p.bias ? b.scalars(as: Float.self) : nil, p.mask ? mask.scalars(as: Float.self) : nil, p, out: out)
        var feeds = [("x", x), ("offset", offset)]
        if p.mask { feeds.append(("mask", mask)) }
        let inputs = ["x", "w", "offset", p.bias ? "b" : "", p.mask ? "mask" : ""]
        for threads in [1, 2] {
            let session = try Self.session(
                "DeformConv", p, inputs: inputs, feeds: feeds, initializers: ["w": w, "b": b], threads: threads)
            for _ in 0..<2 {
                let y = try session.run(Dictionary(uniqueKeysWithValues: feeds))["y"]!
                expectClose(y, expected, shape: [p.n, p.m] + out)
            }
        }
    }

    /// With every offset zero and no mask, DeformConv is Conv: strides, dilations, pads and groups
    /// must line up exactly with Conv's.
    @Test(arguments: [
        Case(n: 2, strides: [2, 2], dilations: [2, 2], pads: [2, 1, 0, 2]),
        Case(c: 6, m: 9, spatial: [8, 9], kernel: [3, 2], group: 3, strides: [3, 1], dilations: [1, 3], pads: [1, 1, 1, 1]),
        Case(c: 2, m: 3, spatial: [11], kernel: [4], strides: [3], dilations: [2], pads: [3, 0]),
        Case(c: 2, m: 2, spatial: [5, 4, 6], kernel: [2, 2, 3], strides: [2, 1, 2], dilations: [1, 2, 1]),
    ])
    func deformConvWithZeroOffsetsIsConv(_ p: Case) throws {
        var rng = TestRNG(seed: 22)
        let out = Self.outputShape(p)
        let x = rng.tensor([p.n, p.c] + p.spatial)
        let w = rng.tensor([p.m, p.c / p.group] + p.kernel)
        let b = rng.tensor([p.m])
        let offset = Tensor(
            [Float](repeating: 0, count: p.n * volume(p.kernel) * p.spatial.count * volume(out)),
            shape: [p.n, volume(p.kernel) * p.spatial.count] + out)
        let conv = try Self.session(
            "Conv", p, inputs: ["x", "w", "b"], feeds: [("x", x)], initializers: ["w": w, "b": b], threads: 1)
        let expected = try conv.run(["x": x])["y"]!
        for threads in [1, 2] {
            let deform = try Self.session(
                "DeformConv", p, inputs: ["x", "w", "offset", "b"], feeds: [("x", x), ("offset", offset)],
                initializers: ["w": w, "b": b], threads: threads)
            let y = try deform.run(["x": x, "offset": offset])["y"]!
            expectClose(y, expected.scalars(as: Float.self), shape: expected.shape)
        }
    }

    /// An offset of exactly one cell moves every tap by one: a 1x1 kernel then reads the shifted
    /// input, zero past its edge.
    @Test func deformConvShiftsByWholeCells() throws {
        let x = Tensor((0..<12).map(Float.init), shape: [1, 1, 3, 4])
        let w = Tensor([Float(1)], shape: [1, 1, 1, 1])
        // Down by one row, left by one column.
        let offset = Tensor([Float](repeating: 1, count: 12) + [Float](repeating: -1, count: 12), shape: [1, 2, 3, 4])
        let y = try runNode(
            "DeformConv", inputs: ["x", "w", "offset"], feeds: [("x", x), ("offset", offset)], initializers: ["w": w],
            opset: 19)[0]
        expectClose(y, [0, 4, 5, 6, 0, 8, 9, 10, 0, 0, 0, 0], shape: [1, 1, 3, 4])
    }

    @Test func deformConvRejectsAnOffsetOfTheWrongShape() {
        var rng = TestRNG(seed: 23)
        let error = engineError {
            _ = try runNode(
                "DeformConv", inputs: ["x", "w", "offset"],
                feeds: [("x", rng.tensor([1, 2, 5, 5])), ("offset", rng.tensor([1, 18, 4, 4]))],
                initializers: ["w": rng.tensor([3, 2, 3, 3])], opset: 19)
        }
        guard case .invalidInput(let m)? = error else {
            Issue.record("expected invalidInput, got \(String(describing: error))")
            return
        }
        #expect(m.contains("[1, 18, 4, 4]") && m.contains("[1, 18, 3, 3]"), "\(m)")
    }

    @Test func deformConvRejectsChannelsThatDoNotSplitIntoOffsetGroups() {
        var rng = TestRNG(seed: 24)
        let error = engineError {
            _ = try runNode(
                "DeformConv", inputs: ["x", "w", "offset"],
                feeds: [("x", rng.tensor([1, 3, 4, 4])), ("offset", rng.tensor([1, 16, 3, 3]))],
                initializers: ["w": rng.tensor([2, 3, 2, 2])], attributes: ["offset_group": .int(2)], opset: 19)
        }
        guard case .invalidInput(let m)? = error else {
            Issue.record("expected invalidInput, got \(String(describing: error))")
            return
        }
        #expect(m.contains("offset_group 2"), "\(m)")
    }
}
