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
