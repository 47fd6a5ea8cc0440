@testable import Engine
import Foundation
import Testing

/// The eight-lane exp and erf against libm.
@Suite struct VectorMathTests {
    func lanes(_ values: [Float], _ f: (SIMD8<Float>) -> SIMD8<Float>) -> [Float] {
        var out: [Float] = []
        var i = 0
        while i < values.count {
            var v = SIMD8<Float>(repeating: 0)
            for k in 0..<8 where i + k < values.count { v[k] = values[i + k] }
            let r = f(v)
            for k in 0..<8 where i + k < values.count { out.append(r[k]) }
            i += 8
        }
        return out
    }

    @Test func expMatchesLibm() {
        let xs = stride(from: Float(-86), through: 88.7, by: 0.0137).map { $0 }
        let got = lanes(xs, VectorMath.exp)
        for (x, y) in zip(xs, got) {
            let want = Foundation.exp(x)
            #expect(abs(y - want) <= 4e-7 * want, "exp(\(x)) = \(y), libm \(want)")
        }
        let special = lanes([-.infinity, -1e30, -100, .nan, 1e30, .infinity, 0, 1], VectorMath.exp)
        #expect(special[0] == 0 && special[1] == 0 && special[2] == 0)
        #expect(special[3].isNaN)
        #expect(special[4] == .infinity && special[5] == .infinity)
        #expect(special[6] == 1)
    }

    /// Sigmoid and Swish (C kernels at each level this CPU runs, Swift for the tail) against a
    /// double-precision reference: within a few float ulps (below 1e-30 the vector exp saturates
    /// to 0 or inf, as documented), 0 and 1 at the extremes, NaN kept.
    /// 1003 values, so every level has a tail the Swift loop finishes.
    @Test(arguments: CPULevel.testable)
    func sigmoidAndSwishMatchTheDefinition(_ level: CPULevel) {
        var xs = stride(from: Float(-100), through: 100, by: 0.2).map { $0 }
        xs += [-88.8, -87.34, -87.3, 0, -0.0, 87.3, 88.7, 88.8, .nan]
        for alpha: Float in [1, 1.7] {
            var sig = [Float](repeating: 0, count: xs.count)
            var swish = [Float](repeating: 0, count: xs.count)
            CPULevel.withLevel(level) {
                UnaryKernel.sigmoid(xs, &sig, xs.count)
                UnaryKernel.swish(xs, &swish, xs.count, alpha: alpha)
            }
            for (i, x) in xs.enumerated() {
                if x.isNaN {
                    #expect(sig[i].isNaN && swish[i].isNaN)
                    continue
                }
                let s = 1 / (1 + Foundation.exp(-Double(x)))
                #expect(abs(Double(sig[i]) - s) <= 5e-7 * s + 1e-30, "\(level) sigmoid(\(x)) = \(sig[i]), want \(s)")
                // The argument rounded to float as the kernels round it (exp would otherwise
                // differ by about |alpha x| float ulps of its argument).
                let w = Double(x) / (1 + Foundation.exp(Double(-alpha * x)))
                #expect(abs(Double(swish[i]) - w) <= 5e-7 * abs(w) + 1e-30, "\(level) swish(\(x), \(alpha)) = \(swish[i]), want \(w)")
            }
            #expect(sig[0] == 0 && sig[xs.count - 2] == 1 && sig[xs.count - 3] == 1)
        }
    }

    @Test func erfMatchesLibm() {
        let xs = stride(from: Float(-6), through: 6, by: 0.00071).map { $0 } + [0, 1e-6, -1e-6, 1e-30]
        let got = lanes(xs, VectorMath.erf)
        for (x, y) in zip(xs, got) {
            let want = Foundation.erf(x)
            #expect(abs(y - want) <= 2e-7 + 2e-6 * abs(want), "erf(\(x)) = \(y), libm \(want)")
        }
        #expect(lanes([.nan], VectorMath.erf)[0].isNaN)
    }
}
