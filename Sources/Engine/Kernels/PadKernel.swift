import Tensors

/// Pad in `constant`, `reflect`, `edge` or `wrap` mode. Pads (and the constant value, and from opset
/// 18 the axes) are attributes before opset 11 and inputs after, possibly computed at run time.
/// Negative pads crop. Built from one source-index map per dimension; the innermost dimension is a
/// plain loop.
struct PadKernel: BufferedKernel {
    enum Mode: String { case constant, reflect, edge, wrap }
    let mode: Mode
    let attributePads: [Int]?
    let attributeValue: Float

    init(context: NodeContext) throws {
        let name = try context.string("mode", default: "constant")
        guard let m = Mode(rawValue: name) else { throw context.invalid("has an unknown mode '\(name)'") }
        mode = m
        if context.opset < 11 {
            try context.requireInputs(1)
            guard let p = try context.ints("pads") ?? context.ints("paddings") else {
                throw context.invalid("has no 'pads' attribute")
            }
            attributePads = p
            attributeValue = try context.float("value", default: 0)
        } else {
            try context.requireInputs(2, 4)
            attributePads = nil
            attributeValue = 0
        }
    }

    func run(_ inputs: [Tensor?], into output: Tensor?) throws -> [Tensor] {
        let x = try Check.input(inputs, 0, "data")
        let r = x.rank
        var pads = [Int](repeating: 0, count: 2 * r)
        let given = try attributePads ?? IntInput.values(try Check.input(inputs, 1, "pads"), "Pad's pads")
        let axes = try IntInput.axes(try IntInput.optional(inputs, 3, "Pad's axes") ?? Array(0..<r), rank: r, "Pad")
        guard given.count == 2 * axes.count else {
            throw KernelError.shape("Pad has \(given.count) pads for \(axes.count) axes of \(x.shape)")
        }
        for (i, a) in axes.enumerated() {
            pads[a] = given[i]
            pads[a + r] = given[i + axes.count]
        }
        var shape = x.shape
        for d in 0..<r {
            shape[d] = x.shape[d] + pads[d] + pads[d + r]
            guard shape[d] >= 0 else { throw KernelError.shape("Pad's pads \(given) crop more than \(x.shape) holds") }
        }
        // Source index per output position of each dimension, -1 = padding value.
        var maps: [[Int]] = []
        for d in 0..<r {
            let n = x.shape[d]
            var m = [Int](repeating: -1, count: shape[d])
            for o in 0..<shape[d] {
                var i = o - pads[d]
                if i < 0 || i >= n {
                    if mode == .constant || n == 0 { continue }
                    switch mode {
                    case .edge: i = min(max(i, 0), n - 1)
                    case .wrap: i = ((i % n) + n) % n
                    default:
                        if n == 1 { i = 0 } else {
                            let period = 2 * (n - 1)
                            i = ((i % period) + period) % period
                            if i >= n { i = period - i }
                        }
                    }
                }
                m[o] = i
            }
            maps.append(m)
        }
        // Always a copy (also with all-zero pads): the plan's buffer must not alias the input.
        let out = try Output.tensor(output, x.dataType, shape)
        if out.count == 0 { return [out] }
        switch x.dataType {
        case .float32:
            var v = attributeValue
            if attributePads == nil, let t = inputs.count > 2 ? inputs[2] : nil, t.count > 0 {
                try Check.dataType(t, [.float32], "constant_value")
                v = t.elements(as: Float.self)[0]
            }
            fill(x, out, maps, v)
        case .bool: fill(x, out, maps, try constant(inputs, false))
        default:
            if try x.dataType.dispatch(Fill(kernel: self, x: x, out: out, maps: maps, inputs: inputs)) == nil {
                throw KernelError.unsupportedType("Pad", x.dataType, supported: DataType.realNumbers + [.bool])
            }
        }
        return [out]
    }

    /// Pad of float64 or an integer type (opset 2's float `value` applies to float64 only).
    private struct Fill: NumericBody {
        let kernel: PadKernel
        let x: Tensor
        let out: Tensor
        let maps: [[Int]]
        let inputs: [Tensor?]

        func integer<T: FixedWidthInteger & TensorElement>(_: T.Type) throws {
            kernel.fill(x, out, maps, try kernel.constant(inputs, T(0)))
        }

        func float<T: FloatElement>(_: T.Type) throws {
            kernel.fill(x, out, maps, try kernel.constant(inputs, T(kernel.attributeValue)))
        }
    }

    fileprivate func constant<T: TensorElement>(_ inputs: [Tensor?], _ zero: T) throws -> T {
        guard inputs.count > 2, let t = inputs[2], t.count > 0 else { return zero }
        try Check.dataType(t, [T.dataType], "constant_value")
        return t.elements(as: T.self)[0]
    }

    fileprivate func fill<T: TensorElement>(_ x: Tensor, _ out: Tensor, _ maps: [[Int]], _ value: T) {
        let src = x.elements(as: T.self).baseAddress
        let dst = out.mutableElements(as: T.self).baseAddress!
        let shape = out.shape
        let r = shape.count
        if r == 0 {
            dst[0] = src![0]
            return
        }
        let xs = Broadcast.contiguousStrides(x.shape)
        let inner = maps[r - 1]
        let n = shape[r - 1]
        let outer = shape.dropLast().reduce(1, *)
        var index = [Int](repeating: 0, count: r - 1)
        var o = 0
        for _ in 0..<outer {
            var base = 0
            var inside = true
            for d in 0..<(r - 1) {
                let s = maps[d][index[d]]
                if s < 0 { inside = false; break }
                base += s * xs[d]
            }
            let row = dst + o
            if inside, let src {
                for i in 0..<n {
                    let s = inner[i]
                    row[i] = s < 0 ? value : src[base + s]
                }
            } else {
                row.update(repeating: value, count: n)
            }
            o += n
            var d = r - 2
            while d >= 0 {
                index[d] += 1
                if index[d] < shape[d] { break }
                index[d] = 0
                d -= 1
            }
        }
    }
}
