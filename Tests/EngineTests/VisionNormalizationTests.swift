import Engine
import Tensors
import Testing

/// GroupNormalization (both opsets' scale layouts), LpNormalization and MeanVarianceNormalization
/// against direct definitions, for the cases the conformance suite does not cover (opset 18's
/// per-group scale, axes in the middle, zero norms, axes other than the default).
@Suite struct VisionNormalizationTests {
    /// Mean and population variance of `values`, in Double.
    static func moments(_ values: [Float]) -> (Double, Double) {
        let mean = values.reduce(0.0) { $0 + Double($1) } / Double(values.count)
        let variance = values.reduce(0.0) { $0 + (Double($1) - mean) * (Double($1) - mean) } / Double(values.count)
        return (mean, variance)
    }

    @Test(arguments: [18, 21])
    func groupNormalizationMatchesTheDefinition(opset: Int) throws {
        var rng = TestRNG(seed: 21)
        let (n, c, h, w, groups) = (2, 6, 3, 5, 3)
        let x = rng.tensor([n, c, h, w])
        let params = opset >= 21 ? c : groups
        let scale = rng.tensor([params])
        let bias = rng.tensor([params])
        let y = try runNode(
            "GroupNormalization", inputs: ["x", "scale", "bias"], feeds: [("x", x)],
            initializers: ["scale": scale, "bias": bias], attributes: ["num_groups": .int(groups), "epsilon": .float(1e-3)],
            opset: opset)[0]
        let xs = x.scalars(as: Float.self)
        let (sc, bs) = (scale.scalars(as: Float.self), bias.scalars(as: Float.self))
        let perGroup = c / groups * h * w
        var expected = [Float](repeating: 0, count: xs.count)
        for img in 0..<n {
            for g in 0..<groups {
                let start = (img * groups + g) * perGroup
                let (mean, variance) = Self.moments(Array(xs[start..<(start + perGroup)]))
                for i in 0..<perGroup {
                    let ch = g * (c / groups) + i / (h * w)
                    let k = opset >= 21 ? ch : g
                    let normal = (Double(xs[start + i]) - mean) / (variance + 1e-3).squareRoot()
                    expected[start + i] = Float(normal * Double(sc[k]) + Double(bs[k]))
                }
            }
        }
        expectClose(y, expected, shape: x.shape)
    }

    @Test func groupNormalizationRejectsScaleOfTheOtherOpset() {
        var rng = TestRNG(seed: 22)
        let error = engineError {
            _ = try runNode(
                "GroupNormalization", inputs: ["x", "scale", "bias"], feeds: [("x", rng.tensor([1, 4, 2, 2]))],
                initializers: ["scale": rng.tensor([4]), "bias": rng.tensor([4])], attributes: ["num_groups": .int(2)],
                opset: 18)
        }
        guard case .invalidInput(let m)? = error else {
            Issue.record("expected invalidInput, got \(String(describing: error))")
            return
        }
        #expect(m.contains("one per group"), "\(m)")
    }

    @Test(arguments: [(1, 1), (2, 1), (2, 0), (1, -1), (2, 2)])
    func lpNormalizationMatchesTheDefinition(p: Int, axis: Int) throws {
        var rng = TestRNG(seed: 23)
        let shape = [3, 4, 5]
        var values = rng.floats(volume(shape))
        // A zero column along every axis choice: its output is zero.
        for j in 0..<4 { values[j * 5] = 0 }
        values[0] = 0
        values[1] = 0
        let x = Tensor(values, shape: shape)
        let y = try runSimple("LpNormalization", [x], attributes: ["p": .int(p), "axis": .int(axis)], opset: 22)
        let a = axis < 0 ? axis + 3 : axis
        var expected = [Float](repeating: 0, count: values.count)
        for flat in 0..<values.count {
            var index = unravel(flat, shape)
            var norm: Double = 0
            for j in 0..<shape[a] {
                index[a] = j
                let v = Double(values[(index[0] * 4 + index[1]) * 5 + index[2]])
                norm += p == 1 ? abs(v) : v * v
            }
            if p == 2 { norm = norm.squareRoot() }
            expected[flat] = norm == 0 ? 0 : Float(Double(values[flat]) / norm)
        }
        expectClose(y, expected, shape: shape)
    }

    @Test(arguments: [[0, 2, 3], [1, 3], [-1], [0, 1, 2, 3]])
    func meanVarianceNormalizationMatchesTheDefinition(axes: [Int]) throws {
        var rng = TestRNG(seed: 24)
        let shape = [2, 3, 4, 5]
        let x = rng.tensor(shape)
        let y = try runSimple("MeanVarianceNormalization", [x], attributes: ["axes": .ints(axes)], opset: 13)
        let xs = x.scalars(as: Float.self)
        let reduced = Set(axes.map { $0 < 0 ? $0 + 4 : $0 })
        // Group the elements by their coordinates on the kept axes.
        var groups: [[Int]: [Int]] = [:]
        for flat in 0..<xs.count {
            let index = unravel(flat, shape)
            let key = (0..<4).map { reduced.contains($0) ? 0 : index[$0] }
            groups[key, default: []].append(flat)
        }
        var expected = [Float](repeating: 0, count: xs.count)
        for members in groups.values {
            let (mean, variance) = Self.moments(members.map { xs[$0] })
            for i in members { expected[i] = Float((Double(xs[i]) - mean) / (variance.squareRoot() + 1e-9)) }
        }
        expectClose(y, expected, shape: shape)
    }
}
