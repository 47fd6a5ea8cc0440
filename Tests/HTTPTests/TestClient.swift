import Foundation
import Glibc

/// A minimal blocking HTTP/1.1 client over a real TCP socket, for tests of the server.
final class TestClient {
    let fd: Int32

    init(port: Int) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(port).bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        if rc != 0 { throw TestClientError.connectFailed(errno) }
    }

    deinit { close(fd) }

    struct Response {
        var status: Int
        var headers: [String: String]
        var body: [UInt8]
        var text: String { String(decoding: body, as: UTF8.self) }
    }

    /// Sends one request and reads one response (Content-Length framed).
    func send(_ method: String, _ path: String, body: [UInt8] = [], headers: [String: String] = [:]) throws -> Response {
        var head = "\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: \(body.count)\r\n"
        for (k, v) in headers { head += "\(k): \(v)\r\n" }
        head += "\r\n"
        try write(Array(head.utf8) + body)
        return try readResponse()
    }

    func write(_ bytes: [UInt8]) throws {
        var sent = 0
        while sent < bytes.count {
            let n = bytes[sent...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { throw TestClientError.sendFailed(errno) }
            sent += n
        }
    }

    private var buffer: [UInt8] = []

    func readResponse() throws -> Response {
        while true {
            if let end = headerEnd() {
                let head = String(decoding: buffer[0..<end], as: UTF8.self)
                let lines = head.components(separatedBy: "\r\n")
                let status = Int(lines[0].split(separator: " ")[1]) ?? 0
                var headers: [String: String] = [:]
                for line in lines.dropFirst() {
                    guard let colon = line.firstIndex(of: ":") else { continue }
                    headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
                }
                let length = Int(headers["content-length"] ?? "0") ?? 0
                while buffer.count < end + 4 + length { try fill() }
                let body = Array(buffer[(end + 4)..<(end + 4 + length)])
                buffer.removeFirst(end + 4 + length)
                return Response(status: status, headers: headers, body: body)
            }
            try fill()
        }
    }

    private func headerEnd() -> Int? {
        guard buffer.count >= 4 else { return nil }
        for i in 0...(buffer.count - 4) where buffer[i] == 13 && buffer[i + 1] == 10 && buffer[i + 2] == 13 && buffer[i + 3] == 10 {
            return i
        }
        return nil
    }

    /// Reads until the server closes the connection and returns every byte not yet read as a
    /// response. Throws `timedOut` when the connection stays open (nothing more for 10 s).
    func readToEnd() throws -> [UInt8] {
        while true {
            do {
                try fill()
            } catch TestClientError.closed {
                defer { buffer = [] }
                return buffer
            }
        }
    }

    /// Whether the server has closed the connection: the next read is end of stream. Throws
    /// `timedOut` when it stays open, `reset` when it was reset.
    func isClosedByServer() throws -> Bool {
        try readToEnd().isEmpty
    }

    private func fill() throws {
        var chunk = [UInt8](repeating: 0, count: 65536)
        let n = recv(fd, &chunk, chunk.count, 0)
        if n == 0 { throw TestClientError.closed }
        if n < 0 {
            if errno == EAGAIN || errno == EWOULDBLOCK { throw TestClientError.timedOut }
            throw TestClientError.reset(errno)
        }
        buffer.append(contentsOf: chunk[0..<n])
    }
}

enum TestClientError: Error {
    case connectFailed(Int32)
    case sendFailed(Int32)
    /// The server closed the connection (end of stream).
    case closed
    /// Nothing arrived for the receive timeout (10 s).
    case timedOut
    /// The connection was reset (or another receive error).
    case reset(Int32)
}
