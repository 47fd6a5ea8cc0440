/// Chooses how long a batch waits for more requests from what it observes, so that users need not
/// tune `max_queue_delay_us` by hand.
///
/// Model: running a batch of b rows costs t(b) = fixed + perRow * b (fitted online from executed
/// batches, exponentially weighted). Rows arrive at rate r (rows per second, exponentially
/// weighted). The rule:
///
///     wait = min(cap, fixed, timeToFill)   where timeToFill = (maxBatchSize - queued) / r
///     and no wait at all when r * fixed < 1 (fewer than one extra row is expected in the window)
///
/// Waiting at most `fixed` bounds the added latency by the per-batch cost that merging saves
/// (the ski-rental argument: never pay more waiting than the overhead you could amortise), and
/// stopping at `timeToFill` avoids idling once the batch would be full. With a slow trickle of
/// requests it degenerates to "take what is queued"; under load it waits up to one batch
/// overhead. Guarded by the batcher's lock.
struct AdaptiveWindow {
    static let defaultCapMicros: Double = 10_000

    /// Exponential weights: the newest observation counts this much.
    private let alpha = 0.1
    private var rowRate = 0.0
    private var lastArrival: Double?
    // Weighted sums for the least-squares fit of t(b).
    private var sumW = 0.0, sumB = 0.0, sumT = 0.0, sumBB = 0.0, sumBT = 0.0

    mutating func recordArrival(rows: Int, at now: Double) {
        defer { lastArrival = now }
        guard let last = lastArrival else { return }
        let gap = max(now - last, 1e-6)
        let instant = Double(rows) / gap
        rowRate = rowRate == 0 ? instant : (1 - alpha) * rowRate + alpha * instant
    }

    mutating func recordBatch(rows: Int, seconds: Double) {
        let b = Double(rows)
        let decay = 1 - alpha
        sumW = decay * sumW + 1
        sumB = decay * sumB + b
        sumT = decay * sumT + seconds
        sumBB = decay * sumBB + b * b
        sumBT = decay * sumBT + b * seconds
    }

    /// The fitted fixed cost per batch, in seconds (nil before any batch ran).
    var fixedCost: Double? {
        guard sumW > 0 else { return nil }
        let meanB = sumB / sumW, meanT = sumT / sumW
        let varB = sumBB / sumW - meanB * meanB
        guard varB > 1e-9 else { return meanT }  // one batch size seen: the whole time is the bound
        let perRow = max(0, (sumBT / sumW - meanB * meanT) / varB)
        return min(max(meanT - perRow * meanB, 0), meanT)
    }

    /// Rows per second arriving lately.
    var arrivalRate: Double { rowRate }

    func waitMicros(queuedRows: Int, maxBatchSize: Int, now: Double, capMicros: Double) -> Double {
        guard let fixed = fixedCost, rowRate > 0, queuedRows < maxBatchSize else { return 0 }
        // Requests stopped arriving a while ago: the rate is stale, do not wait for them.
        if let last = lastArrival, now - last > max(fixed, 1 / rowRate) * 4 { return 0 }
        if rowRate * fixed < 1 { return 0 }
        let timeToFill = Double(maxBatchSize - queuedRows) / rowRate
        return min(capMicros, fixed * 1e6, timeToFill * 1e6)
    }
}
