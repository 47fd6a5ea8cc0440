import Engine
import Tensors
import Testing

/// The random generators, Dropout in training mode and BatchNormalization in training mode: what
/// the conformance suite cannot check by value (numpy's stream made its expected outputs).
@Suite struct RandomOpTests {
    /// A session of one node with no inputs (or fed ones) whose output is `y`.
    static func session(_ opType: String, inputs: [String] = [], feeds: [ValueInfo] = [], attributes: [String: Attribute])
        throws -> InferenceSession
    {
        let node = Node(name: "node0", opType: opType, inputs: inputs, outputs: ["y"], attributes: attributes)
        let graph = Graph(
            nodes: [node], inputs: feeds, outputs: [ValueInfo(name: "y", dataType: nil, shape: nil)], initializers: [:])
        return try InferenceSession(model: GraphModel(graph: graph, opsets: ["": 22], irVersion: 8))
    }

    static func moments(_ v: [Float]) -> (mean: Double, sd: Double) {
        let mean = v.reduce(0.0) { $0 + Double($1) } / Double(v.count)
        let variance = v.reduce(0.0) { $0 + (Double($1) - mean) * (Double($1) - mean) } / Double(v.count)
        return (mean, variance.squareRoot())
    }

    @Test func uniformDrawsAgainEveryRunAndRepeatsWithItsSeed() throws {
        let attributes: [String: Attribute] = [
            "shape": .ints([4, 250]), "low": .float(-2), "high": .float(3), "seed": .float(7),
        ]
        let a = try Self.session("RandomUniform", attributes: attributes)
        let first = try a.run([:])["y"]!.scalars(as: Float.self)
        let second = try a.run([:])["y"]!.scalars(as: Float.self)
        #expect(first.count == 1000)
        #expect(first != second, "a node without inputs must not fold into one constant draw")
        #expect(first.allSatisfy { $0 >= -2 && $0 < 3 })
        let (mean, sd) = Self.moments(first)
        // Uniform(-2, 3): mean 0.5, sd 5 / sqrt(12) = 1.443; the mean's own sd is 1.443 / sqrt(1000).
        #expect(abs(mean - 0.5) < 5 * 1.443 / 1000.0.squareRoot())
        #expect(abs(sd - 1.443) < 0.1)
        let b = try Self.session("RandomUniform", attributes: attributes)
        #expect(try b.run([:])["y"]!.scalars(as: Float.self) == first, "the same seed gives the same stream")
    }

    @Test func normalLikeTakesItsInputsShapeAndTheRequestedMoments() throws {
        let x = Tensor([Float](repeating: 0, count: 4000), shape: [40, 100])
        let s = try Self.session(
            "RandomNormalLike", inputs: ["x"], feeds: [ValueInfo(name: "x", dataType: .float32, shape: [.fixed(40), .fixed(100)])],
            attributes: ["mean": .float(3), "scale": .float(0.5)])
        let y = try s.run(["x": x])["y"]!
        #expect(y.shape == [40, 100] && y.dataType == .float32)
        let (mean, sd) = Self.moments(y.scalars(as: Float.self))
        #expect(abs(mean - 3) < 5 * 0.5 / 4000.0.squareRoot())
        #expect(abs(sd - 0.5) < 0.03)
    }

    @Test func bernoulliFollowsItsProbabilities() throws {
        let p = Tensor([Float](repeating: 0.2, count: 2000) + [0, 1], shape: [2002])
        let y = try runSimple("Bernoulli", [p], attributes: ["seed": .float(1), "dtype": .int(Int(DataType.int64.rawValue))], opset: 22)
        let v = y.scalars(as: Int64.self)
        #expect(y.dataType == .int64 && v.allSatisfy { $0 == 0 || $0 == 1 })
        #expect(v[2000] == 0 && v[2001] == 1)
        let ones = Double(v[..<2000].reduce(0, +))
        #expect(abs(ones - 400) < 5 * (2000 * 0.2 * 0.8).squareRoot())
    }

    @Test func multinomialSamplesInProportion() throws {
        // Row 0: probabilities 0.25 / 0.75 (log 1 and log 3); row 1: all mass on class 2.
        let logits = Tensor([0, Float(1.0986123), -1e30, -1e30, -1e30, 0], shape: [2, 3])
        let y = try runSimple("Multinomial", [logits], attributes: ["sample_size": .int(4000), "seed": .float(3)], opset: 22)
        #expect(y.shape == [2, 4000] && y.dataType == .int32)
        let v = y.scalars(as: Int32.self)
        let ones = v[..<4000].filter { $0 == 1 }.count
        #expect(v[..<4000].allSatisfy { $0 == 0 || $0 == 1 })
        #expect(abs(Double(ones) - 3000) < 5 * (4000 * 0.75 * 0.25).squareRoot())
        #expect(v[4000...].allSatisfy { $0 == 2 })
    }

    @Test func dropoutTrainsOnlyWhenAsked() throws {
        var rng = TestRNG(seed: 5)
        let x = rng.tensor([10, 300])
        let ratio = Tensor(scalar: Float(0.3))
        let on = try runNode(
            "Dropout", inputs: ["x", "r", "t"], feeds: [("x", x), ("r", ratio), ("t", Tensor(scalar: true))],
            attributes: ["seed": .int(2)], outputs: ["y", "mask"], opset: 13)
        let (xs, ys, mask) = (x.scalars(as: Float.self), on[0].scalars(as: Float.self), on[1].scalars(as: Bool.self))
        for i in xs.indices {
            #expect(abs(ys[i] - (mask[i] ? xs[i] / 0.7 : 0)) <= 1e-6 * abs(xs[i]))
        }
        let dropped = Double(mask.filter { !$0 }.count)
        #expect(abs(dropped - 900) < 5 * (3000 * 0.3 * 0.7).squareRoot())
        let off = try runNode(
            "Dropout", inputs: ["x", "r", "t"], feeds: [("x", x), ("r", ratio), ("t", Tensor(scalar: false))],
            outputs: ["y", "mask"], opset: 13)
        #expect(off[0].scalars(as: Float.self) == xs && off[1].scalars(as: Bool.self).allSatisfy { $0 })
    }

    @Test func batchNormalizationInTrainingModeUsesTheBatchStatistics() throws {
        var rng = TestRNG(seed: 9)
        let (n, c, hw) = (3, 2, 5)
        let x = rng.tensor([n, c, hw])
        let (scale, bias) = (Tensor([Float(1.5), 0.5], shape: [2]), Tensor([Float(0.1), -0.2], shape: [2]))
        let (mean, variance) = (Tensor([Float(0.3), -0.1], shape: [2]), Tensor([Float(2), 0.5], shape: [2]))
        let out = try runNode(
            "BatchNormalization", inputs: ["x", "s", "b", "m", "v"], feeds: [("x", x)],
            initializers: ["s": scale, "b": bias, "m": mean, "v": variance],
            attributes: ["training_mode": .int(1), "momentum": .float(0.8), "epsilon": .float(1e-3)],
            outputs: ["y", "running_mean", "running_var"], opset: 15)
        let xs = x.scalars(as: Float.self)
        let y = out[0].scalars(as: Float.self)
        for ch in 0..<c {
            let values = (0..<n).flatMap { img in (0..<hw).map { xs[(img * c + ch) * hw + $0] } }
            let (m, sd) = Self.moments(values)
            let expectedMean = Double(mean.scalars(as: Float.self)[ch]) * 0.8 + m * 0.2
            let expectedVar = Double(variance.scalars(as: Float.self)[ch]) * 0.8 + sd * sd * 0.2
            #expect(abs(Double(out[1].scalars(as: Float.self)[ch]) - expectedMean) < 1e-5)
            #expect(abs(Double(out[2].scalars(as: Float.self)[ch]) - expectedVar) < 1e-5)
            for img in 0..<n {
                for i in 0..<hw {
                    let k = (img * c + ch) * hw + i
                    let want = (Double(xs[k]) - m) / (sd * sd + 1e-3).squareRoot()
                        * Double(scale.scalars(as: Float.self)[ch]) + Double(bias.scalars(as: Float.self)[ch])
                    #expect(abs(Double(y[k]) - want) < 1e-4)
                }
            }
        }
    }
}
