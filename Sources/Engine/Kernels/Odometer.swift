/// The outer loop of the strided elementwise kernels (Where, broadcast binary ops, strided copies):
/// the offsets of several operands over the outer dimensions of a (merged) shape, advanced like an
/// odometer and startable at any outer index, so that the outer range can be split between threads
/// (`forEachRow`). Immutable.
struct Odometer {
    /// The outer dimensions (all but the innermost).
    let shape: [Int]
    /// Per operand, its element stride along each outer dimension.
    let strides: [[Int]]

    /// Outer rows in all.
    var rows: Int { shape.reduce(1, *) }

    /// Calls `body(row, offsets)` for each outer row in `range`, in order, with each operand's
    /// element offset of that row (`offsets[k]` for operand k).
    @inline(__always)
    func walk(_ range: Range<Int>, _ body: (Int, UnsafeMutableBufferPointer<Int>) -> Void) {
        let dims = shape.count
        withUnsafeTemporaryAllocation(of: Int.self, capacity: max(1, dims)) { index in
            withUnsafeTemporaryAllocation(of: Int.self, capacity: strides.count) { offsets in
                // Index and offsets of the first row.
                var rest = range.lowerBound
                for k in offsets.indices { offsets[k] = 0 }
                for d in stride(from: dims - 1, through: 0, by: -1) {
                    index[d] = rest % shape[d]
                    rest /= shape[d]
                    for k in offsets.indices { offsets[k] += index[d] * strides[k][d] }
                }
                for row in range {
                    body(row, offsets)
                    var d = dims - 1
                    while d >= 0 {
                        index[d] += 1
                        for k in offsets.indices { offsets[k] += strides[k][d] }
                        if index[d] < shape[d] { break }
                        for k in offsets.indices { offsets[k] -= strides[k][d] * shape[d] }
                        index[d] = 0
                        d -= 1
                    }
                }
            }
        }
    }

    /// `walk` over all rows, split between the threads of the budget when the rows hold at least
    /// 64k elements in all (`rowLength` each): each thread then mostly reads what it wrote in the
    /// step before (BinaryKernel's `blocks` says why).
    @inline(__always)
    func forEachRow(rowLength: Int, _ body: (Int, UnsafeMutableBufferPointer<Int>) -> Void) {
        Parallel.forEach(rows, costPerItem: max(1, rowLength), minimumWork: 1 << 16) { range in
            walk(range, body)
        }
    }
}
