import FuzzHarness

/// libFuzzer target: TF Serving V1 predict requests. Byte 0 picks the model and route; the rest is the body.
/// Built only with SWERVE_FUZZ=1 (see docs/fuzzing.md); libFuzzer supplies `main`.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    let routes = ["/v1/models/relu:predict", "/v1/models/ints:predict", "/v1/models/relu/versions/1:predict", "/v1/models/ints/versions/1:predict"]
    FuzzHarness.shared.call("POST", routes[Int(bytes.first ?? 0) % routes.count], body: Array(bytes.dropFirst()))
    return 0
}
