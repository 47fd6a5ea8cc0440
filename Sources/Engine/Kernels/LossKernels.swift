import Foundation
import Tensors

/// NegativeLogLikelihoodLoss and SoftmaxCrossEntropyLoss (opset 12/13 on): the losses exported with
/// a model that computes its own loss (an evaluation graph), FP32. Input [N, C, d1...] (class scores
/// or, for NLL, log-probabilities), target [N, d1...] of class indices (INT64 or INT32), an
/// optional weight [C]. loss[n, d...] = -logp[n, target, d...] * weight[target], 0 where target is
/// `ignore_index`; `reduction` none keeps that shape, sum adds it up, mean (the default) divides
/// the sum by the weights that took part (their count without weights). SoftmaxCrossEntropyLoss
/// takes log_softmax over axis 1 first and may also output it (log_prob).
struct ClassLossKernel: Kernel {
    enum Reduction: String { case none, sum, mean }
    let softmax: Bool
    let reduction: Reduction
    let ignoreIndex: Int?
    let op: String

    init(context: NodeContext, softmax: Bool) throws {
        try context.requireInputs(2, 3)
        self.softmax = softmax
        op = context.opType
        let name = try context.string("reduction", default: "mean")
        guard let r = Reduction(rawValue: name) else { throw context.invalid("has reduction '\(name)'; it takes none, sum or mean") }
        reduction = r
        ignoreIndex = try context.int("ignore_index")
    }

    func run(_ inputs: [Tensor?]) throws -> [Tensor] {
        let x = try Check.input(inputs, 0, "scores")
        let target = try Check.input(inputs, 1, "labels")
        try Check.dataType(x, [.float32], "\(op)'s input")
        guard x.rank >= 2, target.shape == [x.shape[0]] + Array(x.shape.dropFirst(2)) else {
            throw KernelError.shape("\(op) needs input [N, C, d...] and target [N, d...], got \(x.shape) and \(target.shape)")
        }
        let labels = try IntInput.values(target, "\(op)'s target")
        var weights: [Float]?
        if inputs.count > 2, let w = inputs[2] {
            try Check.dataType(w, [.float32], "\(op)'s weight")
            guard w.shape == [x.shape[1]] else { throw KernelError.shape("\(op)'s weight must be [\(x.shape[1])], got \(w.shape)") }
            weights = Array(w.elements(as: Float.self))
        }
        let n = x.shape[0]
        let c = x.shape[1]
        let d = x.count / max(n * c, 1)
        var logp = x
        if softmax {
            logp = try Tensor(allocating: .float32, shape: x.shape)
            logSoftmax(x.elements(as: Float.self), logp.mutableElements(as: Float.self), n: n, c: c, d: d)
        }
        let p = logp.elements(as: Float.self)
        let loss = try Tensor(allocating: .float32, shape: target.shape)
        let l = loss.mutableElements(as: Float.self)
        var total: Float = 0
        var weightSum: Float = 0
        for i in 0..<n {
            for j in 0..<d {
                let k = i * d + j
                let t = labels[k]
                if let ignoreIndex, t == ignoreIndex {
                    l[k] = 0
                    continue
                }
                guard t >= 0, t < c else {
                    throw KernelError.shape("\(op)'s target \(t) is not a class in [0, \(c)) nor the ignore_index")
                }
                let w = weights?[t] ?? 1
                l[k] = -p[(i * c + t) * d + j] * w
                total += l[k]
                weightSum += w
            }
        }
        var outputs: [Tensor]
        switch reduction {
        case .none: outputs = [loss]
        case .sum: outputs = [Tensor(scalar: total)]
        case .mean: outputs = [Tensor(scalar: total / weightSum)]
        }
        if softmax { outputs.append(logp) }
        return outputs
    }

    /// log_softmax over axis 1 of [n, c, d] (d the trailing positions, contiguous).
    private func logSoftmax(_ x: UnsafeBufferPointer<Float>, _ y: UnsafeMutableBufferPointer<Float>, n: Int, c: Int, d: Int) {
        for i in 0..<n {
            for j in 0..<d {
                let base = i * c * d + j
                var top = -Float.infinity
                for k in 0..<c { top = max(top, x[base + k * d]) }
                var sum: Float = 0
                for k in 0..<c { sum += exp(x[base + k * d] - top) }
                let shift = top + log(sum)
                for k in 0..<c { y[base + k * d] = x[base + k * d] - shift }
            }
        }
    }
}
