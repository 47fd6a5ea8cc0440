// swift-tools-version:6.2
// Swerve: a model-serving daemon for ONNX models. See docs/architecture.md for the module map.
import PackageDescription

/// Swift 6 language mode; warnings are errors in our own targets (not in dependencies).
let swiftSettings: [SwiftSetting] = [.swiftLanguageMode(.v6), .treatAllWarnings(as: .error)]

/// The engine's kernels (targets Tensors and Engine) are built for x86-64-v3 (AVX2, FMA: every
/// x86 server CPU since 2013-2015), so that their SIMD8 loops are single 8-lane instructions; the
/// rest is baseline x86-64, and the `swerve` executable checks the CPU before it runs any engine
/// code (a clear error instead of SIGILL). `SWERVE_PORTABLE=1 swift build ...` builds everything
/// for baseline x86-64. Other architectures use their defaults. See docs/architecture.md.
#if arch(x86_64)
let portable = Context.environment["SWERVE_PORTABLE"].map { !["", "0"].contains($0) } ?? false
let engineSettings: [SwiftSetting] = swiftSettings + (portable ? [] : [.unsafeFlags(["-Xcc", "-march=x86-64-v3"])])
#else
let engineSettings = swiftSettings
#endif

let package = Package(
    name: "swerve",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "swerve", targets: ["swerve"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser.git", exact: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", exact: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", exact: "2.4.1"),
    ],
    targets: [
        // System libraries: module map + shim.h with static-inline wrappers for macros and variadics.
        .systemLibrary(name: "CMicroHTTPD", pkgConfig: "libmicrohttpd", providers: [.apt(["libmicrohttpd-dev"])]),
        .systemLibrary(name: "CJansson", pkgConfig: "jansson", providers: [.apt(["libjansson-dev"])]),
        .systemLibrary(name: "COpenBLAS", pkgConfig: "openblas", providers: [.apt(["libopenblas-dev"])]),
        // Header-only CPU feature check (cpuid), used by the executable before any engine code runs.
        .systemLibrary(name: "CCPU"),
        // Header-only 8x8 float transposes (AVX intrinsics) for the engine's channel-blocked kernels.
        .systemLibrary(name: "CShuffle"),

        // The engine's per-instruction-set kernels (AVX-512 SGEMM) and CPU feature detection, in C:
        // built for baseline x86-64, each kernel with its own __attribute__((target)); the engine
        // calls a level's kernels only where the CPU supports them (Sources/Engine/CPU/CPULevel.swift).
        // -O3 in every configuration: at -O0 the intrinsics kernels spill every accumulator.
        .target(name: "CKernels", cSettings: [.unsafeFlags(["-O3"])]),
        // Tensor, DataType, shapes and broadcasting. Imports nothing.
        .target(name: "Tensors", swiftSettings: engineSettings),
        // Graph IR, operators, CPU kernels, plans and sessions.
        .target(name: "Engine", dependencies: ["Tensors", "COpenBLAS", "CShuffle", "CKernels"], swiftSettings: engineSettings),
        // CUDA device: NVIDIA libraries loaded at run time (dlopen), probe, device selection, NVML readings.
        .target(name: "CUDA", dependencies: ["Engine"], swiftSettings: swiftSettings),
        // Zero-copy ONNX ModelProto decoding (mmap, external data) into the engine graph.
        .target(name: "ONNX", dependencies: ["Tensors", "Engine"], swiftSettings: swiftSettings),
        // Repository layout, version selection, loading, the registry of servable versions.
        .target(
            name: "ModelStore",
            dependencies: ["Tensors", "Engine", "ONNX", "Batching", .product(name: "Logging", package: "swift-log")],
            swiftSettings: swiftSettings),
        // Dynamic batching (a pass-through for now).
        .target(name: "Batching", dependencies: ["Tensors"], swiftSettings: swiftSettings),
        // libmicrohttpd wrapper: server, request, response, limits. Knows nothing of models.
        .target(
            name: "HTTP", dependencies: ["CMicroHTTPD", .product(name: "Logging", package: "swift-log")],
            swiftSettings: swiftSettings),
        // Operations: metrics (Prometheus), the log handler, the status page's HTML.
        .target(
            name: "Operations",
            dependencies: [
                "ModelStore", "Batching",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            swiftSettings: swiftSettings),
        // Protocol handlers (KServe V2 / Triton, TF Serving V1), JSON codecs, error mapping, routing.
        .target(
            name: "API",
            dependencies: [
                "Tensors", "Engine", "ONNX", "ModelStore", "Batching", "HTTP", "CJansson", "Operations",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            swiftSettings: swiftSettings),
        // The daemon: command line and wiring only.
        .executableTarget(
            name: "swerve",
            dependencies: [
                "API", "Operations", "ModelStore", "Engine", "Tensors", "HTTP", "Batching", "CUDA", "CCPU",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings),

        .testTarget(name: "TensorsTests", dependencies: ["Tensors"], swiftSettings: swiftSettings),
        .testTarget(name: "EngineTests", dependencies: ["Engine", "Tensors"], swiftSettings: swiftSettings),
        // ONNX's node conformance cases (generated by tools/gen_node_tests.py; skipped.txt lists what is not run).
        .testTarget(
            name: "ConformanceTests", dependencies: ["ONNX", "Engine", "Tensors"], exclude: ["skipped.txt"],
            swiftSettings: swiftSettings),
        .testTarget(
            name: "ONNXTests", dependencies: ["ONNX", "Engine", "Tensors"], exclude: ["Fixtures"],
            swiftSettings: swiftSettings),
        .testTarget(
            name: "ModelStoreTests", dependencies: ["ModelStore", "Engine", "Tensors", .product(name: "Logging", package: "swift-log")],
            exclude: ["Fixtures"],
            swiftSettings: swiftSettings),
        .testTarget(name: "CUDATests", dependencies: ["CUDA", "Engine"], swiftSettings: swiftSettings),
        .testTarget(name: "BatchingTests", dependencies: ["Batching", "Tensors"], swiftSettings: swiftSettings),
        .testTarget(name: "HTTPTests", dependencies: ["HTTP", .product(name: "Logging", package: "swift-log")], swiftSettings: swiftSettings),
        .testTarget(
            name: "APITests", dependencies: ["API", "Operations", "HTTP", "ModelStore", "Engine", "Tensors", "Batching", .product(name: "Logging", package: "swift-log")],
            swiftSettings: swiftSettings),
        // `swerve check` report formatting (the executable target, imported @testable).
        .testTarget(name: "SwerveCLITests", dependencies: ["swerve", "Engine", "Tensors"], swiftSettings: swiftSettings),
    ]
)

/// libFuzzer targets (Tests/Fuzz, docs/fuzzing.md), only with `SWERVE_FUZZ=1` so that plain
/// `swift build` and `swift test` never see them: `make fuzz` builds them with `-sanitize=fuzzer`
/// into `.build-fuzz`. Each is one `LLVMFuzzerTestOneInput`; libFuzzer supplies `main`.
if Context.environment["SWERVE_FUZZ"].map({ !["", "0"].contains($0) }) ?? false {
    package.targets.append(
        .target(
            name: "FuzzHarness", dependencies: ["API", "HTTP", "ModelStore", "Engine", "Tensors", "Batching", .product(name: "Logging", package: "swift-log")],
            path: "Tests/Fuzz/Harness", swiftSettings: swiftSettings))
    for (name, dependencies) in [
        ("FuzzJSON", ["API"]), ("FuzzV2Infer", ["FuzzHarness"]), ("FuzzV2Binary", ["FuzzHarness"]),
        ("FuzzV1Predict", ["FuzzHarness"]), ("FuzzONNX", ["ONNX"]), ("FuzzConfig", ["FuzzHarness"]),
    ] as [(String, [Target.Dependency])] {
        package.targets.append(
            .executableTarget(
                name: name, dependencies: dependencies, path: "Tests/Fuzz/Targets/\(name)",
                swiftSettings: swiftSettings + [.unsafeFlags(["-parse-as-library"])]))
        package.products.append(.executable(name: name, targets: [name]))
    }
}

