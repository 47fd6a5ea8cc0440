import Tensors

/// The sampling half of DeformConv's deformable im2col: where each kernel tap of each output
/// position reads X once its offset is added, as the 2^rank corners around that point with their
/// linear-interpolation weights (times the mask), zero for corners outside X.
///
/// `fill` writes a `Table` for one image, offset group and block of output positions; `gather` then
/// reads one channel's plane through it into rows of the column matrix. The table depends only on
/// the offset group, so it serves every channel of the group. Holds pointers into the run's
/// inputs: lives for one `DeformConvKernel.run` call; `fill` and `gather` are safe from several
/// threads on distinct tables.
struct DeformableSampler {
    /// Corner indices (into one input plane) and weights, per tap, position and corner.
    struct Table {
        let index: UnsafeMutablePointer<Int32>
        let weight: UnsafeMutablePointer<Float>

        init(capacity: Int) {
            index = .allocate(capacity: capacity)
            weight = .allocate(capacity: capacity)
        }

        func deallocate() {
            index.deallocate()
            weight.deallocate()
        }
    }

    let geo: WindowGeometry
    /// Offsets [N, offset groups, taps, rank, output positions].
    let offsets: UnsafePointer<Float>
    /// Mask [N, offset groups, taps, output positions], nil for ones.
    let mask: UnsafePointer<Float>?
    let offsetGroups: Int
    /// Corners per sample: 2^rank.
    let corners: Int

    init(geo: WindowGeometry, offsets: UnsafePointer<Float>, mask: UnsafePointer<Float>?, offsetGroups: Int) {
        self.geo = geo
        self.offsets = offsets
        self.mask = mask
        self.offsetGroups = offsetGroups
        corners = 1 << geo.spatialRank
    }

    /// Fills `table` for output positions `positions` (flat indices into the output's spatial
    /// dimensions) of image `image` and offset group `og`: entry `(tap * positions.count + i) *
    /// corners + corner`.
    func fill(_ table: Table, image: Int, offsetGroup og: Int, positions: Range<Int>) {
        let rank = geo.spatialRank
        let firstDim = 3 - rank
        let taps = geo.kernelSize
        let outSize = geo.outputSize
        let length = positions.count
        let corners = self.corners
        let inputStride = [geo.input[1] * geo.input[2], geo.input[2], 1]
        let group = image * offsetGroups + og
        let offsetBase = offsets + group * taps * rank * outSize
        let maskBase = mask.map { $0 + group * taps * outSize }
        for tap in 0..<taps {
            let kernelAt = [tap / (geo.kernel[1] * geo.kernel[2]), tap / geo.kernel[2] % geo.kernel[1], tap % geo.kernel[2]]
            // The tap's position for output (0, 0, 0), per dimension; each output step adds a stride.
            var origin = [0, 0, 0]
            for d in 0..<3 { origin[d] = kernelAt[d] * geo.dilations[d] - geo.padBegin[d] }
            var at = [
                positions.lowerBound / (geo.output[1] * geo.output[2]), positions.lowerBound / geo.output[2] % geo.output[1],
                positions.lowerBound % geo.output[2],
            ]
            for i in 0..<length {
                let p = positions.lowerBound + i
                let slot = (tap * length + i) * corners
                table.index[slot] = 0
                table.weight[slot] = maskBase?[tap * outSize + p] ?? 1
                var filled = 1
                var inside = true
                for d in firstDim..<3 {
                    let size = geo.input[d]
                    let shift = offsetBase[(tap * rank + d - firstDim) * outSize + p]
                    let point = Float(origin[d] + at[d] * geo.strides[d]) + shift
                    // Past one cell outside X every corner is outside (NaN fails too).
                    guard point > -1, point < Float(size) else {
                        inside = false
                        break
                    }
                    let floor = point.rounded(.down)
                    let low = Int(floor)
                    let t = point - floor
                    let lowInside = low >= 0
                    let highInside = low + 1 < size
                    let lowStep = Int32(truncatingIfNeeded: low * inputStride[d])
                    let highStep = Int32(truncatingIfNeeded: (low + 1) * inputStride[d])
                    for q in slot..<(slot + filled) {
                        let (index, weight) = (table.index[q], table.weight[q])
                        // A corner outside X keeps an index inside it, with weight zero.
                        table.index[q + filled] = highInside ? index + highStep : index
                        table.weight[q + filled] = highInside ? weight * t : 0
                        table.index[q] = lowInside ? index + lowStep : index
                        table.weight[q] = lowInside ? weight * (1 - t) : 0
                    }
                    filled *= 2
                }
                if !inside {
                    (table.index + slot).update(repeating: 0, count: corners)
                    (table.weight + slot).update(repeating: 0, count: corners)
                }
                // Next output position, last dimension fastest.
                at[2] += 1
                if at[2] == geo.output[2] {
                    at[2] = 0
                    at[1] += 1
                    if at[1] == geo.output[1] {
                        at[1] = 0
                        at[0] += 1
                    }
                }
            }
        }
    }

    /// Rows `tap * length + i` of `columns`: plane `x` sampled through `table` (filled for `length`
    /// positions), one row per tap.
    func gather(
        _ x: UnsafePointer<Float>, _ table: Table, taps: Int, length: Int, into columns: UnsafeMutablePointer<Float>
    ) {
        let count = taps * length
        let index = table.index
        let weight = table.weight
        switch corners {
        case 4:
            for e in 0..<count {
                let q = e * 4
                columns[e] = weight[q] * x[Int(index[q])] + weight[q + 1] * x[Int(index[q + 1])]
                    + weight[q + 2] * x[Int(index[q + 2])] + weight[q + 3] * x[Int(index[q + 3])]
            }
        default:
            for e in 0..<count {
                let q = e * corners
                var sum: Float = 0
                for j in q..<(q + corners) { sum += weight[j] * x[Int(index[j])] }
                columns[e] = sum
            }
        }
    }
}
