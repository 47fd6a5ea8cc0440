#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Tensors

/// Softmax, LogSoftmax and Hardmax. Opset < 13 coerces the input to 2-D at `axis` (default 1) and
/// normalises over the flattened trailing part; opset >= 13 normalises along `axis` (default -1).
/// Subtracts the maximum first, so large inputs do not overflow. float32 (vector loops) and float64.
struct SoftmaxKernel: BufferedKernel {
    enum Op: String, Sendable { case softmax = "Softmax", logSoftmax = "LogSoftmax", hardmax = "Hardmax" }
    let op: Op
    let axis: Int
    let coerceTo2D: Bool

    init(context: NodeContext, op: Op = .softmax) throws {
        try context.requireInputs(1)
        self.op = op
        coerceTo2D = context.opset < 13
        axis = try context.int("axis", default: coerceTo2D ? 1 : -1)
    }

    func run(_ inputs: [Tensor?], into output: Tensor?) throws -> [Tensor] {
        let x = try Check.input(inputs, 0, "input")
        try Check.dataType(x, [.float32, .float64], "input")
        let s = x.shape
        let outer: Int
        let n: Int
        let inner: Int
        if coerceTo2D {
            let a = try Check.axis(axis, rank: s.count, inclusiveEnd: true)
            outer = s[..<a].reduce(1, *)
            n = s[a...].reduce(1, *)
            inner = 1
        } else {
            let a = try Check.axis(axis, rank: s.count)
            outer = s[..<a].reduce(1, *)
            n = s[a]
            inner = s[(a + 1)...].reduce(1, *)
        }
        let out = try Output.tensor(output, x.dataType, s)
        if x.count == 0 { return [out] }
        if x.dataType == .float64 {
            real(x.elements(as: Double.self).baseAddress!, out.mutableElements(as: Double.self).baseAddress!, outer, n, inner)
            return [out]
        }
        let src = x.elements(as: Float.self).baseAddress!
        let dst = out.mutableElements(as: Float.self).baseAddress!
        // Rows split over the thread budget (the worker pool) when there is enough work.
        let op = self.op
        Parallel.forEach(outer, costPerItem: n * inner * 16, minimumWork: 1 << 20) { range in
            for o in range {
                for j in 0..<inner {
                    let base = o * n * inner + j
                    var m = -Float.infinity
                    var arg = 0
                    if inner == 1 && op != .hardmax {
                        m = Self.rowMax(src + base, n)
                    } else {
                        for i in 0..<n where src[base + i * inner] > m {
                            m = src[base + i * inner]
                            arg = i
                        }
                    }
                    switch op {
                    case .hardmax:
                        for i in 0..<n { dst[base + i * inner] = i == arg ? 1 : 0 }
                    case .softmax where inner == 1 && m > -.infinity && m < .infinity:
                        Self.softmaxRow(src + base, dst + base, n, max: m)
                    case .softmax:
                        var sum: Float = 0
                        for i in 0..<n {
                            let e = expf(src[base + i * inner] - m)
                            dst[base + i * inner] = e
                            sum += e
                        }
                        let r = 1 / sum
                        for i in 0..<n { dst[base + i * inner] *= r }
                    case .logSoftmax:
                        var sum: Float = 0
                        for i in 0..<n { sum += expf(src[base + i * inner] - m) }
                        let l = logf(sum) + m
                        for i in 0..<n { dst[base + i * inner] = src[base + i * inner] - l }
                    }
                }
            }
        }
        return [out]
    }

    /// The op on another float type (float64), with the scalar loops of the float32 path.
    private func real<T: FloatElement>(_ src: UnsafePointer<T>, _ dst: UnsafeMutablePointer<T>, _ outer: Int, _ n: Int, _ inner: Int) {
        for o in 0..<outer {
            for j in 0..<inner {
                let base = o * n * inner + j
                var m = -T.infinity
                var arg = 0
                for i in 0..<n where src[base + i * inner] > m {
                    m = src[base + i * inner]
                    arg = i
                }
                switch op {
                case .hardmax:
                    for i in 0..<n { dst[base + i * inner] = i == arg ? 1 : 0 }
                case .softmax:
                    var sum: T = 0
                    for i in 0..<n {
                        let e = (src[base + i * inner] - m).exponential()
                        dst[base + i * inner] = e
                        sum += e
                    }
                    for i in 0..<n { dst[base + i * inner] /= sum }
                case .logSoftmax:
                    var sum: T = 0
                    for i in 0..<n { sum += (src[base + i * inner] - m).exponential() }
                    let l = sum.logarithm() + m
                    for i in 0..<n { dst[base + i * inner] = src[base + i * inner] - l }
                }
            }
        }
    }

    /// The largest value of a contiguous row, eight lanes at a time, with the scalar loop's rule:
    /// a value replaces the maximum only when it compares greater, so NaN never does (-inf when
    /// every value is NaN).
    static func rowMax(_ src: UnsafePointer<Float>, _ n: Int) -> Float {
        let sr = UnsafeRawPointer(src)
        var acc = SIMD8<Float>(repeating: -.infinity)
        var i = 0
        while i + 8 <= n {
            let v = sr.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self)
            acc.replace(with: v, where: v .> acc)
            i += 8
        }
        var m = -Float.infinity
        for lane in 0..<8 where acc[lane] > m { m = acc[lane] }
        while i < n {
            if src[i] > m { m = src[i] }
            i += 1
        }
        return m
    }

    /// One contiguous row: exp(x - max) eight lanes at a time, then scaled by 1 / sum.
    static func softmaxRow(_ src: UnsafePointer<Float>, _ dst: UnsafeMutablePointer<Float>, _ n: Int, max m: Float) {
        let sr = UnsafeRawPointer(src)
        let dr = UnsafeMutableRawPointer(dst)
        let vm = SIMD8<Float>(repeating: m)
        var acc = SIMD8<Float>()
        var i = 0
        while i + 8 <= n {
            let e = VectorMath.exp(sr.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self) - vm)
            dr.storeBytes(of: e, toByteOffset: i * 4, as: SIMD8<Float>.self)
            acc += e
            i += 8
        }
        var sum = acc.sum()
        while i < n {
            let e = expf(src[i] - m)
            dst[i] = e
            sum += e
            i += 1
        }
        let r = 1 / sum
        for j in 0..<n { dst[j] *= r }
    }
}
