import Glibc
import Tensors

/// CenterCropPad (any element type): each of `axes` (default all) takes the size from the `shape`
/// input, cropping a centred window (its start rounded down) when the input is larger and padding
/// with zeros when it is smaller (the odd element of padding at the end).
struct CenterCropPadKernel: Kernel {
    let axes: [Int]?

    init(context: NodeContext) throws {
        try context.requireInputs(2)
        axes = try context.ints("axes")
    }

    func run(_ inputs: [Tensor?]) throws -> [Tensor] {
        let x = try Check.input(inputs, 0, "input_data")
        let shapeTensor = try Check.input(inputs, 1, "shape")
        try Check.dataType(shapeTensor, [.int64, .int32], "shape")
        let sizes: [Int] = shapeTensor.dataType == .int64
            ? shapeTensor.scalars(as: Int64.self).map { Int($0) } : shapeTensor.scalars(as: Int32.self).map { Int($0) }
        guard x.dataType != .string else { throw KernelError.failed("CenterCropPad does not support string tensors") }
        let rank = x.rank
        let chosen = try (axes ?? Array(0..<rank)).map { try Check.axis($0, rank: rank, "axes") }
        guard chosen.count == sizes.count, Set(chosen).count == chosen.count else {
            throw KernelError.shape("CenterCropPad's shape \(sizes) does not match axes \(axes ?? Array(0..<rank)) of input \(x.shape)")
        }
        var outShape = x.shape
        for (axis, size) in zip(chosen, sizes) {
            guard size >= 0 else { throw KernelError.shape("CenterCropPad's shape \(sizes) has a negative size") }
            outShape[axis] = size
        }
        let padded = zip(outShape, x.shape).contains { $0 > $1 }
        let out = try Tensor(allocating: x.dataType, shape: outShape, zeroed: padded)
        if out.count == 0 || x.count == 0 { return [out] }
        if rank == 0 {
            out.mutableBytes.copyMemory(from: x.rawBytes)
            return [out]
        }
        // The overlap of input and output per axis: its length and where it starts in each.
        var srcStart = [Int](repeating: 0, count: rank)
        var dstStart = [Int](repeating: 0, count: rank)
        var length = [Int](repeating: 0, count: rank)
        for d in 0..<rank {
            let (a, b) = (x.shape[d], outShape[d])
            length[d] = min(a, b)
            srcStart[d] = a > b ? (a - b) / 2 : 0
            dstStart[d] = b > a ? (b - a) / 2 : 0
        }
        let bytes = x.dataType.byteSize
        var srcStrides = [Int](repeating: bytes, count: rank)
        var dstStrides = [Int](repeating: bytes, count: rank)
        for d in stride(from: rank - 2, through: 0, by: -1) {
            srcStrides[d] = srcStrides[d + 1] * x.shape[d + 1]
            dstStrides[d] = dstStrides[d + 1] * outShape[d + 1]
        }
        let srcBase = (0..<rank).reduce(0) { $0 + srcStart[$1] * srcStrides[$1] }
        let dstBase = (0..<rank).reduce(0) { $0 + dstStart[$1] * dstStrides[$1] }
        let odometer = Odometer(shape: Array(length.dropLast()), strides: [Array(srcStrides.dropLast()), Array(dstStrides.dropLast())])
        let src = x.rawBytes.baseAddress!
        let dst = out.mutableBytes.baseAddress!
        let rowBytes = length[rank - 1] * bytes
        odometer.walk(0..<odometer.rows) { _, offsets in
            memcpy(dst + dstBase + offsets[1], src + srcBase + offsets[0], rowBytes)
        }
        return [out]
    }
}
