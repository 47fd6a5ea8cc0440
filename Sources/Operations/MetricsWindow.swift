import Glibc

/// The last minute of one model version's traffic, second by second, for the status page:
/// requests, failures, a log-scale latency histogram (for server-side percentiles), queue waits
/// and batch sizes. A ring of one-second slots, overwritten as time moves on.
///
/// Owned by one `ModelMetrics`; a value type kept under that object's lock.
public struct RecentWindow: Sendable {
    /// Slots kept: a minute of completed seconds plus the one in progress.
    static let slotCount = 64
    /// Latency buckets: upper bounds 10 us * 2^(i/4), i = 1...bucketCount; the last is open.
    static let bucketCount = 84
    static let bucketBase = 10e-6

    struct Slot: Sendable {
        var second: Int = -1
        var requests = 0
        var failures = 0
        var latency = [Int32](repeating: 0, count: RecentWindow.bucketCount)
        var queueCount = 0
        var queueSeconds = 0.0
        var batches = 0
        var rows = 0

        mutating func reset(_ second: Int) {
            self = Slot()
            self.second = second
        }
    }

    private(set) var slots = [Slot](repeating: Slot(), count: RecentWindow.slotCount)

    /// The slot for `second` (monotonic whole seconds), cleared when it held an older second.
    private mutating func slot(_ second: Int) -> Int {
        let i = second % RecentWindow.slotCount
        if slots[i].second != second { slots[i].reset(second) }
        return i
    }

    mutating func request(second: Int, seconds: Double, failed: Bool) {
        let i = slot(second)
        slots[i].requests += 1
        if failed { slots[i].failures += 1 }
        slots[i].latency[RecentWindow.bucket(seconds)] += 1
    }

    mutating func queueWait(second: Int, seconds: Double) {
        let i = slot(second)
        slots[i].queueCount += 1
        slots[i].queueSeconds += seconds
    }

    mutating func batch(second: Int, rows: Int) {
        let i = slot(second)
        slots[i].batches += 1
        slots[i].rows += rows
    }

    /// The bucket index of a latency in seconds.
    static func bucket(_ seconds: Double) -> Int {
        guard seconds > bucketBase else { return 0 }
        let i = Int((log2(seconds / bucketBase) * 4).rounded(.up)) - 1
        return min(max(i, 0), bucketCount - 1)
    }

    /// The upper bound of bucket `i`, in seconds.
    static func upperBound(_ i: Int) -> Double { bucketBase * exp2(Double(i + 1) / 4) }

    /// The `q` quantile (0...1) of a bucket histogram: the geometric middle of the bucket that holds
    /// it (at most ~9% off), nil when empty.
    static func quantile(_ q: Double, _ counts: [Int32]) -> Double? {
        let total = counts.reduce(0) { $0 + Int($1) }
        guard total > 0 else { return nil }
        let rank = max(1, Int((q * Double(total)).rounded(.up)))
        var seen = 0
        for (i, c) in counts.enumerated() {
            seen += Int(c)
            if seen >= rank { return upperBound(i) * exp2(-0.125) }
        }
        return upperBound(counts.count - 1)
    }

    /// One completed second (or an empty one) as the status page charts it.
    public struct Point: Sendable {
        public var requests = 0
        public var failures = 0
        public var p50: Double?
        public var p90: Double?
        public var p99: Double?
        public var queueMean: Double?
        public var batchMean: Double?
    }

    /// The `count` completed seconds before `now`, oldest first.
    public func series(now: Int, count: Int) -> [Point] {
        (1...count).reversed().map { age in
            let second = now - age
            let s = slots[second % RecentWindow.slotCount]
            guard s.second == second else { return Point() }
            return Point(
                requests: s.requests, failures: s.failures,
                p50: RecentWindow.quantile(0.5, s.latency), p90: RecentWindow.quantile(0.9, s.latency),
                p99: RecentWindow.quantile(0.99, s.latency),
                queueMean: s.queueCount > 0 ? s.queueSeconds / Double(s.queueCount) : nil,
                batchMean: s.batches > 0 ? Double(s.rows) / Double(s.batches) : nil)
        }
    }

    /// The completed seconds in `(now - count) ..< now` merged into one point (request rate as a
    /// count over the span).
    public func summary(now: Int, count: Int) -> Point {
        var latency = [Int32](repeating: 0, count: RecentWindow.bucketCount)
        var p = Point()
        var queueCount = 0, queueSeconds = 0.0, batches = 0, rows = 0
        for age in 1...count {
            let second = now - age
            let s = slots[second % RecentWindow.slotCount]
            guard s.second == second else { continue }
            p.requests += s.requests
            p.failures += s.failures
            for i in 0..<latency.count { latency[i] += s.latency[i] }
            queueCount += s.queueCount
            queueSeconds += s.queueSeconds
            batches += s.batches
            rows += s.rows
        }
        p.p50 = RecentWindow.quantile(0.5, latency)
        p.p90 = RecentWindow.quantile(0.9, latency)
        p.p99 = RecentWindow.quantile(0.99, latency)
        p.queueMean = queueCount > 0 ? queueSeconds / Double(queueCount) : nil
        p.batchMean = batches > 0 ? Double(rows) / Double(batches) : nil
        return p
    }
}

/// Monotonic seconds since an arbitrary start (CLOCK_MONOTONIC).
public func monotonicNow() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

/// Wall-clock seconds since the Unix epoch.
public func wallClockNow() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}
