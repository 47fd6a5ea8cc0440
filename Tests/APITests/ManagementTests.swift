import Foundation
import HTTP
import ModelStore
import Synchronization
import Testing

@testable import API

@Suite struct ManagementUnitTests {
    @Test func base64MatchesFoundation() {
        for n in [0, 1, 2, 3, 4, 5, 100, 1001] {
            let bytes = (0..<n).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 11) }
            let text = Data(bytes).base64EncodedString()
            #expect(Base64.decode(text) == bytes, "\(n)")
            #expect(Base64.decode(text.replacingOccurrences(of: "=", with: "")) == bytes, "\(n) unpadded")
        }
        for bad in ["a", "ab=c", "@@@@", "YQ==YQ==", "YW Jj"] {
            #expect(Base64.decode(bad) == nil, "\(bad)")
        }
    }

    @Test func bearerTokenComparison() {
        let token = Array("secret".utf8)
        #expect(ManagementAPI.authorized("Bearer secret", token: token))
        for bad in [nil, "", "secret", "Bearer", "Bearer ", "Bearer secre", "Bearer secretx", "Bearer Secret", "bearer secret"] {
            #expect(!ManagementAPI.authorized(bad, token: token), "\(bad ?? "nil")")
        }
    }

    @Test func loopbackHosts() {
        for host in ["127.0.0.1", "127.1.2.3", "::1", "localhost"] { #expect(ManagementAPI.isLoopback(host)) }
        for host in ["0.0.0.0", "10.0.0.1", "::", "example.com", "128.0.0.1"] { #expect(!ManagementAPI.isLoopback(host)) }
    }

    @Test func uploadKeysAreConfinedToOneVersionDirectory() throws {
        let api = ManagementAPI(registry: ModelRegistry())
        func parse(_ key: String) -> Bool {
            // Always with a valid model.onnx, so only the key under test can make it fail.
            let body = Array(#"{"parameters": {"file:1/model.onnx": "eA==", "\#(key)": "eA=="}}"#.utf8)
            return (try? api.parseLoadBody(body)) != nil
        }
        #expect(parse("file:1/model.onnx.data"))
        #expect(parse("file:2/model.onnx.data") == false)  // version 2 without its model.onnx
        for bad in ["file:../1/model.onnx", "file:/etc/passwd", "file:1/../x", "file:01/model.onnx", "file:0/model.onnx",
                    "file:1/a/model.onnx", "file:1/.x", "file:1", "file:1/", "unknown"] {
            #expect(!parse(bad), "\(bad)")
        }
    }
}

@Suite struct ManagementIndexTests {
    func index(_ body: String) -> (status: Int, text: String) {
        let api = ManagementAPI(registry: ModelRegistry())
        let box = Mutex<HTTPResponse?>(nil)
        api.handle(HTTPRequest(method: "POST", path: "/v2/repository/index", body: Array(body.utf8)), responder: HTTPResponder { r in
            box.withLock { $0 = r }
        })
        let r = box.withLock { $0 }!
        return (r.status, String(decoding: r.body, as: UTF8.self))
    }

    @Test func indexBodyIsEmptyOrAReadyFlag() {
        for body in ["", " \n", "{}", #"{"ready": true}"#, #"{"ready": false}"#] {
            #expect(index(body).status == 200, "\(body.debugDescription)")
        }
        // Found by schemathesis (negative_data_rejection): these used to be ignored (a full index).
        for body in [#"{"ready": {}}"#, #"{"ready": "yes"}"#, "[]", "nonsense"] {
            let r = index(body)
            #expect(r.status == 400, "\(body): \(r.text)")
            #expect(r.text.contains("\"error\""), "\(r.text)")
        }
    }
}
