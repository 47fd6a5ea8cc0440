import Engine
import Tensors
import Testing

/// Einsum against a brute-force sum over every label assignment.
@Suite struct EinsumTests {
    /// Evaluates `equation` (explicit output, no ellipsis) by enumerating all label values.
    static func reference(_ equation: String, _ inputs: [Tensor]) -> ([Float], [Int]) {
        let parts = equation.split(separator: "-")
        let terms = parts[0].split(separator: ",").map { Array($0) }
        let out = Array(parts[1].dropFirst())
        var sizes: [Character: Int] = [:]
        for (t, x) in zip(terms, inputs) { for (c, d) in zip(t, x.shape) { sizes[c] = d } }
        let labels = Array(sizes.keys).sorted()
        let values = inputs.map { $0.scalars(as: Float.self) }
        let outShape = out.map { sizes[$0]! }
        var result = [Float](repeating: 0, count: volume(outShape))
        for flat in 0..<volume(labels.map { sizes[$0]! }) {
            let idx = unravel(flat, labels.map { sizes[$0]! })
            let value = { (c: Character) in idx[labels.firstIndex(of: c)!] }
            var product: Float = 1
            for (t, (x, v)) in zip(terms, zip(inputs, values)) {
                var o = 0
                for (c, d) in zip(t, x.shape) { o = o * d + value(c) }
                product *= v[o]
            }
            var o = 0
            for (c, d) in zip(out, outShape) { o = o * d + value(c) }
            result[o] += product
        }
        return (result, outShape)
    }

    static let cases: [(String, [[Int]])] = [
        ("bhqd,bhkd->bhqk", [[2, 3, 4, 5], [2, 3, 6, 5]]),  // attention scores (B used transposed)
        ("bhqk,bhkd->bhqd", [[2, 3, 4, 6], [2, 3, 6, 5]]),  // attention context
        ("abc,cd->abd", [[2, 3, 4], [4, 5]]),  // dense layer on a sequence
        ("abcd,cde->abe", [[2, 3, 4, 5], [4, 5, 6]]),  // Keras MHA output projection
        ("abc,cde->abde", [[2, 3, 4], [4, 5, 6]]),  // Keras MHA query projection
        ("aecd,abcd->acbe", [[2, 3, 4, 5], [2, 6, 4, 5]]),  // Keras MHA attention scores
        ("acbe,aecd->abcd", [[2, 4, 6, 3], [2, 3, 4, 5]]),  // Keras MHA context
        ("ij,jk->ik", [[3, 4], [4, 5]]),
        ("ij->ji", [[3, 4]]),
        ("ij->i", [[3, 4]]),
        ("ij,ij->ij", [[3, 4], [3, 4]]),
        ("i,j->ij", [[3], [4]]),
        ("ij,jk,kl->il", [[2, 3], [3, 4], [4, 2]]),
        ("bij,bjk->bik", [[3, 2, 4], [3, 4, 5]]),
        // Repeated labels inside an operand: its diagonal (trace, batch diagonal, diagonal times matrix).
        ("ii->", [[4, 4]]),
        ("ii->i", [[4, 4]]),
        ("bii->bi", [[2, 3, 3]]),
        ("iij,jk->ik", [[3, 3, 4], [4, 2]]),
        ("ijij->ji", [[2, 3, 2, 3]]),
    ]

    @Test(arguments: cases.indices)
    func matchesBruteForce(_ index: Int) throws {
        let (equation, shapes) = Self.cases[index]
        var rng = TestRNG(seed: UInt64(100 + index))
        let inputs = shapes.map { rng.tensor($0) }
        let (expected, shape) = Self.reference(equation, inputs)
        let y = try runSimple("Einsum", inputs, attributes: ["equation": .string(Array(equation.utf8))], opset: 12)
        expectClose(y, expected, shape: shape)
    }

    @Test func ellipsisAndImplicitOutput() throws {
        var rng = TestRNG(seed: 120)
        let a = rng.tensor([2, 3, 4, 5])
        let b = rng.tensor([2, 3, 5, 6])
        let explicit = try runSimple("Einsum", [a, b], attributes: ["equation": .string(Array("...ij,...jk->...ik".utf8))])
        let matmul = try runSimple("MatMul", [a, b])
        expectClose(explicit, matmul.scalars(as: Float.self), shape: [2, 3, 4, 6])
        // Implicit output: labels appearing once, in alphabetical order ("ij,jk" -> "ik").
        let c = rng.tensor([4, 5])
        let d = rng.tensor([5, 3])
        let implicit = try runSimple("Einsum", [c, d], attributes: ["equation": .string(Array("ij,jk".utf8))])
        expectClose(implicit, try runSimple("MatMul", [c, d]).scalars(as: Float.self), shape: [4, 3])
    }
}
