import Tensors

/// ConvTranspose (float32, 1 to 3 spatial dimensions) with groups, strides, dilations, pads or
/// `auto_pad`, `output_padding`, `output_shape` and an optional bias. X is [N, C, in...], W is
/// [C, M/group, k...], Y is [N, M, out...].
///
/// Per image and group it is one GEMM and a scatter: the columns `col` [M/group * k, in] =
/// W_g^T [M/group * k, C/group] · X_g [C/group, in], then every column adds its window into the
/// output (`col2im`: input position i and tap t land on output i * stride - pad + t * dilation).
/// When W is an initializer, W_g^T is packed once here for `PackedGemm` (and the plan drops W);
/// otherwise the GEMM is OpenBLAS's sgemm with A transposed. A single image and group runs its
/// GEMM split between the threads, then the scatter split over output channels; a batch (or
/// several groups) runs whole items per thread, each with its own column buffer.
struct ConvTransposeKernel: ScratchKernel, ConstantAbsorbingKernel {
    let group: Int
    let attributes: TransposedWindowAttributes
    /// W_g^T per group, packed for `PackedGemm` ([M/group * kernel, C/group] each), and W's shape;
    /// nil when W is computed at run time.
    let packed: (shape: [Int], groups: [PackedMatrix])?

    init(context: NodeContext) throws {
        try context.requireInputs(2, 3)
        group = try context.int("group", default: 1)
        guard group >= 1 else { throw context.invalid("has group \(group); it must be 1 or more") }
        attributes = try TransposedWindowAttributes(context: context)
        packed = Self.pack(context.constantInput(1), group: group)
    }

    var absorbedInputs: [Int] { packed == nil ? [] : [1] }

    /// Packs constant float32 weights [C, M/group, k...] as W_g^T per group.
    static func pack(_ w: Tensor?, group: Int) -> (shape: [Int], groups: [PackedMatrix])? {
        guard let w, w.dataType == .float32, (3...5).contains(w.rank), w.count > 0, w.shape[0] % group == 0 else {
            return nil
        }
        let cg = w.shape[0] / group
        let rows = w.count / w.shape[0]  // M/group * kernel
        let pw = w.elements(as: Float.self).baseAddress!
        var transposed = [Float](repeating: 0, count: rows * cg)
        let groups = (0..<group).map { g in
            let wg = pw + g * cg * rows
            for c in 0..<cg {
                for r in 0..<rows { transposed[r * cg + c] = wg[c * rows + r] }
            }
            return transposed.withUnsafeBufferPointer { PackedMatrix($0.baseAddress!, rows: rows, k: cg, lda: cg) }
        }
        return (w.shape, groups)
    }

    func weightShape(_ inputs: [Tensor?]) -> [Int]? {
        if inputs.count > 1, let w = inputs[1] { return w.shape }
        return packed?.shape
    }

    /// One column buffer [M/group * kernel, in] (a batch split over threads allocates its own).
    func scratchCount(_ inputs: [Tensor?]) -> Int {
        guard let x = inputs.first ?? nil, let wShape = weightShape(inputs), x.rank >= 3, wShape.count == x.rank,
            x.shape[1] == wShape[0]
        else { return 0 }
        let (count, overflow) = wShape[1...].reduce(1, *).multipliedReportingOverflow(by: x.shape[2...].reduce(1, *))
        return overflow ? 0 : count
    }

    func run(_ inputs: [Tensor?], into output: Tensor?) throws -> [Tensor] {
        try run(inputs, into: output, scratch: nil)
    }

    func run(_ inputs: [Tensor?], into output: Tensor?, scratch shared: UnsafeMutablePointer<Float>?) throws -> [Tensor] {
        let x = try Check.input(inputs, 0, "X")
        let w = inputs.count > 1 ? inputs[1] : nil
        let usePacked = w == nil ? packed : nil
        if w == nil && usePacked == nil { _ = try Check.input(inputs, 1, "W") }
        let wShape = w?.shape ?? usePacked!.shape
        let b = inputs.count > 2 ? inputs[2] : nil
        try Check.dataType(x, [.float32], "X")
        if let w { try Check.dataType(w, [.float32], "W") }
        guard (3...5).contains(x.rank), wShape.count == x.rank else {
            throw KernelError.shape(
                "ConvTranspose needs X [N, C, ...] and W [C, M/group, ...] of one rank (3 to 5), got X \(x.shape) and W \(wShape)")
        }
        let n = x.shape[0]
        let c = x.shape[1]
        guard wShape[0] == c, c % group == 0 else {
            throw KernelError.shape(
                "ConvTranspose with group \(group): X \(x.shape) and W \(wShape) do not fit (W needs [C, M/group, ...] with C divisible by group)")
        }
        let mg = wShape[1]
        let (m, mOverflow) = mg.multipliedReportingOverflow(by: group)
        if mOverflow { throw KernelError.shape("ConvTranspose's output channels overflow") }
        let kernel = Array(wShape[2...])
        if let ks = attributes.kernelShape, ks != kernel {
            throw KernelError.shape("ConvTranspose's kernel_shape \(ks) differs from the weights' \(kernel)")
        }
        let geo = try attributes.resolve(spatial: Array(x.shape[2...]), kernel: kernel)
        if let b {
            try Check.dataType(b, [.float32], "B")
            guard b.count == m else { throw KernelError.shape("ConvTranspose's bias has \(b.count) values for \(m) output channels") }
        }
        let out = try Output.tensor(output, .float32, [n, m] + geo.outputSpatial)
        if out.count == 0 { return [out] }
        let py = out.mutableElements(as: Float.self).baseAddress!
        let items = n * group
        let bias = b?.elements(as: Float.self).baseAddress
        let cg = c / group
        let inSize = geo.inputSize
        let outSize = geo.outputSize
        let rows = mg * geo.kernelSize
        if cg == 0 || inSize == 0 {
            // Nothing to scatter: the bias alone.
            for i in 0..<(n * m) { (py + i * outSize).update(repeating: bias?[i % m] ?? 0, count: outSize) }
            return [out]
        }
        let (colCount, colOverflow) = rows.multipliedReportingOverflow(by: inSize)
        let (work, workOverflow) = colCount.multipliedReportingOverflow(by: 2 * cg * items)
        if colOverflow || workOverflow { throw KernelError.shape("ConvTranspose of X \(x.shape) and W \(wShape) is too large") }
        let px = x.elements(as: Float.self).baseAddress!
        let pw = w?.elements(as: Float.self).baseAddress
        let group = self.group

        /// The columns of item (image, group) into `col`, on `threads` threads (nil: the budget).
        func columns(_ item: Int, _ col: UnsafeMutablePointer<Float>, threads: Int?) {
            let (img, g) = (item / group, item % group)
            let xg = px + (img * c + g * cg) * inSize
            if let usePacked {
                PackedGemm.multiply(
                    usePacked.groups[g], source: MatrixSource(b: xg, ldb: inSize), n: inSize, c: col, ldc: inSize,
                    threads: threads, finish: BiasActivation(bias: nil, epilogue: .none))
            } else {
                BLAS.gemm(
                    transA: true, transB: false, m: rows, n: inSize, k: cg, alpha: 1, a: pw! + g * cg * rows, lda: rows,
                    b: xg, ldb: inSize, beta: 0, c: col, ldc: inSize)
            }
        }
        /// Output channels `channels` of item (image, group): the bias, then the scatter of `col`.
        func scatter(_ item: Int, _ col: UnsafePointer<Float>, channels: Range<Int>) {
            let (img, g) = (item / group, item % group)
            for mo in channels {
                let ch = g * mg + mo
                let y = py + (img * m + ch) * outSize
                y.update(repeating: bias?[ch] ?? 0, count: outSize)
                Self.col2im(col + mo * geo.kernelSize * inSize, y, geo)
            }
        }

        // Below PackedGemm's threshold a split costs more than it saves.
        let tasks = Parallel.chunks(work: work, minimumWork: PackedGemm.parallelFlops, items: items)
        if tasks > 1 {
            // Whole items per thread, each thread with its own column buffer.
            let buffers = try Tensor(allocating: .float32, shape: [tasks, colCount])
            let base = buffers.mutableElements(as: Float.self).baseAddress!
            Parallel.forEach(tasks, costPerItem: 1, minimumWork: 0) { range in
                for task in range {
                    let col = base + task * colCount
                    for item in (items * task / tasks)..<(items * (task + 1) / tasks) {
                        columns(item, col, threads: 1)
                        scatter(item, col, channels: 0..<mg)
                    }
                }
            }
            return [out]
        }
        var owned: Tensor? = nil
        if shared == nil { owned = try Tensor(allocating: .float32, shape: [colCount]) }
        let col = shared ?? owned!.mutableElements(as: Float.self).baseAddress!
        for item in 0..<items {
            columns(item, col, threads: nil)
            Parallel.forEach(mg, costPerItem: geo.kernelSize * inSize + outSize) { range in
                scatter(item, col, channels: range)
            }
        }
        return [out]
    }

    /// Adds the columns of one output channel ([kernel, in]: one row per tap) onto its plane `y`.
    static func col2im(_ col: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ g: WindowGeometry) {
        let (id, ih, iw) = (g.input[0], g.input[1], g.input[2])
        let (od, oh, ow) = (g.output[0], g.output[1], g.output[2])
        let (sd, sh, sw) = (g.strides[0], g.strides[1], g.strides[2])
        let inSize = g.inputSize
        var row = col
        for kd in 0..<g.kernel[0] {
            let offD = kd * g.dilations[0] - g.padBegin[0]
            for kh in 0..<g.kernel[1] {
                let offH = kh * g.dilations[1] - g.padBegin[1]
                for kw in 0..<g.kernel[2] {
                    let offW = kw * g.dilations[2] - g.padBegin[2]
                    defer { row += inSize }
                    // Input columns xi with 0 <= xi * sw + offW < ow.
                    let (lo, hi) = ConvKernel.validRange(iw, stride: sw, pad: 0, kOff: offW, size: ow)
                    if lo >= hi { continue }
                    for z in 0..<id {
                        let zo = z * sd + offD
                        if zo < 0 || zo >= od { continue }
                        for yi in 0..<ih {
                            let yo = yi * sh + offH
                            if yo < 0 || yo >= oh { continue }
                            let src = row + (z * ih + yi) * iw
                            let dst = y + (zo * oh + yo) * ow + offW
                            if sw == 1 {
                                for i in lo..<hi { dst[i] += src[i] }
                            } else {
                                for i in lo..<hi { dst[i &* sw] += src[i] }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// ConvTranspose's window attributes: `kernel_shape`, strides, dilations, pads, `output_padding`,
/// `output_shape` and `auto_pad`, resolved per input shape (`resolve`).
struct TransposedWindowAttributes: Sendable {
    let kernelShape: [Int]?
    let strides: [Int]?
    let dilations: [Int]?
    let pads: [Int]?
    let outputPadding: [Int]?
    let outputShape: [Int]?
    let autoPad: WindowAttributes.AutoPad

    init(context: NodeContext) throws {
        kernelShape = try context.ints("kernel_shape")
        strides = try context.ints("strides")
        dilations = try context.ints("dilations")
        pads = try context.ints("pads")
        outputPadding = try context.ints("output_padding")
        outputShape = try context.ints("output_shape")
        let name = try context.string("auto_pad", default: "NOTSET")
        guard let a = WindowAttributes.AutoPad(rawValue: name.isEmpty ? "NOTSET" : name) else {
            throw context.invalid("has an unknown auto_pad '\(name)'")
        }
        autoPad = a
        for v in [kernelShape, strides, dilations].compactMap({ $0 }) where v.contains(where: { $0 < 1 }) {
            throw context.invalid("has a kernel_shape, stride or dilation below 1")
        }
        if let p = pads, p.contains(where: { $0 < 0 }) { throw context.invalid("has negative pads \(p)") }
        if let p = outputPadding, p.contains(where: { $0 < 0 }) { throw context.invalid("has a negative output_padding \(p)") }
        if let s = outputShape, s.contains(where: { $0 < 0 }) { throw context.invalid("has a negative output_shape \(s)") }
    }

    /// The geometry for an input of `spatial` dimensions and a kernel of `kernel` (W's). Per
    /// dimension, with the natural size `stride * (in - 1) + output_padding + (k - 1) * dilation + 1`:
    /// - `output_shape` given: that size; the leading pad from `pads` when they are given (and
    ///   `auto_pad` is NOTSET), else from the total padding natural - size (0 when negative), split as
    ///   onnx defines: SAME_UPPER puts the smaller half first, the others the larger half;
    /// - SAME_UPPER / SAME_LOWER: size in * stride, pads split the same way;
    /// - VALID: the natural size, no pads;
    /// - NOTSET: the natural size less both pads.
    func resolve(spatial: [Int], kernel: [Int]) throws -> WindowGeometry {
        let r = spatial.count
        guard (1...3).contains(r), kernel.count == r else {
            throw KernelError.shape("ConvTranspose over \(r) spatial dimensions (kernel \(kernel)) is not supported (1 to 3)")
        }
        let s = strides ?? [Int](repeating: 1, count: r)
        let d = dilations ?? [Int](repeating: 1, count: r)
        let op = outputPadding ?? [Int](repeating: 0, count: r)
        guard s.count == r, d.count == r, op.count == r else {
            throw KernelError.shape("strides \(s), dilations \(d) or output_padding \(op) do not match \(r) spatial dimensions")
        }
        if let p = pads, p.count != 2 * r { throw KernelError.shape("pads \(p) do not match \(r) spatial dimensions") }
        // output_shape names the spatial dimensions (a full [N, M, ...] is accepted too).
        let requested = outputShape.map { Array($0.suffix(r)) }
        if let o = outputShape, o.count != r && o.count != r + 2 {
            throw KernelError.shape("output_shape \(o) does not match \(r) spatial dimensions")
        }
        var begin = [Int](repeating: 0, count: r)
        var out = [Int](repeating: 0, count: r)
        var naturals = [Int](repeating: 0, count: r)
        func checked(_ v: (partialValue: Int, overflow: Bool)) throws -> Int {
            if v.overflow { throw KernelError.shape("ConvTranspose's output size overflows for input \(spatial)") }
            return v.partialValue
        }
        for i in 0..<r {
            let extent = try checked((kernel[i] - 1).multipliedReportingOverflow(by: d[i])) + 1
            let stretched = try checked(s[i].multipliedReportingOverflow(by: max(spatial[i] - 1, 0)))
            let natural = try checked(stretched.addingReportingOverflow(op[i] + extent))
            naturals[i] = natural
            func split(_ size: Int) {
                let total = max(0, natural - size)
                begin[i] = autoPad == .sameUpper ? total / 2 : total - total / 2
            }
            if let requested {
                out[i] = requested[i]
                if autoPad == .notSet, let p = pads { begin[i] = p[i] } else { split(out[i]) }
                continue
            }
            switch autoPad {
            case .sameUpper, .sameLower:
                out[i] = try checked(spatial[i].multipliedReportingOverflow(by: s[i]))
                split(out[i])
            case .valid:
                out[i] = natural
            case .notSet:
                begin[i] = pads?[i] ?? 0
                out[i] = natural - begin[i] - (pads?[i + r] ?? 0)
                guard out[i] >= 0 else {
                    throw KernelError.shape("ConvTranspose's pads \(pads ?? []) exceed the output size \(natural) of input dimension \(spatial[i])")
                }
            }
        }
        let pad3 = { (v: [Int], fill: Int) in [Int](repeating: fill, count: 3 - r) + v }
        // Seen from the output, ConvTranspose is Conv's window geometry read backwards: input position
        // i and tap t of a dimension land on output position i * stride - padBegin + t * dilation.
        let end = (0..<r).map { naturals[$0] - begin[$0] - out[$0] }
        return WindowGeometry(
            input: pad3(spatial, 1), output: pad3(out, 1), kernel: pad3(kernel, 1), strides: pad3(s, 1),
            dilations: pad3(d, 1), padBegin: pad3(begin, 0), padEnd: pad3(end, 0), spatialRank: r)
    }
}

