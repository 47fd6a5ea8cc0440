import Dispatch

/// The engine's own parallel loop, sharing the one thread budget with OpenBLAS: it splits work into
/// as many chunks as OpenBLAS may use threads (`SessionOptions.blasThreads`, read back from
/// OpenBLAS, so there is a single setting), and runs them with `DispatchQueue.concurrentPerform`.
/// Never called while a BLAS call of the same run is in progress (the steps of a run are
/// sequential), so a run uses at most the budget's threads. Stateless; safe from any thread.
enum Parallel {
    /// Calls `body` on disjoint ranges covering `0..<count`, in parallel when the budget is above one
    /// and `count * costPerItem` (a rough number of float operations) makes it worth it.
    static func forEach(_ count: Int, costPerItem: Int, _ body: (Range<Int>) -> Void) {
        let budget = BLAS.threads
        let chunks = min(budget, count)
        if chunks <= 1 || count * costPerItem < 32_768 {
            body(0..<count)
            return
        }
        withoutActuallyEscaping(body) { body in
            let box = Box(body)
            DispatchQueue.concurrentPerform(iterations: chunks) { c in
                box.body((count * c / chunks)..<(count * (c + 1) / chunks))
            }
        }
    }

    /// Carries the non-escaping body into `concurrentPerform` (which runs it before returning).
    private final class Box: @unchecked Sendable {
        let body: (Range<Int>) -> Void
        init(_ body: @escaping (Range<Int>) -> Void) { self.body = body }
    }
}
