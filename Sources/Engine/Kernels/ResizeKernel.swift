import Tensors

/// Resize (opsets 10-19) and Upsample (opsets 7 and 9), as onnx's reference defines them: each
/// resized axis maps output position o to a source coordinate x (`coordinate_transformation_mode`),
/// then reads `nearest` (rounded per `nearest_mode`, clamped), `linear` or `cubic` taps around x
/// (edge-clamped; `antialias` widens the kernel by 1/scale when shrinking; `exclude_outside`
/// renormalises without the taps outside). Scales give floor(size * scale); sizes give the scale
/// size_out / size_in (with `keep_aspect_ratio_policy`). `axes` (opset 18) limits the resized axes.
/// Opset 10 Resize and Upsample use asymmetric coordinates and floor (ceil when shrinking).
///
/// Each axis gets one table per call (source index and weight per output position and tap), so the
/// loops do no division. Nearest is one gather for any element type; linear and cubic are FP32:
/// 4-D NCHW-like inputs resized on the last two axes with two taps each (bilinear) run fused, the
/// rest axis by axis.
struct ResizeKernel: BufferedKernel {
    enum Mode: String { case nearest, linear, cubic }
    enum Coordinates: String {
        case halfPixel = "half_pixel", halfPixelSymmetric = "half_pixel_symmetric"
        case pytorchHalfPixel = "pytorch_half_pixel", alignCorners = "align_corners", asymmetric
        case tfCropAndResize = "tf_crop_and_resize"
    }
    enum Rounding: String {
        case roundPreferFloor = "round_prefer_floor", roundPreferCeil = "round_prefer_ceil", floor, ceil
        /// Opset 10 Resize and Upsample: floor, ceil when shrinking.
        case simple
    }
    enum AspectPolicy: String { case stretch, notLarger = "not_larger", notSmaller = "not_smaller" }

    let op: String
    let mode: Mode
    let coordinates: Coordinates
    let rounding: Rounding
    let cubicA: Double
    let excludeOutside: Bool
    let extrapolation: Float
    let antialias: Bool
    let axes: [Int]?
    let policy: AspectPolicy
    /// Input positions of roi, scales and sizes (nil: the opset has none); Upsample-7's scales.
    let roiInput: Int?
    let scalesInput: Int?
    let sizesInput: Int?
    let scalesAttribute: [Float]?

    init(context: NodeContext, upsample: Bool = false) throws {
        op = upsample ? "Upsample" : "Resize"
        let modeName = try context.string("mode", default: "nearest")
        guard let m = Mode(rawValue: modeName == "bilinear" ? "linear" : modeName), !(upsample && m == .cubic) else {
            throw context.invalid("has mode '\(modeName)' (nearest, linear or cubic)")
        }
        mode = m
        if upsample || context.opset < 11 {
            (coordinates, rounding, cubicA, excludeOutside, extrapolation) = (.asymmetric, .simple, -0.75, false, 0)
            (antialias, axes, policy, roiInput, sizesInput) = (false, nil, .stretch, nil, nil)
            if upsample && context.opset < 9 {
                try context.requireInputs(1)
                guard let s = try context.floats("scales") else { throw context.invalid("has no 'scales' attribute") }
                (scalesAttribute, scalesInput) = (s, nil)
            } else {
                try context.requireInputs(2)
                (scalesAttribute, scalesInput) = (nil, 1)
            }
            return
        }
        try context.requireInputs(1, 4)
        let coordinateName = try context.string("coordinate_transformation_mode", default: "half_pixel")
        guard let c = Coordinates(rawValue: coordinateName) else {
            throw context.invalid("has coordinate_transformation_mode '\(coordinateName)'")
        }
        coordinates = c
        let nearestName = try context.string("nearest_mode", default: "round_prefer_floor")
        guard let r = Rounding(rawValue: nearestName), r != .simple else { throw context.invalid("has nearest_mode '\(nearestName)'") }
        rounding = r
        cubicA = Double(try context.float("cubic_coeff_a", default: -0.75))
        excludeOutside = try context.int("exclude_outside", default: 0) != 0
        extrapolation = try context.float("extrapolation_value", default: 0)
        antialias = try context.int("antialias", default: 0) != 0
        guard !(antialias && m == .nearest) else { throw context.invalid("has antialias with mode 'nearest'") }
        axes = try context.ints("axes")
        let policyName = try context.string("keep_aspect_ratio_policy", default: "stretch")
        guard let p = AspectPolicy(rawValue: policyName) else { throw context.invalid("has keep_aspect_ratio_policy '\(policyName)'") }
        policy = p
        (roiInput, scalesInput, sizesInput, scalesAttribute) = (1, 2, 3, nil)
    }

    /// Per output position of one axis: `taps` source indices (clamped) and weights, and whether
    /// the position lies outside the input (tf_crop_and_resize: extrapolation_value).
    struct AxisTable {
        let taps: Int
        var index: [Int]
        var weight: [Float]
        var outside: [Bool]
    }

    func run(_ inputs: [Tensor?], into output: Tensor?) throws -> [Tensor] {
        let x = try Check.input(inputs, 0, "X")
        let r = x.rank
        let axisList = try axes.map { try IntInput.axes($0, rank: r, op) } ?? Array(0..<r)
        var scales = [Double](repeating: 1, count: r)
        var outShape = x.shape
        let scaleValues = try floats(inputs, scalesInput, "scales") ?? scalesAttribute.map { $0.map(Double.init) }
        let sizeValues = try sizesInput.flatMap { try IntInput.optional(inputs, $0, "\(op)'s sizes") } ?? []
        if let scaleValues, !scaleValues.isEmpty {
            guard scaleValues.count == axisList.count else {
                throw KernelError.shape("\(op) has \(scaleValues.count) scales for \(axisList.count) axes of \(x.shape)")
            }
            for (i, a) in axisList.enumerated() {
                let s = scaleValues[i]
                guard s.isFinite, s > 0 else { throw KernelError.shape("\(op)'s scale \(s) for axis \(a) is not a positive number") }
                scales[a] = s
                outShape[a] = try size(s * Double(x.shape[a]), rounded: .down, x.shape)
            }
        } else if !sizeValues.isEmpty {
            guard sizeValues.count == axisList.count else {
                throw KernelError.shape("\(op) has \(sizeValues.count) sizes for \(axisList.count) axes of \(x.shape)")
            }
            for (i, a) in axisList.enumerated() {
                guard sizeValues[i] >= 0, x.shape[a] > 0 || sizeValues[i] == 0 else {
                    throw KernelError.shape("\(op) cannot resize axis \(a) of \(x.shape) to \(sizeValues[i])")
                }
                outShape[a] = sizeValues[i]
                scales[a] = x.shape[a] > 0 ? Double(Float(sizeValues[i]) / Float(x.shape[a])) : 1
            }
            if policy != .stretch {
                let chosen = axisList.map { scales[$0] }
                let s = (policy == .notLarger ? chosen.min() : chosen.max()) ?? 1
                for a in axisList {
                    scales[a] = s
                    outShape[a] = try size(s * Double(x.shape[a]) + 0.5, rounded: .down, x.shape)
                }
            }
        } else {
            throw KernelError.failed("\(op) needs scales or sizes")
        }
        try Check.computedShape(outShape, op)
        var roi = [(Double, Double)](repeating: (0, 1), count: r)
        if coordinates == .tfCropAndResize {
            guard let values = try floats(inputs, roiInput, "roi"), values.count == 2 * axisList.count,
                values.allSatisfy(\.isFinite)
            else { throw KernelError.shape("\(op) with tf_crop_and_resize needs a finite roi of \(2 * axisList.count) values") }
            for (i, a) in axisList.enumerated() { roi[a] = (values[i], values[axisList.count + i]) }
        }
        guard mode == .nearest || x.dataType == .float32 else {
            throw KernelError.failed("\(op) mode '\(mode.rawValue)' supports FP32, got \(x.dataType.v2Name)")
        }
        guard coordinates != .tfCropAndResize || x.dataType == .float32 else {
            throw KernelError.failed("\(op) with tf_crop_and_resize supports FP32, got \(x.dataType.v2Name)")
        }
        let out = try Output.tensor(output, x.dataType, outShape)
        if out.count == 0 { return [out] }
        guard x.count > 0 else { throw KernelError.shape("\(op) cannot resize the empty \(x.shape) to \(outShape)") }
        var tables = [AxisTable?](repeating: nil, count: r)
        for a in axisList {
            tables[a] = try table(input: x.shape[a], output: outShape[a], scale: scales[a], roi: roi[a])
        }
        if mode == .nearest {
            try gatherNearest(x, out, tables)
            return [out]
        }
        let src = x.elements(as: Float.self).baseAddress!
        let dst = out.mutableElements(as: Float.self).baseAddress!
        if r >= 2, (0..<(r - 2)).allSatisfy({ tables[$0] == nil }),
            let ty = twoTaps(tables[r - 2], x.shape[r - 2]), let tx = twoTaps(tables[r - 1], x.shape[r - 1])
        {
            bilinear(src, dst, x.count / (x.shape[r - 2] * x.shape[r - 1]), x.shape[r - 2], x.shape[r - 1], ty, tx)
            return [out]
        }
        // Axis by axis in the order of `axes`, through intermediate buffers.
        let passes = axisList.filter { tables[$0] != nil }
        var shape = x.shape
        var current: Tensor = x
        for (k, a) in passes.enumerated() {
            guard let t = tables[a] else { continue }
            shape[a] = outShape[a]
            let next = k == passes.count - 1 ? out : try Tensor(allocating: .float32, shape: shape)
            pass(current.elements(as: Float.self).baseAddress!, current.shape, a, t, next.mutableElements(as: Float.self).baseAddress!)
            current = next
        }
        if passes.isEmpty { dst.update(from: src, count: x.count) }
        return [out]
    }

    /// Values of a float input (roi, scales), nil when absent; an empty tensor is empty.
    private func floats(_ inputs: [Tensor?], _ index: Int?, _ what: String) throws -> [Double]? {
        guard let index, index < inputs.count, let t = inputs[index] else { return nil }
        guard t.dataType == .float32 || t.dataType == .float64 else {
            throw KernelError.failed("\(op)'s \(what) must be FP32 or FP64, got \(t.dataType.v2Name)")
        }
        return t.doubleValues()
    }

    /// An output size from a computed value, refused when it cannot be a size.
    private func size(_ value: Double, rounded rule: FloatingPointRoundingRule, _ shape: [Int]) throws -> Int {
        let v = value.rounded(rule)
        guard v.isFinite, v >= 0, v <= Double(1 << 40) else {
            throw KernelError.shape("\(op) of \(shape) would have a dimension of \(value)")
        }
        return Int(v)
    }

    /// The source coordinate of output position `o` on an axis of `n` inputs and `m` outputs, in
    /// FP32 arithmetic as onnxruntime computes it (nearest's rounding of o / 1.7 and the like
    /// depends on it); the resized length in align_corners and tf_crop_and_resize is scale * n, as
    /// in onnx's reference (the conformance cases), not the rounded size.
    @inline(__always)
    private func coordinate(_ o: Int, _ n: Int, _ m: Int, _ scale: Double, _ roi: (Double, Double)) -> Double {
        let y = Float(o)
        let length = Float(n)
        let sc = Float(scale)
        let width = Float(scale * Double(n))
        let v: Float
        switch coordinates {
        case .alignCorners: v = width == 1 ? 0 : y * (length - 1) / (width - 1)
        case .asymmetric: v = y / sc
        case .tfCropAndResize:
            let (s, e) = (Float(roi.0), Float(roi.1))
            v = (width == 1 ? (e - s) * (length - 1) / 2 : y * (e - s) * (length - 1) / (width - 1)) + s * (length - 1)
        case .pytorchHalfPixel: v = width == 1 ? -0.5 : (y + 0.5) / sc - 0.5
        case .halfPixel: v = (y + 0.5) / sc - 0.5
        case .halfPixelSymmetric:
            let offset = length / 2 * (1 - Float(m) / width)
            v = offset + (y + 0.5) / sc - 0.5
        }
        return Double(v)
    }

    /// `v` as an index into 0..<n (clamped; NaN reads 0).
    @inline(__always)
    private static func clamp(_ v: Double, _ n: Int) -> Int {
        guard v > 0 else { return 0 }
        return v >= Double(n - 1) ? n - 1 : Int(v)
    }

    /// The table of one axis, nil when it is left as it is (scale 1, same size, whole roi).
    private func table(input n: Int, output m: Int, scale: Double, roi: (Double, Double)) throws -> AxisTable? {
        if abs(scale - 1) <= 1e-9, m == n, coordinates != .tfCropAndResize || (abs(roi.0) <= 1e-9 && abs(roi.1 - 1) <= 1e-9) {
            return nil
        }
        let s = antialias ? min(scale, 1) : 1
        let support: Double = mode == .cubic ? 2 : 1
        let tapCount = mode == .nearest ? 1 : 2 * (support / s).rounded(.up)
        guard tapCount <= Double(1 << 16), (Double(m) * tapCount) <= Double(1 << 34) else {
            throw KernelError.shape("\(op) from \(n) to \(m) needs \(tapCount) taps per output")
        }
        let taps = Int(tapCount)
        var t = AxisTable(
            taps: taps, index: [Int](repeating: 0, count: m * taps), weight: [Float](repeating: 0, count: m * taps),
            outside: coordinates == .tfCropAndResize ? [Bool](repeating: false, count: m) : [])
        var w = [Double](repeating: 0, count: taps)
        for o in 0..<m {
            let x = coordinate(o, n, m, scale, roi)
            if coordinates == .tfCropAndResize { t.outside[o] = !(x >= 0 && x <= Double(n - 1)) }
            let f = x.rounded(.down)
            if mode == .nearest {
                let i: Double
                switch rounding {
                case .roundPreferFloor: i = x - f <= 0.5 ? f : f + 1
                case .roundPreferCeil: i = x - f < 0.5 ? f : f + 1
                case .floor: i = f
                case .ceil: i = x.rounded(.up)
                case .simple: i = scale < 1 ? x.rounded(.up) : f
                }
                t.index[o] = Self.clamp(i, n)
                t.weight[o] = 1
                continue
            }
            // Taps first = floor(x) - taps/2 + 1 ... ; weight = kernel((tap - x) * s).
            let first = f - Double(taps / 2 - 1)
            var sum = 0.0
            for j in 0..<taps {
                let position = first + Double(j)
                let d = abs((position - x) * s)
                var v: Double
                if mode == .linear {
                    v = max(0, 1 - d)
                } else {
                    let a = cubicA
                    v = d <= 1 ? ((a + 2) * d - (a + 3)) * d * d + 1 : d < 2 ? ((a * d - 5 * a) * d + 8 * a) * d - 4 * a : 0
                }
                if excludeOutside && !(position >= 0 && position <= Double(n - 1)) { v = 0 }
                w[j] = v
                sum += v
                t.index[o * taps + j] = Self.clamp(position, n)
            }
            let norm = (antialias || excludeOutside) && sum != 0 ? 1 / sum : 1
            for j in 0..<taps { t.weight[o * taps + j] = Float(w[j] * norm) }
        }
        return t
    }

    /// `t` as a two-tap table (identity when nil), or nil when it has more taps.
    private func twoTaps(_ t: AxisTable?, _ n: Int) -> AxisTable? {
        guard let t else {
            return AxisTable(
                taps: 2, index: (0..<n).flatMap { [$0, $0] }, weight: [Float](repeating: 0, count: 2 * n).enumerated().map { $0.offset % 2 == 0 ? 1 : 0 },
                outside: [])
        }
        return t.taps == 2 ? t : nil
    }

    /// Nearest: out[i...] = x[table_a[i_a]...], any element type; extrapolated positions (FP32
    /// only, checked before) take `extrapolation`.
    private func gatherNearest(_ x: Tensor, _ out: Tensor, _ tables: [AxisTable?]) throws {
        let r = x.rank
        if r == 0 {
            out.mutableBytes.baseAddress!.copyMemory(from: x.rawBytes.baseAddress!, byteCount: x.byteCount)
            return
        }
        let strides = Broadcast.contiguousStrides(x.shape)
        // Per axis: the source offset (index * stride) of each output position, -1 when outside.
        var offsets: [[Int]] = []
        for a in 0..<r {
            let m = out.shape[a]
            guard let t = tables[a] else {
                offsets.append((0..<m).map { $0 * strides[a] })
                continue
            }
            offsets.append((0..<m).map { t.outside.isEmpty || !t.outside[$0] ? t.index[$0] * strides[a] : -1 })
        }
        switch x.dataType.byteSize {
        case 1: gather(UInt8.self, x, out, offsets, fill: 0)
        case 2: gather(UInt16.self, x, out, offsets, fill: 0)
        case 4: gather(UInt32.self, x, out, offsets, fill: extrapolation.bitPattern)
        default: gather(UInt64.self, x, out, offsets, fill: 0)
        }
    }

    private func gather<W>(_: W.Type, _ x: Tensor, _ out: Tensor, _ offsets: [[Int]], fill: W) {
        let src = x.rawBytes.baseAddress!.assumingMemoryBound(to: W.self)
        let dst = out.mutableBytes.baseAddress!.assumingMemoryBound(to: W.self)
        let r = out.rank
        let width = out.shape[r - 1]
        let rows = out.count / width
        let outer = Array(out.shape.dropLast())
        let inner = offsets[r - 1]
        let clampedOnly = !inner.contains { $0 < 0 }
        inner.withUnsafeBufferPointer { xo in
            Parallel.forEach(rows, costPerItem: width, minimumWork: 1 << 16) { range in
                var index = [Int](repeating: 0, count: outer.count)
                var rest = range.lowerBound
                for d in stride(from: outer.count - 1, through: 0, by: -1) {
                    index[d] = rest % outer[d]
                    rest /= outer[d]
                }
                for row in range {
                    var base = 0
                    var outside = false
                    for d in 0..<outer.count {
                        let o = offsets[d][index[d]]
                        if o < 0 { outside = true }
                        base += o
                    }
                    let d = dst + row * width
                    if outside {
                        d.update(repeating: fill, count: width)
                    } else {
                        let s = src + base
                        if clampedOnly {
                            for i in 0..<width { d[i] = s[xo[i]] }
                        } else {
                            for i in 0..<width { d[i] = xo[i] < 0 ? fill : s[xo[i]] }
                        }
                    }
                    var k = outer.count - 1
                    while k >= 0 {
                        index[k] += 1
                        if index[k] < outer[k] { break }
                        index[k] = 0
                        k -= 1
                    }
                }
            }
        }
    }

    /// Two taps on each of the last two axes of `planes` planes of h x w: out = sum of four
    /// weighted reads per element, rows in parallel.
    private func bilinear(
        _ src: UnsafePointer<Float>, _ dst: UnsafeMutablePointer<Float>, _ planes: Int, _ h: Int, _ w: Int,
        _ ty: AxisTable, _ tx: AxisTable
    ) {
        let oh = ty.index.count / 2
        let ow = tx.index.count / 2
        let fill = extrapolation
        ty.index.withUnsafeBufferPointer { yi in
            ty.weight.withUnsafeBufferPointer { yw in
                tx.index.withUnsafeBufferPointer { xi in
                    tx.weight.withUnsafeBufferPointer { xw in
                        Parallel.forEach(planes * oh, costPerItem: ow * 8) { range in
                            for row in range {
                                let p = row / oh
                                let oy = row - p * oh
                                let d = dst + row * ow
                                if !ty.outside.isEmpty && ty.outside[oy] {
                                    d.update(repeating: fill, count: ow)
                                    continue
                                }
                                let plane = src + p * h * w
                                let r0 = plane + yi[2 * oy] * w
                                let r1 = plane + yi[2 * oy + 1] * w
                                let (a0, a1) = (yw[2 * oy], yw[2 * oy + 1])
                                for ox in 0..<ow {
                                    let (i0, i1) = (xi[2 * ox], xi[2 * ox + 1])
                                    let (b0, b1) = (xw[2 * ox], xw[2 * ox + 1])
                                    d[ox] = a0 * (b0 * r0[i0] + b1 * r0[i1]) + a1 * (b0 * r1[i0] + b1 * r1[i1])
                                }
                                if !tx.outside.isEmpty {
                                    for ox in 0..<ow where tx.outside[ox] { d[ox] = fill }
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// One axis `a` of `shape` through table `t`, into `dst` (the same shape with axis a resized).
    private func pass(_ src: UnsafePointer<Float>, _ shape: [Int], _ a: Int, _ t: AxisTable, _ dst: UnsafeMutablePointer<Float>) {
        let outer = shape[..<a].reduce(1, *)
        let n = shape[a]
        let inner = shape[(a + 1)...].reduce(1, *)
        let m = t.index.count / t.taps
        let taps = t.taps
        let fill = extrapolation
        t.index.withUnsafeBufferPointer { index in
            t.weight.withUnsafeBufferPointer { weight in
                Parallel.forEach(outer * m, costPerItem: inner * taps * 2) { range in
                    for item in range {
                        let o = item / m
                        let p = item - o * m
                        let d = dst + item * inner
                        if !t.outside.isEmpty && t.outside[p] {
                            d.update(repeating: fill, count: inner)
                            continue
                        }
                        let s = src + o * n * inner
                        d.update(repeating: 0, count: inner)
                        for j in 0..<taps {
                            let wj = weight[p * taps + j]
                            if wj == 0 { continue }
                            let row = s + index[p * taps + j] * inner
                            for i in 0..<inner { d[i] += wj * row[i] }
                        }
                    }
                }
            }
        }
    }
}
