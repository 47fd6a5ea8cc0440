import Glibc
import Synchronization

/// The engine's parallel loop: it splits work into as many chunks as the thread budget
/// (`SessionOptions.blasThreads`, kept by `BLAS.setThreads`), and runs them on `WorkerPool` (the
/// caller runs one chunk itself). OpenBLAS stays single-threaded, so a run uses at most the
/// budget's threads. Stateless; safe from any thread.
enum Parallel {
    /// The step's cost model: how many chunks a step of `work` (a rough number of float
    /// operations, or of elements for memory-bound loops) is split into under `budget` threads,
    /// `items` being the most it can be split into. A step below `minimumWork` runs on one thread
    /// (waking a worker and joining it costs a few microseconds, about what splitting a step of
    /// that size saves); above it, one chunk per `minimumWork / 2` of work, up to the budget: with
    /// 2 threads every step from `minimumWork` splits in two, as before, while on a machine of 16 a
    /// mid-sized step takes the few threads it can use rather than all 16 (each joining and each
    /// cold cache costs, and a tiny model's steps stay on the calling thread).
    static func chunks(work: Int, minimumWork: Int, budget: Int = BLAS.threads, items: Int = .max) -> Int {
        let cap = min(max(1, budget), max(1, items))
        if cap == 1 || work < minimumWork { return 1 }
        let perChunk = max(1, minimumWork / 2)
        return min(cap, max(2, work / perChunk))
    }

    /// Calls `body` on disjoint ranges covering `0..<count`, in parallel when the budget is above one
    /// and `count * costPerItem` (a rough number of float operations) reaches `minimumWork`, in as
    /// many chunks as `chunks(work:minimumWork:)` gives.
    /// Memory-bound loops (elementwise, normalisation rows) pass a higher minimum: splitting a
    /// step of a few microseconds costs about what it saves.
    static func forEach(_ count: Int, costPerItem: Int, minimumWork: Int = 32_768, _ body: (Range<Int>) -> Void) {
        let (work, overflow) = count.multipliedReportingOverflow(by: max(0, costPerItem))
        let chunks = chunks(work: overflow ? .max : work, minimumWork: minimumWork, items: count)
        if chunks <= 1 {
            body(0..<count)
            return
        }
        withoutActuallyEscaping(body) { body in
            WorkerPool.shared.run(chunks: chunks) { c in body((count * c / chunks)..<(count * (c + 1) / chunks)) }
        }
    }
}

/// Worker threads for `Parallel` that spin briefly between jobs before they sleep, so that the
/// short parallel steps of an inference (a few tens of microseconds each) are not dominated by
/// waking threads: `DispatchQueue.concurrentPerform` parked its threads between calls and took
/// 20-100 us to start them again on this project's VMs, about what a 2-thread split of a small
/// GEMM saves. (OpenBLAS's own threads spin the same way.)
///
/// One job at a time: a caller that finds the pool busy (another inference instance's step) runs
/// its chunks itself. A job's chunks are claimed through one atomic word holding the job's
/// generation, chunk count and next chunk, so a worker that wakes late can never claim a chunk of
/// a later job with the earlier job's count. The job's closure is written before the word is
/// published and replaced only after every claimed chunk has finished. Workers are created on
/// demand up to the budget minus one and live for the process.
final class WorkerPool: @unchecked Sendable {
    static let shared = WorkerPool()

    /// How long an idle worker keeps polling for the next job before it sleeps. 2 ms spans the
    /// gaps between the parallel steps of a request (and between requests under load); with
    /// 200 us, workers slept within a request and woke late on this project's VMs (MLP batch 32
    /// at 2 threads: p90 0.86 ms, twice the 1-thread time; 0.45 ms with 2 ms). The cost is up to
    /// 2 ms of polling per worker after the last request of a burst.
    static let spinSeconds = 0.002

    /// generation (bits 40...) | chunks (bits 20..<40) | next chunk (bits 0..<20).
    private let claim = Atomic<Int>(0)
    private let generation = Atomic<Int>(0)
    private let finished = Atomic<Int>(0)
    private let sleepers = Atomic<Int>(0)
    private let busy = Atomic<Bool>(false)
    /// The current job's body; written only by the caller that holds `busy`, before publishing.
    private nonisolated(unsafe) var body: (Int) -> Void = { _ in }
    private let lock: UnsafeMutablePointer<pthread_mutex_t>
    private let wake: UnsafeMutablePointer<pthread_cond_t>
    /// Workers started (guarded by `lock`).
    private var workers = 0

    private init() {
        lock = .allocate(capacity: 1)
        lock.initialize(to: pthread_mutex_t())
        pthread_mutex_init(lock, nil)
        wake = .allocate(capacity: 1)
        wake.initialize(to: pthread_cond_t())
        pthread_cond_init(wake, nil)
    }

    /// Runs `body(0..<chunks)` with the pool's workers and the calling thread; returns when every
    /// chunk has run. `chunks` is at most 2^20.
    func run(chunks: Int, _ body: @escaping (Int) -> Void) {
        precondition(chunks > 0 && chunks < 1 << 20)
        guard busy.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged else {
            for c in 0..<chunks { body(c) }
            return
        }
        defer {
            self.body = { _ in }
            busy.store(false, ordering: .releasing)
        }
        ensureWorkers(chunks - 1)
        self.body = body
        finished.store(0, ordering: .relaxed)
        let gen = (generation.load(ordering: .relaxed) + 1) & 0x7F_FFFF
        claim.store(gen << 40 | chunks << 20, ordering: .releasing)
        generation.store(gen, ordering: .sequentiallyConsistent)
        if sleepers.load(ordering: .sequentiallyConsistent) > 0 {
            pthread_mutex_lock(lock)
            pthread_cond_broadcast(wake)
            pthread_mutex_unlock(lock)
        }
        work(generation: gen)
        while finished.load(ordering: .acquiring) < chunks {}
    }

    /// Claims and runs chunks of job `generation` until none is left.
    private func work(generation gen: Int) {
        while true {
            var word = claim.load(ordering: .acquiring)
            var index = 0
            while true {
                let chunks = (word >> 20) & 0xF_FFFF
                index = word & 0xF_FFFF
                guard word >> 40 == gen, index < chunks else { return }
                let (done, seen) = claim.compareExchange(
                    expected: word, desired: word + 1, ordering: .acquiringAndReleasing)
                if done { break }
                word = seen
            }
            body(index)
            finished.wrappingAdd(1, ordering: .releasing)
        }
    }

    private func ensureWorkers(_ wanted: Int) {
        pthread_mutex_lock(lock)
        defer { pthread_mutex_unlock(lock) }
        while workers < wanted {
            var thread = pthread_t()
            let context = Unmanaged.passUnretained(self).toOpaque()
            guard pthread_create(&thread, nil, workerMain, context) == 0 else { return }
            pthread_detach(thread)
            workers += 1
        }
    }

    /// A worker's life: wait for a new generation (polling for `spinSeconds`, then sleeping),
    /// run its chunks, repeat.
    fileprivate func loop() {
        var seen = generation.load(ordering: .acquiring)
        while true {
            var current = generation.load(ordering: .acquiring)
            if current == seen {
                let deadline = Self.now() + Self.spinSeconds
                var polls = 0
                while current == seen {
                    polls += 1
                    if polls & 255 == 0 && Self.now() > deadline {
                        pthread_mutex_lock(lock)
                        sleepers.wrappingAdd(1, ordering: .sequentiallyConsistent)
                        while generation.load(ordering: .sequentiallyConsistent) == seen {
                            pthread_cond_wait(wake, lock)
                        }
                        sleepers.wrappingSubtract(1, ordering: .sequentiallyConsistent)
                        pthread_mutex_unlock(lock)
                    }
                    current = generation.load(ordering: .acquiring)
                }
            }
            seen = current
            work(generation: current)
        }
    }

    private static func now() -> Double {
        var t = timespec()
        clock_gettime(CLOCK_MONOTONIC, &t)
        return Double(t.tv_sec) + Double(t.tv_nsec) * 1e-9
    }
}

/// The pthread entry point of a pool worker (a global function: C callbacks cannot capture).
private func workerMain(_ context: UnsafeMutableRawPointer?) -> UnsafeMutableRawPointer? {
    Unmanaged<WorkerPool>.fromOpaque(context!).takeUnretainedValue().loop()
    return nil
}
