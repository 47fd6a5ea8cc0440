import Glibc
import Tensors

/// MaxPool (float32; also float64, int8 and uint8 without Indices), AveragePool and LpPool (float32),
/// 1 to 3 spatial dimensions: `kernel_shape`, strides, pads or
/// `auto_pad`, dilations, `ceil_mode`; AveragePool's `count_include_pad` divides by the window's size
/// clipped to the padded input instead of by the number of real elements; LpPool takes
/// (sum of |x|^p)^(1/p) over the window's real elements. MaxPool's optional Indices
/// output holds, per output element, the flat index into X of the element it took (the first
/// maximum of its window), within each plane row-major (`storage_order` 0) or column-major (1).
struct PoolKernel: BufferedKernel {
    let isMax: Bool
    let window: WindowAttributes
    let countIncludePad: Bool
    /// LpPool's p (nil for MaxPool and AveragePool).
    let lpPower: Float?
    /// Whether the node asks for MaxPool's Indices output.
    let indices: Bool
    /// Indices in column-major order within each plane (`storage_order` 1).
    let columnMajor: Bool

    init(context: NodeContext, isMax: Bool) throws {
        try context.requireInputs(1)
        self.isMax = isMax
        window = try WindowAttributes(context: context)
        guard window.kernelShape != nil else { throw context.invalid("has no 'kernel_shape'") }
        countIncludePad = try context.int("count_include_pad", default: 0) != 0
        let storageOrder = try context.int("storage_order", default: 0)
        guard storageOrder == 0 || storageOrder == 1 else {
            throw context.invalid("has storage_order \(storageOrder); it must be 0 (row-major) or 1 (column-major)")
        }
        indices = isMax && context.hasOutput(1)
        columnMajor = storageOrder == 1
        lpPower = nil
    }

    /// LpPool: `p` is a float attribute in opset 1, an int from opset 2 (default 2).
    init(context: NodeContext, lpPool: Void) throws {
        try context.requireInputs(1)
        isMax = false
        window = try WindowAttributes(context: context)
        guard window.kernelShape != nil else { throw context.invalid("has no 'kernel_shape'") }
        countIncludePad = false
        indices = false
        columnMajor = false
        let p: Float
        switch context.node.attributes["p"] {
        case .float(let v)?: p = v
        case _?: p = Float(try context.int("p", default: 2))
        case nil: p = 2
        }
        guard p > 0, p.isFinite else { throw context.invalid("has p \(p); it must be positive") }
        lpPower = p
    }

    func run(_ inputs: [Tensor?], into output: Tensor?) throws -> [Tensor] {
        let x = try Check.input(inputs, 0, "X")
        try Check.dataType(x, isMax && !indices ? Self.maxTypes : [.float32, .float64], "X")
        guard x.rank >= 3 else { throw KernelError.shape("pooling needs X [N, C, ...] of rank 3 to 5, got \(x.shape)") }
        let geo = try window.resolve(spatial: Array(x.shape[2...]), kernel: window.kernelShape!)
        let planes = x.shape[0] * x.shape[1]
        let out = try Output.tensor(output, x.dataType, Array(x.shape[..<2]) + geo.outputSpatial)
        if out.count == 0 { return [out] }
        if x.dataType == .float64 && !isMax {
            // AveragePool and LpPool on float64: the window loop in Double.
            let px = x.elements(as: Double.self).baseAddress!
            let py = out.mutableElements(as: Double.self).baseAddress!
            for p in 0..<planes { pool(px + p * geo.inputSize, py + p * geo.outputSize, geo) }
            return [out]
        }
        switch x.dataType {
        case .float64: Self.maxPool(x, out, Double.self, -.infinity, planes, geo)
        case .int8: Self.maxPool(x, out, Int8.self, .min, planes, geo)
        case .uint8: Self.maxPool(x, out, UInt8.self, .min, planes, geo)
        default: break
        }
        if x.dataType != .float32 { return [out] }
        let px = x.elements(as: Float.self).baseAddress!
        let py = out.mutableElements(as: Float.self).baseAddress!
        if indices {
            let positions = try Tensor(allocating: .int64, shape: out.shape)
            let pi = positions.mutableElements(as: Int64.self).baseAddress!
            let strides = columnMajor ? Self.columnMajorStrides(geo) : [geo.input[1] * geo.input[2], geo.input[2], 1]
            Parallel.forEach(planes, costPerItem: geo.outputSize * geo.kernelSize) { range in
                for p in range {
                    Self.maxWithIndices(
                        px + p * geo.inputSize, py + p * geo.outputSize, pi + p * geo.outputSize, geo,
                        planeOffset: p * geo.inputSize, strides: strides)
                }
            }
            return [out, positions]
        }
        let plane2D = isMax && geo.kernel[0] == 1 && geo.output[0] == 1 && geo.input[0] == 1
        if plane2D {
            Parallel.forEach(planes, costPerItem: geo.outputSize * geo.kernelSize) { range in
                for p in range { PlaneLoops.maxPool(px + p * geo.inputSize, py + p * geo.outputSize, geo) }
            }
            return [out]
        }
        for p in 0..<planes {
            if plane2D {
                PlaneLoops.maxPool(px + p * geo.inputSize, py + p * geo.outputSize, geo)
            } else {
                pool(px + p * geo.inputSize, py + p * geo.outputSize, geo)
            }
        }
        return [out]
    }

    /// MaxPool's element types (its Indices output and the other pools: float32 only).
    static let maxTypes: [DataType] = [.float32, .float64, .int8, .uint8]

    /// MaxPool of another element type, plane by plane, one window at a time.
    private static func maxPool<T: Comparable & TensorElement>(
        _ x: Tensor, _ out: Tensor, _: T.Type, _ lowest: T, _ planes: Int, _ g: WindowGeometry
    ) {
        let px = x.elements(as: T.self).baseAddress!
        let py = out.mutableElements(as: T.self).baseAddress!
        let taps = Taps(g)
        for p in 0..<planes {
            let plane = px + p * g.inputSize
            let y = py + p * g.outputSize
            forEachWindow(g) { o, z0, y0, x0 in
                var best = lowest
                forEachTap(plane, taps, z0, y0, x0) { v, _, _, _ in
                    if v > best || v != v { best = v }
                }
                y[o] = best
            }
        }
    }

    /// One channel plane. For each output position, the window's valid ranges per dimension are
    /// computed once and the inner loop runs over contiguous input where the stride allows.
    private func pool<T: FloatElement>(_ x: UnsafePointer<T>, _ y: UnsafeMutablePointer<T>, _ g: WindowGeometry) {
        let taps = Taps(g)
        let power = lpPower.map { T($0) }
        // Where the padded input ends and starts, for count_include_pad.
        let padded = (g.input[0] + g.padEnd[0], g.input[1] + g.padEnd[1], g.input[2] + g.padEnd[2])
        let low = (-g.padBegin[0], -g.padBegin[1], -g.padBegin[2])
        Self.forEachWindow(g) { o, z0, y0, x0 in
            var best = -T.infinity
            var sum: T = 0
            var count = 0
            Self.forEachTap(x, taps, z0, y0, x0) { v, _, _, _ in
                if isMax {
                    if v > best || v != v { best = v }
                } else if let p = power {
                    sum += p == 2 ? v * v : p == 1 ? abs(v) : abs(v).power(p)
                } else {
                    sum += v
                    count += 1
                }
            }
            if isMax {
                y[o] = best
            } else if let p = power {
                y[o] = p == 2 ? sum.squareRoot() : p == 1 ? sum : sum.power(1 / p)
            } else {
                if countIncludePad {
                    // Window positions inside the padded input (ceil_mode overhang excluded).
                    count = Self.span(z0, taps.kernel.0, taps.dilations.0, padded.0, low.0)
                        * Self.span(y0, taps.kernel.1, taps.dilations.1, padded.1, low.1)
                        * Self.span(x0, taps.kernel.2, taps.dilations.2, padded.2, low.2)
                }
                y[o] = count > 0 ? sum / T(count) : 0
            }
        }
    }

    /// Calls `body(o, z0, y0, x0)` for every output position o of one plane, in order, with the
    /// input coordinates of its window's first tap (negative inside the leading padding).
    @inline(__always)
    private static func forEachWindow(_ g: WindowGeometry, _ body: (Int, Int, Int, Int) -> Void) {
        var o = 0
        for z in 0..<g.output[0] {
            let z0 = z * g.strides[0] - g.padBegin[0]
            for yy in 0..<g.output[1] {
                let y0 = yy * g.strides[1] - g.padBegin[1]
                for xx in 0..<g.output[2] {
                    body(o, z0, y0, xx * g.strides[2] - g.padBegin[2])
                    o += 1
                }
            }
        }
    }

    /// A plane's window extents as plain integers (read once per plane, not per window).
    struct Taps {
        let input: (Int, Int, Int)
        let kernel: (Int, Int, Int)
        let dilations: (Int, Int, Int)

        init(_ g: WindowGeometry) {
            input = (g.input[0], g.input[1], g.input[2])
            kernel = (g.kernel[0], g.kernel[1], g.kernel[2])
            dilations = (g.dilations[0], g.dilations[1], g.dilations[2])
        }
    }

    /// Calls `body(value, zi, yi, xi)` for every tap of the window at (z0, y0, x0) that falls
    /// inside the input plane `x`, in row-major order.
    @inline(__always)
    private static func forEachTap<T>(
        _ x: UnsafePointer<T>, _ t: Taps, _ z0: Int, _ y0: Int, _ x0: Int, _ body: (T, Int, Int, Int) -> Void
    ) {
        let (id, ih, iw) = t.input
        let (dd, dh, dw) = t.dilations
        for a in 0..<t.kernel.0 {
            let zi = z0 + a * dd
            if zi < 0 || zi >= id { continue }
            for b in 0..<t.kernel.1 {
                let yi = y0 + b * dh
                if yi < 0 || yi >= ih { continue }
                let row = x + (zi * ih + yi) * iw
                for c in 0..<t.kernel.2 {
                    let xi = x0 + c * dw
                    if xi < 0 || xi >= iw { continue }
                    body(row[xi], zi, yi, xi)
                }
            }
        }
    }

    /// Index strides of the 3-D dimensions for column-major indices: the first spatial dimension
    /// of the original rank varies fastest.
    private static func columnMajorStrides(_ g: WindowGeometry) -> [Int] {
        var strides = [0, 0, 0]
        var step = 1
        for d in (3 - g.spatialRank)..<3 {
            strides[d] = step
            step *= g.input[d]
        }
        return strides
    }

    /// One channel plane of MaxPool with its Indices: each output takes the first maximum of its
    /// window (a NaN wins, as in `pool`), and its index is `planeOffset` plus the position's
    /// coordinates times `strides`.
    private static func maxWithIndices(
        _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ indices: UnsafeMutablePointer<Int64>,
        _ g: WindowGeometry, planeOffset: Int, strides: [Int]
    ) {
        let (s0, s1, s2) = (strides[0], strides[1], strides[2])
        let taps = Taps(g)
        forEachWindow(g) { o, z0, y0, x0 in
            var best = -Float.infinity
            var at = -1
            forEachTap(x, taps, z0, y0, x0) { v, zi, yi, xi in
                if at < 0 || v > best || (v != v && best == best) {
                    best = v
                    at = zi * s0 + yi * s1 + xi * s2
                }
            }
            y[o] = best
            indices[o] = Int64(planeOffset + max(at, 0))
        }
    }

    /// Number of taps start + i * dilation (i < k) inside [low, high).
    @inline(__always) private static func span(_ start: Int, _ k: Int, _ dilation: Int, _ high: Int, _ low: Int) -> Int {
        var n = 0
        for i in 0..<k {
            let p = start + i * dilation
            if p >= low && p < high { n += 1 }
        }
        return n
    }
}

/// GlobalAveragePool and GlobalMaxPool: one value per (image, channel) over all spatial dimensions.
struct GlobalPoolKernel: BufferedKernel {
    let isMax: Bool

    init(context: NodeContext, isMax: Bool) throws {
        try context.requireInputs(1)
        self.isMax = isMax
    }

    func run(_ inputs: [Tensor?], into output: Tensor?) throws -> [Tensor] {
        let x = try Check.input(inputs, 0, "X")
        try Check.dataType(x, [.float32, .float64], "X")
        guard x.rank >= 2 else { throw KernelError.shape("global pooling needs X [N, C, ...], got \(x.shape)") }
        let out = try Output.tensor(output, x.dataType, Array(x.shape[..<2]) + [Int](repeating: 1, count: x.rank - 2))
        if x.dataType == .float64 { pool(x, out, Double.self) } else { pool(x, out, Float.self) }
        return [out]
    }

    private func pool<T: FloatElement>(_ x: Tensor, _ out: Tensor, _: T.Type) {
        let planes = x.shape[0] * x.shape[1]
        let inner = x.shape[2...].reduce(1, *)
        if planes == 0 { return }
        let d = out.mutableElements(as: T.self).baseAddress!
        guard inner > 0 else {
            d.update(repeating: isMax ? -T.infinity : .nan, count: planes)
            return
        }
        let s = x.elements(as: T.self).baseAddress!
        let isMax = self.isMax
        // Memory-bound: planes split over the budget from 64k values, as the binary loops, so each
        // thread mostly reads the planes it wrote in the step before (see BinaryKernel).
        Parallel.forEach(planes, costPerItem: inner, minimumWork: 1 << 16) { range in
            for p in range {
                let row = s + p * inner
                if isMax {
                    var m = -T.infinity
                    for i in 0..<inner where row[i] > m || row[i] != row[i] { m = row[i] }
                    d[p] = m
                } else if T.self == Float.self {
                    let sum = Self.sum(UnsafeRawPointer(row).assumingMemoryBound(to: Float.self), inner)
                    d[p] = T(Double(sum)) / T(inner)
                } else {
                    var sum: T = 0
                    for i in 0..<inner { sum += row[i] }
                    d[p] = sum / T(inner)
                }
            }
        }
    }

    /// The sum of `n` floats in four 8-lane partial sums (a plain loop is not vectorised: float
    /// addition is not reassociated), then the lanes and the tail. EfficientNet-B0's squeeze-and-
    /// excitation pools took 1.8 ms of its 27 with the plain loop.
    static func sum(_ p: UnsafePointer<Float>, _ n: Int) -> Float {
        typealias V = SIMD8<Float>
        let raw = UnsafeRawPointer(p)
        var (a, b, c, e) = (V(), V(), V(), V())
        var i = 0
        while i + 32 <= n {
            a += raw.loadUnaligned(fromByteOffset: i * 4, as: V.self)
            b += raw.loadUnaligned(fromByteOffset: (i + 8) * 4, as: V.self)
            c += raw.loadUnaligned(fromByteOffset: (i + 16) * 4, as: V.self)
            e += raw.loadUnaligned(fromByteOffset: (i + 24) * 4, as: V.self)
            i += 32
        }
        while i + 8 <= n {
            a += raw.loadUnaligned(fromByteOffset: i * 4, as: V.self)
            i += 8
        }
        var total = ((a + b) + (c + e)).sum()
        while i < n {
            total += p[i]
            i += 1
        }
        return total
    }
}
