import Tensors

/// Window geometry shared by Conv and the pools: kernel, strides, dilations and padding per spatial
/// dimension, resolved for one input shape (`auto_pad` SAME_UPPER / SAME_LOWER / VALID / NOTSET,
/// `ceil_mode` for pools). Spatial ranks 1 to 3 are handled as 3-D with leading size-1 dimensions.
struct WindowAttributes: Sendable {
    enum AutoPad: String, Sendable { case notSet = "NOTSET", sameUpper = "SAME_UPPER", sameLower = "SAME_LOWER", valid = "VALID" }
    let kernelShape: [Int]?
    let strides: [Int]?
    let dilations: [Int]?
    let pads: [Int]?
    let autoPad: AutoPad
    let ceilMode: Bool

    init(context: NodeContext) throws {
        kernelShape = try context.ints("kernel_shape")
        strides = try context.ints("strides")
        dilations = try context.ints("dilations")
        pads = try context.ints("pads")
        let name = try context.string("auto_pad", default: "NOTSET")
        guard let a = AutoPad(rawValue: name.isEmpty ? "NOTSET" : name) else {
            throw context.invalid("has an unknown auto_pad '\(name)'")
        }
        autoPad = a
        ceilMode = try context.int("ceil_mode", default: 0) != 0
        for v in [kernelShape, strides, dilations].compactMap({ $0 }) where v.contains(where: { $0 < 1 }) {
            throw context.invalid("has a kernel_shape, stride or dilation below 1")
        }
    }

    /// The geometry for an input of `spatial` dimensions and a window of `kernel` (from the weights
    /// for Conv, else `kernel_shape`).
    func resolve(spatial: [Int], kernel: [Int]) throws -> WindowGeometry {
        let r = spatial.count
        guard (1...3).contains(r), kernel.count == r else {
            throw KernelError.shape("windows over \(r) spatial dimensions (kernel \(kernel)) are not supported (1 to 3)")
        }
        let s = strides ?? [Int](repeating: 1, count: r)
        let d = dilations ?? [Int](repeating: 1, count: r)
        guard s.count == r, d.count == r else {
            throw KernelError.shape("strides \(s) or dilations \(d) do not match \(r) spatial dimensions")
        }
        var begin = [Int](repeating: 0, count: r)
        var end = [Int](repeating: 0, count: r)
        var out = [Int](repeating: 0, count: r)
        for i in 0..<r {
            let extent = (kernel[i] - 1) * d[i] + 1
            switch autoPad {
            case .notSet:
                if let p = pads {
                    guard p.count == 2 * r else { throw KernelError.shape("pads \(p) do not match \(r) spatial dimensions") }
                    begin[i] = p[i]
                    end[i] = p[i + r]
                }
                let span = spatial[i] + begin[i] + end[i] - extent
                guard span >= 0 else {
                    throw KernelError.shape("a window of \(extent) does not fit input dimension \(spatial[i]) with pads \(begin[i]), \(end[i])")
                }
                if ceilMode {
                    out[i] = (span + s[i] - 1) / s[i] + 1
                    // The last window must start inside the input or the left padding.
                    if (out[i] - 1) * s[i] >= spatial[i] + begin[i] { out[i] -= 1 }
                } else {
                    out[i] = span / s[i] + 1
                }
            case .valid:
                guard spatial[i] >= extent else {
                    throw KernelError.shape("a window of \(extent) does not fit input dimension \(spatial[i])")
                }
                out[i] = (spatial[i] - extent) / s[i] + 1
            case .sameUpper, .sameLower:
                out[i] = (spatial[i] + s[i] - 1) / s[i]
                let total = max(0, (out[i] - 1) * s[i] + extent - spatial[i])
                begin[i] = autoPad == .sameUpper ? total / 2 : (total + 1) / 2
                end[i] = total - begin[i]
            }
        }
        let pad3 = { (v: [Int], fill: Int) in [Int](repeating: fill, count: 3 - r) + v }
        return WindowGeometry(
            input: pad3(spatial, 1), output: pad3(out, 1), kernel: pad3(kernel, 1), strides: pad3(s, 1),
            dilations: pad3(d, 1), padBegin: pad3(begin, 0), padEnd: pad3(end, 0), spatialRank: r)
    }
}

/// A resolved 3-D window geometry (lower ranks padded with leading 1s).
struct WindowGeometry {
    let input: [Int]
    let output: [Int]
    let kernel: [Int]
    let strides: [Int]
    let dilations: [Int]
    let padBegin: [Int]
    let padEnd: [Int]
    let spatialRank: Int

    var inputSize: Int { input[0] * input[1] * input[2] }
    var outputSize: Int { output[0] * output[1] * output[2] }
    var kernelSize: Int { kernel[0] * kernel[1] * kernel[2] }
    /// The output's spatial dimensions at the original rank.
    var outputSpatial: [Int] { Array(output.suffix(spatialRank)) }
    var hasPadding: Bool { padBegin.contains { $0 != 0 } || padEnd.contains { $0 != 0 } }
}
