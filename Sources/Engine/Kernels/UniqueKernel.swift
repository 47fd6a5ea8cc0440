import Tensors

/// Unique(X): the distinct elements of X (flattened, no `axis`) or the distinct slices along
/// `axis`, with the INT64 `indices` of their first occurrences, the `inverse_indices` that rebuild
/// X from them and their `counts`. `sorted` = 1 (the default) orders them ascending (slices
/// lexicographically, in row-major order); 0 keeps the order of first occurrence. Each kept value
/// or slice is a copy of its first occurrence.
///
/// Values compare as numbers: 0 and -0 are equal, and every NaN equals every other NaN and sorts
/// last (numpy.unique's `equal_nan`). All numeric element types but FP16 and BF16.
///
/// Every element becomes a 64-bit key with the same order and equality, so one hash table of
/// slices (groups in order of first occurrence) and one sort of the distinct ones serve every type
/// and both forms.
struct UniqueKernel: Kernel {
    let axis: Int?
    let sorted: Bool
    let outputs: Int

    static let types: [DataType] = [.float32, .float64, .int64, .int32, .int16, .int8, .uint64, .uint32, .uint16, .uint8, .bool]

    init(context: NodeContext) throws {
        try context.requireInputs(1)
        axis = try context.int("axis")
        sorted = try context.int("sorted", default: 1) != 0
        outputs = max(1, min(4, context.node.outputs.count))
    }

    func run(_ inputs: [Tensor?]) throws -> [Tensor] {
        let x = try Check.input(inputs, 0, "X")
        try Check.dataType(x, Self.types, "Unique's X")
        // Slices along the axis: m of them, each `outer` runs of `inner` elements.
        let (outer, m, inner): (Int, Int, Int)
        var a = 0
        if let axis {
            a = try Check.axis(axis, rank: x.rank)
            (outer, m, inner) = (x.shape[..<a].reduce(1, *), x.shape[a], x.shape[(a + 1)...].reduce(1, *))
        } else {
            (outer, m, inner) = (1, x.count, 1)
        }
        let s = outer * inner
        guard m < Int(Int32.max) else { throw KernelError.shape("Unique: \(m) elements or slices is too many") }
        let keys = try Self.keys(x, outer: outer, m: m, inner: inner)
        // Slice indices ordered by their keys, ties by index.
        // Groups of equal slices in order of first occurrence (an open-addressing hash table of
        // group ids), with each slice's group and each group's count.
        var firsts: [Int] = []
        var counts: [Int] = []
        var groupOf = [Int](repeating: 0, count: m)
        keys.withUnsafeBufferPointer { k in
            let key = k.baseAddress!
            var capacity = 16
            while capacity < 2 * m { capacity *= 2 }
            let mask = capacity - 1
            var table = [Int32](repeating: -1, count: capacity)
            for i in 0..<m {
                let slice = key + i * s
                var h: UInt64 = 0x243F_6A88_85A3_08D3
                for e in 0..<s { h = (h ^ slice[e]) &* 0x9E37_79B9_7F4A_7C15 }
                var at = Int(truncatingIfNeeded: (h ^ (h >> 29)) & UInt64(mask))
                while true {
                    let g = Int(table[at])
                    if g < 0 {
                        table[at] = Int32(firsts.count)
                        groupOf[i] = firsts.count
                        firsts.append(i)
                        counts.append(1)
                        break
                    }
                    let other = key + firsts[g] * s
                    if (0..<s).allSatisfy({ other[$0] == slice[$0] }) {
                        counts[g] += 1
                        groupOf[i] = g
                        break
                    }
                    at = (at + 1) & mask
                }
            }
        }
        // The output order of the groups (by value when sorted), and each group's place in it.
        var groups = Array(firsts.indices)
        if sorted {
            keys.withUnsafeBufferPointer { k in
                let key = k.baseAddress!
                if s == 1 {
                    groups.sort { key[firsts[$0]] < key[firsts[$1]] }
                } else {
                    groups.sort { a, b in
                        let (x, y) = (key + firsts[a] * s, key + firsts[b] * s)
                        for e in 0..<s where x[e] != y[e] { return x[e] < y[e] }
                        return false
                    }
                }
            }
        }
        var place = [Int](repeating: 0, count: groups.count)
        for (p, g) in groups.enumerated() { place[g] = p }
        let u = groups.count

        var yShape = [u]
        if axis != nil {
            yShape = x.shape
            yShape[a] = u
        }
        let y = try Tensor(allocating: x.dataType, shape: yShape)
        if y.count > 0 {
            let size = x.dataType.byteSize
            let src = x.rawBytes.baseAddress!
            let dst = y.mutableBytes.baseAddress!
            for o in 0..<outer {
                for (p, g) in groups.enumerated() {
                    (dst + (o * u + p) * inner * size).copyMemory(
                        from: src + (o * m + firsts[g]) * inner * size, byteCount: inner * size)
                }
            }
        }
        var result = [y]
        if outputs > 1 { result.append(IntInput.tensor(groups.map { firsts[$0] })) }
        if outputs > 2 { result.append(IntInput.tensor(groupOf.map { place[$0] })) }
        if outputs > 3 { result.append(IntInput.tensor(groups.map { counts[$0] })) }
        return result
    }

    /// Keys of the elements, slice by slice ([m, outer * inner]), ordered as the values.
    static func keys(_ x: Tensor, outer: Int, m: Int, inner: Int) throws -> [UInt64] {
        let flat: [UInt64]
        switch x.dataType {
        case .float32:
            flat = x.elements(as: Float.self).map { v in
                if v.isNaN { return UInt64.max }
                let bits = (v == 0 ? 0 : v).bitPattern
                return UInt64(bits & 0x8000_0000 != 0 ? ~bits : bits | 0x8000_0000)
            }
        case .float64:
            flat = x.elements(as: Double.self).map { v in
                if v.isNaN { return UInt64.max }
                let bits = (v == 0 ? 0 : v).bitPattern
                return bits & (1 << 63) != 0 ? ~bits : bits | (1 << 63)
            }
        case .int64: flat = x.elements(as: Int64.self).map { UInt64(bitPattern: $0) ^ (1 << 63) }
        case .int32: flat = x.elements(as: Int32.self).map { UInt64(bitPattern: Int64($0)) ^ (1 << 63) }
        case .int16: flat = x.elements(as: Int16.self).map { UInt64(bitPattern: Int64($0)) ^ (1 << 63) }
        case .int8: flat = x.elements(as: Int8.self).map { UInt64(bitPattern: Int64($0)) ^ (1 << 63) }
        case .uint64: flat = Array(x.elements(as: UInt64.self))
        case .uint32: flat = x.elements(as: UInt32.self).map { UInt64($0) }
        case .uint16: flat = x.elements(as: UInt16.self).map { UInt64($0) }
        case .uint8: flat = x.elements(as: UInt8.self).map { UInt64($0) }
        case .bool: flat = x.elements(as: Bool.self).map { $0 ? 1 : 0 }
        default: throw KernelError.failed("Unique does not support \(x.dataType.v2Name)")
        }
        if outer == 1 { return flat }
        // [outer, m, inner] -> [m, outer, inner]: each slice's keys together.
        var keys = [UInt64](repeating: 0, count: flat.count)
        for o in 0..<outer {
            for i in 0..<m {
                for e in 0..<inner { keys[(i * outer + o) * inner + e] = flat[(o * m + i) * inner + e] }
            }
        }
        return keys
    }
}
