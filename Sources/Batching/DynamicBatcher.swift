import Glibc
import Tensors

/// The dynamic batcher of one model version: a bounded queue, `instanceCount` worker threads,
/// and the rule that decides when a batch is full enough to run.
///
/// `submit` never blocks (a full queue is answered at once); workers merge queued requests whose
/// inputs agree on every dimension but the first, run them as one batch, and hand each request
/// exactly its own rows back. All mutable state is guarded by `lock`; jobs complete outside it.
/// `stop` runs what is queued and joins the workers.
public final class DynamicBatcher: InferenceScheduler, @unchecked Sendable {
    public let options: BatchingOptions
    let run: InferenceFunction
    let observer: any SchedulerObserver

    private let lock = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let condition = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    // Guarded by `lock`:
    private var queue: [PendingJob] = []
    private var stopping = false
    private var adaptiveWindow = AdaptiveWindow()
    private var threads: [pthread_t] = []

    public init(options: BatchingOptions, observer: any SchedulerObserver = NoSchedulerObserver(), run: @escaping InferenceFunction) {
        self.options = options
        self.run = run
        self.observer = observer
        pthread_mutex_init(lock, nil)
        var attributes = pthread_condattr_t()
        pthread_condattr_init(&attributes)
        pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC)
        pthread_cond_init(condition, &attributes)
        pthread_condattr_destroy(&attributes)
        for _ in 0..<max(1, options.instanceCount) {
            var thread = pthread_t()
            let context = Unmanaged.passRetained(self).toOpaque()
            if pthread_create(&thread, nil, batcherWorkerMain, context) == 0 {
                threads.append(thread)
            } else {
                Unmanaged<DynamicBatcher>.fromOpaque(context).release()
            }
        }
    }

    deinit {
        pthread_cond_destroy(condition)
        pthread_mutex_destroy(lock)
        condition.deallocate()
        lock.deallocate()
    }

    public func submit(_ job: InferenceJob) {
        let rows: Int
        let signature: BatchSignature
        do {
            (rows, signature) = try describe(job.inputs)
        } catch {
            job.completion(.failure(error))
            return
        }
        let now = monotonicNow()
        let timeout = job.timeoutMicros ?? options.defaultTimeoutMicros
        let pending = PendingJob(
            job: job, rows: rows, signature: signature, enqueued: now,
            deadline: timeout > 0 ? now + Double(timeout) / 1e6 : nil)
        pthread_mutex_lock(lock)
        if stopping {
            pthread_mutex_unlock(lock)
            job.completion(.failure(SchedulerError.stopped))
            return
        }
        if queue.count >= options.maxQueueSize {
            pthread_mutex_unlock(lock)
            job.completion(.failure(SchedulerError.queueFull(limit: options.maxQueueSize)))
            return
        }
        queue.append(pending)
        adaptiveWindow.recordArrival(rows: rows, at: now)
        pthread_cond_broadcast(condition)
        pthread_mutex_unlock(lock)
    }

    public func stop() {
        pthread_mutex_lock(lock)
        stopping = true
        let workers = threads
        threads = []
        pthread_cond_broadcast(condition)
        pthread_mutex_unlock(lock)
        for thread in workers {
            // A worker can drop the last reference to its own version (and so call stop) from a
            // completion: it cannot join itself, so it is detached and exits on its own.
            if pthread_equal(thread, pthread_self()) != 0 { pthread_detach(thread) } else { pthread_join(thread, nil) }
        }
    }

    /// Rows and merge key of a request. Without batching every request is its own batch.
    private func describe(_ inputs: [String: Tensor]) throws -> (Int, BatchSignature) {
        // Without batching the rows only feed the metrics: dimension 0, as the pass-through counts.
        guard options.batches else { return (rowCount(inputs), BatchSignature(entries: [])) }
        var rows: Int?
        var entries: [BatchSignature.Entry] = []
        for name in inputs.keys.sorted() {
            let tensor = inputs[name]!
            guard let first = tensor.shape.first else { throw SchedulerError.missingBatchDimension(input: name) }
            if let rows, rows != first {
                throw SchedulerError.inconsistentRows("inputs disagree on the batch size (dimension 0): \(rows) and \(first) ('\(name)'); send the same number of rows for every input")
            }
            rows = first
            entries.append(.init(name: name, dataType: tensor.dataType, innerShape: Array(tensor.shape.dropFirst())))
        }
        let n = rows ?? 1
        if n > options.maxBatchSize { throw SchedulerError.tooManyRows(rows: n, maxBatchSize: options.maxBatchSize) }
        return (n, BatchSignature(entries: entries))
    }

    /// The worker loop: wait for work, decide, take a batch, run it outside the lock.
    fileprivate func workerLoop() {
        pthread_mutex_lock(lock)
        while true {
            while queue.isEmpty && !stopping { pthread_cond_wait(condition, lock) }
            if queue.isEmpty && stopping { break }
            let now = monotonicNow()
            let expired = takeExpired(now: now)
            if !expired.isEmpty {
                pthread_mutex_unlock(lock)
                for p in expired {
                    observer.jobDequeued(waitedSeconds: now - p.enqueued)
                    p.job.completion(.failure(SchedulerError.timedOut(waitedMicros: Int((now - p.enqueued) * 1e6))))
                }
                pthread_mutex_lock(lock)
                continue
            }
            if let wakeAt = waitUntil(now: now) {
                timedWait(until: wakeAt)
                continue
            }
            let batch = takeBatch()
            pthread_mutex_unlock(lock)
            execute(batch)
            pthread_mutex_lock(lock)
        }
        pthread_mutex_unlock(lock)
    }

    /// Removes and returns the queued jobs whose deadline has passed. Lock held.
    private func takeExpired(now: Double) -> [PendingJob] {
        guard queue.contains(where: { ($0.deadline ?? .infinity) <= now }) else { return [] }
        let expired = queue.filter { ($0.deadline ?? .infinity) <= now }
        queue.removeAll { ($0.deadline ?? .infinity) <= now }
        return expired
    }

    /// When the head's batch should wait for more rows, the instant to wake up; nil = run now.
    /// Lock held.
    private func waitUntil(now: Double) -> Double? {
        guard options.batches, !stopping, let head = queue.first else { return nil }
        let rows = queue.reduce(0) { $1.signature == head.signature ? $0 + $1.rows : $0 }
        if rows >= options.maxBatchSize || options.preferredBatchSizes.contains(rows) { return nil }
        let windowMicros: Double
        if options.adaptive {
            windowMicros = adaptiveWindow.waitMicros(
                queuedRows: rows, maxBatchSize: options.maxBatchSize, now: now,
                capMicros: options.maxQueueDelayMicros > 0 ? Double(options.maxQueueDelayMicros) : AdaptiveWindow.defaultCapMicros)
        } else {
            windowMicros = Double(options.maxQueueDelayMicros)
        }
        let due = head.enqueued + windowMicros / 1e6
        guard due > now else { return nil }
        let earliestDeadline = queue.compactMap(\.deadline).min() ?? .infinity
        return min(due, earliestDeadline)
    }

    private func timedWait(until instant: Double) {
        var ts = timespec()
        ts.tv_sec = Int(instant.rounded(.down))
        ts.tv_nsec = Int((instant - instant.rounded(.down)) * 1e9)
        pthread_cond_timedwait(condition, lock, &ts)
    }

    /// Takes the next batch: the head and, in queue order, the jobs that can merge with it,
    /// up to the batch limit (the largest preferred size that fits, else max_batch_size). Lock held.
    private func takeBatch() -> [PendingJob] {
        guard options.batches, let head = queue.first else { return [queue.removeFirst()] }
        let available = queue.reduce(0) { $1.signature == head.signature ? $0 + $1.rows : $0 }
        var limit = options.maxBatchSize
        if let preferred = options.preferredBatchSizes.filter({ $0 <= available }).max() { limit = preferred }
        var taken: [PendingJob] = []
        var rows = 0
        var keep: [PendingJob] = []
        keep.reserveCapacity(queue.count)
        for job in queue {
            if job.signature == head.signature && (taken.isEmpty || rows + job.rows <= limit) {
                taken.append(job)
                rows += job.rows
            } else {
                keep.append(job)
            }
        }
        queue = keep
        return taken
    }

    /// Runs one batch and answers each of its jobs. No lock held.
    private func execute(_ batch: [PendingJob]) {
        let start = monotonicNow()
        for p in batch { observer.jobDequeued(waitedSeconds: start - p.enqueued) }
        let totalRows = batch.reduce(0) { $0 + $1.rows }
        if batch.count == 1 {
            let result = Result { try run(batch[0].job.inputs) }
            finish(rows: totalRows, start: start)
            batch[0].job.completion(result)
            return
        }
        let results: [Result<[String: Tensor], any Error>]
        do {
            let outputs = try run(BatchAssembly.merge(batch.map(\.job.inputs)))
            results = try BatchAssembly.split(outputs, rows: batch.map(\.rows)).map { .success($0) }
        } catch {
            // One bad request must not fail the others: run each alone to find out whose it is.
            results = batch.map { p in Result { try run(p.job.inputs) } }
        }
        finish(rows: totalRows, start: start)
        for (p, result) in zip(batch, results) { p.job.completion(result) }
    }

    private func finish(rows: Int, start: Double) {
        let elapsed = monotonicNow() - start
        observer.batchExecuted(rows: rows, computeSeconds: elapsed)
        pthread_mutex_lock(lock)
        adaptiveWindow.recordBatch(rows: rows, seconds: elapsed)
        pthread_mutex_unlock(lock)
    }
}

/// A request waiting in the queue.
struct PendingJob {
    let job: InferenceJob
    let rows: Int
    let signature: BatchSignature
    let enqueued: Double
    let deadline: Double?
}

/// What must agree for two requests to share a batch: input names, types, and every dimension
/// but the first.
struct BatchSignature: Hashable {
    struct Entry: Hashable {
        let name: String
        let dataType: DataType
        let innerShape: [Int]
    }
    let entries: [Entry]
}

/// Seconds on the monotonic clock.
func monotonicNow() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

/// Thread entry for batcher workers (a global function: C function pointers cannot capture).
private func batcherWorkerMain(_ context: UnsafeMutableRawPointer?) -> UnsafeMutableRawPointer? {
    let batcher = Unmanaged<DynamicBatcher>.fromOpaque(context!).takeRetainedValue()
    batcher.workerLoop()
    return nil
}
