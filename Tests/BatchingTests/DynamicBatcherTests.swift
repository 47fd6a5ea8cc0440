@testable import Batching
import Dispatch
import Glibc
import Synchronization
import Tensors
import Testing

/// Records the batches a batcher runs, and doubles its input `x` into output `y`.
final class RecordingModel: Sendable {
    let batches = Mutex<[Int]>([])
    let delayMicros: UInt32

    init(delayMicros: UInt32 = 0) { self.delayMicros = delayMicros }

    func run(_ inputs: [String: Tensor]) throws -> [String: Tensor] {
        let x = inputs["x"]!
        if x.elements(as: Float.self).contains(-1) { throw TestFailure() }
        batches.withLock { $0.append(x.shape[0]) }
        if delayMicros > 0 { usleep(delayMicros) }
        let y = Tensor(uninitialized: .float32, shape: x.shape)
        let src = x.elements(as: Float.self)
        let dst = y.mutableElements(as: Float.self)
        for i in 0..<src.count { dst[i] = src[i] * 2 }
        return ["y": y]
    }
}

struct TestFailure: Error {}

/// Answers collected from several threads.
final class ResultBox: Sendable {
    let values = Mutex<[Int: Result<[String: Tensor], any Error>]>([:])
}

/// Submits and waits for one job.
func call(_ batcher: DynamicBatcher, _ x: Tensor, timeout: Int? = nil) -> Result<[String: Tensor], any Error> {
    let done = DispatchSemaphore(value: 0)
    let box = Mutex<Result<[String: Tensor], any Error>?>(nil)
    batcher.submit(InferenceJob(inputs: ["x": x], timeoutMicros: timeout) { result in
        box.withLock { $0 = result }
        done.signal()
    })
    done.wait()
    return box.withLock { $0 }!
}

func rows(_ values: [[Float]]) -> Tensor {
    Tensor(values.flatMap { $0 }, shape: [values.count, values.first?.count ?? 0])
}

@Suite struct DynamicBatcherTests {
    func options(max: Int, delay: Int = 0, queue: Int = 1024, instances: Int = 1) -> BatchingOptions {
        var o = BatchingOptions()
        o.maxBatchSize = max
        o.maxQueueDelayMicros = delay
        o.maxQueueSize = queue
        o.instanceCount = instances
        return o
    }

    @Test(arguments: [0, 2000, -1])
    func concurrentRequestsGetExactlyTheirOwnRows(delay: Int) throws {
        let model = RecordingModel(delayMicros: 200)
        var o = options(max: 16, delay: max(delay, 0))
        o.adaptive = delay < 0
        let batcher = DynamicBatcher(options: o) { try model.run($0) }
        defer { batcher.stop() }
        // 64 requests of 1 to 3 rows with values unique to each, submitted from several threads
        // without waiting (as HTTP threads do), answered on the batcher's worker.
        let inputs = (0..<64).map { i in rows((0..<(i % 3 + 1)).map { r in [Float(i * 10 + r), Float(-i - r) - 0.5] }) }
        let results = ResultBox()
        let group = DispatchGroup()
        for _ in 0..<64 { group.enter() }
        DispatchQueue.concurrentPerform(iterations: 64) { i in
            batcher.submit(InferenceJob(inputs: ["x": inputs[i]]) { r in
                results.values.withLock { $0[i] = r }
                group.leave()
            })
        }
        group.wait()
        let failures = Mutex(0)
        for (i, x) in inputs.enumerated() {
            guard case .success(let out)? = results.values.withLock({ $0[i] }), let y = out["y"] else {
                failures.withLock { $0 += 1 }
                continue
            }
            let expected = x.scalars(as: Float.self).map { $0 * 2 }
            if y.shape != x.shape || y.scalars(as: Float.self) != expected { failures.withLock { $0 += 1 } }
        }
        #expect(failures.withLock { $0 } == 0)
        let batches = model.batches.withLock { $0 }
        let expectedRows = (0..<64).map { $0 % 3 + 1 }.reduce(0, +)
        let ranRows = batches.reduce(0, +)
        #expect(ranRows == expectedRows)
        #expect(batches.allSatisfy { $0 <= 16 })
        if delay > 0 { #expect(batches.count < 64, "a 2 ms window should merge some of 64 concurrent requests") }
    }

    @Test func requestsWithOtherInnerShapesAreNeverMerged() {
        let model = RecordingModel(delayMicros: 1000)
        let batcher = DynamicBatcher(options: options(max: 32, delay: 5000)) { try model.run($0) }
        defer { batcher.stop() }
        let failures = Mutex(0)
        DispatchQueue.concurrentPerform(iterations: 16) { i in
            let width = i % 2 == 0 ? 2 : 3
            let x = rows([[Float](repeating: Float(i), count: width)])
            guard case .success(let out) = call(batcher, x), out["y"]?.shape == [1, width],
                out["y"]?.scalars(as: Float.self) == [Float](repeating: Float(2 * i), count: width)
            else {
                failures.withLock { $0 += 1 }
                return
            }
        }
        #expect(failures.withLock { $0 } == 0)
    }

    @Test func aFailingRequestDoesNotFailItsBatchmates() {
        let model = RecordingModel(delayMicros: 500)
        let batcher = DynamicBatcher(options: options(max: 8, delay: 20_000)) { try model.run($0) }
        defer { batcher.stop() }
        let outcomes = Mutex<[Int: Bool]>([:])
        DispatchQueue.concurrentPerform(iterations: 6) { i in
            let x = rows([[i == 3 ? -1 : Float(i)]])
            let ok = if case .success = call(batcher, x) { true } else { false }
            outcomes.withLock { $0[i] = ok }
        }
        #expect(outcomes.withLock { $0 } == [0: true, 1: true, 2: true, 3: false, 4: true, 5: true])
    }

    /// Submits without waiting; returns a group that finishes when every answer is in.
    func submitAll(_ batcher: DynamicBatcher, _ jobs: [(Tensor, Int?)], into results: ResultBox) -> DispatchGroup {
        let group = DispatchGroup()
        for (i, (x, timeout)) in jobs.enumerated() {
            group.enter()
            batcher.submit(InferenceJob(inputs: ["x": x], timeoutMicros: timeout) { r in
                results.values.withLock { $0[i] = r }
                group.leave()
            })
        }
        return group
    }

    @Test func fullQueueIsRefusedAtOnce() {
        let model = RecordingModel(delayMicros: 20_000)
        let batcher = DynamicBatcher(options: options(max: 0, queue: 2)) { try model.run($0) }
        defer { batcher.stop() }
        let results = ResultBox()
        submitAll(batcher, (0..<12).map { (rows([[Float($0)]]), Int?.none) }, into: results).wait()
        let all = results.values.withLock { $0 }
        let refused = all.values.filter { r in
            if case .failure(let e) = r { return e as? SchedulerError == .queueFull(limit: 2) }
            return false
        }
        let succeeded = all.values.filter { r in
            if case .success = r { return true }
            return false
        }
        // One runs, two wait, the rest are refused at once.
        #expect(refused.count >= 8)
        #expect(refused.count + succeeded.count == 12)
        #expect(model.batches.withLock { $0.count } == succeeded.count)
    }

    @Test func expiredRequestsAreAnswered504AndNotRun() {
        let model = RecordingModel(delayMicros: 100_000)
        let batcher = DynamicBatcher(options: options(max: 0)) { try model.run($0) }
        defer { batcher.stop() }
        let results = ResultBox()
        // The second request waits behind a 100 ms one, with a 10 ms deadline.
        submitAll(batcher, [(rows([[1]]), nil), (rows([[2]]), 10_000)], into: results).wait()
        let all = results.values.withLock { $0 }
        guard case .success = all[0], case .failure(let e) = all[1], case .timedOut? = e as? SchedulerError else {
            Issue.record("expected success then timeout, got \(all)")
            return
        }
        #expect(model.batches.withLock { $0 } == [1], "the expired request must not run")
    }

    @Test func tooManyRowsAndMissingBatchDimension() {
        let batcher = DynamicBatcher(options: options(max: 4)) { try RecordingModel().run($0) }
        defer { batcher.stop() }
        guard case .failure(let e) = call(batcher, rows([[1], [2], [3], [4], [5]])) else {
            Issue.record("5 rows accepted with max 4")
            return
        }
        #expect(e as? SchedulerError == .tooManyRows(rows: 5, maxBatchSize: 4))
        guard case .failure(let s) = call(batcher, Tensor(scalar: Float(1))) else {
            Issue.record("scalar accepted")
            return
        }
        #expect(s as? SchedulerError == .missingBatchDimension(input: "x"))
    }

    @Test func preferredSizeRunsWithoutWaitingTheWholeWindow() {
        let model = RecordingModel()
        var o = options(max: 16, delay: 10_000_000)  // a 10 s window: only the preferred size can end it
        o.preferredBatchSizes = [2]
        let batcher = DynamicBatcher(options: o) { try model.run($0) }
        defer { batcher.stop() }
        DispatchQueue.concurrentPerform(iterations: 2) { i in _ = call(batcher, rows([[Float(i)]])) }
        #expect(model.batches.withLock { $0 } == [2])
    }

    @Test func stopRunsWhatIsQueuedThenRefuses() {
        let model = RecordingModel(delayMicros: 10_000)
        let batcher = DynamicBatcher(options: options(max: 0, instances: 2)) { try model.run($0) }
        let answered = Mutex(0)
        let group = DispatchGroup()
        for i in 0..<6 {
            group.enter()
            batcher.submit(InferenceJob(inputs: ["x": rows([[Float(i)]])]) { r in
                if case .success = r { answered.withLock { $0 += 1 } }
                group.leave()
            })
        }
        batcher.stop()
        group.wait()
        #expect(answered.withLock { $0 } == 6)
        guard case .failure(let e) = call(batcher, rows([[1]])) else {
            Issue.record("accepted after stop")
            return
        }
        #expect(e as? SchedulerError == .stopped)
    }
}

@Suite struct AdaptiveWindowTests {
    @Test func fitsFixedAndPerRowCost() throws {
        var w = AdaptiveWindow()
        for _ in 0..<50 {
            for b in [1, 4, 16] { w.recordBatch(rows: b, seconds: 0.002 + 0.0001 * Double(b)) }
        }
        let fixed = try #require(w.fixedCost)
        #expect(abs(fixed - 0.002) < 1e-4)
    }

    @Test func waitsOnlyWhenRowsArriveFastEnough() {
        var w = AdaptiveWindow()
        for _ in 0..<20 { w.recordBatch(rows: 1, seconds: 0.001) }  // 1 ms per batch
        // 100 rows/s: 0.1 expected rows in a 1 ms window: do not wait.
        var t = 0.0
        for _ in 0..<20 { t += 0.01; w.recordArrival(rows: 1, at: t) }
        #expect(w.waitMicros(queuedRows: 1, maxBatchSize: 32, now: t, capMicros: 10_000) == 0)
        // 10,000 rows/s: waits, bounded by the 1 ms fixed cost.
        for _ in 0..<200 { t += 0.0001; w.recordArrival(rows: 1, at: t) }
        let wait = w.waitMicros(queuedRows: 1, maxBatchSize: 32, now: t, capMicros: 10_000)
        #expect(wait > 0 && wait <= 1000.001)
        // Bounded by the time to fill the batch: 1 row missing at 10,000 rows/s = 100 us.
        #expect(w.waitMicros(queuedRows: 31, maxBatchSize: 32, now: t, capMicros: 10_000) <= 110)
        // Stale arrivals (nothing for a second): no wait.
        #expect(w.waitMicros(queuedRows: 1, maxBatchSize: 32, now: t + 1, capMicros: 10_000) == 0)
    }
}
