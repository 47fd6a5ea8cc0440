import FuzzHarness

/// libFuzzer target: V2 binary tensor extension. Byte 0 picks the model; bytes 1-2 (little-endian) are
/// `Inference-Header-Content-Length` (0xFFFF: the header is absent); the rest is the body.
/// Built only with SWERVE_FUZZ=1 (see docs/fuzzing.md); libFuzzer supplies `main`.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    guard bytes.count >= 3 else { return 0 }
    let route = bytes[0] & 1 == 0 ? "/v2/models/relu/infer" : "/v2/models/ints/infer"
    let length = Int(bytes[1]) | Int(bytes[2]) << 8
    let headers = length == 0xFFFF ? [:] : ["inference-header-content-length": String(length)]
    FuzzHarness.shared.call("POST", route, headers: headers, body: Array(bytes.dropFirst(3)))
    return 0
}
