import FuzzHarness

/// libFuzzer target: A model's config.json: parsing and validation.
/// Built only with SWERVE_FUZZ=1 (see docs/fuzzing.md); libFuzzer supplies `main`.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    FuzzHarness.shared.checkConfig(bytes)
    return 0
}
