import ONNX

/// libFuzzer target: ONNX ModelProto decoding and conversion to the engine graph.
/// Built only with SWERVE_FUZZ=1 (see docs/fuzzing.md); libFuzzer supplies `main`.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    _ = try? ONNXLoader.decode(bytes: bytes, path: "fuzz.onnx")
    return 0
}
