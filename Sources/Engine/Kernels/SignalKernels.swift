#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Tensors

/// DFT (opsets 17 and 20): the discrete Fourier transform along one axis of a real `(..., 1)` or
/// complex `(..., 2)` float32 signal, to a complex `(..., 2)` result. `dft_length` (input 1) zero-pads
/// or truncates the signal; `onesided` keeps the first n/2 + 1 bins; `inverse` runs the inverse
/// scaled by 1/n, and with `onesided` takes n/2 + 1 bins of a Hermitian spectrum to a real
/// `(..., 1)` signal of n values (n defaults to 2 * (bins - 1)). The axis is an attribute (default 1)
/// before opset 20 and an input (default -2) from it. Computed in double precision (`FFT`).
struct DFTKernel: Kernel {
    let axisAttribute: Int?
    let inverse: Bool
    let onesided: Bool

    init(context: NodeContext) throws {
        try context.requireInputs(1, context.opset >= 20 ? 3 : 2)
        axisAttribute = context.opset >= 20 ? nil : try context.int("axis", default: 1)
        inverse = try context.int("inverse", default: 0) != 0
        onesided = try context.int("onesided", default: 0) != 0
    }

    func run(_ inputs: [Tensor?]) throws -> [Tensor] {
        let x = try Check.input(inputs, 0, "input")
        try Check.dataType(x, [.float32], "input")
        guard x.rank >= 2, x.shape[x.rank - 1] == 1 || x.shape[x.rank - 1] == 2 else {
            throw KernelError.shape("DFT's input \(x.shape) must end in a dimension of 1 (real) or 2 (complex)")
        }
        var axis = axisAttribute ?? -2
        if axisAttribute == nil, inputs.count > 2, let t = inputs[2] {
            axis = try Self.scalar(t, "axis")
        }
        let a = try Check.axis(axis, rank: x.rank)
        guard a < x.rank - 1 else { throw KernelError.shape("DFT's axis \(axis) is the real/imaginary axis of \(x.shape)") }
        let bins = x.shape[a]
        var n = inverse && onesided ? 2 * (bins - 1) : bins
        if inputs.count > 1, let t = inputs[1] {
            n = try Self.scalar(t, "dft_length")
            guard n > 0, n <= 1 << 28 else { throw KernelError.shape("DFT's dft_length \(n) must be positive") }
        }
        guard n > 0 else { throw KernelError.shape("DFT of an empty signal (\(x.shape), axis \(a))") }
        let outLength = inverse ? n : (onesided ? n / 2 + 1 : n)
        var shape = x.shape
        shape[a] = outLength
        shape[x.rank - 1] = inverse && onesided ? 1 : 2
        let out = try Tensor(allocating: .float32, shape: shape)
        let outer = x.shape[..<a].reduce(1, *)
        let inner = x.shape[(a + 1)..<(x.rank - 1)].reduce(1, *)
        if out.count == 0 { return [out] }
        let channels = x.shape[x.rank - 1]
        let px = x.elements(as: Float.self).baseAddress
        let py = out.mutableElements(as: Float.self).baseAddress!
        let fft = FFT(length: n)
        let inverse = self.inverse
        let hermitian = inverse && onesided
        let scale = inverse ? 1 / Double(n) : 1
        let outChannels = shape[x.rank - 1]
        let work = 2 * n + fft.workCount
        Parallel.forEach(outer * inner, costPerItem: 20 * n * max(1, Int.bitWidth - n.leadingZeroBitCount)) { range in
            withUnsafeTemporaryAllocation(of: Double.self, capacity: work) { buffer in
                let re = buffer.baseAddress!
                let im = re + n
                for s in range {
                    let (o, i) = (s / inner, s % inner)
                    re.update(repeating: 0, count: 2 * n)
                    // The input's values along the axis (the first `count`; the rest stay zero).
                    let count = min(bins, hermitian ? n / 2 + 1 : n)
                    if let px {
                        for t in 0..<count {
                            let p = px + ((o * bins + t) * inner + i) * channels
                            re[t] = Double(p[0])
                            im[t] = channels == 2 ? Double(p[1]) : 0
                        }
                    }
                    if hermitian {
                        // Complete the spectrum: X[n - k] = conj(X[k]).
                        for k in 1..<max(1, (n + 1) / 2) where n - k >= count {
                            re[n - k] = re[k]
                            im[n - k] = -im[k]
                        }
                    }
                    fft.transform(re, im, inverse: inverse, work: im + n)
                    for k in 0..<outLength {
                        let q = py + ((o * outLength + k) * inner + i) * outChannels
                        q[0] = Float(re[k] * scale)
                        if outChannels == 2 { q[1] = Float(im[k] * scale) }
                    }
                }
            }
        }
        return [out]
    }

    static func scalar(_ t: Tensor, _ what: String) throws -> Int {
        guard t.count == 1, t.dataType == .int64 || t.dataType == .int32 else {
            throw KernelError.shape("\(what) must be one INT64 or INT32 value, got \(t.dataType.v2Name) \(t.shape)")
        }
        let v = t.doubleValues()[0]
        guard abs(v) < Double(1 << 40) else { throw KernelError.shape("\(what) \(v) is out of range") }
        return Int(v)
    }
}

/// STFT (opset 17): the DFT of frames of a real `(batch, length, 1)` or complex `(batch, length, 2)`
/// float32 signal, `frame_step` apart, each weighted by `window` (ones when absent); frames of
/// `frame_length` values (the window's length by default). Output `(batch, frames, bins, 2)`, bins =
/// frame_length / 2 + 1 when `onesided` (the default), else frame_length.
struct STFTKernel: Kernel {
    let onesided: Bool

    init(context: NodeContext) throws {
        try context.requireInputs(2, 4)
        onesided = try context.int("onesided", default: 1) != 0
    }

    func run(_ inputs: [Tensor?]) throws -> [Tensor] {
        let x = try Check.input(inputs, 0, "signal")
        try Check.dataType(x, [.float32], "signal")
        guard x.rank == 3, x.shape[2] == 1 || x.shape[2] == 2 else {
            throw KernelError.shape("STFT's signal \(x.shape) must be [batch, length, 1 or 2]")
        }
        let step = try DFTKernel.scalar(try Check.input(inputs, 1, "frame_step"), "frame_step")
        let window = inputs.count > 2 ? inputs[2] : nil
        var frameLength = x.shape[1]
        if let window {
            try Check.dataType(window, [.float32], "window")
            guard window.rank == 1 else { throw KernelError.shape("STFT's window \(window.shape) must be 1-D") }
            frameLength = window.count
        }
        if inputs.count > 3, let t = inputs[3] {
            frameLength = try DFTKernel.scalar(t, "frame_length")
            if let window, window.count != frameLength {
                throw KernelError.shape("STFT's window has \(window.count) values, frame_length is \(frameLength)")
            }
        }
        guard step > 0, frameLength > 0, frameLength <= x.shape[1] else {
            throw KernelError.shape(
                "STFT needs frame_step > 0 and 0 < frame_length <= the signal's length (step \(step), frame "
                    + "\(frameLength), signal \(x.shape))")
        }
        let (batch, length, channels) = (x.shape[0], x.shape[1], x.shape[2])
        let frames = 1 + (length - frameLength) / step
        let bins = onesided ? frameLength / 2 + 1 : frameLength
        let out = try Tensor(allocating: .float32, shape: [batch, frames, bins, 2])
        if out.count == 0 { return [out] }
        let px = x.elements(as: Float.self).baseAddress!
        let pw = window?.elements(as: Float.self).baseAddress
        let py = out.mutableElements(as: Float.self).baseAddress!
        let n = frameLength
        let fft = FFT(length: n)
        let work = 2 * n + fft.workCount
        Parallel.forEach(batch * frames, costPerItem: 20 * n * max(1, Int.bitWidth - n.leadingZeroBitCount)) { range in
            withUnsafeTemporaryAllocation(of: Double.self, capacity: work) { buffer in
                let re = buffer.baseAddress!
                let im = re + n
                for item in range {
                    let (b, f) = (item / frames, item % frames)
                    for t in 0..<n {
                        let p = px + (b * length + f * step + t) * channels
                        let w = pw.map { Double($0[t]) } ?? 1
                        re[t] = Double(p[0]) * w
                        im[t] = channels == 2 ? Double(p[1]) * w : 0
                    }
                    fft.transform(re, im, inverse: false, work: im + n)
                    let q = py + item * bins * 2
                    for k in 0..<bins {
                        q[2 * k] = Float(re[k])
                        q[2 * k + 1] = Float(im[k])
                    }
                }
            }
        }
        return [out]
    }
}

/// HannWindow, HammingWindow, BlackmanWindow (opset 17): `size` values of the window, periodic (the
/// default: a period of `size`) or symmetric (`size` - 1), as float32 (`output_datatype` 1, the
/// default; other output types are not supported).
struct WindowKernel: Kernel {
    enum Shape: String, Sendable { case hann = "HannWindow", hamming = "HammingWindow", blackman = "BlackmanWindow" }
    let shape: Shape
    let periodic: Bool

    init(context: NodeContext, shape: Shape) throws {
        try context.requireInputs(1)
        self.shape = shape
        periodic = try context.int("periodic", default: 1) != 0
        if try context.int("output_datatype", default: 1) != 1 { throw context.unsupported() }
    }

    func run(_ inputs: [Tensor?]) throws -> [Tensor] {
        let size = try DFTKernel.scalar(try Check.input(inputs, 0, "size"), "size")
        try Check.computedShape([size], shape.rawValue)
        let out = try Tensor(allocating: .float32, shape: [size])
        let p = out.mutableElements(as: Float.self)
        let period = Double(periodic ? size : size - 1)
        for i in 0..<size {
            let x = 2 * Double.pi * Double(i) / period
            switch shape {
            case .hann: p[i] = Float(0.5 - 0.5 * cos(x))
            case .hamming: p[i] = Float(25.0 / 46.0 - 21.0 / 46.0 * cos(x))
            case .blackman: p[i] = Float(0.42 - 0.5 * cos(x) + 0.08 * cos(2 * x))
            }
        }
        return [out]
    }
}

/// MelWeightMatrix (opset 17): the `(dft_length / 2 + 1, num_mel_bins)` matrix of triangular filters
/// that maps a one-sided spectrum to mel bands between `lower_edge_hertz` and `upper_edge_hertz`, as
/// the ONNX definition computes it (band edges on the mel scale, rounded down to spectrum bins).
/// float32 output (`output_datatype` 1, the default; other output types are not supported).
struct MelWeightMatrixKernel: Kernel {
    init(context: NodeContext) throws {
        try context.requireInputs(5)
        if try context.int("output_datatype", default: 1) != 1 { throw context.unsupported() }
    }

    func run(_ inputs: [Tensor?]) throws -> [Tensor] {
        let melBins = try DFTKernel.scalar(try Check.input(inputs, 0, "num_mel_bins"), "num_mel_bins")
        let dftLength = try DFTKernel.scalar(try Check.input(inputs, 1, "dft_length"), "dft_length")
        let sampleRate = try DFTKernel.scalar(try Check.input(inputs, 2, "sample_rate"), "sample_rate")
        let edges = try [3, 4].map { i -> Double in
            let t = try Check.input(inputs, i, i == 3 ? "lower_edge_hertz" : "upper_edge_hertz")
            guard t.count == 1, t.dataType == .float32 else {
                throw KernelError.shape("MelWeightMatrix's edge frequencies must be single FP32 values, got \(t.dataType.v2Name) \(t.shape)")
            }
            return Double(t.elements(as: Float.self)[0])
        }
        guard melBins > 0, dftLength > 0, sampleRate > 0, edges[0] >= 0, edges[1] > edges[0] else {
            throw KernelError.shape(
                "MelWeightMatrix needs positive num_mel_bins (\(melBins)), dft_length (\(dftLength)) and sample_rate "
                    + "(\(sampleRate)), and 0 <= lower edge < upper edge (\(edges[0]), \(edges[1]))")
        }
        let spectrumBins = dftLength / 2 + 1
        try Check.computedShape([spectrumBins, melBins], "MelWeightMatrix")
        let out = try Tensor(allocating: .float32, shape: [spectrumBins, melBins], zeroed: true)
        let p = out.mutableElements(as: Float.self)
        let mel = { (hz: Double) in 2595 * log10(1 + hz / 700) }
        let low = mel(edges[0])
        let step = (mel(edges[1]) - low) / Double(melBins + 2)
        // Edge k of the filters as a spectrum bin.
        let bin = (0..<(melBins + 2)).map { k -> Int in
            let hz = 700 * (pow(10, (Double(k) * step + low) / 2595) - 1)
            return Int((Double(dftLength + 1) * hz / Double(sampleRate)).rounded(.down))
        }
        for m in 0..<melBins {
            let (left, center, right) = (bin[m], bin[m + 1], bin[m + 2])
            // Bins past the spectrum (an upper edge above the Nyquist frequency) are dropped.
            if center == left {
                if center < spectrumBins { p[center * melBins + m] = 1 }
            } else if left < spectrumBins {
                for j in left...min(center, spectrumBins - 1) {
                    p[j * melBins + m] = Float(Double(j - left) / Double(center - left))
                }
            }
            if right > center {
                for j in center..<min(right, spectrumBins) {
                    p[j * melBins + m] = Float(Double(right - j) / Double(right - center))
                }
            }
        }
        return [out]
    }
}
