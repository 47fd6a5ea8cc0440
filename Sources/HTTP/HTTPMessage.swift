/// An HTTP request as the server hands it to a handler: the whole body has arrived.
///
/// A value; safe to pass to another thread.
public struct HTTPRequest: Sendable {
    public var method: String
    /// The path without the query string, percent-decoded by libmicrohttpd.
    public var path: String
    /// Request headers with lower-cased names.
    public var headers: [String: String]
    /// Query arguments (`?a=1&b=2`).
    public var query: [String: String]
    public var body: [UInt8]

    public init(
        method: String, path: String, headers: [String: String] = [:], query: [String: String] = [:],
        body: [UInt8] = []
    ) {
        self.method = method
        self.path = path
        self.headers = headers
        self.query = query
        self.body = body
    }

    /// A header by case-insensitive name.
    public func header(_ name: String) -> String? { headers[name.lowercased()] }
}

/// An HTTP response: status, headers and the whole body.
public struct HTTPResponse: Sendable {
    public var status: Int
    public var headers: [(String, String)]
    public var body: [UInt8]

    public init(status: Int, headers: [(String, String)] = [], body: [UInt8] = []) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    /// A JSON response from already-encoded bytes.
    public static func json(_ status: Int, _ body: [UInt8]) -> HTTPResponse {
        HTTPResponse(status: status, headers: [("Content-Type", "application/json")], body: body)
    }

    /// `{"error": message}` with the given status, the shape every non-2xx answer has.
    public static func error(_ status: Int, _ message: String) -> HTTPResponse {
        var out: [UInt8] = Array("{\"error\":".utf8)
        appendJSONString(message, to: &out)
        out.append(UInt8(ascii: "}"))
        return json(status, out)
    }

    /// Plain text (health endpoints, metrics).
    public static func text(_ status: Int, _ text: String, contentType: String = "text/plain; charset=utf-8")
        -> HTTPResponse
    {
        HTTPResponse(status: status, headers: [("Content-Type", contentType)], body: Array(text.utf8))
    }
}

/// Appends `s` as a JSON string literal (quoted, escaped) to `out`.
public func appendJSONString(_ s: String, to out: inout [UInt8]) {
    out.append(UInt8(ascii: "\""))
    for byte in s.utf8 {
        switch byte {
        case UInt8(ascii: "\""): out.append(contentsOf: [92, 34])
        case UInt8(ascii: "\\"): out.append(contentsOf: [92, 92])
        case 0x0A: out.append(contentsOf: [92, UInt8(ascii: "n")])
        case 0x0D: out.append(contentsOf: [92, UInt8(ascii: "r")])
        case 0x09: out.append(contentsOf: [92, UInt8(ascii: "t")])
        case 0..<0x20:
            let hex: [UInt8] = Array("0123456789abcdef".utf8)
            out.append(contentsOf: [92, UInt8(ascii: "u"), 48, 48, hex[Int(byte >> 4)], hex[Int(byte & 15)]])
        default: out.append(byte)
        }
    }
    out.append(UInt8(ascii: "\""))
}

/// Sends the response for one request. Call it exactly once, from any thread, now or later: a
/// handler that returns without responding leaves the connection suspended (no thread waits)
/// until the responder is called.
public struct HTTPResponder: Sendable {
    let deliver: @Sendable (HTTPResponse) -> Void
    public init(_ deliver: @escaping @Sendable (HTTPResponse) -> Void) { self.deliver = deliver }
    public func respond(_ response: HTTPResponse) { deliver(response) }
}

/// What the server calls for every complete request.
public protocol HTTPHandler: Sendable {
    func handle(_ request: HTTPRequest, responder: HTTPResponder)
    /// The server answered a request itself without calling `handle` (a body over the size
    /// limit: 413), so that the handler can count and log it. The request has no body.
    func rejected(_ request: HTTPRequest, with response: HTTPResponse)
}

extension HTTPHandler {
    public func rejected(_ request: HTTPRequest, with response: HTTPResponse) {}
}
