import Tensors

/// RoiAlign(X [N, C, H, W], rois [R, 4] as (x1, y1, x2, y2), batch_indices [R]) -> [R, C,
/// output_height, output_width]: each region, scaled by `spatial_scale`, is cut into bins; each
/// bin samples a grid of `sampling_ratio` x `sampling_ratio` points (0: ceil(bin size) per axis)
/// by bilinear interpolation and takes their average (`mode` avg) or maximum (`mode` max).
///
/// As onnxruntime and the ONNX reference: `coordinate_transformation_mode` half_pixel (the default
/// from opset 16) shifts coordinates by -0.5; output_half_pixel (opset 10's only behaviour) does
/// not, and makes regions at least 1x1. A sample more than one pixel outside the map reads 0;
/// `max` takes the largest of the four weighted corners of each sample (not of the interpolated
/// value), as both do. FP32.
///
/// The sample positions are separable: each region's rows and columns of samples are computed once
/// (`Axis`) and shared by its channels, and an average sums each row of samples before weighting
/// it. Parallel over (region, channel) pairs.
struct RoiAlignKernel: BufferedKernel {
    let isMax: Bool
    let outHeight: Int
    let outWidth: Int
    let samplingRatio: Int
    let spatialScale: Float
    let halfPixel: Bool

    init(context: NodeContext) throws {
        try context.requireInputs(3)
        let mode = try context.string("mode", default: "avg")
        guard mode == "avg" || mode == "max" else { throw context.invalid("has mode '\(mode)' (avg or max)") }
        isMax = mode == "max"
        outHeight = try context.int("output_height", default: 1)
        outWidth = try context.int("output_width", default: 1)
        guard outHeight >= 1, outWidth >= 1, outHeight <= 1 << 16, outWidth <= 1 << 16 else {
            throw context.invalid("has output_height \(outHeight) and output_width \(outWidth); both must be 1 to 65536")
        }
        samplingRatio = try context.int("sampling_ratio", default: 0)
        guard samplingRatio >= 0, samplingRatio <= 1 << 12 else {
            throw context.invalid("has sampling_ratio \(samplingRatio); it must be 0 (adaptive) to 4096")
        }
        spatialScale = try context.float("spatial_scale", default: 1)
        if context.opset >= 16 {
            let ctm = try context.string("coordinate_transformation_mode", default: "half_pixel")
            guard ctm == "half_pixel" || ctm == "output_half_pixel" else {
                throw context.invalid("has coordinate_transformation_mode '\(ctm)' (half_pixel or output_half_pixel)")
            }
            halfPixel = ctm == "half_pixel"
        } else {
            halfPixel = false
        }
    }

    func run(_ inputs: [Tensor?], into output: Tensor?) throws -> [Tensor] {
        let x = try Check.input(inputs, 0, "X")
        let rois = try Check.input(inputs, 1, "rois")
        let batchTensor = try Check.input(inputs, 2, "batch_indices")
        try Check.dataType(x, [.float32], "RoiAlign's X")
        try Check.dataType(rois, [.float32], "RoiAlign's rois")
        let batchIndices = try IntInput.values(batchTensor, "RoiAlign's batch_indices")
        guard x.rank == 4, rois.rank == 2, rois.shape[1] == 4, batchTensor.rank == 1,
            batchTensor.shape[0] == rois.shape[0]
        else {
            throw KernelError.shape(
                "RoiAlign needs X [N, C, H, W], rois [R, 4] and batch_indices [R], got \(x.shape), \(rois.shape) and \(batchTensor.shape)")
        }
        let (batches, channels, height, width) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let regions = rois.shape[0]
        for b in batchIndices where b < 0 || b >= batches {
            throw KernelError.shape("RoiAlign's batch index \(b) is out of range for \(batches) images")
        }
        let outShape = [regions, channels, outHeight, outWidth]
        try Check.computedShape(outShape, "RoiAlign")
        let out = try Output.tensor(output, .float32, outShape)
        if out.count == 0 { return [out] }
        let bins = outHeight * outWidth
        let dst = out.mutableElements(as: Float.self).baseAddress!
        if height == 0 || width == 0 {
            dst.initialize(repeating: 0, count: out.count)
            return [out]
        }
        let src = x.elements(as: Float.self).baseAddress!
        let r = rois.elements(as: Float.self).baseAddress!
        // The sample rows and columns of every region, checked before any work starts, in two
        // flat tables: region i's rows start at rowStart[i], `rowGrid[i]` per bin.
        var rowSamples: [Axis.Sample] = []
        var columnSamples: [Axis.Sample] = []
        var rowStart: [Int] = []
        var columnStart: [Int] = []
        var rowGrid: [Int] = []
        var columnGrid: [Int] = []
        let offset: Float = halfPixel ? 0.5 : 0
        for i in 0..<regions {
            let (x1, y1, x2, y2) = (r[i * 4], r[i * 4 + 1], r[i * 4 + 2], r[i * 4 + 3])
            let startW = x1 * spatialScale - offset
            let startH = y1 * spatialScale - offset
            var roiW = x2 * spatialScale - offset - startW
            var roiH = y2 * spatialScale - offset - startH
            if !halfPixel {
                roiW = max(roiW, 1)
                roiH = max(roiH, 1)
            }
            guard startW.isFinite, startH.isFinite, roiW.isFinite, roiH.isFinite else {
                throw KernelError.shape("RoiAlign's region \(i) (\([x1, y1, x2, y2])) is not finite")
            }
            let rows = try Axis(start: startH, length: roiH, bins: outHeight, size: height, ratio: samplingRatio, stride: width)
            let columns = try Axis(start: startW, length: roiW, bins: outWidth, size: width, ratio: samplingRatio)
            rowStart.append(rowSamples.count)
            columnStart.append(columnSamples.count)
            rowGrid.append(rows.grid)
            columnGrid.append(columns.grid)
            rowSamples += rows.samples
            columnSamples += columns.samples
        }
        let plane = height * width
        let work = zip(rowGrid, columnGrid).map { $0 * $1 }.max() ?? 1
        let (outH, outW, isMax) = (outHeight, outWidth, isMax)
        rowSamples.withUnsafeBufferPointer { rowBuffer in
            columnSamples.withUnsafeBufferPointer { columnBuffer in
                let (allRows, allColumns) = (rowBuffer.baseAddress!, columnBuffer.baseAddress!)
                Parallel.forEach(regions * channels, costPerItem: bins * max(work, 1) * 8) { range in
                    for item in range {
                        let (i, c) = (item / channels, item % channels)
                        let image = src + (batchIndices[i] * channels + c) * plane
                        let (gh, gw) = (rowGrid[i], columnGrid[i])
                        let rows = allRows + rowStart[i]
                        let columns = allColumns + columnStart[i]
                        let o = dst + item * bins
                        let scale = 1 / Float(max(gh * gw, 1))
                        for ph in 0..<outH {
                            for pw in 0..<outW {
                                let value =
                                    isMax
                                    ? Self.binMax(image, rows + ph * gh, gh, columns + pw * gw, gw)
                                    : Self.binSum(image, rows + ph * gh, gh, columns + pw * gw, gw) * scale
                                o[ph * outW + pw] = value
                            }
                        }
                    }
                }
            }
        }
        return [out]
    }

    /// The sum of one bin's bilinear samples (rows by columns), a row of columns at a time.
    @inline(__always)
    static func binSum(
        _ image: UnsafePointer<Float>, _ rows: UnsafePointer<Axis.Sample>, _ gh: Int, _ columns: UnsafePointer<Axis.Sample>,
        _ gw: Int
    ) -> Float {
        if gh == 2 && gw == 2 {
            // sampling_ratio 2 (torchvision's detectors): the four samples unrolled.
            let (y0, y1, x0, x1) = (rows[0], rows[1], columns[0], columns[1])
            @inline(__always) func row(_ r: UnsafePointer<Float>) -> Float {
                x0.high * r[x0.first] + x0.low * r[x0.second] + x1.high * r[x1.first] + x1.low * r[x1.second]
            }
            return y0.high * row(image + y0.first) + y0.low * row(image + y0.second)
                + y1.high * row(image + y1.first) + y1.low * row(image + y1.second)
        }
        var acc: Float = 0
        for iy in 0..<gh {
            let y = rows[iy]
            let (r1, r2) = (image + y.first, image + y.second)
            var top: Float = 0
            var bottom: Float = 0
            for ix in 0..<gw {
                let x = columns[ix]
                top += x.high * r1[x.first] + x.low * r1[x.second]
                bottom += x.high * r2[x.first] + x.low * r2[x.second]
            }
            acc += y.high * top + y.low * bottom
        }
        return acc
    }

    /// The largest weighted corner over one bin's samples (0 for a bin without samples).
    @inline(__always)
    static func binMax(
        _ image: UnsafePointer<Float>, _ rows: UnsafePointer<Axis.Sample>, _ gh: Int, _ columns: UnsafePointer<Axis.Sample>,
        _ gw: Int
    ) -> Float {
        var acc = -Float.infinity
        for iy in 0..<gh {
            let y = rows[iy]
            let (r1, r2) = (image + y.first, image + y.second)
            for ix in 0..<gw {
                let x = columns[ix]
                let v1 = (y.high * x.high) * r1[x.first]
                let v2 = (y.high * x.low) * r1[x.second]
                let v3 = (y.low * x.high) * r2[x.first]
                let v4 = (y.low * x.low) * r2[x.second]
                acc = max(acc, max(max(v1, v2), max(v3, v4)))
            }
        }
        return gh * gw > 0 ? acc : 0
    }

    /// The sample positions of one region along one axis: `grid` samples per bin, each with its
    /// two neighbouring pixels (as element offsets: index times `stride`) and their weights. A
    /// sample outside [-1, size] has zero weights.
    struct Axis {
        struct Sample {
            var first: Int
            var second: Int
            /// Weight of `second` (the fractional part) and of `first`.
            var low: Float
            var high: Float
        }

        let grid: Int
        let samples: [Sample]

        init(start: Float, length: Float, bins: Int, size: Int, ratio: Int, stride: Int = 1) throws {
            let binSize = length / Float(bins)
            var g = ratio
            if ratio == 0 {
                let adaptive = (length / Float(bins)).rounded(.up)
                guard adaptive <= Float(1 << 16) else {
                    throw KernelError.shape("RoiAlign: a region of size \(length) samples too many points per bin")
                }
                g = max(0, Int(adaptive))
            }
            grid = g
            var samples: [Sample] = []
            samples.reserveCapacity(bins * g)
            for p in 0..<bins {
                for s in 0..<g {
                    var v = start + Float(p) * binSize + (Float(s) + 0.5) * binSize / Float(g)
                    if v < -1 || v > Float(size) {
                        samples.append(Sample(first: 0, second: 0, low: 0, high: 0))
                        continue
                    }
                    v = max(v, 0)
                    var lo = Int(v)
                    let hi: Int
                    if lo >= size - 1 {
                        lo = size - 1
                        hi = lo
                        v = Float(lo)
                    } else {
                        hi = lo + 1
                    }
                    let frac = v - Float(lo)
                    samples.append(Sample(first: lo * stride, second: hi * stride, low: frac, high: 1 - frac))
                }
            }
            self.samples = samples
        }
    }
}
