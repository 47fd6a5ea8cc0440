import CMicroHTTPD
import Glibc
import Logging
import Synchronization

/// Settings of one HTTP listener.
public struct HTTPServerConfiguration: Sendable {
    /// Address to bind: an IPv4 or IPv6 literal, or `localhost`. Default all IPv4 interfaces.
    public var host: String = "0.0.0.0"
    /// Port; 0 picks a free one (read it back from `HTTPServer.port`).
    public var port: Int = 8000
    /// Threads of libmicrohttpd's pool (each runs its own epoll loop). Default: the core count.
    public var threads: Int = max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
    /// Largest request body accepted; beyond it the answer is 413. Default 64 MiB.
    public var maxBodySize: Int = 64 << 20
    /// Seconds an idle keep-alive connection is kept open.
    public var idleTimeout: Int = 120
    /// Most simultaneous connections.
    public var connectionLimit: Int = 4096
    /// Most bytes of request bodies held in memory at once across all connections (bodies being
    /// read, and bodies of requests not yet answered); a request that would pass it gets 503 with
    /// `Retry-After`. Default 4 x `maxBodySize`; the daemon sets it from the machine's memory.
    public var maxBufferedBodyBytes: Int = 4 * (64 << 20)
    /// Longest request target (path and query) in bytes; beyond it the answer is a JSON 414.
    public var maxURILength: Int = 16 << 10
    /// Most bytes of request header fields (names, values and their separators); beyond it a JSON 431.
    public var maxHeaderBytes: Int = 32 << 10
    /// libmicrohttpd's memory per connection, which must hold the request line and headers. Heads
    /// that do not fit get libmicrohttpd's own (non-JSON) 414 or 431, so this is kept well above
    /// `maxURILength` and `maxHeaderBytes` (measured: heads up to about 120 KiB fit in 128 KiB).
    public var connectionMemoryLimit: Int = 128 << 10

    public init() {}
}

/// Errors starting a listener.
public enum HTTPServerError: Error, CustomStringConvertible {
    case badAddress(String)
    case startFailed(host: String, port: Int)

    public var description: String {
        switch self {
        case .badAddress(let h):
            return "cannot listen on '\(h)': not an IPv4 or IPv6 address; use e.g. 0.0.0.0, 127.0.0.1 or ::"
        case .startFailed(let h, let p):
            return "cannot listen on \(h):\(p): the address is in use or not available here; "
                + "choose another --host/--port (port 0 picks a free one)"
        }
    }
}

/// An HTTP/1.1 server on libmicrohttpd: a pool of threads each with its own epoll loop,
/// keep-alive, TCP_NODELAY, a body-size limit, and suspend/resume so that a handler can answer
/// later from another thread without any thread waiting.
///
/// Owns the libmicrohttpd daemon. `start` and `stop` are called by one thread (the daemon's main);
/// handlers run on libmicrohttpd's threads.
public final class HTTPServer: @unchecked Sendable {
    public let configuration: HTTPServerConfiguration
    let handler: any HTTPHandler
    let logger: Logger
    private var daemon: OpaquePointer?
    private var context: Unmanaged<HTTPServer>?
    /// The bound port, valid after `start`.
    public private(set) var port: Int = 0
    /// The listening socket after `quiesce`, closed after `stop` (libmicrohttpd's rule).
    private var quiescedSocket: Int32 = -1
    /// Requests accepted (headers read) and not yet completed, on any connection.
    let inFlight = Atomic<Int>(0)
    /// Set by `quiesce`: responses carry `Connection: close` so keep-alive clients reconnect elsewhere.
    let draining = Atomic<Bool>(false)
    /// Bytes of request bodies reserved by requests not yet completed (see `maxBufferedBodyBytes`).
    /// Reserved on libmicrohttpd's threads as bodies are admitted or arrive, released on completion.
    let bufferedBodyBytes = Atomic<Int>(0)
    /// Connections answered early whose socket should linger when libmicrohttpd closes it, by
    /// connection address, with the body bytes they still declared. Written by the access handler
    /// and read by the connection-closed notification, both on libmicrohttpd's threads.
    private let lingering = Mutex<[UInt: Int]>([:])
    private let lingeringCount = Atomic<Int>(0)
    /// Drains and closes the sockets of connections answered early.
    let closer = LingeringCloser()

    public init(configuration: HTTPServerConfiguration, handler: any HTTPHandler, logger: Logger) {
        self.configuration = configuration
        self.handler = handler
        self.logger = logger
    }

    /// Binds and starts serving. Throws when the address cannot be bound.
    public func start() throws {
        precondition(daemon == nil, "server already started")
        var storage = sockaddr_storage()
        let isIPv6 = try HTTPServer.makeAddress(configuration.host, port: configuration.port, into: &storage)

        var flags = MHD_USE_INTERNAL_POLLING_THREAD.rawValue | MHD_USE_EPOLL.rawValue
            | MHD_ALLOW_SUSPEND_RESUME.rawValue | MHD_USE_ERROR_LOG.rawValue | MHD_USE_ITC.rawValue
        if isIPv6 { flags |= MHD_USE_IPv6.rawValue }

        closer.start()
        let ctx = Unmanaged.passRetained(self)
        let ctxPointer = ctx.toOpaque()
        let completed: MHD_RequestCompletedCallback = swerveRequestCompleted
        let notify: MHD_NotifyConnectionCallback = swerveConnectionNotify
        let log: MHD_LogCallback = swerveLibraryLog
        let started: OpaquePointer? = withUnsafeMutablePointer(to: &storage) { addressPointer in
            var options: [MHD_OptionItem] = [
                // A pool of one is no pool: libmicrohttpd warns and uses its single polling thread.
                MHD_OptionItem(
                    option: configuration.threads > 1 ? .THREAD_POOL_SIZE : .CONNECTION_TIMEOUT,
                    value: configuration.threads > 1 ? configuration.threads : configuration.idleTimeout, ptr_value: nil),
                MHD_OptionItem(option: .CONNECTION_TIMEOUT, value: configuration.idleTimeout, ptr_value: nil),
                MHD_OptionItem(option: .CONNECTION_LIMIT, value: configuration.connectionLimit, ptr_value: nil),
                MHD_OptionItem(
                    option: .CONNECTION_MEMORY_LIMIT, value: configuration.connectionMemoryLimit, ptr_value: nil),
                MHD_OptionItem(
                    option: .NOTIFY_COMPLETED, value: unsafeBitCast(completed, to: Int.self), ptr_value: ctxPointer),
                MHD_OptionItem(
                    option: .NOTIFY_CONNECTION, value: unsafeBitCast(notify, to: Int.self), ptr_value: ctxPointer),
                MHD_OptionItem(option: .EXTERNAL_LOGGER, value: unsafeBitCast(log, to: Int.self), ptr_value: ctxPointer),
                MHD_OptionItem(option: .SOCK_ADDR, value: 0, ptr_value: UnsafeMutableRawPointer(addressPointer)),
                MHD_OptionItem(option: .END, value: 0, ptr_value: nil),
            ]
            return options.withUnsafeMutableBufferPointer { buffer in
                swerve_mhd_start_daemon(
                    flags, UInt16(configuration.port), swerveAccessHandler, ctxPointer, buffer.baseAddress)
            }
        }
        guard let started else {
            ctx.release()
            closer.stop()
            throw HTTPServerError.startFailed(host: configuration.host, port: configuration.port)
        }
        daemon = started
        context = ctx
        port = Int(swerve_mhd_bound_port(started))
    }

    /// Stops accepting new connections (new ones are refused); connections already open are
    /// served until `stop`, and their responses from now on close them.
    public func quiesce() {
        guard let daemon, quiescedSocket < 0 else { return }
        draining.store(true, ordering: .releasing)
        let fd = MHD_quiesce_daemon(daemon)
        guard fd >= 0 else { return }
        // The socket must stay open until MHD_stop_daemon; shutting it down takes it out of LISTEN
        // (Linux), so connection attempts are refused now rather than left in the backlog.
        _ = shutdown(fd, Int32(SHUT_RDWR))
        quiescedSocket = fd
    }

    /// Requests accepted and not yet completed (answered, or their connection closed).
    public var requestsInFlight: Int { inFlight.load(ordering: .acquiring) }

    /// Quiesces, then waits until every accepted request has completed or `timeout` seconds have
    /// passed. Returns the number of requests still in flight (0: drained).
    public func drain(timeout: Double) -> Int {
        quiesce()
        var waited = 0.0
        while requestsInFlight > 0 && waited < timeout {
            usleep(10_000)
            waited += 0.01
        }
        return requestsInFlight
    }

    /// Stops the server: closes every connection and joins libmicrohttpd's threads. Call it when
    /// no request is in flight (`drain`): libmicrohttpd must not be stopped with a suspended one.
    public func stop() {
        guard let daemon else { return }
        MHD_stop_daemon(daemon)
        self.daemon = nil
        if quiescedSocket >= 0 { close(quiescedSocket) }
        quiescedSocket = -1
        closer.stop()
        context?.release()
        context = nil
    }

    deinit { stop() }

    /// Bytes of request bodies held now (see `maxBufferedBodyBytes`).
    public var bufferedBodyByteCount: Int { bufferedBodyBytes.load(ordering: .acquiring) }

    /// Reserves `n` bytes of the buffered-body budget; false (nothing reserved) when they do not fit.
    func reserveBodyBytes(_ n: Int) -> Bool {
        let total = bufferedBodyBytes.add(n, ordering: .acquiringAndReleasing).newValue
        if total <= configuration.maxBufferedBodyBytes { return true }
        bufferedBodyBytes.subtract(n, ordering: .acquiringAndReleasing)
        return false
    }

    func releaseBodyBytes(_ n: Int) {
        if n > 0 { bufferedBodyBytes.subtract(n, ordering: .acquiringAndReleasing) }
    }

    /// Marks `connection` (answered early, to be closed) to linger when libmicrohttpd closes it.
    func lingerOnClose(_ connection: OpaquePointer, pending: Int) {
        lingering.withLock { $0[UInt(bitPattern: Int(bitPattern: UnsafeRawPointer(connection)))] = pending }
        lingeringCount.add(1, ordering: .acquiringAndReleasing)
    }

    /// libmicrohttpd is about to close `connection`'s socket: if it was answered early, hand a
    /// duplicate of the socket to the closer, so that closing libmicrohttpd's copy does not reset it.
    func connectionClosing(_ connection: OpaquePointer) {
        guard lingeringCount.load(ordering: .acquiring) > 0 else { return }
        let key = UInt(bitPattern: Int(bitPattern: UnsafeRawPointer(connection)))
        guard let pending = lingering.withLock({ $0.removeValue(forKey: key) }) else { return }
        lingeringCount.subtract(1, ordering: .acquiringAndReleasing)
        let fd = swerve_mhd_connection_fd(connection)
        guard fd >= 0 else { return }
        let copy = fcntl(fd, F_DUPFD_CLOEXEC, 0)
        if copy >= 0 { closer.adopt(copy, pending: pending) }
    }

    /// Fills `storage` with the socket address for `host`:`port`; returns whether it is IPv6.
    static func makeAddress(_ host: String, port: Int, into storage: inout sockaddr_storage) throws -> Bool {
        let name = host == "localhost" ? "127.0.0.1" : host
        var v4 = in_addr()
        if inet_pton(AF_INET, name, &v4) == 1 {
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = UInt16(port).bigEndian
            address.sin_addr = v4
            withUnsafeBytes(of: &address) { src in
                withUnsafeMutableBytes(of: &storage) { $0.copyMemory(from: src) }
            }
            return false
        }
        var v6 = in6_addr()
        let trimmed = name.hasPrefix("[") && name.hasSuffix("]") ? String(name.dropFirst().dropLast()) : name
        if inet_pton(AF_INET6, trimmed, &v6) == 1 {
            var address = sockaddr_in6()
            address.sin6_family = sa_family_t(AF_INET6)
            address.sin6_port = UInt16(port).bigEndian
            address.sin6_addr = v6
            withUnsafeBytes(of: &address) { src in
                withUnsafeMutableBytes(of: &storage) { $0.copyMemory(from: src) }
            }
            return true
        }
        throw HTTPServerError.badAddress(host)
    }
}
