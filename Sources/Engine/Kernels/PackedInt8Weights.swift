import Tensors

/// A constant 8-bit weight matrix B [k, n] (MatMulInteger's B, ConvInteger's and QLinearConv's
/// W as [output channels, input channels x kernel]) laid out once, at load, for `IntegerGemm`.
///
/// Layout (Sources/CKernels/include/CKernels.h): `ceil(n / 16)` panels of 16 columns; in a panel,
/// the depth in groups of 4 steps, 64 bytes per group (column c's 4 steps at `c * 4`), so one
/// 32-bit lane holds what one `vpdpbusd` lane multiplies. K is padded to a multiple of 4 and the
/// last panel to 16 columns, with zeros. Weights are stored signed: unsigned weights as `b - 128`
/// (their zero points move by the same 128, so the products do not change).
///
/// With the weights come what the epilogue needs of them, per column j (`b'`, `zb'` the stored
/// values and zero points, K the true depth):
/// - `columnAdjust[j] = K * zb'[j] - sum_k b'[k, j]`, multiplied by the activations' zero point;
/// - `negatedZeroPoints[j] = -zb'[j]`, multiplied by each row's sum of activations (nil when
///   every zero point is 0, the usual symmetric weights: no row sums are needed then).
///
/// Immutable after init; owns its buffers, charged to the memory ledger current at init (the
/// load's). Safe from any thread.
public final class PackedInt8Weights: @unchecked Sendable {
    /// How the weights are stored in the source buffer.
    public enum Layout: Sendable {
        /// Row-major [k, n]: B itself (MatMulInteger's B).
        case rowMajor
        /// Row-major [n, k]: one column of B per row (Conv weights [M, C/group x kH x kW], Gemm
        /// with transB).
        case columnMajor
    }

    /// Depth and columns of B.
    public let k: Int, n: Int
    /// Whether the source weights were int8 (else uint8).
    public let signed: Bool
    /// Every stored weight is in [-64, 64]: the AVX2 path may use `vpmaddubsw`, whose int16 pair
    /// sums cannot saturate then (255 * 64 * 2 = 32640). Else it widens to int16 first.
    public let sevenBit: Bool
    /// K rounded up to a multiple of 4, and the number of 16-column panels.
    let paddedK: Int, panels: Int
    /// Bytes from one panel to the next (`paddedK * 16`).
    var panelStride: Int { paddedK * 16 }
    let data: UnsafeMutablePointer<Int8>
    /// [n]: `K * zb'[j] - colsum[j]` (see the type's comment).
    let columnAdjust: UnsafeMutablePointer<Int32>
    /// [n]: `-zb'[j]`, or nil when every zero point is 0.
    let negatedZeroPoints: UnsafeMutablePointer<Int32>?
    private let ledger: MemoryLedger
    private let byteCount: Int

    /// Packs `weights` (k x n bytes of int8 or uint8, `layout` as stored) with `zeroPoints`: one
    /// value (per tensor) or n (per output column: ConvInteger's per-channel `w_zero_point`), in
    /// the weights' own type range. Throws `EngineError.invalidModel` for a size that overflows or
    /// zero points that do not fit; nothing is allocated then.
    public init(
        _ weights: UnsafeRawPointer, k: Int, n: Int, layout: Layout, signed: Bool, zeroPoints: [Int32] = [0]
    ) throws {
        guard k >= 0, n >= 0 else { throw EngineError.invalidModel("int8 weights: negative size \(k) x \(n)") }
        guard zeroPoints.count == 1 || zeroPoints.count == n else {
            throw EngineError.invalidModel(
                "int8 weights [\(k), \(n)]: \(zeroPoints.count) zero points; give one (per tensor) or \(n) (per column)")
        }
        let range: ClosedRange<Int32> = signed ? -128...127 : 0...255
        if let bad = zeroPoints.first(where: { !range.contains($0) }) {
            throw EngineError.invalidModel("int8 weights: zero point \(bad) is outside the weights' type range \(range)")
        }
        // K up to 2^24: the corrections K * zb' and the sums stay far from int32's limits in the
        // packer, and the kernels' int32 sums are exact up to K of about 65 000 anyway.
        guard k < 1 << 24 else {
            throw EngineError.invalidModel("int8 weights: depth \(k) is too large (at most 2^24)")
        }
        let padded = (k + 3) & ~3
        let panels = (n + 15) / 16
        let (cells, overflow) = panels.multipliedReportingOverflow(by: padded * 16)
        guard !overflow, cells < Int.max / 2 else {
            throw EngineError.invalidModel("int8 weights [\(k), \(n)]: the packed size overflows")
        }
        self.k = k
        self.n = n
        self.signed = signed
        self.paddedK = padded
        self.panels = panels
        let count = max(1, cells)
        let columnCount = max(1, n)
        // The zero points of the stored (signed) weights.
        let stored = zeroPoints.map { $0 - (signed ? 0 : 128) }
        let hasZero = stored.contains { $0 != 0 }
        byteCount = count + columnCount * 4 * (hasZero ? 2 : 1)
        ledger = MemoryLedger.chargeCurrentUnchecked(byteCount)
        data = .allocate(capacity: count)
        data.initialize(repeating: 0, count: count)
        columnAdjust = .allocate(capacity: columnCount)
        columnAdjust.initialize(repeating: 0, count: columnCount)
        negatedZeroPoints = hasZero ? .allocate(capacity: columnCount) : nil
        negatedZeroPoints?.initialize(repeating: 0, count: columnCount)

        let source = weights.assumingMemoryBound(to: UInt8.self)
        // Unsigned weights: b' = b - 128 is the byte with its top bit flipped, read as int8.
        let flip: UInt8 = signed ? 0 : 0x80
        var fits = true
        for j in 0..<n {
            let panel = data + (j / 16) * padded * 16 + (j % 16) * 4
            var sum: Int32 = 0
            for q in 0..<k {
                let byte = layout == .rowMajor ? source[q * n + j] : source[j * k + q]
                let value = Int8(bitPattern: byte ^ flip)
                panel[(q / 4) * 64 + q % 4] = value
                sum &+= Int32(value)
                if value < -64 || value > 64 { fits = false }
            }
            let zero = stored.count == 1 ? stored[0] : stored[j]
            columnAdjust[j] = Int32(k) &* zero &- sum
            negatedZeroPoints?[j] = -zero
        }
        sevenBit = fits
    }

    deinit {
        data.deallocate()
        columnAdjust.deallocate()
        negatedZeroPoints?.deallocate()
        ledger.credit(byteCount)
    }

    /// Start of panel `j` (columns `16 j ..< 16 j + 16`).
    @inline(__always)
    func panel(_ j: Int) -> UnsafePointer<Int8> { UnsafePointer(data + j * panelStride) }

    /// Bytes held (packed weights and per-column terms), for memory accounting.
    public var residentBytes: Int { byteCount }
}
