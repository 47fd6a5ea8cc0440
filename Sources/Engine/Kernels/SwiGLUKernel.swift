import Glibc
import Tensors

/// SwiGLU (opset 28), float32: `Y = Swish_alpha(A) * B = A * sigmoid(alpha * A) * B`, the gated
/// activation of Llama-style feed-forward blocks. A and B have one shape (ONNX applies no
/// broadcasting here); eight lanes at a time, split over the thread budget when large.
struct SwiGLUKernel: BufferedKernel {
    let alpha: Float

    init(context: NodeContext) throws {
        try context.requireInputs(2)
        alpha = try context.float("alpha", default: 1)
    }

    func run(_ inputs: [Tensor?], into output: Tensor?) throws -> [Tensor] {
        let a = try Check.input(inputs, 0, "A")
        let b = try Check.input(inputs, 1, "B")
        try Check.dataType(a, [.float32], "A")
        try Check.dataType(b, [.float32], "B")
        guard a.shape == b.shape else {
            throw KernelError.shape(
                "SwiGLU needs A and B of one shape (it does not broadcast), got A \(a.shape) and B \(b.shape); "
                    + "split the projection into two equal halves")
        }
        let out = try Output.tensor(output, .float32, a.shape)
        let total = a.count
        if total == 0 { return [out] }
        let pa = a.elements(as: Float.self).baseAddress!
        let pb = b.elements(as: Float.self).baseAddress!
        let py = out.mutableElements(as: Float.self).baseAddress!
        let alpha = self.alpha
        let block = 8192
        Parallel.forEach((total + block - 1) / block, costPerItem: block * 8, minimumWork: 1 << 20) { range in
            let start = range.lowerBound * block
            Self.gate(pa + start, pb + start, py + start, min(total, range.upperBound * block) - start, alpha: alpha)
        }
        return [out]
    }

    /// `y[i] = a[i] * sigmoid(alpha * a[i]) * b[i]` for `n` values (y may alias neither input).
    static func gate(
        _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ n: Int, alpha: Float
    ) {
        typealias V = VectorMath.V
        let ar = UnsafeRawPointer(a)
        let br = UnsafeRawPointer(b)
        let yr = UnsafeMutableRawPointer(y)
        var i = 0
        while i + 8 <= n {
            let va = ar.loadUnaligned(fromByteOffset: i * 4, as: V.self)
            let vb = br.loadUnaligned(fromByteOffset: i * 4, as: V.self)
            // 1 / (1 + e^(-z)): e^(-z) overflows to +inf for very negative z, giving 0 as it should.
            let sigmoid = 1 / (1 + VectorMath.exp(-alpha * va))
            yr.storeBytes(of: va * sigmoid * vb, toByteOffset: i * 4, as: V.self)
            i += 8
        }
        while i < n {
            y[i] = a[i] * UnaryKernel.sigmoid(alpha * a[i]) * b[i]
            i += 1
        }
    }
}
