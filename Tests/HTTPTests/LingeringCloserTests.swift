import Glibc
@testable import HTTP
import Testing

/// The closer's bounds, on socket pairs: a capacity of sockets at once, and a byte budget.
@Suite struct LingeringCloserTests {
    /// A connected pair: the closer gets `.0`, the test plays the client on `.1` (10 s receive timeout).
    func pair() -> (Int32, Int32) {
        var fds: [Int32] = [-1, -1]
        #expect(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &fds) == 0)
        _ = fcntl(fds[0], F_SETFL, fcntl(fds[0], F_GETFL) | O_NONBLOCK)
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(fds[1], SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        return (fds[0], fds[1])
    }

    /// Whether the client's next read finds the closer's end closed: end of stream, or a reset
    /// (a Unix socket closed with unread bytes); false when it stays open (10 s timeout).
    func closedByCloser(_ fd: Int32) -> Bool {
        var byte: UInt8 = 0
        let n = recv(fd, &byte, 1, 0)
        return n == 0 || (n < 0 && errno == ECONNRESET)
    }

    @Test func closesAtOnceBeyondItsCapacity() {
        var limits = LingeringCloser.Limits()
        limits.capacity = 1
        // Long time limits, so that only the capacity can close a socket within the client's 10 s.
        limits.idleSeconds = 60
        limits.totalSeconds = 60
        let closer = LingeringCloser(limits: limits)
        closer.start()
        defer { closer.stop() }
        let first = pair()
        let second = pair()
        closer.adopt(first.0, pending: 0)
        closer.adopt(second.0, pending: 0)
        // The second is over capacity: closed now, so its client reads end of stream.
        #expect(closedByCloser(second.1))
        #expect(closer.active == 1)
        // The first drains until its client stops sending (closes).
        close(first.1)
        close(second.1)
        for _ in 0..<500 where closer.active > 0 { usleep(10_000) }
        #expect(closer.active == 0)
    }

    @Test func stopsDrainingPastItsByteBudget() {
        var limits = LingeringCloser.Limits()
        limits.slack = 1000
        // Long time limits, so that only the byte budget can close the socket within the client's 10 s.
        limits.idleSeconds = 60
        limits.totalSeconds = 60
        let closer = LingeringCloser(limits: limits)
        closer.start()
        defer { closer.stop() }
        let (server, client) = pair()
        closer.adopt(server, pending: 500)
        // 1500 bytes (the pending 500 + 1000 slack) are read and discarded, then the socket is closed.
        var data = [UInt8](repeating: 1, count: 4000)
        #expect(send(client, &data, data.count, Int32(MSG_NOSIGNAL)) == 4000)
        #expect(closedByCloser(client))
        close(client)
    }
}
