import Tensors

/// Concatenating requests into one batch along dimension 0, and cutting the outputs back.
enum BatchAssembly {
    /// Concatenates each input across `requests` (same names, types and inner shapes: the batcher
    /// only merges requests with equal `BatchSignature`s).
    static func merge(_ requests: [[String: Tensor]]) -> [String: Tensor] {
        var merged: [String: Tensor] = [:]
        for name in requests[0].keys {
            let parts = requests.map { $0[name]! }
            let first = parts[0]
            let rows = parts.reduce(0) { $0 + $1.shape[0] }
            let out = Tensor(uninitialized: first.dataType, shape: [rows] + first.shape.dropFirst())
            var offset = 0
            let destination = out.mutableBytes
            for part in parts {
                let bytes = part.rawBytes
                if bytes.count > 0 {
                    (destination.baseAddress! + offset).copyMemory(from: bytes.baseAddress!, byteCount: bytes.count)
                }
                offset += bytes.count
            }
            merged[name] = out
        }
        return merged
    }

    /// Cuts every output into the requests' rows: views into the batch's storage, no copies.
    /// Throws when an output is not batched along dimension 0 like the inputs.
    static func split(_ outputs: [String: Tensor], rows: [Int]) throws -> [[String: Tensor]] {
        let total = rows.reduce(0, +)
        var results = [[String: Tensor]](repeating: [:], count: rows.count)
        for (name, tensor) in outputs {
            guard let first = tensor.shape.first, first == total else {
                throw SchedulerError.unbatchableOutput(
                    "output '\(name)' has shape \(tensor.shape), not \(total) rows like the batch's inputs; "
                        + "this model cannot be batched along dimension 0: set max_batch_size to 0 in its config.json")
            }
            let rowBytes = tensor.count == 0 ? 0 : tensor.byteCount / total
            let inner = Array(tensor.shape.dropFirst())
            var offset = tensor.byteOffset
            for (i, n) in rows.enumerated() {
                results[i][name] = Tensor(dataType: tensor.dataType, shape: [n] + inner, storage: tensor.storage, byteOffset: offset)
                offset += n * rowBytes
            }
        }
        return results
    }
}
