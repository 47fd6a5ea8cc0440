import Tensors

/// NonMaxSuppression(boxes [B, N, 4], scores [B, C, N], max_output_boxes_per_class,
/// iou_threshold, score_threshold): for each batch and class, the boxes kept by greedy
/// suppression, as INT64 rows [batch, class, box] (batch, then class, then selection order).
///
/// Follows onnxruntime's CPU kernel, which produced the behaviour models were validated with:
/// - candidates are the boxes whose score is above `score_threshold` (strictly; all boxes when the
///   input is absent), taken by descending score, equal scores by ascending box index;
/// - a candidate is dropped when its IoU with a box already kept for the class is above
///   `iou_threshold` (strictly; boxes of zero area never overlap), and the class stops once
///   `max_output_boxes_per_class` boxes are kept;
/// - absent or empty optional inputs mean 0 boxes, IoU threshold 0 and no score threshold; a
///   negative maximum counts as 0; an IoU threshold outside [0, 1] is an error;
/// - `center_point_box` 0 reads [y1, x1, y2, x2] (either diagonal), 1 reads [x, y, w, h].
/// NaN scores are never selected.
///
/// Corners and areas are computed once per batch; each (batch, class) takes its candidates from a
/// heap (a lazy sort: only as many are ordered as the greedy pass consumes) and classes run in
/// parallel.
struct NonMaxSuppressionKernel: Kernel {
    let centerPointBox: Bool

    init(context: NodeContext) throws {
        try context.requireInputs(2, 5)
        let format = try context.int("center_point_box", default: 0)
        guard format == 0 || format == 1 else {
            throw context.invalid("has center_point_box \(format); it must be 0 ([y1, x1, y2, x2]) or 1 ([x, y, w, h])")
        }
        centerPointBox = format == 1
    }

    func run(_ inputs: [Tensor?]) throws -> [Tensor] {
        let boxes = try Check.input(inputs, 0, "boxes")
        let scores = try Check.input(inputs, 1, "scores")
        try Check.dataType(boxes, [.float32], "NonMaxSuppression's boxes")
        try Check.dataType(scores, [.float32], "NonMaxSuppression's scores")
        guard boxes.rank == 3, scores.rank == 3, boxes.shape[2] == 4, boxes.shape[0] == scores.shape[0],
            boxes.shape[1] == scores.shape[2]
        else {
            throw KernelError.shape(
                "NonMaxSuppression needs boxes [batches, boxes, 4] and scores [batches, classes, boxes], got \(boxes.shape) and \(scores.shape)")
        }
        let (batches, classes, n) = (scores.shape[0], scores.shape[1], scores.shape[2])
        guard n < Int(Int32.max) else { throw KernelError.shape("NonMaxSuppression: \(n) boxes is too many") }

        var maxPerClass = 0
        if let m = try IntInput.optional(inputs, 2, "NonMaxSuppression's max_output_boxes_per_class"), let first = m.first {
            maxPerClass = max(first, 0)
        }
        var iouThreshold: Float = 0
        if let t = try Self.floatScalar(inputs, 3, "iou_threshold") {
            guard t >= 0, t <= 1 else {
                throw KernelError.shape("NonMaxSuppression's iou_threshold must be in [0, 1], got \(t)")
            }
            iouThreshold = t
        }
        let scoreThreshold = try Self.floatScalar(inputs, 4, "score_threshold")

        let tasks = batches * classes
        let cap = min(maxPerClass, n)
        if cap == 0 || tasks == 0 { return [try Tensor(allocating: .int64, shape: [0, 3])] }

        // Per batch and box: xmin, ymin, xmax, ymax, area (onnxruntime's arithmetic, so that
        // threshold boundaries fall the same way).
        let corners = try Self.corners(boxes, centerPointBox: centerPointBox)
        let (selectedCount, overflow) = tasks.multipliedReportingOverflow(by: cap)
        guard !overflow else { throw KernelError.shape("NonMaxSuppression: \(tasks) classes x \(cap) boxes is too many") }
        let selected = try Tensor(allocating: .int32, shape: [selectedCount])
        var counts = [Int](repeating: 0, count: tasks)
        let sel = selected.mutableElements(as: Int32.self).baseAddress!
        let box = corners.elements(as: Float.self).baseAddress!
        let score = scores.elements(as: Float.self).baseAddress!
        counts.withUnsafeMutableBufferPointer { countsBuffer in
            let countsOut = countsBuffer.baseAddress!
            // A rough cost: the heap build plus the greedy pass's comparisons.
            Parallel.forEach(tasks, costPerItem: n * 8 + cap * 16, minimumWork: 65_536) { range in
                var scratch = Scratch(boxes: n, kept: cap)
                for task in range {
                    let batch = task / classes
                    countsOut[task] = Self.select(
                        scores: score + task * n, corners: box + batch * n * 5, n: n, limit: cap,
                        iouThreshold: iouThreshold, scoreThreshold: scoreThreshold, into: sel + task * cap,
                        scratch: &scratch)
                }
            }
        }
        let total = counts.reduce(0, +)
        let out = try Tensor(allocating: .int64, shape: [total, 3])
        if total == 0 { return [out] }
        let d = out.mutableElements(as: Int64.self).baseAddress!
        var row = 0
        for task in 0..<tasks {
            let (b, c) = (Int64(task / classes), Int64(task % classes))
            for k in 0..<counts[task] {
                d[row * 3] = b
                d[row * 3 + 1] = c
                d[row * 3 + 2] = Int64(sel[task * cap + k])
                row += 1
            }
        }
        return [out]
    }

    /// One float of an optional scalar input; nil when it is absent or empty.
    static func floatScalar(_ inputs: [Tensor?], _ index: Int, _ what: String) throws -> Float? {
        guard index < inputs.count, let t = inputs[index], t.count > 0 else { return nil }
        try Check.dataType(t, [.float32], "NonMaxSuppression's \(what)")
        return t.elements(as: Float.self)[0]
    }

    /// [B, N, 5]: xmin, ymin, xmax, ymax and area of every box.
    static func corners(_ boxes: Tensor, centerPointBox: Bool) throws -> Tensor {
        let count = boxes.shape[0] * boxes.shape[1]
        let out = try Tensor(allocating: .float32, shape: [count, 5])
        let s = boxes.elements(as: Float.self).baseAddress!
        let d = out.mutableElements(as: Float.self).baseAddress!
        for i in 0..<count {
            let b = s + i * 4
            let (x0, y0, x1, y1): (Float, Float, Float, Float)
            if centerPointBox {
                let (hw, hh) = (b[2] / 2, b[3] / 2)
                (x0, x1, y0, y1) = (b[0] - hw, b[0] + hw, b[1] - hh, b[1] + hh)
            } else {
                (x0, x1) = b[1] >= b[3] ? (b[3], b[1]) : (b[1], b[3])
                (y0, y1) = b[0] >= b[2] ? (b[2], b[0]) : (b[0], b[2])
            }
            let o = d + i * 5
            (o[0], o[1], o[2], o[3]) = (x0, y0, x1, y1)
            o[4] = (x1 - x0) * (y1 - y0)
        }
        return out
    }

    /// Per-thread buffers: the candidate heap and the kept boxes' corners (structure of arrays).
    struct Scratch {
        var heap: [UInt64]
        var kept: [Float]

        init(boxes: Int, kept: Int) {
            heap = [UInt64](repeating: 0, count: boxes)
            self.kept = [Float](repeating: 0, count: kept * 5)
        }
    }

    /// The greedy pass for one batch and class; writes the kept box indices and returns how many.
    static func select(
        scores: UnsafePointer<Float>, corners: UnsafePointer<Float>, n: Int, limit: Int, iouThreshold: Float,
        scoreThreshold: Float?, into out: UnsafeMutablePointer<Int32>, scratch: inout Scratch
    ) -> Int {
        scratch.heap.withUnsafeMutableBufferPointer { heapBuffer in
            scratch.kept.withUnsafeMutableBufferPointer { keptBuffer in
                let heap = heapBuffer.baseAddress!
                // Keys sort ascending as (score descending, index ascending).
                var size = 0
                if let threshold = scoreThreshold {
                    for i in 0..<n where scores[i] > threshold {
                        heap[size] = key(scores[i], i)
                        size += 1
                    }
                } else {
                    for i in 0..<n where !scores[i].isNaN {
                        heap[size] = key(scores[i], i)
                        size += 1
                    }
                }
                var start = size / 2
                while start > 0 {
                    start -= 1
                    siftDown(heap, start, size)
                }
                let kx0 = keptBuffer.baseAddress!
                let (ky0, kx1, ky1, kArea) = (kx0 + limit, kx0 + 2 * limit, kx0 + 3 * limit, kx0 + 4 * limit)
                var kept = 0
                while size > 0 && kept < limit {
                    let i = Int(heap[0] & 0xFFFF_FFFF)
                    size -= 1
                    heap[0] = heap[size]
                    siftDown(heap, 0, size)
                    let c = corners + i * 5
                    let (x0, y0, x1, y1, area) = (c[0], c[1], c[2], c[3], c[4])
                    var suppressed = false
                    if area > 0 {
                        for k in 0..<kept {
                            let ix0 = max(kx0[k], x0)
                            let ix1 = min(kx1[k], x1)
                            if ix1 <= ix0 { continue }
                            let iy0 = max(ky0[k], y0)
                            let iy1 = min(ky1[k], y1)
                            if iy1 <= iy0 { continue }
                            let intersection = (ix1 - ix0) * (iy1 - iy0)
                            let union = kArea[k] + area - intersection
                            if intersection <= 0 || kArea[k] <= 0 || union <= 0 { continue }
                            if intersection / union > iouThreshold {
                                suppressed = true
                                break
                            }
                        }
                    }
                    if suppressed { continue }
                    (kx0[kept], ky0[kept], kx1[kept], ky1[kept], kArea[kept]) = (x0, y0, x1, y1, area)
                    out[kept] = Int32(i)
                    kept += 1
                }
                return kept
            }
        }
    }

    /// A key whose ascending order is descending score, then ascending index.
    @inline(__always)
    static func key(_ score: Float, _ index: Int) -> UInt64 {
        let bits = score.bitPattern
        let ascending = bits & 0x8000_0000 != 0 ? ~bits : bits | 0x8000_0000
        return UInt64(~ascending) << 32 | UInt64(index)
    }

    /// Restores the min-heap property below `start` in `heap[0..<size]`.
    @inline(__always)
    static func siftDown(_ heap: UnsafeMutablePointer<UInt64>, _ start: Int, _ size: Int) {
        var p = start
        let value = heap[p]
        while true {
            var c = 2 * p + 1
            if c >= size { break }
            if c + 1 < size && heap[c + 1] < heap[c] { c += 1 }
            if heap[c] >= value { break }
            heap[p] = heap[c]
            p = c
        }
        heap[p] = value
    }
}
