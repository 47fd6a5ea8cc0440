// swift-tools-version:6.2
// Swerve: a model-serving daemon for ONNX models. See docs/architecture.md for the module map.
import PackageDescription

/// Swift 6 language mode; warnings are errors in our own targets (not in dependencies).
let swiftSettings: [SwiftSetting] = [.swiftLanguageMode(.v6), .treatAllWarnings(as: .error)]

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

        // Tensor, DataType, shapes and broadcasting. Imports nothing.
        .target(name: "Tensors", swiftSettings: swiftSettings),
        // Graph IR, operators, CPU kernels, plans and sessions.
        .target(name: "Engine", dependencies: ["Tensors", "COpenBLAS"], swiftSettings: swiftSettings),
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
        // Protocol handlers (KServe V2 / Triton, TF Serving V1), JSON codecs, error mapping, routing.
        .target(
            name: "API",
            dependencies: [
                "Tensors", "Engine", "ONNX", "ModelStore", "Batching", "HTTP", "CJansson",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            swiftSettings: swiftSettings),
        // The daemon: command line and wiring only.
        .executableTarget(
            name: "swerve",
            dependencies: [
                "API", "ModelStore", "Engine", "HTTP", "Batching",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings),

        .testTarget(name: "TensorsTests", dependencies: ["Tensors"], swiftSettings: swiftSettings),
        .testTarget(name: "EngineTests", dependencies: ["Engine", "Tensors"], swiftSettings: swiftSettings),
        .testTarget(
            name: "ONNXTests", dependencies: ["ONNX", "Engine", "Tensors"], exclude: ["Fixtures"],
            swiftSettings: swiftSettings),
        .testTarget(
            name: "ModelStoreTests", dependencies: ["ModelStore", "Engine", "Tensors", .product(name: "Logging", package: "swift-log")],
            swiftSettings: swiftSettings),
        .testTarget(name: "HTTPTests", dependencies: ["HTTP", .product(name: "Logging", package: "swift-log")], swiftSettings: swiftSettings),
        .testTarget(
            name: "APITests", dependencies: ["API", "HTTP", "ModelStore", "Engine", "Tensors", "Batching", .product(name: "Logging", package: "swift-log")],
            swiftSettings: swiftSettings),
    ]
)
