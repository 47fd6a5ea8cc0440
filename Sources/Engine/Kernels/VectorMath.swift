/// Eight-lane float32 `exp` and `erf` for the elementwise loops (Softmax, Gelu, Erf, Exp), and the
/// array loops that apply them with a scalar-libm tail.
///
/// - `exp`: Cephes' range reduction (x = n ln2 + r, r in [-ln2/2, ln2/2]) and degree-6 polynomial,
///   2^n built in the exponent bits (no float-to-int conversion, so NaN cannot trap); about 1 ulp
///   inside [-87.3, 88.72], 0 below, +inf above; NaN stays NaN.
/// - `erf`: the rational approximation of Eigen and TensorFlow (odd degree-13 over even degree-8
///   polynomials in x clamped to [-4, 4]), a few ulp; NaN stays NaN.
/// Pure functions; safe from any thread.
enum VectorMath {
    typealias V = SIMD8<Float>

    @inline(__always)
    static func exp(_ input: V) -> V {
        var x = input
        x.replace(with: V(repeating: 88.72283935546875), where: x .> V(repeating: 88.72283935546875))
        let underflow = x .< V(repeating: -87.3365478515625)
        x.replace(with: V(repeating: -87.3365478515625), where: underflow)
        let fx = (x * 1.44269504088896341 + 0.5).rounded(.down)
        var r = x - fx * 0.693359375
        r = r - fx * -2.12194440e-4
        let z = r * r
        var y = V(repeating: 1.9875691500e-4)
        y = y * r + 1.3981999507e-3
        y = y * r + 8.3334519073e-3
        y = y * r + 4.1665795894e-2
        y = y * r + 1.6666665459e-1
        y = y * r + 5.0000001201e-1
        y = y * z + r + 1
        // 2^fx: fx + 1.5 * 2^23 holds fx as an integer in its low mantissa bits.
        let magic = unsafeBitCast(fx + 12_582_912, to: SIMD8<Int32>.self) &- 0x4B40_0000
        // 2^(n-1) * 2, so that n = 128 (x up to ln(FLT_MAX)) still has an exponent field.
        let pow2 = unsafeBitCast((magic &+ 126) &<< 23, to: V.self)
        var result = y * pow2 * 2
        result.replace(with: V(), where: underflow)
        result.replace(with: V(repeating: .infinity), where: input .> V(repeating: 88.72283935546875))
        result.replace(with: input, where: input .!= input)
        return result
    }

    @inline(__always)
    static func erf(_ input: V) -> V {
        var x = input
        x.replace(with: V(repeating: 4), where: x .> V(repeating: 4))
        x.replace(with: V(repeating: -4), where: x .< V(repeating: -4))
        let x2 = x * x
        var p = x2 * -2.72614225801306e-10 + 2.77068142495902e-08
        p = x2 * p + -2.10102402082508e-06
        p = x2 * p + -5.69250639462346e-05
        p = x2 * p + -7.34990630326855e-04
        p = x2 * p + -2.95459980854025e-03
        p = x2 * p + -1.60960333262415e-02
        p = x * p
        var q = x2 * -1.45660718464996e-05 + -2.13374055278905e-04
        q = x2 * q + -1.68282697438203e-03
        q = x2 * q + -7.37332916720468e-03
        q = x2 * q + -1.42647390514189e-02
        return p / q
    }

    /// `d[i] = f(s[i])` eight at a time; the last `n % 8` through `scalar`.
    @inline(__always)
    static func map(
        _ s: UnsafePointer<Float>, _ d: UnsafeMutablePointer<Float>, _ n: Int, _ f: (V) -> V, _ scalar: (Float) -> Float
    ) {
        let sr = UnsafeRawPointer(s)
        let dr = UnsafeMutableRawPointer(d)
        var i = 0
        while i + 8 <= n {
            dr.storeBytes(of: f(sr.loadUnaligned(fromByteOffset: i * 4, as: V.self)), toByteOffset: i * 4, as: V.self)
            i += 8
        }
        while i < n {
            d[i] = scalar(s[i])
            i += 1
        }
    }
}
