import Dispatch
import Foundation
import HTTP
import Logging
import Testing

/// Echoes the method, path, a header and the body size; answers `/late` from another thread.
struct EchoHandler: HTTPHandler {
    func handle(_ request: HTTPRequest, responder: HTTPResponder) {
        let text = "\(request.method) \(request.path) \(request.header("X-Test") ?? "-") \(request.body.count) \(request.query["q"] ?? "-")"
        if request.path == "/late" {
            DispatchQueue.global().asyncAfter(deadline: .now() + .milliseconds(10)) {
                responder.respond(.text(200, "late " + text))
            }
            return
        }
        responder.respond(.text(200, text))
    }
}

@Suite(.serialized) struct HTTPServerTests {
    func startServer(maxBody: Int = 1 << 20, threads: Int = 2) throws -> HTTPServer {
        var config = HTTPServerConfiguration()
        config.host = "127.0.0.1"
        config.port = 0
        config.maxBodySize = maxBody
        config.threads = threads
        let server = HTTPServer(configuration: config, handler: EchoHandler(), logger: Logger(label: "test"))
        try server.start()
        return server
    }

    @Test func servesOnAFreePort() throws {
        let server = try startServer()
        defer { server.stop() }
        #expect(server.port > 0)
        let client = try TestClient(port: server.port)
        let r = try client.send("GET", "/hello?q=1", headers: ["X-Test": "abc"])
        #expect(r.status == 200)
        #expect(r.text == "GET /hello abc 0 1")
    }

    @Test func collectsBodiesAndKeepsConnectionsAlive() throws {
        let server = try startServer()
        defer { server.stop() }
        let client = try TestClient(port: server.port)
        let body = [UInt8](repeating: 65, count: 300_000)
        for i in 0..<5 {
            let r = try client.send("POST", "/echo/\(i)", body: body)
            #expect(r.status == 200)
            #expect(r.text == "POST /echo/\(i) - 300000 -")
        }
    }

    @Test func answersLaterFromAnotherThread() throws {
        let server = try startServer()
        defer { server.stop() }
        let client = try TestClient(port: server.port)
        for _ in 0..<3 {
            let r = try client.send("POST", "/late", body: [1, 2, 3])
            #expect(r.status == 200)
            #expect(r.text == "late POST /late - 3 -")
        }
        // The connection is still usable for an immediate answer after suspended ones.
        #expect(try client.send("GET", "/now").text == "GET /now - 0 -")
    }

    @Test func rejectsBodiesOverTheLimitWith413() throws {
        let server = try startServer(maxBody: 1000)
        defer { server.stop() }
        let client = try TestClient(port: server.port)
        let r = try client.send("POST", "/x", body: [UInt8](repeating: 1, count: 5000))
        #expect(r.status == 413)
        #expect(r.headers["content-type"] == "application/json")
        #expect(r.text.contains("--max-body-size"))
        // The server keeps serving others.
        let other = try TestClient(port: server.port)
        #expect(try other.send("POST", "/x", body: [UInt8](repeating: 1, count: 1000)).status == 200)
    }

    @Test func manyConcurrentClients() throws {
        let server = try startServer()
        defer { server.stop() }
        let failures = Mutex(0)
        DispatchQueue.concurrentPerform(iterations: 16) { i in
            do {
                let client = try TestClient(port: server.port)
                for j in 0..<20 {
                    let path = i % 2 == 0 ? "/late" : "/c\(i)"
                    let r = try client.send("POST", path, body: [UInt8](repeating: 0, count: j))
                    let expected = i % 2 == 0 ? "late POST /late - \(j) -" : "POST /c\(i) - \(j) -"
                    if r.text != expected { failures.withLock { $0 += 1 } }
                }
            } catch {
                failures.withLock { $0 += 1 }
            }
        }
        #expect(failures.withLock { $0 } == 0)
    }

    @Test func refusesBadAddresses() {
        var config = HTTPServerConfiguration()
        config.host = "not-an-address"
        config.port = 0
        let server = HTTPServer(configuration: config, handler: EchoHandler(), logger: Logger(label: "test"))
        #expect(throws: HTTPServerError.self) { try server.start() }
    }

    @Test func reportsAPortInUse() throws {
        let first = try startServer()
        defer { first.stop() }
        var config = HTTPServerConfiguration()
        config.host = "127.0.0.1"
        config.port = first.port
        let second = HTTPServer(configuration: config, handler: EchoHandler(), logger: Logger(label: "test"))
        // No SO_REUSEPORT: a second daemon on a busy port must fail loudly, not share the traffic.
        #expect(throws: HTTPServerError.self) { try second.start() }
    }

    @Test func jsonErrorEscapesText() {
        let r = HTTPResponse.error(400, "bad \"quote\"\nline")
        #expect(String(decoding: r.body, as: UTF8.self) == #"{"error":"bad \"quote\"\nline"}"#)
        #expect(r.status == 400)
    }
}

import Synchronization
