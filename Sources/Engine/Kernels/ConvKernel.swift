import Glibc
import Tensors

/// Conv (float32, 1 to 3 spatial dimensions) with groups, strides, dilations, explicit pads or
/// `auto_pad`, and an optional bias. Per image and group:
/// - 3x3, stride 1, dilation 1, group 1, 2-D, constant weights: Winograd F(2x2, 3x3)
///   (`WinogradConv`: 2.25x fewer multiplications; the bias and activation go in its output
///   transform);
/// - 1x1 kernel, stride 1, no padding: one GEMM straight on the input (no copy);
/// - depthwise (one input and one output channel per group): a direct loop;
/// - otherwise one GEMM on the im2col patches: read straight from the input while packing (2-D,
///   packed weights: `PatchSource`), else written into one scratch buffer first.
/// On the packed GEMM the tiles start from the bias and apply Relu/Clip in registers
/// (`BiasActivation`); depthwise planes do the same in `PlaneLoops`; the other paths write the bias
/// first and accumulate onto it. When the weights are an initializer (the usual case) they are
/// packed once here for `PackedGemm`; otherwise the GEMM is OpenBLAS's sgemm.
struct ConvKernel: ScratchKernel, ConstantAbsorbingKernel {
    let window: WindowAttributes
    let group: Int
    /// Fused activation applied to each output block after its sgemm (see `GraphOptimizer`).
    let epilogue: Epilogue
    /// The constant weights packed for `PackedGemm`, one matrix [M/group, C/group * kernel] per
    /// group, and the weight shape they were packed from (nil: weights computed at run time, or a
    /// depthwise convolution, which does not use a GEMM).
    let packed: (shape: [Int], groups: [PackedMatrix])?
    /// The constant weights transformed for Winograd F(2x2, 3x3) when the convolution qualifies
    /// (`WinogradConv.qualifies`); then `packed` is nil: only one form of the weights is kept.
    let winograd: WinogradConv?
    /// Constant depthwise 2-D weights (up to 9x9) interleaved once for `DepthwiseBlocks`, one block
    /// of `DepthwiseBlocks.tapFloats` per eight channels (the channels past the last full block
    /// are not here: `PlaneLoops` reads W as stored); nil for other convolutions.
    let depthwiseTaps: [Float]?

    init(context: NodeContext) throws {
        try context.requireInputs(2, 3)
        epilogue = try Epilogue(context: context)
        window = try WindowAttributes(context: context)
        group = try context.int("group", default: 1)
        guard group >= 1 else { throw context.invalid("has group \(group); it must be 1 or more") }
        if window.ceilMode { throw context.unsupported() }
        let w = context.constantInput(1)
        if let w, w.dataType == .float32, w.count > 0,
            WinogradConv.qualifies(weightShape: w.shape, group: group, strides: window.strides, dilations: window.dilations)
        {
            let pw = w.elements(as: Float.self).baseAddress!
            winograd = WinogradConv(pw, shape: w.shape)
            packed = nil
        } else {
            winograd = nil
            packed = Self.pack(w, group: group)
        }
        depthwiseTaps = Self.interleaveDepthwise(w, group: group)
    }

    /// `depthwiseTaps` for constant float32 weights [group, 1, kh, kw] (sides up to
    /// `DepthwiseBlocks.maxSide`) of a depthwise convolution.
    static func interleaveDepthwise(_ w: Tensor?, group: Int) -> [Float]? {
        guard let w, w.dataType == .float32, w.shape.count == 4, w.shape[0] == group, w.shape[1] == 1,
            (1...DepthwiseBlocks.maxSide).contains(w.shape[2]), (1...DepthwiseBlocks.maxSide).contains(w.shape[3])
        else { return nil }
        let taps = w.shape[2] * w.shape[3]
        let floats = taps * DepthwiseBlocks.channels
        let blocks = group / DepthwiseBlocks.channels
        let pw = w.elements(as: Float.self).baseAddress!
        return [Float](unsafeUninitializedCapacity: blocks * floats) { out, count in
            for b in 0..<blocks {
                DepthwiseBlocks.interleave(pw + b * floats, taps: taps, into: out.baseAddress! + b * floats)
            }
            count = blocks * floats
        }
    }

    /// The weights, once packed or transformed: the plan passes nil for them and the kernel's
    /// copy is used.
    var absorbedInputs: [Int] { packed == nil && winograd == nil ? [] : [1] }

    /// The weights' shape: from W when it is passed, else from the packed or transformed copy.
    func weightShape(_ inputs: [Tensor?]) -> [Int]? {
        if inputs.count > 1, let w = inputs[1] { return w.shape }
        return packed?.shape ?? winograd?.shape
    }

    /// Packs constant float32 weights [M, C/group, k...] per group (the session then drops the
    /// original's pages when they are a file mapping: `InferenceSession.init`).
    static func pack(_ w: Tensor?, group: Int) -> (shape: [Int], groups: [PackedMatrix])? {
        guard let w, w.dataType == .float32, w.rank >= 3, w.count > 0, w.shape[0] % group == 0 else { return nil }
        let mg = w.shape[0] / group
        let k = w.count / w.shape[0]
        if mg == 1 && w.shape[1] == 1 { return nil }  // depthwise
        let pw = w.elements(as: Float.self).baseAddress!
        return (w.shape, (0..<group).map { g in PackedMatrix(pw + g * mg * k, rows: mg, k: k, lda: k) })
    }

    func run(_ inputs: [Tensor?], into output: Tensor?) throws -> [Tensor] {
        try run(inputs, into: output, scratch: nil)
    }

    /// Floats of im2col scratch a run on `inputs` needs (0 for pointwise and depthwise groups, or
    /// when the inputs do not fit: the run reports that).
    func scratchCount(_ inputs: [Tensor?]) -> Int {
        guard let x = inputs.first ?? nil, let wShape = weightShape(inputs), x.rank >= 3, wShape.count == x.rank,
            let geo = try? window.resolve(spatial: Array(x.shape[2...]), kernel: Array(wShape[2...]))
        else { return 0 }
        let cg = x.shape[1] / group
        let mg = wShape[0] / group
        let pointwise = geo.kernelSize == 1 && geo.strides == [1, 1, 1] && !geo.hasPadding
        let weightsPassed = inputs.count > 1 && inputs[1] != nil
        if winograd != nil && !weightsPassed { return 0 }  // per-thread scratch (`WinogradConv`)
        if pointwise || (cg == 1 && mg == 1) { return 0 }
        if packsPatches(inputs, geo) { return 0 }
        return cg * geo.kernelSize * geo.outputSize
    }

    /// Whether the packed GEMM reads this run's patches straight from the input (`PatchSource`:
    /// 2-D windows, weights packed) instead of an im2col buffer.
    func packsPatches(_ inputs: [Tensor?], _ geo: WindowGeometry) -> Bool {
        let weightsPassed = inputs.count > 1 && inputs[1] != nil
        return packed != nil && !weightsPassed && geo.kernel[0] == 1 && geo.input[0] == 1 && geo.output[0] == 1
    }

    /// `scratch`, when given, holds at least `scratchCount(inputs)` floats (a region of the shape
    /// plan's arena); without it the im2col buffer is allocated for the call.
    func run(_ inputs: [Tensor?], into output: Tensor?, scratch shared: UnsafeMutablePointer<Float>?) throws -> [Tensor] {
        let x = try Check.input(inputs, 0, "X")
        // W is nil when the plan passes the packed weights instead (`absorbedInputs`).
        let w = inputs.count > 1 ? inputs[1] : nil
        let usePacked = w == nil ? packed : nil
        let useWinograd = w == nil ? winograd : nil
        if w == nil && usePacked == nil && useWinograd == nil { _ = try Check.input(inputs, 1, "W") }
        let wShape = w?.shape ?? usePacked?.shape ?? useWinograd!.shape
        let b = inputs.count > 2 ? inputs[2] : nil
        try Check.dataType(x, [.float32], "X")
        if let w { try Check.dataType(w, [.float32], "W") }
        guard x.rank >= 3, wShape.count == x.rank else {
            throw KernelError.shape("Conv needs X [N, C, ...] and W [M, C/group, ...] of one rank, got X \(x.shape) and W \(wShape)")
        }
        let n = x.shape[0]
        let c = x.shape[1]
        let m = wShape[0]
        let kernel = Array(wShape[2...])
        guard c % group == 0, m % group == 0, wShape[1] == c / group else {
            throw KernelError.shape("Conv with group \(group): X \(x.shape) and W \(wShape) do not fit (W needs [M, C/group, ...] with M divisible by group)")
        }
        if let ks = window.kernelShape, ks != kernel {
            throw KernelError.shape("Conv's kernel_shape \(ks) differs from the weights' \(kernel)")
        }
        let geo = try window.resolve(spatial: Array(x.shape[2...]), kernel: kernel)
        if let b {
            try Check.dataType(b, [.float32], "B")
            guard b.count == m else { throw KernelError.shape("Conv's bias has \(b.count) values for \(m) output channels") }
        }
        let out = try Output.tensor(output, .float32, [n, m] + geo.outputSpatial)
        if out.count == 0 { return [out] }
        if let useWinograd {
            // `qualifies` checked the weights' shape, strides and dilations at load.
            useWinograd.run(
                x.elements(as: Float.self).baseAddress!, batch: n, geo, bias: b?.elements(as: Float.self).baseAddress,
                epilogue: epilogue, out.mutableElements(as: Float.self).baseAddress!)
            return [out]
        }
        let cg = c / group
        let mg = m / group
        let inSize = geo.inputSize
        let outSize = geo.outputSize
        let kSize = geo.kernelSize
        let k = cg * kSize
        let px = x.elements(as: Float.self).baseAddress!
        // Weights as stored (nil when packed: depthwise weights are never packed).
        let pw = w?.elements(as: Float.self).baseAddress
        let py = out.mutableElements(as: Float.self).baseAddress!
        let bias = b?.elements(as: Float.self).baseAddress
        let pointwise = kSize == 1 && geo.strides == [1, 1, 1] && !geo.hasPadding
        let depthwise = cg == 1 && mg == 1
        // Depthwise 2-D with stride 1 or 2 runs on a zero-bordered copy of each plane (`PlaneLoops`),
        // which writes the bias itself.
        let planeLoop = depthwise && geo.kernel[0] == 1 && geo.output[0] == 1 && geo.input[0] == 1
            && (geo.strides[2] == 1 || geo.strides[2] == 2)
        let patches = !pointwise && !depthwise && packsPatches(inputs, geo)
        // The packed GEMM's tasks write the bias into their own blocks and apply the activation
        // (`BiasActivation`); the other paths write the bias first and add onto it.
        let packedTasks = usePacked != nil && (patches || pointwise)
        if !planeLoop && !packedTasks {
            for i in 0..<(n * m) {
                (py + i * outSize).update(repeating: bias?[i % m] ?? 0, count: outSize)
            }
        }
        if planeLoop {
            // Full blocks of eight channels per image run channel-blocked (`DepthwiseBlocks`), the
            // other channels plane by plane (`PlaneLoops`); items split over the thread budget,
            // each thread with its own scratch (kept between calls), bordered with zeros per call.
            let epilogue = self.epilogue
            let group = self.group
            let padded = PlaneLoops.PaddedPlane(geo)
            let blocked = DepthwiseBlocks.Layout(geo)
            let blocks = DepthwiseBlocks.supports(geo) ? group / DepthwiseBlocks.channels : 0
            let tapFloats = DepthwiseBlocks.tapFloats(geo)
            let perImage = blocks + group - blocks * DepthwiseBlocks.channels
            let cost = outSize * kSize * 2
            Parallel.forEach(n * perImage, costPerItem: cost * (blocks > 0 ? DepthwiseBlocks.channels : 1)) { items in
                let anyBlock = items.contains { $0 % perImage < blocks }
                let anyPlane = items.contains { $0 % perImage >= blocks }
                let blockCount = anyBlock ? blocked.count : 0
                ThreadScratch.withFloats(blockCount + (anyPlane ? padded.count : 0)) { scratch in
                    if anyBlock { DepthwiseBlocks.zeroBorder(scratch, geo, blocked) }
                    if anyPlane { (scratch + blockCount).initialize(repeating: 0, count: padded.count) }
                    for item in items {
                        let (img, slot) = (item / perImage, item % perImage)
                        if slot < blocks {
                            let g = slot * DepthwiseBlocks.channels
                            @inline(__always) func block(_ taps: UnsafePointer<Float>) {
                                DepthwiseBlocks.block(
                                    px + (img * c + g) * inSize, inStride: inSize, taps: taps, bias: bias.map { $0 + g },
                                    py + (img * m + g) * outSize, outStride: outSize, geo, epilogue, blocked, scratch)
                            }
                            if let taps = depthwiseTaps {
                                taps.withUnsafeBufferPointer { block($0.baseAddress! + slot * tapFloats) }
                            } else {
                                // Weights computed at run time: interleaved here, on the stack.
                                withUnsafeTemporaryAllocation(of: Float.self, capacity: tapFloats) { t in
                                    DepthwiseBlocks.interleave(pw! + g * kSize, taps: kSize, into: t.baseAddress!)
                                    block(UnsafePointer(t.baseAddress!))
                                }
                            }
                            continue
                        }
                        let g = blocks * DepthwiseBlocks.channels + slot - blocks
                        PlaneLoops.depthwise(
                            px + (img * c + g) * inSize, pw! + g * kSize, bias: bias?[g] ?? 0, py + (img * m + g) * outSize,
                            geo, epilogue, padded, scratch + blockCount)
                    }
                }
            }
            return [out]
        }
        var scratch: UnsafeMutablePointer<Float>? = nil
        var owned = false
        if !pointwise && !depthwise && !patches {
            scratch = shared ?? .allocate(capacity: k * outSize)
            owned = shared == nil
        }
        defer { if owned { scratch?.deallocate() } }
        if let usePacked, patches || pointwise, n > 1, BLAS.threads > 1 {
            // A batch on the packed GEMM: images (and groups) split between the threads, each GEMM
            // on one thread, rather than every image's GEMM split between them.
            let epilogue = self.epilogue
            Parallel.forEach(n * group, costPerItem: 2 * mg * k * outSize) { items in
                for item in items {
                    let (img, g) = (item / group, item % group)
                    let xg = px + (img * c + g * cg) * inSize
                    let yg = py + (img * m + g * mg) * outSize
                    Self.packedGemm(
                        usePacked.groups[g], xg, yg, patches: patches, geo, bias: bias.map { $0 + g * mg }, epilogue,
                        threads: 1)
                }
            }
            return [out]
        }
        for img in 0..<n {
            for g in 0..<group {
                let xg = px + (img * c + g * cg) * inSize
                let yg = py + (img * m + g * mg) * outSize
                if depthwise {
                    Self.depthwise(xg, pw! + g * mg * k, yg, geo)
                    epilogue.apply(yg, count: mg * outSize)
                    continue
                }
                if packedTasks, let usePacked {
                    Self.packedGemm(
                        usePacked.groups[g], xg, yg, patches: patches, geo, bias: bias.map { $0 + g * mg }, epilogue,
                        threads: nil)
                    continue
                }
                var col = UnsafePointer(xg)
                if let scratch {
                    Self.im2col(xg, channels: cg, geo, scratch)
                    col = UnsafePointer(scratch)
                }
                if let usePacked {
                    PackedGemm.multiply(usePacked.groups[g], b: col, ldb: outSize, n: outSize, c: yg, ldc: outSize)
                } else {
                    BLAS.gemm(
                        transA: false, transB: false, m: mg, n: outSize, k: k, alpha: 1, a: pw! + g * mg * k, lda: k,
                        b: col, ldb: outSize, beta: 1, c: yg, ldc: outSize)
                }
                epilogue.apply(yg, count: mg * outSize)
            }
        }
        return [out]
    }

    /// One group of one image on the packed GEMM: `y` = bias + weights · (patches of `x`, or `x`
    /// itself for a pointwise convolution), then the activation, all inside the GEMM's tasks
    /// (`BiasActivation`), on `threads` threads (nil: the budget).
    static func packedGemm(
        _ weights: PackedMatrix, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, patches: Bool,
        _ geo: WindowGeometry, bias: UnsafePointer<Float>?, _ epilogue: Epilogue, threads: Int?
    ) {
        let n = geo.outputSize
        let finish = BiasActivation(bias: bias, epilogue: epilogue)
        if patches {
            PackedGemm.multiply(
                weights, source: PatchSource(x: x, g: geo), n: n, c: y, ldc: n, threads: threads, finish: finish)
        } else {
            PackedGemm.multiply(
                weights, source: MatrixSource(b: x, ldb: n), n: n, c: y, ldc: n, threads: threads, finish: finish)
        }
    }

    /// Valid output range [lo, hi) along one dimension for kernel offset `kOff` (input index
    /// `o * stride - pad + kOff` inside `0..<size`).
    @inline(__always)
    static func validRange(_ outCount: Int, stride: Int, pad: Int, kOff: Int, size: Int) -> (Int, Int) {
        // o * stride >= pad - kOff  and  o * stride < size + pad - kOff
        let a = pad - kOff
        let lo = a <= 0 ? 0 : (a + stride - 1) / stride
        let b = size + pad - kOff
        let hi = b <= 0 ? 0 : min(outCount, (b + stride - 1) / stride)
        return (min(lo, hi), hi)
    }

    /// Writes the [channels * kd * kh * kw, od * oh * ow] patch matrix of `x` into `col` (zeros where a
    /// window reads padding).
    static func im2col(_ x: UnsafePointer<Float>, channels: Int, _ g: WindowGeometry, _ col: UnsafeMutablePointer<Float>) {
        let (id, ih, iw) = (g.input[0], g.input[1], g.input[2])
        let (od, oh, ow) = (g.output[0], g.output[1], g.output[2])
        let (sd, sh, sw) = (g.strides[0], g.strides[1], g.strides[2])
        var row = col
        for ch in 0..<channels {
            let xc = x + ch * id * ih * iw
            for kd in 0..<g.kernel[0] {
                let offD = kd * g.dilations[0]
                for kh in 0..<g.kernel[1] {
                    let offH = kh * g.dilations[1]
                    for kw in 0..<g.kernel[2] {
                        let offW = kw * g.dilations[2]
                        let (wlo, whi) = validRange(ow, stride: sw, pad: g.padBegin[2], kOff: offW, size: iw)
                        var dst = row
                        for z in 0..<od {
                            let zi = z * sd - g.padBegin[0] + offD
                            for y in 0..<oh {
                                let yi = y * sh - g.padBegin[1] + offH
                                if zi < 0 || zi >= id || yi < 0 || yi >= ih {
                                    dst.update(repeating: 0, count: ow)
                                } else {
                                    let src = xc + (zi * ih + yi) * iw - g.padBegin[2] + offW
                                    if wlo > 0 { dst.update(repeating: 0, count: wlo) }
                                    if sw == 1 {
                                        (dst + wlo).update(from: src + wlo, count: whi - wlo)
                                    } else {
                                        for o in wlo..<whi { dst[o] = src[o * sw] }
                                    }
                                    if whi < ow { (dst + whi).update(repeating: 0, count: ow - whi) }
                                }
                                dst += ow
                            }
                        }
                        row += od * oh * ow
                    }
                }
            }
        }
    }

    /// One input channel to one output channel (already holding the bias): y += w (*) x.
    static func depthwise(_ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ g: WindowGeometry) {
        let (id, ih, iw) = (g.input[0], g.input[1], g.input[2])
        let (od, oh, ow) = (g.output[0], g.output[1], g.output[2])
        let sw = g.strides[2]
        for kd in 0..<g.kernel[0] {
            let offD = kd * g.dilations[0]
            for kh in 0..<g.kernel[1] {
                let offH = kh * g.dilations[1]
                for kw in 0..<g.kernel[2] {
                    let offW = kw * g.dilations[2]
                    let wv = w[(kd * g.kernel[1] + kh) * g.kernel[2] + kw]
                    let (wlo, whi) = validRange(ow, stride: sw, pad: g.padBegin[2], kOff: offW, size: iw)
                    if wlo >= whi { continue }
                    for z in 0..<od {
                        let zi = z * g.strides[0] - g.padBegin[0] + offD
                        if zi < 0 || zi >= id { continue }
                        for yo in 0..<oh {
                            let yi = yo * g.strides[1] - g.padBegin[1] + offH
                            if yi < 0 || yi >= ih { continue }
                            let src = x + (zi * ih + yi) * iw - g.padBegin[2] + offW
                            let dst = y + (z * oh + yo) * ow
                            if sw == 1 {
                                for o in wlo..<whi { dst[o] += wv * src[o] }
                            } else {
                                for o in wlo..<whi { dst[o] += wv * src[o * sw] }
                            }
                        }
                    }
                }
            }
        }
    }
}
