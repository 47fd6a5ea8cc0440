/// Numpy-style (multidirectional) broadcasting of shapes, as ONNX defines it for elementwise ops.
public enum Broadcast {
    /// The broadcast shape of `shapes`, or nil when two dimensions differ and neither is 1.
    public static func shape(_ shapes: [[Int]]) -> [Int]? {
        let rank = shapes.map(\.count).max() ?? 0
        var out = [Int](repeating: 1, count: rank)
        for s in shapes {
            let pad = rank - s.count
            for (i, d) in s.enumerated() {
                let j = i + pad
                if out[j] == d || d == 1 { continue }
                if out[j] == 1 { out[j] = d } else { return nil }
            }
        }
        return out
    }

    /// Element strides of `shape` when read as `outShape` (0 along broadcast dimensions).
    /// `shape` must broadcast to `outShape`.
    public static func strides(of shape: [Int], broadcastTo outShape: [Int]) -> [Int] {
        let pad = outShape.count - shape.count
        var strides = [Int](repeating: 0, count: outShape.count)
        var running = 1
        for i in stride(from: shape.count - 1, through: 0, by: -1) {
            strides[i + pad] = shape[i] == 1 ? 0 : running
            running *= shape[i]
        }
        return strides
    }

    /// Contiguous row-major strides of `shape`.
    public static func contiguousStrides(_ shape: [Int]) -> [Int] {
        var strides = [Int](repeating: 1, count: shape.count)
        var running = 1
        for i in stride(from: shape.count - 1, through: 0, by: -1) {
            strides[i] = running
            running *= shape[i]
        }
        return strides
    }
}
