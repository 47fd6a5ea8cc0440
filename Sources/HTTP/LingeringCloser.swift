import Glibc
import Synchronization

/// Closes refused connections gracefully: reads and discards what the client still sends for a
/// bounded time and byte count, then closes.
///
/// Why: when the server answers early (413 before the body, 400 for a bad head) the client may
/// still be writing its body. Closing a socket with unread bytes makes the kernel send RST, and a
/// client that writes its whole body before reading (Python `requests`, `http.client`) then sees a
/// broken pipe or a reset instead of the answer already sent. Draining until the client has sent
/// its body (or gives up) lets it read the answer.
///
/// The answer has been written and the socket shut down for writing (`SHUT_WR`, by libmicrohttpd)
/// before a socket arrives here; `HTTPServer` hands over a `dup` of libmicrohttpd's socket from
/// its connection-closed notification, so libmicrohttpd's own `close` does not end the connection.
///
/// Bounds: at most `capacity` sockets at once (beyond it a socket is closed at once); each drains
/// until end of stream, `idleSeconds` without data, `totalSeconds` in all, or `pending + slack`
/// bytes, whichever comes first.
///
/// Ownership: one background thread, started by `start` and joined by `stop` (both called by
/// the thread that starts and stops the server), owns the sockets being drained. `adopt` may be
/// called from any thread; it passes sockets to that thread through a mutex and a wake-up pipe.
final class LingeringCloser: @unchecked Sendable {
    struct Limits {
        var capacity = 64
        var idleSeconds = 2.0
        var totalSeconds = 10.0
        /// Bytes drained beyond what the request still declared (Content-Length not yet read).
        var slack = 4 << 20
    }

    private struct Entry {
        var fd: Int32
        var budget: Int
        var deadline: Double
        var idleDeadline: Double
    }

    let limits: Limits
    private let incoming = Mutex<[Entry]>([])
    /// Sockets handed over and not yet closed (incoming and draining); bounded by `capacity`.
    private let count = Atomic<Int>(0)
    private let stopping = Atomic<Bool>(false)
    /// A pipe: `adopt` and `stop` write a byte to wake the thread from `poll`.
    private let wakeFD: Int32
    private let wakeWriteFD: Int32
    private var thread: pthread_t?

    init(limits: Limits = Limits()) {
        self.limits = limits
        var ends: [Int32] = [-1, -1]
        if pipe(&ends) == 0 {
            for fd in ends {
                _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
                _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
            }
        }
        wakeFD = ends[0]
        wakeWriteFD = ends[1]
    }

    deinit {
        stop()
        for entry in incoming.withLock({ $0 }) { close(entry.fd) }
        if wakeFD >= 0 { close(wakeFD) }
        if wakeWriteFD >= 0 { close(wakeWriteFD) }
    }

    /// Sockets currently draining or waiting to (for tests and metrics).
    var active: Int { count.load(ordering: .acquiring) }

    func start() {
        guard thread == nil, wakeFD >= 0 else { return }
        stopping.store(false, ordering: .releasing)
        var tid = pthread_t()
        let context = Unmanaged.passRetained(self).toOpaque()
        let rc = pthread_create(&tid, nil, { raw in
            let closer = Unmanaged<LingeringCloser>.fromOpaque(raw!).takeRetainedValue()
            closer.run()
            return nil
        }, context)
        if rc == 0 {
            thread = tid
        } else {
            Unmanaged<LingeringCloser>.fromOpaque(context).release()
        }
    }

    /// Closes every socket still draining and joins the thread.
    func stop() {
        guard let thread else { return }
        stopping.store(true, ordering: .releasing)
        wake()
        pthread_join(thread, nil)
        self.thread = nil
    }

    /// Takes ownership of `fd` (already answered and shut down for writing): drains it, then closes
    /// it. `pending` is how many more body bytes the request declared; unknown (chunked) is 0.
    func adopt(_ fd: Int32, pending: Int) {
        guard thread != nil, !stopping.load(ordering: .acquiring) else {
            close(fd)
            return
        }
        guard count.add(1, ordering: .acquiringAndReleasing).newValue <= limits.capacity else {
            count.subtract(1, ordering: .acquiringAndReleasing)
            close(fd)  // too many lingering already: this client may see a reset
            return
        }
        let now = LingeringCloser.now()
        let budget = pending > Int.max - limits.slack ? Int.max : pending + limits.slack
        incoming.withLock {
            $0.append(Entry(fd: fd, budget: budget, deadline: now + limits.totalSeconds, idleDeadline: now + limits.idleSeconds))
        }
        wake()
    }

    private func wake() {
        var one: UInt8 = 1
        _ = write(wakeWriteFD, &one, 1)
    }

    private static func now() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }

    private func run() {
        var draining: [Entry] = []
        var scratch = [UInt8](repeating: 0, count: 64 << 10)
        while true {
            draining += incoming.withLock { list in
                defer { list.removeAll() }
                return list
            }
            if stopping.load(ordering: .acquiring) {
                for entry in draining { close(entry.fd) }
                count.subtract(draining.count, ordering: .acquiringAndReleasing)
                return
            }
            var fds = [pollfd(fd: wakeFD, events: Int16(POLLIN), revents: 0)]
            fds += draining.map { pollfd(fd: $0.fd, events: Int16(POLLIN), revents: 0) }
            let timeout: Int32 = draining.isEmpty ? -1 : 100
            _ = poll(&fds, nfds_t(fds.count), timeout)
            if fds[0].revents != 0 {
                var bytes = [UInt8](repeating: 0, count: 64)
                _ = read(wakeFD, &bytes, bytes.count)
            }
            let now = LingeringCloser.now()
            var kept: [Entry] = []
            for (index, var entry) in draining.enumerated() {
                var done = now >= entry.deadline || now >= entry.idleDeadline
                if !done && fds[index + 1].revents != 0 {
                    // Does not block: the socket is libmicrohttpd's non-blocking one (a dup shares the flag).
                    let n = recv(entry.fd, &scratch, min(scratch.count, max(entry.budget, 1)), 0)
                    if n > 0 {
                        entry.budget -= n
                        entry.idleDeadline = now + limits.idleSeconds
                        done = entry.budget <= 0
                    } else if n == 0 || (errno != EAGAIN && errno != EINTR) {
                        done = true  // end of stream or an error: the client has stopped sending
                    }
                }
                if done {
                    close(entry.fd)
                    count.subtract(1, ordering: .acquiringAndReleasing)
                } else {
                    kept.append(entry)
                }
            }
            draining = kept
        }
    }
}
