@testable import Engine
import Foundation
import Tensors
import Testing

/// MaxPool's Indices output (1 to 3 spatial dimensions, storage_order 0 and 1, pads, dilations),
/// MaxUnpool back from them, LpPool with a p other than 1 and 2, and CenterCropPad on another
/// element type, against direct definitions.
@Suite struct PoolIndicesTests {
    struct Case: CustomStringConvertible, Sendable {
        var spatial = [5, 6], kernel = [2, 3], strides = [2, 1], pads = [0, 1, 1, 0], dilations = [1, 1]
        var columnMajor = false
        var description: String { "\(spatial) k\(kernel) s\(strides) p\(pads) d\(dilations) cm \(columnMajor)" }
    }

    static let cases: [Case] = [
        Case(),
        Case(columnMajor: true),
        Case(spatial: [9], kernel: [3], strides: [2], pads: [1, 1], dilations: [2], columnMajor: true),
        Case(spatial: [4, 5, 6], kernel: [2, 2, 3], strides: [2, 1, 2], pads: [0, 1, 0, 1, 0, 1], dilations: [1, 2, 1]),
        Case(spatial: [4, 5, 6], kernel: [2, 2, 2], strides: [1, 2, 2], pads: [1, 0, 0, 0, 1, 1], dilations: [1, 1, 1], columnMajor: true),
    ]

    /// Y and Indices of MaxPool: per output position the first maximum of its window (real
    /// elements only), its index the plane's offset plus its coordinates in row- or column-major
    /// order.
    static func reference(_ x: [Float], planes: Int, _ p: Case) -> (y: [Float], indices: [Int64], out: [Int]) {
        let r = p.spatial.count
        var out: [Int] = []
        for i in 0..<r {
            let extent: Int = (p.kernel[i] - 1) * p.dilations[i] + 1
            let span: Int = p.spatial[i] + p.pads[i] + p.pads[i + r] - extent
            out.append(span / p.strides[i] + 1)
        }
        let inSize = volume(p.spatial)
        var y: [Float] = []
        var indices: [Int64] = []
        for plane in 0..<planes {
            for o in 0..<volume(out) {
                let oi = unravel(o, out)
                var best = -Float.infinity
                var at = -1
                for t in 0..<volume(p.kernel) {
                    let ti = unravel(t, p.kernel)
                    var xi: [Int] = []
                    var inside = true
                    for d in 0..<r {
                        let position: Int = oi[d] * p.strides[d] - p.pads[d] + ti[d] * p.dilations[d]
                        if position < 0 || position >= p.spatial[d] { inside = false }
                        xi.append(position)
                    }
                    if !inside { continue }
                    var rowMajor = 0
                    for d in 0..<r { rowMajor = rowMajor * p.spatial[d] + xi[d] }
                    let v = x[plane * inSize + rowMajor]
                    if at < 0 || v > best {
                        best = v
                        if p.columnMajor {
                            var flat = 0
                            for d in stride(from: r - 1, through: 0, by: -1) { flat = flat * p.spatial[d] + xi[d] }
                            at = flat
                        } else {
                            at = rowMajor
                        }
                    }
                }
                y.append(best)
                indices.append(Int64(plane * inSize + at))
            }
        }
        return (y, indices, out)
    }

    @Test(arguments: cases)
    func maxPoolIndicesMatchTheDefinition(_ p: Case) throws {
        var rng = TestRNG(seed: 31)
        let shape = [2, 3] + p.spatial
        let x = rng.tensor(shape)
        let outputs = try runNode(
            "MaxPool", inputs: ["x"], feeds: [("x", x)],
            attributes: [
                "kernel_shape": .ints(p.kernel), "strides": .ints(p.strides), "pads": .ints(p.pads),
                "dilations": .ints(p.dilations), "storage_order": .int(p.columnMajor ? 1 : 0),
            ], outputs: ["y", "i"], opset: 12)
        let expected = Self.reference(x.scalars(as: Float.self), planes: 6, p)
        expectClose(outputs[0], expected.y, shape: [2, 3] + expected.out)
        #expect(outputs[1].dataType == .int64 && outputs[1].shape == [2, 3] + expected.out)
        #expect(outputs[1].scalars(as: Int64.self) == expected.indices)
    }

    /// MaxUnpool of MaxPool's output and (row-major) indices puts each maximum back where it was and
    /// zeros elsewhere; with output_shape, in the corner of a larger zero tensor.
    @Test(arguments: [false, true])
    func maxUnpoolInvertsMaxPool(withOutputShape: Bool) throws {
        var rng = TestRNG(seed: 32)
        let p = Case(spatial: [4, 4, 6], kernel: [2, 2, 3], strides: [2, 2, 3], pads: [0, 0, 0, 0, 0, 0], dilations: [1, 1, 1])
        let x = rng.tensor([1, 2] + p.spatial)
        let (y, indices, out) = Self.reference(x.scalars(as: Float.self), planes: 2, p)
        let attributes: [String: Attribute] = ["kernel_shape": .ints(p.kernel), "strides": .ints(p.strides)]
        let target = withOutputShape ? [1, 2, 5, 4, 7] : [1, 2] + p.spatial
        var feeds = [("x", Tensor(y, shape: [1, 2] + out)), ("i", Tensor(indices, shape: [1, 2] + out))]
        if withOutputShape { feeds.append(("s", Tensor(target.map { Int64($0) }, shape: [5]))) }
        let result = try runNode(
            "MaxUnpool", inputs: withOutputShape ? ["x", "i", "s"] : ["x", "i"], feeds: feeds, attributes: attributes,
            opset: 11)[0]
        var expected = [Float](repeating: 0, count: volume(target))
        for (v, index) in zip(y, indices) {
            let at = unravel(Int(index), [1, 2] + p.spatial)
            var flat = 0
            for d in 0..<5 { flat = flat * target[d] + at[d] }
            expected[flat] = v
        }
        expectClose(result, expected, shape: target)
    }

    @Test func maxUnpoolRejectsAnIndexOutsideTheOutput() {
        let error = engineError {
            _ = try runNode(
                "MaxUnpool", inputs: ["x", "i"],
                feeds: [("x", Tensor([1, 2] as [Float], shape: [1, 1, 2])), ("i", Tensor([0, 4] as [Int64], shape: [1, 1, 2]))],
                attributes: ["kernel_shape": .ints([2]), "strides": .ints([2])], opset: 11)
        }
        guard case .invalidInput(let m)? = error else {
            Issue.record("expected invalidInput, got \(String(describing: error))")
            return
        }
        #expect(m.contains("index 4"), "\(m)")
    }

    /// LpPool with p = 3: (sum of |x|^3 over the window's real elements)^(1/3); opset 1 gives p as a float.
    @Test(arguments: [1, 18])
    func lpPoolMatchesTheDefinition(opset: Int) throws {
        var rng = TestRNG(seed: 33)
        let x = rng.tensor([1, 2, 5, 6])
        let xs = x.scalars(as: Float.self)
        let y = try runSimple(
            "LpPool", [x],
            attributes: [
                "kernel_shape": .ints([2, 3]), "strides": .ints([1, 2]), "pads": .ints([1, 1, 0, 1]),
                "p": opset == 1 ? .float(3) : .int(3),
            ], opset: opset)
        var expected: [Float] = []
        for plane in 0..<2 {
            for oy in 0..<5 {
                for ox in 0..<3 {
                    var sum: Double = 0
                    for ky in 0..<2 {
                        for kx in 0..<3 {
                            let (iy, ix) = (oy - 1 + ky, ox * 2 - 1 + kx)
                            if iy < 0 || iy >= 5 || ix < 0 || ix >= 6 { continue }
                            sum += pow(abs(Double(xs[(plane * 5 + iy) * 6 + ix])), 3)
                        }
                    }
                    expected.append(Float(pow(sum, 1.0 / 3)))
                }
            }
        }
        expectClose(y, expected, shape: [1, 2, 5, 3])
    }

    /// CenterCropPad on int64 data: axis 0 cropped from 5 to 2 (start 1), axis -1 padded from 3 to 6
    /// (one zero before, two after).
    @Test func centerCropPadCropsAndPadsOtherTypes() throws {
        let x = Tensor((0..<30).map { Int64($0) }, shape: [5, 2, 3])
        let y = try runNode(
            "CenterCropPad", inputs: ["x", "s"], feeds: [("x", x), ("s", Tensor([2, 6] as [Int64], shape: [2]))],
            attributes: ["axes": .ints([0, -1])], opset: 18)[0]
        var expected: [Int64] = []
        for a in 1...2 {
            for b in 0..<2 {
                for c in -1..<5 { expected.append(c >= 0 && c < 3 ? Int64((a * 2 + b) * 3 + c) : 0) }
            }
        }
        #expect(y.shape == [2, 2, 6])
        #expect(y.scalars(as: Int64.self) == expected)
    }

    /// MaxPool's Indices count from the start of the batch, so a large batch through a MaxPool that
    /// produces them runs whole (a slice's indices would restart at 0), with the unsplit result.
    @Test func maxPoolWithIndicesKeepsTheBatchWhole() throws {
        let nodes = [
            Node(name: "relu", opType: "Relu", inputs: ["x"], outputs: ["r"]),
            Node(name: "pool", opType: "MaxPool", inputs: ["r"], outputs: ["y", "i"],
                attributes: ["kernel_shape": .ints([2, 2]), "strides": .ints([2, 2])]),
        ]
        let graph = Graph(
            nodes: nodes,
            inputs: [ValueInfo(name: "x", dataType: .float32, shape: [.symbolic("batch"), .fixed(16), .fixed(32), .fixed(32)])],
            outputs: [ValueInfo(name: "y", dataType: .float32, shape: nil), ValueInfo(name: "i", dataType: .int64, shape: nil)],
            initializers: [:])
        let plan = try Plan(model: GraphModel(graph: graph, opsets: ["": 12], irVersion: 8))
        var rng = TestRNG(seed: 34)
        let x = rng.tensor([300, 16, 32, 32])
        let expected = try plan.runUnplanned(["x": x])["i"]!
        _ = try plan.run(["x": x])
        let indices = try plan.run(["x": x])["i"]!
        #expect(indices.scalars(as: Int64.self) == expected.scalars(as: Int64.self))
        #expect(try plan.shapePlan(for: ["x": x]).split == nil)
    }
}
