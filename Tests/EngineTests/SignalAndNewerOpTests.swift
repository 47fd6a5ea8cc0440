import Foundation
@testable import Engine
import Tensors
import Testing

/// DFT and STFT against the O(n^2) definition at lengths the conformance cases do not use (primes
/// and other non-powers of two go through Bluestein's transform), Swish as a fused activation,
/// and the errors of RotaryEmbedding and MelWeightMatrix.
@Suite struct SignalAndNewerOpTests {
    /// sum_t x[t] exp(-+2 pi i k t / n) for k < n, in double precision.
    static func directDFT(_ re: [Double], _ im: [Double], inverse: Bool) -> ([Double], [Double]) {
        let n = re.count
        let sign: Double = inverse ? 1 : -1
        var outRe = [Double](repeating: 0, count: n)
        var outIm = [Double](repeating: 0, count: n)
        for k in 0..<n {
            for t in 0..<n {
                let a = sign * 2 * Double.pi * Double((k * t) % n) / Double(n)
                outRe[k] += re[t] * cos(a) - im[t] * sin(a)
                outIm[k] += re[t] * sin(a) + im[t] * cos(a)
            }
        }
        return (outRe, outIm)
    }

    @Test(arguments: [1, 2, 7, 12, 37, 64, 100])
    func fftMatchesTheDefinition(n: Int) {
        var rng = TestRNG(seed: UInt64(n))
        let re = (0..<n).map { _ in Double(rng.float()) }
        let im = (0..<n).map { _ in Double(rng.float()) }
        let fft = FFT(length: n)
        for inverse in [false, true] {
            var r = re
            var i = im
            var work = [Double](repeating: 0, count: max(1, fft.workCount))
            r.withUnsafeMutableBufferPointer { pr in
                i.withUnsafeMutableBufferPointer { pi in
                    work.withUnsafeMutableBufferPointer { pw in
                        fft.transform(pr.baseAddress!, pi.baseAddress!, inverse: inverse, work: pw.baseAddress!)
                    }
                }
            }
            let (wr, wi) = Self.directDFT(re, im, inverse: inverse)
            let worst = zip(r + i, wr + wi).map { abs($0 - $1) }.max() ?? 0
            #expect(worst < 1e-9 * Double(n), "n \(n) inverse \(inverse): worst error \(worst)")
        }
    }

    /// A real signal of odd length through DFT one-sided, then back through the inverse one-sided
    /// DFT (irfft) with that length, is the signal again; the spectrum matches the definition.
    @Test func oneSidedRoundTripAtAnOddLength() throws {
        var rng = TestRNG(seed: 21)
        let n = 15
        let x = rng.floats(2 * n)
        let signal = Tensor(x, shape: [2, n, 1])
        let length = Tensor(scalar: Int64(n))
        let spectrum = try runNode(
            "DFT", inputs: ["x", "", "axis"], feeds: [("x", signal)], initializers: ["axis": Tensor(scalar: Int64(1))],
            attributes: ["onesided": .int(1)], opset: 20)[0]
        #expect(spectrum.shape == [2, n / 2 + 1, 2])
        let (wr, wi) = Self.directDFT(x[0..<n].map(Double.init), [Double](repeating: 0, count: n), inverse: false)
        let got = spectrum.scalars(as: Float.self)
        for k in 0...(n / 2) {
            #expect(abs(Double(got[2 * k]) - wr[k]) < 1e-4 && abs(Double(got[2 * k + 1]) - wi[k]) < 1e-4)
        }
        let back = try runNode(
            "DFT", inputs: ["s", "n"], feeds: [("s", spectrum)], initializers: ["n": length],
            attributes: ["onesided": .int(1), "inverse": .int(1)], opset: 17)[0]
        expectClose(back, x, shape: [2, n, 1])
    }

    /// STFT frames against the definition: a window, a hop that leaves a tail unused.
    @Test func stftFramesAreWindowedDFTs() throws {
        var rng = TestRNG(seed: 22)
        let (length, frame, step) = (50, 12, 7)
        let x = rng.floats(length)
        let window = (0..<frame).map { Float(0.5 - 0.5 * cos(2 * Double.pi * Double($0) / Double(frame))) }
        let out = try runNode(
            "STFT", inputs: ["x", "step", "w"], feeds: [("x", Tensor(x, shape: [1, length, 1]))],
            initializers: ["step": Tensor(scalar: Int64(step)), "w": Tensor(window, shape: [frame])], opset: 17)[0]
        let frames = 1 + (length - frame) / step
        let bins = frame / 2 + 1
        var want: [Float] = []
        for f in 0..<frames {
            let re = (0..<frame).map { Double(x[f * step + $0] * window[$0]) }
            let (wr, wi) = Self.directDFT(re, [Double](repeating: 0, count: frame), inverse: false)
            for k in 0..<bins { want += [Float(wr[k]), Float(wi[k])] }
        }
        expectClose(out, want, shape: [1, frames, bins, 2])
    }

    /// Swish after a Gemm becomes the Gemm's epilogue, with its alpha, and gives x * sigmoid(alpha x).
    @Test func swishFusesIntoGemm() throws {
        var rng = TestRNG(seed: 23)
        let w = rng.tensor([5, 4])
        let x = rng.tensor([3, 4])
        let nodes = [
            Node(name: "gemm", opType: "Gemm", inputs: ["x", "w"], outputs: ["g"], attributes: ["transB": .int(1)]),
            Node(name: "swish", opType: "Swish", inputs: ["g"], outputs: ["y"], attributes: ["alpha": .float(1.7)]),
        ]
        let graph = Graph(
            nodes: nodes, inputs: [ValueInfo(name: "x", dataType: .float32, shape: [.fixed(3), .fixed(4)])],
            outputs: [ValueInfo(name: "y", dataType: .float32, shape: nil)], initializers: ["w": w])
        let model = GraphModel(graph: graph, opsets: ["": 24], irVersion: 10)
        #expect(GraphOptimizer.optimize(model, registry: .cpu).graph.nodes.map(\.opType) == ["Gemm"])
        let y = try InferenceSession(model: model).run(["x": x])["y"]!
        let (xs, ws) = (x.scalars(as: Float.self), w.scalars(as: Float.self))
        var want: [Float] = []
        for i in 0..<3 {
            for j in 0..<5 {
                let g = (0..<4).reduce(Float(0)) { $0 + xs[i * 4 + $1] * ws[j * 4 + $1] }
                want.append(g / (1 + exp(-1.7 * g)))
            }
        }
        expectClose(y, want, shape: [3, 5])
    }

    @Test func rotaryEmbeddingRefusesPositionsOutsideTheCache() throws {
        var rng = TestRNG(seed: 24)
        let node = Node(name: "rope", opType: "RotaryEmbedding", inputs: ["x", "c", "s", "p"], outputs: ["y"], attributes: [:])
        let kernel = try RotaryEmbeddingKernel(context: NodeContext(node: node, opset: 23))
        let x = rng.tensor([1, 2, 3, 4])
        let cache = rng.tensor([5, 2])
        let positions = Tensor([Int64(0), 1, 5], shape: [1, 3])
        #expect(throws: KernelError.shape("RotaryEmbedding's position id 5 is outside the caches' 5 rows")) {
            try kernel.run([x, cache, cache, positions])
        }
    }

    /// BitShift's edges: shifts outside 0..<width give 0 (or the sign fill to the right), signed
    /// values shift their two's-complement bits.
    @Test func bitShiftEdges() throws {
        let x = Tensor([Int32(-8), 5, Int32.min, 1], shape: [4])
        let s = Tensor([Int32(1), 32, 1, -1], shape: [4])
        let left = try runSimple("BitShift", [x, s], attributes: ["direction": .string(Array("LEFT".utf8))], opset: 28)
        #expect(left.scalars(as: Int32.self) == [-16, 0, 0, 0])
        let right = try runSimple("BitShift", [x, s], attributes: ["direction": .string(Array("RIGHT".utf8))], opset: 28)
        #expect(right.scalars(as: Int32.self) == [-4, 0, Int32.min >> 1, 0])
    }
}
