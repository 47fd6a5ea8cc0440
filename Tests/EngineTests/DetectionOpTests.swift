import Engine
import Tensors
import Testing

/// NonMaxSuppression and RoiAlign beyond the ONNX conformance cases: many boxes with tied scores
/// against a direct definition of greedy suppression, absent and empty optional inputs, and
/// requests that must fail cleanly; RoiAlign against a direct definition of its sampling.
@Suite struct DetectionOpTests {
    static func text(_ s: String) -> Attribute { .string(Array(s.utf8)) }

    /// Runs NonMaxSuppression with the optional inputs given (nil: the input is not listed;
    /// an empty tensor: listed and empty).
    func nms(
        _ boxes: Tensor, _ scores: Tensor, max: Tensor?, iou: Tensor?, score: Tensor?, centerPointBox: Int = 0
    ) throws -> [[Int]] {
        var names = ["boxes", "scores"]
        var initializers: [String: Tensor] = [:]
        for (name, t) in [("max", max), ("iou", iou), ("score", score)] {
            if let t {
                names.append(name)
                initializers[name] = t
            } else {
                names.append("")
            }
        }
        while names.last == "" { names.removeLast() }
        let out = try runNode(
            "NonMaxSuppression", inputs: names, feeds: [("boxes", boxes), ("scores", scores)], initializers: initializers,
            attributes: ["center_point_box": .int(centerPointBox)], opset: 11)[0]
        #expect(out.rank == 2 && out.shape[1] == 3)
        let v = out.scalars(as: Int64.self).map { Int($0) }
        return stride(from: 0, to: v.count, by: 3).map { Array(v[$0..<($0 + 3)]) }
    }

    /// The direct definition: per batch and class, candidates above the threshold by descending
    /// score (ties: lower index first), each kept unless its IoU with a kept box exceeds the
    /// threshold, until `limit` are kept.
    func referenceNMS(
        boxes: [Float], scores: [Float], batches: Int, classes: Int, n: Int, limit: Int, iou: Float, threshold: Float?,
        center: Bool
    ) -> [[Int]] {
        func corners(_ b: Int, _ i: Int) -> (Float, Float, Float, Float) {
            let p = (b * n + i) * 4
            let v = Array(boxes[p..<(p + 4)])
            if center { return (v[0] - v[2] / 2, v[1] - v[3] / 2, v[0] + v[2] / 2, v[1] + v[3] / 2) }
            return (min(v[1], v[3]), min(v[0], v[2]), max(v[1], v[3]), max(v[0], v[2]))
        }
        func overlap(_ b: Int, _ i: Int, _ j: Int) -> Float {
            let (ax0, ay0, ax1, ay1) = corners(b, i)
            let (bx0, by0, bx1, by1) = corners(b, j)
            let w = min(ax1, bx1) - max(ax0, bx0)
            let h = min(ay1, by1) - max(ay0, by0)
            if w <= 0 || h <= 0 { return 0 }
            let inter = w * h
            let a = (ax1 - ax0) * (ay1 - ay0)
            let c = (bx1 - bx0) * (by1 - by0)
            if a <= 0 || c <= 0 { return 0 }
            return inter / (a + c - inter)
        }
        var result: [[Int]] = []
        for b in 0..<batches {
            for c in 0..<classes {
                let s = Array(scores[((b * classes + c) * n)..<((b * classes + c + 1) * n)])
                let order = (0..<n).filter { threshold == nil || s[$0] > threshold! }
                    .sorted { s[$0] != s[$1] ? s[$0] > s[$1] : $0 < $1 }
                var kept: [Int] = []
                for i in order where kept.count < limit {
                    if kept.allSatisfy({ overlap(b, $0, i) <= iou }) { kept.append(i) }
                }
                result += kept.map { [b, c, $0] }
            }
        }
        return result
    }

    @Test(arguments: [(0, 0.5 as Float, 0.3 as Float?, 20), (1, 0.3, nil, 1000), (0, 0, 0.1, 5), (1, 1, 0.5, 300)])
    func nmsMatchesGreedySuppression(centerPointBox: Int, iou: Float, threshold: Float?, limit: Int) throws {
        var rng = TestRNG(seed: 131)
        let (batches, classes, n) = (2, 5, 300)
        var boxes: [Float] = []
        for _ in 0..<(batches * n) {
            let (a, b) = (rng.float() * 50 + 50, rng.float() * 50 + 50)
            let (w, h) = ((rng.float() + 1) * 10, (rng.float() + 1) * 10)
            if centerPointBox == 1 {
                boxes += [a, b, w, h]
            } else if rng.int(in: 0...1) == 0 {
                boxes += [b, a, b + h, a + w]
            } else {
                boxes += [b + h, a + w, b, a]  // the other diagonal
            }
        }
        // Scores from a small set, so that ties are frequent.
        let scores = (0..<(batches * classes * n)).map { _ in Float(rng.int(in: 0...16)) / 16 }
        let got = try nms(
            Tensor(boxes, shape: [batches, n, 4]), Tensor(scores, shape: [batches, classes, n]),
            max: Tensor([Int64(limit)], shape: [1]), iou: Tensor([iou], shape: [1]),
            score: threshold.map { Tensor([$0], shape: [1]) }, centerPointBox: centerPointBox)
        let expected = referenceNMS(
            boxes: boxes, scores: scores, batches: batches, classes: classes, n: n, limit: limit, iou: iou,
            threshold: threshold, center: centerPointBox == 1)
        #expect(got == expected)
    }

    @Test func nmsTiesKeepTheLowerIndexFirst() throws {
        // Ten boxes far apart with one score: all kept, in index order (as onnxruntime 1.32).
        let boxes = (0..<10).flatMap { i -> [Float] in [0, Float(i) * 10, 1, Float(i) * 10 + 1] }
        let got = try nms(
            Tensor(boxes, shape: [1, 10, 4]), Tensor([Float](repeating: 0.5, count: 10), shape: [1, 1, 10]),
            max: Tensor([Int64(100)], shape: [1]), iou: Tensor([Float(0.5)], shape: [1]), score: nil)
        #expect(got.map { $0[2] } == Array(0..<10))
    }

    @Test func nmsOptionalInputsAbsentOrEmpty() throws {
        let boxes = Tensor([0, 0, 1, 1, 0, 0.1, 1, 1.1, 0, 5, 1, 6] as [Float], shape: [1, 3, 4])
        let scores = Tensor([0.9, 0.8, 0.7] as [Float], shape: [1, 1, 3])
        // No max_output_boxes_per_class (absent, empty or negative): no boxes.
        #expect(try nms(boxes, scores, max: nil, iou: nil, score: nil).isEmpty)
        #expect(try nms(boxes, scores, max: Tensor([Int64](), shape: [0]), iou: nil, score: nil).isEmpty)
        #expect(try nms(boxes, scores, max: Tensor([Int64(-1)], shape: [1]), iou: nil, score: nil).isEmpty)
        // IoU threshold absent or empty: 0, so any overlap suppresses; score threshold empty: none.
        let three = Tensor([Int64(3)], shape: [1])
        #expect(try nms(boxes, scores, max: three, iou: nil, score: nil) == [[0, 0, 0], [0, 0, 2]])
        #expect(
            try nms(boxes, scores, max: three, iou: Tensor([Float](), shape: [0]), score: Tensor([Float](), shape: [0]))
                == [[0, 0, 0], [0, 0, 2]])
        // A score threshold is strict.
        #expect(try nms(boxes, scores, max: three, iou: Tensor([Float(1)], shape: []), score: Tensor([Float(0.8)], shape: [])) == [[0, 0, 0]])
        // A scalar max works as a [1] one.
        #expect(try nms(boxes, scores, max: Tensor([Int64(1)], shape: []), iou: nil, score: nil) == [[0, 0, 0]])
    }

    @Test func nmsRefusesBadRequestsAndAttributes() {
        let boxes = Tensor([0, 0, 1, 1] as [Float], shape: [1, 1, 4])
        let scores = Tensor([0.9] as [Float], shape: [1, 1, 1])
        let badIoU = engineError {
            _ = try nms(boxes, scores, max: Tensor([Int64(1)], shape: [1]), iou: Tensor([Float(1.5)], shape: [1]), score: nil)
        }
        if case .invalidInput(let m)? = badIoU { #expect(m.contains("iou_threshold")) } else {
            Issue.record("iou 1.5: \(String(describing: badIoU))")
        }
        let badShape = engineError {
            _ = try nms(boxes, Tensor([0.9, 0.8] as [Float], shape: [1, 1, 2]), max: nil, iou: nil, score: nil)
        }
        if case .invalidInput? = badShape {} else { Issue.record("mismatched boxes: \(String(describing: badShape))") }
        let badFormat = engineError { _ = try nms(boxes, scores, max: nil, iou: nil, score: nil, centerPointBox: 2) }
        if case .invalidModel(let m)? = badFormat { #expect(m.contains("center_point_box")) } else {
            Issue.record("center_point_box 2: \(String(describing: badFormat))")
        }
    }

    // MARK: RoiAlign

    /// The direct definition of RoiAlign (avg or max) for one region and channel.
    func referenceRoiAlign(
        _ image: [Float], height: Int, width: Int, roi: [Float], outH: Int, outW: Int, ratio: Int, scale: Float,
        halfPixel: Bool, isMax: Bool
    ) -> [Float] {
        let offset: Float = halfPixel ? 0.5 : 0
        let (x0, y0) = (roi[0] * scale - offset, roi[1] * scale - offset)
        var (rw, rh) = (roi[2] * scale - offset - x0, roi[3] * scale - offset - y0)
        if !halfPixel { (rw, rh) = (max(rw, 1), max(rh, 1)) }
        let (bh, bw) = (rh / Float(outH), rw / Float(outW))
        // Adaptive: ceil(bin size) samples, none for an inverted region.
        let gh = ratio > 0 ? ratio : max(0, Int((rh / Float(outH)).rounded(.up)))
        let gw = ratio > 0 ? ratio : max(0, Int((rw / Float(outW)).rounded(.up)))
        /// The four weighted corners of the sample at (y, x), or zeros outside.
        func corners(_ y: Float, _ x: Float) -> [Float] {
            if y < -1 || y > Float(height) || x < -1 || x > Float(width) { return [0, 0, 0, 0] }
            var (y, x) = (max(y, 0), max(x, 0))
            var (yl, xl) = (Int(y), Int(x))
            var (yh, xh) = (yl + 1, xl + 1)
            if yl >= height - 1 { (yl, yh, y) = (height - 1, height - 1, Float(height - 1)) }
            if xl >= width - 1 { (xl, xh, x) = (width - 1, width - 1, Float(width - 1)) }
            let (ly, lx) = (y - Float(yl), x - Float(xl))
            let (hy, hx) = (1 - ly, 1 - lx)
            return [
                hy * hx * image[yl * width + xl], hy * lx * image[yl * width + xh], ly * hx * image[yh * width + xl],
                ly * lx * image[yh * width + xh],
            ]
        }
        var out: [Float] = []
        for ph in 0..<outH {
            for pw in 0..<outW {
                var values: [Float] = []
                for iy in 0..<gh {
                    let y = y0 + Float(ph) * bh + (Float(iy) + 0.5) * bh / Float(gh)
                    for ix in 0..<gw {
                        let x = x0 + Float(pw) * bw + (Float(ix) + 0.5) * bw / Float(gw)
                        let c = corners(y, x)
                        values.append(isMax ? c.max()! : c.reduce(0, +))
                    }
                }
                if isMax {
                    out.append(values.max() ?? 0)
                } else {
                    out.append(values.reduce(0, +) / Float(max(gh * gw, 1)))
                }
            }
        }
        return out
    }

    @Test(arguments: [("avg", "half_pixel", 0), ("avg", "output_half_pixel", 2), ("max", "half_pixel", 3), ("max", "output_half_pixel", 0)])
    func roiAlignMatchesTheDefinition(mode: String, ctm: String, ratio: Int) throws {
        var rng = TestRNG(seed: 132)
        let (n, c, h, w) = (2, 3, 9, 11)
        let x = rng.floats(n * c * h * w)
        let rois: [Float] = [0, 0, 10, 8, 1.5, 2.25, 6.5, 4, -3, -2, 4, 3, 9, 7, 14, 12, 4, 4, 4.3, 4.1, 6, 5, 2, 1]
        let regions = rois.count / 4
        let batchIndex: [Int64] = [1, 0, 1, 0, 1, 1]
        let (outH, outW, scale): (Int, Int, Float) = (3, 4, 0.8)
        let y = try runNode(
            "RoiAlign", inputs: ["x", "rois", "b"], feeds: [("x", Tensor(x, shape: [n, c, h, w]))],
            initializers: ["rois": Tensor(rois, shape: [regions, 4]), "b": Tensor(batchIndex, shape: [regions])],
            attributes: [
                "mode": Self.text(mode), "coordinate_transformation_mode": Self.text(ctm), "output_height": .int(outH),
                "output_width": .int(outW), "sampling_ratio": .int(ratio), "spatial_scale": .float(scale),
            ], opset: 16)[0]
        #expect(y.shape == [regions, c, outH, outW])
        let got = y.scalars(as: Float.self)
        for r in 0..<regions {
            for ch in 0..<c {
                let plane = Array(x[((Int(batchIndex[r]) * c + ch) * h * w)..<((Int(batchIndex[r]) * c + ch + 1) * h * w)])
                let expected = referenceRoiAlign(
                    plane, height: h, width: w, roi: Array(rois[(r * 4)..<(r * 4 + 4)]), outH: outH, outW: outW,
                    ratio: ratio, scale: scale, halfPixel: ctm == "half_pixel", isMax: mode == "max")
                let base = (r * c + ch) * outH * outW
                for (i, e) in expected.enumerated() {
                    #expect(abs(got[base + i] - e) <= 1e-5 + 1e-5 * abs(e), "region \(r) channel \(ch) bin \(i)")
                }
            }
        }
    }

    @Test func roiAlignOpset10HasNoHalfPixelAndBadIndicesFail() throws {
        let x = Tensor((0..<16).map { Float($0) }, shape: [1, 1, 4, 4])
        let rois = Tensor([0, 0, 2, 2] as [Float], shape: [1, 4])
        // Opset 10 has only output_half_pixel (no shift).
        let y10 = try runNode(
            "RoiAlign", inputs: ["x", "r", "b"], feeds: [("x", x), ("r", rois), ("b", Tensor([Int64(0)], shape: [1]))],
            attributes: ["sampling_ratio": .int(1)], opset: 10)[0]
        // One bin over [0, 2]^2 sampled once at (1, 1): pixel 5.
        #expect(y10.scalars(as: Float.self) == [5])
        let y16 = try runNode(
            "RoiAlign", inputs: ["x", "r", "b"], feeds: [("x", x), ("r", rois), ("b", Tensor([Int64(0)], shape: [1]))],
            attributes: ["sampling_ratio": .int(1)], opset: 16)[0]
        // half_pixel: the sample sits at (0.5, 0.5): the mean of pixels 0, 1, 4, 5.
        #expect(y16.scalars(as: Float.self) == [2.5])
        let bad = engineError {
            _ = try runNode(
                "RoiAlign", inputs: ["x", "r", "b"], feeds: [("x", x), ("r", rois), ("b", Tensor([Int64(1)], shape: [1]))],
                opset: 16)
        }
        if case .invalidInput(let m)? = bad { #expect(m.contains("batch index")) } else {
            Issue.record("batch index 1 of 1: \(String(describing: bad))")
        }
        let mode = engineError {
            _ = try runNode(
                "RoiAlign", inputs: ["x", "r", "b"], feeds: [("x", x), ("r", rois), ("b", Tensor([Int64(0)], shape: [1]))],
                attributes: ["mode": Self.text("median")], opset: 16)
        }
        if case .invalidModel? = mode {} else { Issue.record("mode median: \(String(describing: mode))") }
    }

    /// NonMaxSuppression (classes in parallel), RoiAlign and GridSample (blocks in parallel) give
    /// at a budget of 3 threads what they give at 1.
    @Test func parallelLoopsAgreeAcrossBudgets() throws {
        var rng = TestRNG(seed: 133)
        let nodes = [
            Node(name: "nms", opType: "NonMaxSuppression", inputs: ["boxes", "scores", "max", "iou"], outputs: ["sel"]),
            Node(name: "roi", opType: "RoiAlign", inputs: ["x", "rois", "bi"], outputs: ["pooled"],
                attributes: ["output_height": .int(7), "output_width": .int(7)]),
            Node(name: "gs", opType: "GridSample", inputs: ["x", "grid"], outputs: ["warped"]),
        ]
        let (n, boxCount, classes) = (2, 400, 12)
        let boxes = (0..<(n * boxCount)).flatMap { _ -> [Float] in
            let (y, x) = (rng.float() * 40 + 40, rng.float() * 40 + 40)
            return [y, x, y + 10 + rng.float() * 5, x + 10 + rng.float() * 5]
        }
        var rois: [Float] = []
        for _ in 0..<40 {
            let (x0, y0): (Float, Float) = (rng.float() * 10 + 10, rng.float() * 10 + 10)
            let (x1, y1): (Float, Float) = (rng.float() * 10 + 20, rng.float() * 10 + 20)
            rois += [x0, y0, x1, y1]
        }
        let outputs: [ValueInfo] = ["sel", "pooled", "warped"].map { ValueInfo(name: $0, dataType: nil, shape: nil) }
        let graph = Graph(
            nodes: nodes,
            inputs: [
                ValueInfo(name: "boxes", dataType: .float32, shape: [.fixed(n), .fixed(boxCount), .fixed(4)]),
                ValueInfo(name: "scores", dataType: .float32, shape: [.fixed(n), .fixed(classes), .fixed(boxCount)]),
                ValueInfo(name: "x", dataType: .float32, shape: [.fixed(n), .fixed(16), .fixed(30), .fixed(30)]),
                ValueInfo(name: "grid", dataType: .float32, shape: [.fixed(n), .fixed(40), .fixed(50), .fixed(2)]),
            ],
            outputs: outputs,
            initializers: [
                "max": Tensor([Int64(50)], shape: [1]), "iou": Tensor([Float(0.4)], shape: [1]),
                "rois": Tensor(rois, shape: [40, 4]), "bi": Tensor((0..<40).map { Int64($0 % 2) }, shape: [40]),
            ])
        let model = GraphModel(graph: graph, opsets: ["": 16], irVersion: 8)
        let feeds: [String: Tensor] = [
            "boxes": Tensor(boxes, shape: [n, boxCount, 4]),
            "scores": Tensor((0..<(n * classes * boxCount)).map { _ in Float(rng.int(in: 0...10)) / 10 }, shape: [n, classes, boxCount]),
            "x": rng.tensor([n, 16, 30, 30]), "grid": rng.tensor([n, 40, 50, 2]),
        ]
        let expected = try InferenceSession(model: model, options: SessionOptions(blasThreads: 1)).run(feeds)
        let three = try InferenceSession(model: model, options: SessionOptions(blasThreads: 3))
        for _ in 0..<2 {
            let got = try three.run(feeds)
            #expect(got["sel"]!.scalars(as: Int64.self) == expected["sel"]!.scalars(as: Int64.self))
            #expect(got["sel"]!.shape[0] > classes * n)
            for name in ["pooled", "warped"] {
                #expect(got[name]!.shape == expected[name]!.shape)
                #expect(got[name]!.scalars(as: Float.self) == expected[name]!.scalars(as: Float.self), "\(name)")
            }
        }
    }
}
