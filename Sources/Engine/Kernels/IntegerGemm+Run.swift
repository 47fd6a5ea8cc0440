import CKernels
import Tensors

extension IntegerGemm {
    /// The C epilogue for `output` (Sources/CKernels/include/CKernels.h), with the weights'
    /// per-column corrections; the activations' zero point and row sums are filled in per call.
    static func epilogue(_ output: Output, n: Int, weights b: PackedInt8Weights) throws -> swerve_i8_epilogue {
        var e = swerve_i8_epilogue()
        e.col_adjust = UnsafePointer(b.columnAdjust)
        e.col_zero = b.negatedZeroPoints.map { UnsafePointer($0) }
        e.scale = 1
        func checkStride(_ stride: Int) throws {
            guard stride >= n else {
                throw EngineError.invalidInput("int8 GEMM: output row stride \(stride) is shorter than its \(n) columns")
            }
        }
        switch output {
        case .int32(let c, let stride):
            try checkStride(stride)
            (e.kind, e.c, e.ldc) = (Int32(SWERVE_I8_OUT_INT32), UnsafeMutableRawPointer(c), stride)
        case .float(let c, let stride, let scale, let columnScales, let bias):
            try checkStride(stride)
            (e.kind, e.c, e.ldc) = (Int32(SWERVE_I8_OUT_FLOAT), UnsafeMutableRawPointer(c), stride)
            (e.scale, e.col_scale, e.bias) = (scale, columnScales, bias)
        case .quantized(let c, let stride, let signed, let scale, let columnScales, let zeroPoint, let bias, let range):
            try checkStride(stride)
            let type: ClosedRange<Int32> = signed ? -128...127 : 0...255
            let clamp = range ?? type
            guard type.contains(zeroPoint), type.contains(clamp.lowerBound), type.contains(clamp.upperBound) else {
                throw EngineError.invalidInput(
                    "int8 GEMM: output zero point \(zeroPoint) or range \(clamp) is outside the output type's \(type)")
            }
            e.kind = Int32(signed ? SWERVE_I8_OUT_S8 : SWERVE_I8_OUT_U8)
            (e.c, e.ldc) = (c, stride)
            (e.scale, e.col_scale, e.col_bias) = (scale, columnScales, bias)
            (e.zero_point, e.lo, e.hi) = (zeroPoint, clamp.lowerBound, clamp.upperBound)
        }
        return e
    }

    /// Runs the packed A (`m` rows) against B, split over tasks: B's columns in groups of 4
    /// panels (the widest tile) when there are enough for every task, else A's 6-row panels.
    static func run(
        _ a: PanelSource, m: Int, _ b: PackedInt8Weights, epilogue e: swerve_i8_epilogue, threads: Int?,
        path: Path, variant: Variant
    ) {
        let n = b.n
        let (mn, o1) = m.multipliedReportingOverflow(by: n)
        let (work, o2) = mn.multipliedReportingOverflow(by: max(1, b.k))
        let budget = max(1, threads ?? BLAS.threads)
        let rowPanels = (m + 5) / 6
        let columnGroups = (b.panels + 3) / 4
        let tasks = !o1 && !o2 && work < parallelWork ? 1 : min(budget, max(rowPanels, columnGroups))
        let splitN = columnGroups >= 2 * tasks || rowPanels < tasks
        let cost = o1 || o2 ? Int.max / 4 : work / tasks * 2
        withUnsafePointer(to: e) { e in
            Parallel.forEach(tasks, costPerItem: cost, minimumWork: 0) { range in
                for task in range {
                    if splitN {
                        let lo = columnGroups * task / tasks * 4
                        let hi = min(b.panels, columnGroups * (task + 1) / tasks * 4)
                        if lo >= hi { continue }
                        kernel(
                            path, b, variant: variant, a: a, rows: m, firstPanel: lo,
                            columns: min(n, hi * 16) - lo * 16, row0: 0, e)
                    } else {
                        let lo = rowPanels * task / tasks
                        let hi = rowPanels * (task + 1) / tasks
                        if lo >= hi { continue }
                        kernel(
                            path, b, variant: variant, a: a.advanced(panels: lo), rows: min(m, hi * 6) - lo * 6,
                            firstPanel: 0, columns: n, row0: lo * 6, e)
                    }
                }
            }
        }
    }

    /// One task: `rows` rows of A from `a` (absolute row `row0`) against B's panels from
    /// `firstPanel`, `columns` columns.
    @inline(__always)
    static func kernel(
        _ path: Path, _ b: PackedInt8Weights, variant: Variant, a: PanelSource, rows: Int, firstPanel: Int,
        columns: Int, row0: Int, _ e: UnsafePointer<swerve_i8_epilogue>
    ) {
        let (k, bp, stride, col0) = (b.k, b.panel(firstPanel), b.panelStride, firstPanel * 16)
        let (pa, rs, gs, ps) = (a.base, a.rowStride, a.groupStride, a.panelStride)
        #if arch(x86_64)
        switch path {
        case .avx512VNNI: swerve_i8gemm_avx512vnni(k, pa, rs, gs, ps, rows, bp, stride, columns, row0, col0, e)
        case .avxVNNI:
            if variant == .evexTwin {
                swerve_i8gemm_avxvnni_evex(k, pa, rs, gs, ps, rows, bp, stride, columns, row0, col0, e)
            } else {
                swerve_i8gemm_avxvnni(k, pa, rs, gs, ps, rows, bp, stride, columns, row0, col0, e)
            }
        case .avx2:
            if b.sevenBit && variant != .widening {
                swerve_i8gemm_avx2_7bit(k, pa, rs, gs, ps, rows, bp, stride, columns, row0, col0, e)
            } else {
                swerve_i8gemm_avx2(k, pa, rs, gs, ps, rows, bp, stride, columns, row0, col0, e)
            }
        case .portable: portable(k: k, a: a, rows: rows, b: bp, bStride: stride, columns: columns, row0: row0, col0: col0, e.pointee)
        }
        #else
        portable(k: k, a: a, rows: rows, b: bp, bStride: stride, columns: columns, row0: row0, col0: col0, e.pointee)
        #endif
    }

    /// The portable kernel: the C kernels' contract in plain loops.
    static func portable(
        k: Int, a: PanelSource, rows: Int, b: UnsafePointer<Int8>, bStride: Int, columns: Int, row0: Int,
        col0: Int, _ e: swerve_i8_epilogue
    ) {
        let groups = (k + 3) / 4
        for p in 0..<((rows + 5) / 6) {
            let panel = a.base + p * a.panelStride
            for r in 0..<min(6, rows - p * 6) {
                let pa = panel + r * a.rowStride
                for j in 0..<columns {
                    let pb = b + (j / 16) * bStride + (j % 16) * 4
                    var acc: Int32 = 0
                    for g in 0..<groups {
                        let x = pa + a.groupStride * g, y = pb + 64 * g
                        acc &+= Int32(x[0]) &* Int32(y[0]) &+ Int32(x[1]) &* Int32(y[1])
                        acc &+= Int32(x[2]) &* Int32(y[2]) &+ Int32(x[3]) &* Int32(y[3])
                    }
                    finish(acc, row: row0 + p * 6 + r, column: col0 + j, e)
                }
            }
        }
    }

    /// The epilogue of one sum, in the C kernels' order and float operations.
    @inline(__always)
    static func finish(_ sum: Int32, row: Int, column j: Int, _ e: swerve_i8_epilogue) {
        var acc = sum
        if let bias = e.col_bias { acc &+= bias[j] }
        if let adjust = e.col_adjust { acc &+= (e.row_zero?[row] ?? e.zero) &* adjust[j] }
        if let sums = e.row_sums, let zero = e.col_zero { acc &+= sums[row] &* zero[j] }
        let at = row * e.ldc + j
        guard let c = e.c else { return }
        if e.kind == Int32(SWERVE_I8_OUT_INT32) {
            c.assumingMemoryBound(to: Int32.self)[at] = acc
            return
        }
        let scale = e.col_scale.map { e.scale * $0[j] } ?? e.scale
        var f = Float(acc) * scale
        if e.kind == Int32(SWERVE_I8_OUT_FLOAT) {
            if let bias = e.bias { f += bias[j] }
            c.assumingMemoryBound(to: Float.self)[at] = f
            return
        }
        f = min(max(f, Float(e.lo &- e.zero_point)), Float(e.hi &- e.zero_point))
        // In [lo, hi] (the clamp's bounds are integers), so within the 8-bit type.
        let q = Int32(f.rounded(.toNearestOrEven)) &+ e.zero_point
        if e.kind == Int32(SWERVE_I8_OUT_U8) {
            c.assumingMemoryBound(to: UInt8.self)[at] = UInt8(truncatingIfNeeded: q)
        } else {
            c.assumingMemoryBound(to: Int8.self)[at] = Int8(truncatingIfNeeded: q)
        }
    }
}

extension IntegerGemm.PanelSource {
    /// The source from A panel `panels` on.
    func advanced(panels: Int) -> Self {
        var s = self
        s.base += panels * panelStride
        return s
    }
}
