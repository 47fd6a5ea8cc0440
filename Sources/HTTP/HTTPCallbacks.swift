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
    var tooLarge = false
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

/// Collects headers or query arguments into a dictionary.
final class ValueCollector {
    var values: [String: String] = [:]
    let lowercaseKeys: Bool
    init(lowercaseKeys: Bool) { self.lowercaseKeys = lowercaseKeys }
}

func swerveCollectValue(
    _ cls: UnsafeMutableRawPointer?, _ kind: MHD_ValueKind, _ key: UnsafePointer<CChar>?,
    _ value: UnsafePointer<CChar>?
) -> MHD_Result {
    guard let cls, let key else { return .YES }
    let collector = Unmanaged<ValueCollector>.fromOpaque(cls).takeUnretainedValue()
    let name = String(cString: key)
    collector.values[collector.lowercaseKeys ? name.lowercased() : name] = value.map { String(cString: $0) } ?? ""
    return .YES
}

func collectValues(_ connection: OpaquePointer, kind: MHD_ValueKind, lowercaseKeys: Bool) -> [String: String] {
    let collector = ValueCollector(lowercaseKeys: lowercaseKeys)
    withExtendedLifetime(collector) {
        _ = MHD_get_connection_values(
            connection, kind, swerveCollectValue, Unmanaged.passUnretained(collector).toOpaque())
    }
    return collector.values
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
    let maxBody = server.configuration.maxBodySize

    guard let statePointer = conCls.pointee else {
        // First call: headers are in, the body is not.
        let state = RequestState(method: String(cString: method), path: String(cString: url), connection: connection)
        state.headers = collectValues(connection, kind: .HEADER_KIND, lowercaseKeys: true)
        state.query = collectValues(connection, kind: .GET_ARGUMENT_KIND, lowercaseKeys: false)
        conCls.pointee = Unmanaged.passRetained(state).toOpaque()
        server.inFlight.add(1, ordering: .acquiringAndReleasing)
        if let length = state.headers["content-length"].flatMap({ Int($0) }), length > maxBody {
            // Answer now rather than read a body we will refuse; libmicrohttpd closes the connection.
            state.dispatched = true
            let response = tooLargeResponse(maxBody)
            state.shared.withLock { $0.response = response }
            server.handler.rejected(state.headOnly, with: response)
            return queue(response, on: connection)
        }
        return .YES
    }
    let state = Unmanaged<RequestState>.fromOpaque(statePointer).takeUnretainedValue()

    if let uploadDataSize, uploadDataSize.pointee > 0 {
        let n = uploadDataSize.pointee
        if !state.dispatched && !state.tooLarge, let uploadData {
            if state.body.count + n > maxBody {
                state.tooLarge = true
                state.body = []
            } else {
                state.body.append(contentsOf: UnsafeRawBufferPointer(start: uploadData, count: n))
            }
        }
        uploadDataSize.pointee = 0
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
    if state.tooLarge {
        let response = tooLargeResponse(maxBody)
        server.handler.rejected(state.headOnly, with: response)
        return queue(response, on: connection)
    }

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

private func tooLargeResponse(_ limit: Int) -> HTTPResponse {
    var response = HTTPResponse.error(
        413,
        "request body is larger than the server's limit of \(limit) bytes; send a smaller request "
            + "(split the batch, or use the binary tensor format) or raise --max-body-size")
    response.headers.append(("Connection", "close"))
    return response
}

func swerveRequestCompleted(
    _ cls: UnsafeMutableRawPointer?, _ connection: OpaquePointer?,
    _ conCls: UnsafeMutablePointer<UnsafeMutableRawPointer?>?, _ code: MHD_RequestTerminationCode
) {
    guard let conCls, let pointer = conCls.pointee else { return }
    Unmanaged<RequestState>.fromOpaque(pointer).release()
    conCls.pointee = nil
    if let cls { Unmanaged<HTTPServer>.fromOpaque(cls).takeUnretainedValue().inFlight.subtract(1, ordering: .acquiringAndReleasing) }
}

func swerveConnectionNotify(
    _ cls: UnsafeMutableRawPointer?, _ connection: OpaquePointer?,
    _ socketContext: UnsafeMutablePointer<UnsafeMutableRawPointer?>?, _ code: MHD_ConnectionNotificationCode
) {
    guard code == .CONNECTION_NOTIFY_STARTED, let connection else { return }
    let fd = swerve_mhd_connection_fd(connection)
    guard fd >= 0 else { return }
    // Responses go out in more than one write; without TCP_NODELAY a client waits ~40 ms each.
    var one: Int32 = 1
    _ = setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
}
