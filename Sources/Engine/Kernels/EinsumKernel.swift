import Tensors

/// Einsum (float32, float64); a label repeated inside one operand takes its diagonal first. Operands are
/// contracted left to right, two at a time: labels only one side needs are summed first, then both
/// sides are laid out as [batch, free, contracted] (a transpose only when their order differs; a
/// B stored as [batch, free, contracted] is used as is with transB) and multiplied with one sgemm
/// per batch entry. The result is transposed to the output's label order. The last step writes the
/// output (the plan's buffer when given): the last multiplication when its labels are already in the
/// output's order, else the final sum or transpose (or a copy). Intermediate operands that need a
/// sum or a transpose are new tensors. Covers the attention
/// patterns exporters emit ("bhqd,bhkd->bhqk", "bhqk,bhkd->bhqd", "abc,cd->abd") and ellipses.
struct EinsumKernel: BufferedKernel {
    /// Labels per input term ("..." still unexpanded as `nil` entries marking its place), and output.
    let terms: [[Character]]
    let output: [Character]?

    init(context: NodeContext) throws {
        guard context.inputCount >= 1 else { throw context.invalid("needs one or more inputs") }
        guard let equation = try context.string("equation") else { throw context.invalid("has no 'equation'") }
        // "..." becomes "*"; "->" becomes ">".
        var chars: [Character] = []
        var rest = Substring(equation.filter { $0 != " " })
        while let c = rest.first {
            if rest.hasPrefix("...") {
                chars.append("*")
                rest = rest.dropFirst(3)
            } else if rest.hasPrefix("->") {
                chars.append(">")
                rest = rest.dropFirst(2)
            } else {
                chars.append(c)
                rest = rest.dropFirst()
            }
        }
        let sides = chars.split(separator: ">", omittingEmptySubsequences: false)
        guard sides.count <= 2 else { throw context.invalid("has a malformed equation '\(equation)'") }
        terms = sides[0].split(separator: ",", omittingEmptySubsequences: false).map { Array($0) }
        output = sides.count == 2 ? Array(sides[1]) : nil
        guard terms.count == context.inputCount else {
            throw context.invalid("has \(terms.count) terms in '\(equation)' for \(context.inputCount) inputs")
        }
        // A label repeated inside an input term takes that operand's diagonal; the output's are unique.
        for t in terms + [output ?? []] where t.contains(where: { !$0.isLetter && $0 != "*" }) {
            throw context.invalid("has a label that is not a letter in '\(equation)'")
        }
        if let output, Set(output).count != output.count {
            throw context.invalid("repeats a label in the output of '\(equation)'")
        }
    }

    func run(_ inputs: [Tensor?], into buffer: Tensor?) throws -> [Tensor] {
        let xs = try inputs.indices.map { try Check.input(inputs, $0, "input \($0)") }
        for x in xs { try Check.dataType(x, [xs[0].dataType == .float64 ? .float64 : .float32], "Einsum input") }
        return xs[0].dataType == .float64 ? try run(xs, Double.self, into: buffer) : try run(xs, Float.self, into: buffer)
    }

    /// Einsum of inputs of float type `T`: contracted pairwise left to right with GEMMs.
    private func run<T: BLASElement>(_ xs: [Tensor], _: T.Type, into buffer: Tensor?) throws -> [Tensor] {
        // Expand the ellipsis into private labels (uppercase Greek), right-aligned across operands.
        let ellipsisRank = try zip(terms, xs).map { term, x -> Int in
            let named = term.filter { $0 != "*" }.count
            guard term.contains("*") ? x.rank >= named : x.rank == named else {
                throw KernelError.shape("Einsum term '\(String(term))' does not fit an input of shape \(x.shape)")
            }
            return x.rank - named
        }.max() ?? 0
        let hidden = (0..<ellipsisRank).map { Character(UnicodeScalar(0x391 + $0)!) }
        var labels: [[Character]] = []
        for (term, x) in zip(terms, xs) {
            let own = x.rank - term.filter { $0 != "*" }.count
            labels.append(term.flatMap { $0 == "*" ? Array(hidden.suffix(own)) : [$0] })
        }
        var operands = xs
        for i in operands.indices where Set(labels[i]).count != labels[i].count {
            (operands[i], labels[i]) = try Self.diagonal(T.self, operands[i], labels[i])
        }
        let xs = operands
        var outLabels: [Character]
        if let output {
            outLabels = output.flatMap { $0 == "*" ? hidden : [$0] }
        } else {
            let all = terms.flatMap { $0 }.filter { $0 != "*" }
            outLabels = hidden + Set(all).filter { c in all.filter { $0 == c }.count == 1 }.sorted()
        }
        var sizes: [Character: Int] = [:]
        for (l, x) in zip(labels, xs) {
            for (c, d) in zip(l, x.shape) {
                if let s = sizes[c], s != d {
                    throw KernelError.shape("Einsum label '\(c)' has sizes \(s) and \(d)")
                }
                sizes[c] = d
            }
        }
        guard Set(outLabels).isSubset(of: labels.flatMap { $0 }) else {
            throw KernelError.failed("Einsum output labels \(String(outLabels)) do not appear in the inputs")
        }
        let out = try Output.tensor(buffer, T.dataType, outLabels.map { sizes[$0]! })
        var current = xs[0]
        var currentLabels = labels[0]
        var written = false  // whether `current` is the output
        for i in 1..<max(xs.count, 1) {
            let later = Set(outLabels + labels[(i + 1)...].flatMap { $0 })
            let last = i == xs.count - 1
            (current, currentLabels, written) = try Self.contract(
                T.self, current, currentLabels, xs[i], labels[i], keep: later,
                into: last ? (outLabels, out) : nil)
        }
        if written { return [out] }
        let keep = Set(outLabels)
        if currentLabels.allSatisfy(keep.contains) {
            Self.permute(current, currentLabels, to: outLabels, into: out)
        } else if currentLabels.filter(keep.contains) == outLabels {
            Self.sumOut(T.self, current, currentLabels, keep: keep, into: out)
        } else {
            let (summed, summedLabels) = Self.sumOut(T.self, current, currentLabels, keep: keep)
            Self.permute(summed, summedLabels, to: outLabels, into: out)
        }
        return [out]
    }

    /// The diagonal of `x` over each label `labels` repeats ("ii" -> "i"): one dimension per distinct
    /// label, in first-occurrence order, reading the elements whose repeated indices are equal.
    static func diagonal<T: BLASElement>(_: T.Type, _ x: Tensor, _ labels: [Character]) throws -> (Tensor, [Character]) {
        var unique: [Character] = []
        for c in labels where !unique.contains(c) { unique.append(c) }
        var strides = [Int](repeating: 1, count: x.rank)
        for d in stride(from: x.rank - 2, through: 0, by: -1) { strides[d] = strides[d + 1] * x.shape[d + 1] }
        var shape: [Int] = []
        var steps: [Int] = []  // input stride of one step along each output dimension
        for c in unique {
            let at = labels.indices.filter { labels[$0] == c }
            guard Set(at.map { x.shape[$0] }).count == 1 else {
                throw KernelError.shape("Einsum label '\(c)' has different sizes within one operand \(x.shape)")
            }
            shape.append(x.shape[at[0]])
            steps.append(at.reduce(0) { $0 + strides[$1] })
        }
        let out = try Tensor(allocating: T.dataType, shape: shape)
        let src = x.elements(as: T.self)
        let dst = out.mutableElements(as: T.self)
        var index = [Int](repeating: 0, count: shape.count)
        var offset = 0
        for k in 0..<out.count {
            dst[k] = src[offset]
            var d = shape.count - 1
            while d >= 0 {
                index[d] += 1
                offset += steps[d]
                if index[d] < shape[d] { break }
                offset -= steps[d] * shape[d]
                index[d] = 0
                d -= 1
            }
        }
        return (out, unique)
    }

    /// Sums `x` over the labels not in `keep` into `out` (of the kept labels' sizes, in `labels`' order).
    static func sumOut<T: BLASElement>(_: T.Type, _ x: Tensor, _ labels: [Character], keep: Set<Character>, into out: Tensor) {
        var outShape = x.shape
        for (i, c) in labels.enumerated() where !keep.contains(c) { outShape[i] = 1 }
        ReduceKernel.reduce(
            x.elements(as: T.self).baseAddress, x.shape, outShape, T(0),
            into: out.mutableElements(as: T.self).baseAddress!
        ) { $0 + $1 }
    }

    /// `x` with its axes reordered from `labels` to `target`, written into `out` (a copy when in order).
    static func permute(_ x: Tensor, _ labels: [Character], to target: [Character], into out: Tensor) {
        guard out.count > 0 else { return }
        let strides = Broadcast.contiguousStrides(x.shape)
        let perm = target.map { c in labels.firstIndex(of: c)! }
        StridedCopy.copy(
            x.rawBytes.baseAddress!, strides: perm.map { strides[$0] }, shape: perm.map { x.shape[$0] },
            to: out.mutableBytes.baseAddress!, elementSize: x.dataType.byteSize)
    }

    /// Sums over the labels of `x` that are not in `keep`.
    static func sumOut<T: BLASElement>(_: T.Type, _ x: Tensor, _ labels: [Character], keep: Set<Character>) -> (Tensor, [Character]) {
        let kept = labels.filter { keep.contains($0) }
        if kept.count == labels.count { return (x, labels) }
        var outShape = x.shape
        for (i, c) in labels.enumerated() where !keep.contains(c) { outShape[i] = 1 }
        let r = ReduceKernel.reduce(x, outShape, T(0)) { $0 + $1 }
        return (r.reshaped(zip(labels, x.shape).filter { keep.contains($0.0) }.map(\.1)), kept)
    }

    /// `x` with its axes reordered from `labels` to `target` (no copy when already in order).
    static func permute(_ x: Tensor, _ labels: [Character], to target: [Character]) throws -> Tensor {
        if labels == target { return x }
        let strides = Broadcast.contiguousStrides(x.shape)
        let perm = target.map { c in labels.firstIndex(of: c)! }
        return try StridedCopy.tensor(x, shape: perm.map { x.shape[$0] }, strides: perm.map { strides[$0] })
    }

    /// Contracts two operands, keeping the labels in `keep` (plus those both share and `keep` holds).
    /// When `final` is given (the output's labels and tensor) and the product's labels are in that
    /// order, the product is written into that tensor (third result true).
    static func contract<T: BLASElement>(
        _: T.Type, _ a0: Tensor, _ la0: [Character], _ b0: Tensor, _ lb0: [Character], keep: Set<Character>,
        into final: ([Character], Tensor)? = nil
    ) throws -> (Tensor, [Character], Bool) {
        let (a, la) = sumOut(T.self, a0, la0, keep: keep.union(lb0))
        let (b, lb) = sumOut(T.self, b0, lb0, keep: keep.union(la0))
        let batch = la.filter { lb.contains($0) && keep.contains($0) }
        let inner = la.filter { lb.contains($0) && !keep.contains($0) }
        let aFree = la.filter { !lb.contains($0) }
        let bFree = lb.filter { !la.contains($0) }
        func size(_ t: Tensor, _ l: [Character], _ cs: [Character]) -> Int {
            cs.reduce(1) { $0 * t.shape[l.firstIndex(of: $1)!] }
        }
        let batchCount = size(a, la, batch)
        let m = size(a, la, aFree)
        let k = size(a, la, inner)
        let n = size(b, lb, bFree)
        let pa = try permute(a, la, to: batch + aFree + inner)
        let transB = lb == batch + bFree + inner
        let pb = transB ? b : try permute(b, lb, to: batch + inner + bFree)
        let outLabels = batch + aFree + bFree
        let outShape = outLabels.map { c in la.firstIndex(of: c).map { a.shape[$0] } ?? b.shape[lb.firstIndex(of: c)!] }
        let written = final.map { $0.0 == outLabels } ?? false
        let out = written ? final!.1 : try Tensor(allocating: T.dataType, shape: outShape)
        if out.count == 0 { return (out, outLabels, written) }
        let x = pa.elements(as: T.self).baseAddress!
        let y = pb.elements(as: T.self).baseAddress!
        let z = out.mutableElements(as: T.self).baseAddress!
        for i in 0..<batchCount {
            T.gemm(
                transA: false, transB: transB, m: m, n: n, k: k, a: x + i * m * k, lda: k, b: y + i * k * n,
                ldb: transB ? k : n, c: z + i * m * n, ldc: n)
        }
        return (out, outLabels, written)
    }
}
