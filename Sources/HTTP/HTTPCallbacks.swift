import CMicroHTTPD
import Glibc
import Synchronization

// libmicrohttpd's C callbacks. They are global functions (a capturing closure cannot become a C
// function pointer, and trying crashes this compiler); all context travels through the `cls`
// pointers: the server as `Unmanaged<HTTPServer>`, each request's state as `Unmanaged<RequestState>`
// in `con_cls`.

/// The state of one request, from its first callback to `NOTIFY_COMPLETED`.
///
/// Owned by libmicrohttpd's `con_cls` slot (one retain, released in `swerveRequestCompleted`).
/// Fields without the lock are touched only by the libmicrohttpd thread that runs the connection;
/// `shared` is also touched by whichever thread calls the responder.
final class RequestState: @unchecked Sendable {
    struct Shared {
        var response: HTTPResponse?
        var suspended = false
    }

    let method: String
    let path: String
    let connection: OpaquePointer
    var headers: [String: String] = [:]
    var query: [String: String] = [:]
    var body: [UInt8] = []
    /// How the body is delimited (decided on the first call).
    var framing = RequestFraming(contentLength: nil, chunked: false)
    /// Bytes of `HTTPServer.bufferedBodyBytes` this request holds; given back when it completes.
    var reserved = 0
    /// The handler has been called (or a response queued early); later calls only deliver.
    var dispatched = false
    let shared = Mutex(Shared())

    init(method: String, path: String, connection: OpaquePointer) {
        self.method = method
        self.path = path
        self.connection = connection
    }

    /// The request without its body (for `HTTPHandler.rejected`).
    var headOnly: HTTPRequest { HTTPRequest(method: method, path: path, headers: headers, query: query) }

    /// Records the response; resumes the connection if the handler returned without one.
    func complete(_ response: HTTPResponse) {
        let resume = shared.withLock { shared -> Bool in
            guard shared.response == nil else { return false }  // answered twice: keep the first
            shared.response = response
            defer { shared.suspended = false }
            return shared.suspended
        }
        if resume { MHD_resume_connection(connection) }
    }
}

/// Collects headers or query arguments, in order and with duplicates.
final class ValueCollector {
    var pairs: [(name: String, value: String)] = []
}

func swerveCollectValue(
    _ cls: UnsafeMutableRawPointer?, _ kind: MHD_ValueKind, _ key: UnsafePointer<CChar>?,
    _ value: UnsafePointer<CChar>?
) -> MHD_Result {
    guard let cls, let key else { return .YES }
    let collector = Unmanaged<ValueCollector>.fromOpaque(cls).takeUnretainedValue()
    collector.pairs.append((String(cString: key), value.map { String(cString: $0) } ?? ""))
    return .YES
}

/// Every header or query argument of the request, as sent (names not case-folded), duplicates included.
func collectPairs(_ connection: OpaquePointer, kind: MHD_ValueKind) -> [(name: String, value: String)] {
    let collector = ValueCollector()
    withExtendedLifetime(collector) {
        _ = MHD_get_connection_values(
            connection, kind, swerveCollectValue, Unmanaged.passUnretained(collector).toOpaque())
    }
    return collector.pairs
}

/// Pairs as a dictionary (the last of duplicate names wins).
func dictionary(_ pairs: [(name: String, value: String)], lowercaseKeys: Bool) -> [String: String] {
    var values: [String: String] = [:]
    for (name, value) in pairs { values[lowercaseKeys ? name.lowercased() : name] = value }
    return values
}

/// A valid pointer for empty bodies (never written).
nonisolated(unsafe) private let emptyBody = UnsafeMutableRawPointer.allocate(byteCount: 1, alignment: 1)

/// Queues `response` on `connection` (libmicrohttpd copies the bytes); `closing` adds
/// `Connection: close` (the server is draining).
func queue(_ response: HTTPResponse, on connection: OpaquePointer, closing: Bool = false) -> MHD_Result {
    let mhdResponse: OpaquePointer? = response.body.withUnsafeBytes { bytes in
        MHD_create_response_from_buffer(
            bytes.count, bytes.baseAddress.map { UnsafeMutableRawPointer(mutating: $0) } ?? emptyBody,
            MHD_ResponseMemoryMode.RESPMEM_MUST_COPY)
    }
    guard let mhdResponse else { return .NO }
    for (name, value) in response.headers { _ = MHD_add_response_header(mhdResponse, name, value) }
    if closing { _ = MHD_add_response_header(mhdResponse, "Connection", "close") }
    let result = MHD_queue_response(connection, UInt32(response.status), mhdResponse)
    MHD_destroy_response(mhdResponse)
    return result
}

func swerveAccessHandler(
    _ cls: UnsafeMutableRawPointer?, _ connection: OpaquePointer?, _ url: UnsafePointer<CChar>?,
    _ method: UnsafePointer<CChar>?, _ version: UnsafePointer<CChar>?, _ uploadData: UnsafePointer<CChar>?,
    _ uploadDataSize: UnsafeMutablePointer<Int>?, _ conCls: UnsafeMutablePointer<UnsafeMutableRawPointer?>?
) -> MHD_Result {
    guard let cls, let connection, let conCls, let url, let method else { return .NO }
    let server = Unmanaged<HTTPServer>.fromOpaque(cls).takeUnretainedValue()

    guard let statePointer = conCls.pointee else {
        // First call: headers are in, the body is not.
        let state = RequestState(method: String(cString: method), path: String(cString: url), connection: connection)
        let fields = collectPairs(connection, kind: .HEADER_KIND)
        let arguments = collectPairs(connection, kind: .GET_ARGUMENT_KIND)
        state.headers = dictionary(fields, lowercaseKeys: true)
        state.query = dictionary(arguments, lowercaseKeys: false)
        conCls.pointee = Unmanaged.passRetained(state).toOpaque()
        server.inFlight.add(1, ordering: .acquiringAndReleasing)
        let versionText = version.map { String(cString: $0) } ?? "HTTP/1.1"
        if let refusal = admit(state, fields: fields, arguments: arguments, version: versionText, server: server) {
            // Answer now rather than read a body we will refuse. libmicrohttpd stops reading,
            // sends the answer and closes; the connection then lingers (see `LingeringCloser`).
            state.dispatched = true
            server.handler.rejected(state.headOnly, with: refusal)
            server.lingerOnClose(connection, pending: state.framing.contentLength ?? 0)
            return queue(refusal, on: connection)
        }
        if let length = state.framing.contentLength { state.body.reserveCapacity(length) }
        return .YES
    }
    let state = Unmanaged<RequestState>.fromOpaque(statePointer).takeUnretainedValue()

    if let uploadDataSize, uploadDataSize.pointee > 0 {
        let n = uploadDataSize.pointee
        uploadDataSize.pointee = 0
        guard !state.dispatched, let uploadData else { return .YES }
        let maxBody = server.configuration.maxBodySize
        if state.body.count + n > maxBody {
            // Only a chunked body gets here (a Content-Length over the limit is refused on the first call).
            return refuseDuringUpload(state, tooLargeResponse(maxBody), server: server)
        }
        if state.framing.contentLength == nil {
            // A chunked body reserves as it arrives; a Content-Length one reserved all of it up front.
            guard server.reserveBodyBytes(n) else {
                return refuseDuringUpload(state, bufferFullResponse(server.configuration.maxBufferedBodyBytes), server: server)
            }
            state.reserved += n
        }
        state.body.append(contentsOf: UnsafeRawBufferPointer(start: uploadData, count: n))
        return .YES
    }

    if state.dispatched {
        // Resumed after a late answer, or a response was queued early already.
        if state.shared.withLock({ $0.suspended }) { return .YES }
        guard let response = state.shared.withLock({ shared -> HTTPResponse? in
            defer { shared.response = nil }
            return shared.response
        }) else { return .YES }
        return queue(response, on: connection, closing: server.draining.load(ordering: .acquiring))
    }
    state.dispatched = true

    let request = HTTPRequest(
        method: state.method, path: state.path, headers: state.headers, query: state.query, body: state.body)
    state.body = []
    server.handler.handle(request, responder: HTTPResponder { [state] in state.complete($0) })

    // Answer now if the handler did; otherwise suspend until the responder resumes us.
    let ready: HTTPResponse? = state.shared.withLock { shared in
        if let response = shared.response {
            shared.response = nil
            return response
        }
        shared.suspended = true
        MHD_suspend_connection(connection)
        return nil
    }
    if let ready { return queue(ready, on: connection, closing: server.draining.load(ordering: .acquiring)) }
    return .YES
}

/// Checks a request's head on its first call: framing (400), target and header sizes (414, 431),
/// declared body size (413) and room in the buffered-body budget (503). Returns the answer that
/// refuses it, or nil to read the body. Sets `state.framing` and `state.reserved`.
private func admit(
    _ state: RequestState, fields: [(name: String, value: String)], arguments: [(name: String, value: String)],
    version: String, server: HTTPServer
) -> HTTPResponse? {
    let configuration = server.configuration
    switch RequestFraming.decide(fields: fields, version: version) {
    case .failure(let problem):
        return closingError(400, "malformed request framing: " + problem.message)
    case .success(let framing):
        state.framing = framing
    }
    // The target as libmicrohttpd splits it: the path plus '?', '=' and '&' around each argument.
    let targetLength = arguments.reduce(state.path.utf8.count) { $0 + $1.name.utf8.count + $1.value.utf8.count + 2 }
    if targetLength > configuration.maxURILength {
        return closingError(
            414,
            "the request target (path and query) is about \(targetLength) bytes, over the server's limit of "
                + "\(configuration.maxURILength); send the data in the request body instead")
    }
    let headerBytes = fields.reduce(0) { $0 + $1.name.utf8.count + $1.value.utf8.count + 4 }
    if headerBytes > configuration.maxHeaderBytes {
        return closingError(
            431,
            "the request headers are \(headerBytes) bytes, over the server's limit of \(configuration.maxHeaderBytes); "
                + "send fewer or shorter headers")
    }
    if let length = state.framing.contentLength {
        if length > configuration.maxBodySize { return tooLargeResponse(configuration.maxBodySize) }
        if length > 0 {
            guard server.reserveBodyBytes(length) else { return bufferFullResponse(configuration.maxBufferedBodyBytes) }
            state.reserved = length
        }
    }
    return nil
}

/// Refuses a request while its body is arriving. libmicrohttpd 0.9.75 refuses `MHD_queue_response`
/// until the whole body has been read, so the answer is written to the socket here (the socket has
/// nothing else pending: libmicrohttpd writes nothing while it reads a request), and returning
/// `.NO` makes libmicrohttpd stop reading, shut the socket down for writing and close it; the
/// connection lingers so that the client can read the answer.
private func refuseDuringUpload(_ state: RequestState, _ response: HTTPResponse, server: HTTPServer) -> MHD_Result {
    state.dispatched = true
    state.body = []
    server.handler.rejected(state.headOnly, with: response)
    let bytes = serialize(response)
    let fd = swerve_mhd_connection_fd(state.connection)
    if fd >= 0 {
        // libmicrohttpd's sockets are non-blocking: this never waits.
        let sent = bytes.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        if sent == bytes.count { server.lingerOnClose(state.connection, pending: 0) }
    }
    return .NO
}

/// A complete HTTP/1.1 response as bytes, for `refuseDuringUpload` (always `Connection: close`).
func serialize(_ response: HTTPResponse) -> [UInt8] {
    var head = "HTTP/1.1 \(response.status) \(reasonPhrase(response.status))\r\n"
    for (name, value) in response.headers where name.lowercased() != "connection" { head += "\(name): \(value)\r\n" }
    head += "Content-Length: \(response.body.count)\r\nConnection: close\r\n\r\n"
    return Array(head.utf8) + response.body
}

private func reasonPhrase(_ status: Int) -> String {
    switch status {
    case 400: return "Bad Request"
    case 413: return "Content Too Large"
    case 414: return "URI Too Long"
    case 431: return "Request Header Fields Too Large"
    case 503: return "Service Unavailable"
    default: return "Error"
    }
}

/// A JSON error that also closes the connection.
private func closingError(_ status: Int, _ message: String) -> HTTPResponse {
    var response = HTTPResponse.error(status, message)
    response.headers.append(("Connection", "close"))
    return response
}

private func tooLargeResponse(_ limit: Int) -> HTTPResponse {
    closingError(
        413,
        "request body is larger than the server's limit of \(limit) bytes; send a smaller request "
            + "(split the batch, or use the binary tensor format) or raise --max-body-size")
}

private func bufferFullResponse(_ limit: Int) -> HTTPResponse {
    var response = closingError(
        503,
        "the server is holding its limit of \(limit) bytes of request bodies from other requests; "
            + "retry shortly, or raise --max-buffered-body-bytes")
    response.headers.append(("Retry-After", "1"))
    return response
}

func swerveRequestCompleted(
    _ cls: UnsafeMutableRawPointer?, _ connection: OpaquePointer?,
    _ conCls: UnsafeMutablePointer<UnsafeMutableRawPointer?>?, _ code: MHD_RequestTerminationCode
) {
    guard let conCls, let pointer = conCls.pointee else { return }
    let state = Unmanaged<RequestState>.fromOpaque(pointer).takeRetainedValue()
    conCls.pointee = nil
    if let cls {
        let server = Unmanaged<HTTPServer>.fromOpaque(cls).takeUnretainedValue()
        server.releaseBodyBytes(state.reserved)
        state.reserved = 0
        server.inFlight.subtract(1, ordering: .acquiringAndReleasing)
    }
}

func swerveConnectionNotify(
    _ cls: UnsafeMutableRawPointer?, _ connection: OpaquePointer?,
    _ socketContext: UnsafeMutablePointer<UnsafeMutableRawPointer?>?, _ code: MHD_ConnectionNotificationCode
) {
    guard let connection else { return }
    if code == .CONNECTION_NOTIFY_CLOSED {
        // The socket is still open here: libmicrohttpd closes it after this notification.
        if let cls { Unmanaged<HTTPServer>.fromOpaque(cls).takeUnretainedValue().connectionClosing(connection) }
        return
    }
    guard code == .CONNECTION_NOTIFY_STARTED else { return }
    let fd = swerve_mhd_connection_fd(connection)
    guard fd >= 0 else { return }
    // Responses go out in more than one write; without TCP_NODELAY a client waits ~40 ms each.
    var one: Int32 = 1
    _ = setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
}

/// libmicrohttpd's own messages (`MHD_USE_ERROR_LOG`), sent to the server's logger at debug level
/// with `event=http_library` instead of raw lines on standard error (which would break
/// `--log-format json`). They concern single connections (a client's malformed request, a
/// connection swerve told it to drop); the server's own answers and errors are logged elsewhere.
func swerveLibraryLog(_ cls: UnsafeMutableRawPointer?, _ format: UnsafePointer<CChar>?, _ arguments: CVaListPointer?) {
    guard let cls, let format, let arguments else { return }
    let server = Unmanaged<HTTPServer>.fromOpaque(cls).takeUnretainedValue()
    var buffer = [CChar](repeating: 0, count: 512)
    _ = vsnprintf(&buffer, buffer.count, format, arguments)
    let text = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    server.logger.debug(
        "libmicrohttpd: \(text.hasSuffix("\n") ? String(text.dropLast()) : text)",
        metadata: ["event": "http_library", "port": "\(server.port)"])
}
