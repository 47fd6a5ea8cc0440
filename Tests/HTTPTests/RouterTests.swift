import HTTP
import Testing

@Suite struct RouterTests {
    func router() -> Router<String> {
        var r = Router<String>()
        r.add("GET", "/v2/health/live", "live")
        r.add("GET", "/v2/models/{model}", "meta")
        r.add("GET", "/v2/models/{model}/versions/{version}", "meta-v")
        r.add("POST", "/v2/models/{model}/infer", "infer")
        r.add("POST", "/v1/models/{model}:predict", "predict")
        r.add("GET", "/v1/models/{model}", "status")
        return r
    }

    @Test func literalAndParameters() {
        guard case .found(let h, let p) = router().match(method: "GET", path: "/v2/models/resnet/versions/3") else {
            Issue.record("no match")
            return
        }
        #expect(h == "meta-v")
        #expect(p == ["model": "resnet", "version": "3"])
        guard case .found("live", _) = router().match(method: "GET", path: "/v2/health/live") else {
            Issue.record("live not matched")
            return
        }
    }

    @Test func verbSuffix() {
        guard case .found(let h, let p) = router().match(method: "POST", path: "/v1/models/digits:predict") else {
            Issue.record("no match")
            return
        }
        #expect(h == "predict")
        #expect(p["model"] == "digits")
    }

    @Test func methodNotAllowedListsMethods() {
        guard case .methodNotAllowed(let allowed) = router().match(method: "DELETE", path: "/v2/models/m/infer") else {
            Issue.record("expected 405")
            return
        }
        #expect(allowed == ["POST"])
    }

    @Test func headMatchesGet() {
        guard case .found("live", _) = router().match(method: "HEAD", path: "/v2/health/live") else {
            Issue.record("HEAD should match GET")
            return
        }
    }

    @Test func unknownPaths() {
        for path in ["/", "/v2/models", "/v2/models/m/extra/deep", "/v3/health/live"] {
            guard case .notFound = router().match(method: "GET", path: path) else {
                Issue.record("\(path) should not match")
                continue
            }
        }
    }
}
