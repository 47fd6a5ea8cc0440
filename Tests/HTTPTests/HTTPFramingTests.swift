import Foundation
import Glibc
@testable import HTTP
import Logging
import Testing

/// Strict HTTP/1.1 framing on a real server and raw sockets: requests that a proxy and this
/// server could delimit differently are refused with a JSON 400 and their connection closed, so
/// the bytes after them are never served as another request; bodies over the limits are refused
/// while they arrive; every answer the server writes itself is JSON.
@Suite(.serialized) struct HTTPFramingTests {
    func startServer(maxBody: Int = 1 << 20, maxBuffered: Int? = nil) throws -> HTTPServer {
        var config = HTTPServerConfiguration()
        config.host = "127.0.0.1"
        config.port = 0
        config.threads = 2
        config.maxBodySize = maxBody
        config.maxBufferedBodyBytes = maxBuffered ?? 4 * maxBody
        let server = HTTPServer(configuration: config, handler: EchoHandler(), logger: Logger(label: "test"))
        try server.start()
        return server
    }

    /// The request that a smuggling attempt hides after its first one.
    static let smuggled = "GET /smuggled HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"

    static func head(_ lines: [String], version: String = "HTTP/1.1") -> String {
        "POST /first \(version)\r\nHost: 127.0.0.1\r\n" + lines.map { $0 + "\r\n" }.joined() + "\r\n"
    }

    /// Heads this server refuses itself (JSON 400), each followed by a body and a smuggled request.
    static let refusedByServer: [(String, String)] = [
        ("CL then TE", head(["Content-Length: 5", "Transfer-Encoding: chunked"]) + "0\r\n\r\n"),
        ("TE then CL", head(["Transfer-Encoding: chunked", "Content-Length: 5"]) + "0\r\n\r\n"),
        ("two different CLs", head(["Content-Length: 0", "Content-Length: 5"])),
        ("two equal CLs", head(["Content-Length: 3", "Content-Length: 3"]) + "abc"),
        ("two TEs", head(["Transfer-Encoding: chunked", "Transfer-Encoding: chunked"]) + "0\r\n\r\n"),
        ("folded TE", head(["Transfer-Encoding:", " chunked"]) + "0\r\n\r\n"),
        ("TE with a folded second coding", head(["Transfer-Encoding: chunked", " identity"]) + "0\r\n\r\n"),
        ("folded CL", head(["Content-Length: 3", " 0"]) + "abc"),
        ("space before the colon of TE", head(["Transfer-Encoding : chunked"]) + "0\r\n\r\n"),
        ("space before the colon of CL", head(["Content-Length : 3"]) + "abc"),
        ("tab before the colon of CL", head(["Content-Length\t: 3"]) + "abc"),
        ("space before the colon of another header", head(["X-Test : 1", "Content-Length: 0"])),
        ("TE xchunked", head(["Transfer-Encoding: xchunked"]) + "0\r\n\r\n"),
        ("TE chunked, identity", head(["Transfer-Encoding: chunked, identity"]) + "0\r\n\r\n"),
        ("TE identity", head(["Transfer-Encoding: identity"])),
        ("TE chunked with trailing space", head(["Transfer-Encoding: chunked  "]) + "0\r\n\r\n"),
        ("TE on HTTP/1.0", head(["Transfer-Encoding: chunked"], version: "HTTP/1.0") + "0\r\n\r\n"),
    ]

    @Test(arguments: refusedByServer)
    func ambiguousFramingGets400AndClose(name: String, request: String) throws {
        let server = try startServer()
        defer { server.stop() }
        let client = try TestClient(port: server.port)
        try client.write(Array((request + HTTPFramingTests.smuggled).utf8))
        let r = try client.readResponse()
        #expect(r.status == 400, "\(name)")
        #expect(r.headers["content-type"] == "application/json", "\(name)")
        #expect(r.headers["connection"] == "close", "\(name)")
        #expect(r.text.hasPrefix("{\"error\":\"malformed request framing: "), "\(name): \(r.text)")
        // The connection ends here: the smuggled request is never answered.
        let rest = String(decoding: try client.readToEnd(), as: UTF8.self)
        #expect(rest.isEmpty, "\(name): the server answered the bytes after the refused request: \(rest)")
    }

    /// Bad Content-Length values libmicrohttpd refuses itself before the handler runs (its own
    /// HTML body); they must still close the connection without serving what follows.
    static let refusedByLibmicrohttpd: [(String, String, Int)] = [
        ("CL list", head(["Content-Length: 3, 3"]) + "abc", 400),
        ("CL with a sign", head(["Content-Length: +3"]) + "abc", 400),
        ("negative CL", head(["Content-Length: -3"]) + "abc", 400),
        ("empty CL", head(["Content-Length:"]), 400),
        ("hex CL", head(["Content-Length: 0x3"]) + "abc", 400),
        ("CL with trailing letters", head(["Content-Length: 3abc"]) + "abc", 400),
        ("CL with trailing space", head(["Content-Length: 3 "]) + "abc", 400),
        ("CL overflow", head(["Content-Length: 99999999999999999999999"]) + "abc", 413),
    ]

    @Test(arguments: refusedByLibmicrohttpd)
    func badContentLengthIsRefusedAndClosed(name: String, request: String, status: Int) throws {
        let server = try startServer()
        defer { server.stop() }
        let client = try TestClient(port: server.port)
        try client.write(Array((request + HTTPFramingTests.smuggled).utf8))
        let r = try client.readResponse()
        #expect(r.status == status, "\(name)")
        let rest = String(decoding: r.body + (try client.readToEnd()), as: UTF8.self)
        #expect(!rest.contains("smuggled"), "\(name): the server answered the bytes after the refused request")
    }

    @Test func acceptedFramingStillWorks() throws {
        let server = try startServer()
        defer { server.stop() }
        let client = try TestClient(port: server.port)
        // Chunked in capitals (libmicrohttpd de-chunks it), then a Content-Length request on the
        // same connection: both answered, in order.
        let chunked = "POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: CHUNKED\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
        try client.write(Array(chunked.utf8))
        #expect(try client.readResponse().text == "POST /a - 3 -")
        #expect(try client.send("POST", "/b", body: [1, 2]).text == "POST /b - 2 -")
    }

    @Test func chunkedBodyOverTheLimitGets413BeforeItEnds() throws {
        let server = try startServer(maxBody: 1000)
        defer { server.stop() }
        let client = try TestClient(port: server.port)
        let chunk = String(repeating: "a", count: 1500)
        // The body never ends (no last chunk): the answer must come while it is still arriving.
        try client.write(Array("POST /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5dc\r\n\(chunk)\r\n".utf8))
        let r = try client.readResponse()
        #expect(r.status == 413)
        #expect(r.headers["content-type"] == "application/json")
        #expect(r.headers["connection"] == "close")
        #expect(r.text.contains("--max-body-size"))
        #expect(try client.isClosedByServer())
        #expect(server.bufferedBodyByteCount == 0)
    }

    @Test func contentLengthBodyOverTheLimitWrittenWholeStillReads413() throws {
        let server = try startServer(maxBody: 1 << 20)
        defer { server.stop() }
        let client = try TestClient(port: server.port)
        // Like Python requests: the whole body goes out before the answer is read. Far more than
        // the socket buffers hold, so the server must read and discard it to avoid a reset.
        let body = [UInt8](repeating: 7, count: 48 << 20)
        try client.write(Array("POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: \(body.count)\r\n\r\n".utf8) + body)
        let r = try client.readResponse()
        #expect(r.status == 413)
        #expect(r.headers["content-type"] == "application/json")
        #expect(r.text.contains("limit of 1048576 bytes"))
        #expect(try client.isClosedByServer())
    }

    @Test func longTargetGetsJSON414() throws {
        let server = try startServer()
        defer { server.stop() }
        for length in [20_000, 100_000] {
            let client = try TestClient(port: server.port)
            try client.write(Array("GET /\(String(repeating: "a", count: length)) HTTP/1.1\r\nHost: x\r\n\r\n".utf8))
            let r = try client.readResponse()
            #expect(r.status == 414, "target of \(length) bytes")
            #expect(r.headers["content-type"] == "application/json")
            #expect(r.text.contains("limit of 16384"))
        }
        // A long query counts too.
        let client = try TestClient(port: server.port)
        #expect(try client.send("GET", "/q?a=" + String(repeating: "b", count: 20_000)).status == 414)
    }

    @Test func largeHeadersGetJSON431() throws {
        let server = try startServer()
        defer { server.stop() }
        for length in [40_000, 100_000] {
            let client = try TestClient(port: server.port)
            let r = try client.send("GET", "/", headers: ["X-Big": String(repeating: "b", count: length)])
            #expect(r.status == 431, "header of \(length) bytes")
            #expect(r.headers["content-type"] == "application/json")
            #expect(r.text.contains("limit of 32768"))
        }
        let client = try TestClient(port: server.port)
        var many: [String: String] = [:]
        for i in 0..<400 { many["X-H\(i)"] = String(repeating: "c", count: 90) }
        #expect(try client.send("GET", "/", headers: many).status == 431)
        // Just under the limits still works.
        let fresh = try TestClient(port: server.port)
        #expect(try fresh.send("GET", "/", headers: ["X-Big": String(repeating: "b", count: 30_000)]).status == 200)
    }

    /// Waits until the server holds `bytes` of bodies (the first call of a request ran).
    func waitForBuffered(_ server: HTTPServer, _ bytes: Int) {
        for _ in 0..<500 where server.bufferedBodyByteCount != bytes { usleep(10_000) }
    }

    @Test func bufferedBodiesAreBounded() throws {
        let server = try startServer(maxBody: 2000, maxBuffered: 3000)
        defer { server.stop() }
        // A holds 2000 bytes: its body has started, not finished.
        let a = try TestClient(port: server.port)
        try a.write(Array("POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 2000\r\n\r\n".utf8) + [UInt8](repeating: 1, count: 100))
        waitForBuffered(server, 2000)
        #expect(server.bufferedBodyByteCount == 2000)

        // B's declared 2000 do not fit beside it: 503, told to retry.
        let b = try TestClient(port: server.port)
        let refused = try b.send("POST", "/b", body: [UInt8](repeating: 2, count: 2000))
        #expect(refused.status == 503)
        #expect(refused.headers["retry-after"] == "1")
        #expect(refused.headers["content-type"] == "application/json")
        #expect(refused.text.contains("--max-buffered-body-bytes"))
        #expect(try b.isClosedByServer())

        // A chunked body is counted as it arrives: 1500 more do not fit either.
        let c = try TestClient(port: server.port)
        try c.write(Array("POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5dc\r\n".utf8) + [UInt8](repeating: 3, count: 1500) + Array("\r\n".utf8))
        #expect(try c.readResponse().status == 503)

        // When A completes, its bytes are free again.
        try a.write([UInt8](repeating: 1, count: 1900))
        #expect(try a.readResponse().text == "POST /a - 2000 -")
        waitForBuffered(server, 0)
        #expect(server.bufferedBodyByteCount == 0)
        let d = try TestClient(port: server.port)
        #expect(try d.send("POST", "/d", body: [UInt8](repeating: 4, count: 2000)).status == 200)
    }

    @Test func framingRulesDecideFromTheFields() {
        func decide(_ fields: [(String, String)], version: String = "HTTP/1.1") -> RequestFraming? {
            try? RequestFraming.decide(fields: fields.map { (name: $0.0, value: $0.1) }, version: version).get()
        }
        #expect(decide([("Content-Length", "12")]) == RequestFraming(contentLength: 12, chunked: false))
        #expect(decide([("transfer-encoding", "Chunked")]) == RequestFraming(contentLength: nil, chunked: true))
        #expect(decide([("Host", "x")]) == RequestFraming(contentLength: nil, chunked: false))
        #expect(decide([("Content-Length", "1"), ("Transfer-Encoding", "chunked")]) == nil)
        #expect(decide([("Content-Length", "1"), ("content-length", "1")]) == nil)
        for bad in ["", "+1", "-1", "1,1", "0x1", " 1", "1234567890123456789"] {
            #expect(decide([("Content-Length", bad)]) == nil, "'\(bad)'")
        }
        #expect(decide([("Transfer-Encoding", "gzip, chunked")]) == nil)
        #expect(decide([("Transfer-Encodingchunked", "")]) == nil)
        #expect(decide([("Content-Length0", "3")]) == nil)
        #expect(decide([("X-A ", "1")]) == nil)
        #expect(decide([("Transfer-Encoding", "chunked")], version: "HTTP/1.0") == nil)
    }
}
