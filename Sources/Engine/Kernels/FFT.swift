#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A discrete Fourier transform of one length, in double precision, for DFT and STFT: iterative
/// radix-2 when the length is a power of two, otherwise Bluestein's chirp-z through a power-of-two
/// transform of at least 2n - 1 points, so every length costs O(n log n).
///
/// Built once per call (the twiddles), then `transform` runs on any number of signals; it keeps no
/// mutable state, so threads share it. Each thread passes its own `work` buffer (`workCount` doubles).
struct FFT: Sendable {
    let n: Int
    /// The power-of-two length the transform runs at (n itself, or Bluestein's padded length).
    private let size: Int
    /// cos and sin of -2 pi k / size for k < size / 2.
    private let cosines: [Double]
    private let sines: [Double]
    /// Bluestein: the chirp exp(-i pi k^2 / n) for k < n, and the transform of its conjugate, padded.
    private let chirp: (re: [Double], im: [Double])?
    private let chirpSpectrum: (re: [Double], im: [Double])?

    init(length n: Int) {
        self.n = n
        let pow2 = n > 0 && n & (n - 1) == 0
        var m = 1
        if pow2 {
            m = n
        } else {
            while m < 2 * n - 1 { m <<= 1 }
        }
        size = m
        cosines = (0..<(m / 2)).map { cos(-2 * Double.pi * Double($0) / Double(m)) }
        sines = (0..<(m / 2)).map { sin(-2 * Double.pi * Double($0) / Double(m)) }
        if pow2 || n == 0 {
            chirp = nil
            chirpSpectrum = nil
            return
        }
        // k^2 mod 2n keeps the angle exact for large k.
        let angles = (0..<n).map { k in Double.pi * Double((k * k) % (2 * n)) / Double(n) }
        let cr = angles.map { cos($0) }
        let ci = angles.map { -sin($0) }
        chirp = (cr, ci)
        var br = [Double](repeating: 0, count: m)
        var bi = [Double](repeating: 0, count: m)
        for k in 0..<n {
            br[k] = cr[k]
            bi[k] = -ci[k]
            if k > 0 {
                br[m - k] = cr[k]
                bi[m - k] = -ci[k]
            }
        }
        Self.radix2(&br, &bi, m, cosines, sines, inverse: false)
        chirpSpectrum = (br, bi)
    }

    /// Doubles of scratch `transform` needs.
    var workCount: Int { chirp == nil ? 0 : 2 * size }

    /// Transforms `re`/`im` (n values each) in place: sum_t x[t] exp(-+2 pi i k t / n), the sign +
    /// when `inverse` (not scaled).
    func transform(
        _ re: UnsafeMutablePointer<Double>, _ im: UnsafeMutablePointer<Double>, inverse: Bool,
        work: UnsafeMutablePointer<Double>
    ) {
        if n <= 1 { return }
        guard let chirp, let chirpSpectrum else {
            Self.radix2(re, im, n, cosines, sines, inverse: inverse)
            return
        }
        // The inverse is the conjugate of the forward transform of the conjugate.
        let sign: Double = inverse ? -1 : 1
        let ar = work
        let ai = work + size
        for k in 0..<n {
            let (xr, xi) = (re[k], sign * im[k])
            ar[k] = xr * chirp.re[k] - xi * chirp.im[k]
            ai[k] = xr * chirp.im[k] + xi * chirp.re[k]
        }
        for k in n..<size {
            ar[k] = 0
            ai[k] = 0
        }
        Self.radix2(ar, ai, size, cosines, sines, inverse: false)
        for k in 0..<size {
            let (xr, xi) = (ar[k], ai[k])
            ar[k] = xr * chirpSpectrum.re[k] - xi * chirpSpectrum.im[k]
            ai[k] = xr * chirpSpectrum.im[k] + xi * chirpSpectrum.re[k]
        }
        Self.radix2(ar, ai, size, cosines, sines, inverse: true)
        let scale = 1 / Double(size)
        for k in 0..<n {
            let (xr, xi) = (ar[k] * scale, ai[k] * scale)
            re[k] = xr * chirp.re[k] - xi * chirp.im[k]
            im[k] = sign * (xr * chirp.im[k] + xi * chirp.re[k])
        }
    }

    /// In-place iterative radix-2 transform of `m` points (a power of two), unscaled.
    private static func radix2(
        _ re: UnsafeMutablePointer<Double>, _ im: UnsafeMutablePointer<Double>, _ m: Int, _ cosines: [Double],
        _ sines: [Double], inverse: Bool
    ) {
        var j = 0
        for i in 1..<m {
            var bit = m >> 1
            while j & bit != 0 {
                j ^= bit
                bit >>= 1
            }
            j |= bit
            if i < j {
                (re[i], re[j]) = (re[j], re[i])
                (im[i], im[j]) = (im[j], im[i])
            }
        }
        let sign: Double = inverse ? -1 : 1
        var half = 1
        while half < m {
            let step = m / (2 * half)
            var start = 0
            while start < m {
                for k in 0..<half {
                    let wr = cosines[k * step]
                    let wi = sign * sines[k * step]
                    let a = start + k
                    let b = a + half
                    let tr = re[b] * wr - im[b] * wi
                    let ti = re[b] * wi + im[b] * wr
                    re[b] = re[a] - tr
                    im[b] = im[a] - ti
                    re[a] += tr
                    im[a] += ti
                }
                start += 2 * half
            }
            half *= 2
        }
    }

    private static func radix2(_ re: inout [Double], _ im: inout [Double], _ m: Int, _ c: [Double], _ s: [Double], inverse: Bool) {
        re.withUnsafeMutableBufferPointer { r in
            im.withUnsafeMutableBufferPointer { i in
                radix2(r.baseAddress!, i.baseAddress!, m, c, s, inverse: inverse)
            }
        }
    }
}
