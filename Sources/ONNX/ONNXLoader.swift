import Engine
import Tensors

/// Loads ONNX model files into the engine's graph.
///
/// OWNED BY THE ONNX HELPER: the real implementation replaces this stub.
public enum ONNXLoader {
    /// Decodes the ModelProto at `path` (memory-mapped; external data files resolved next to it).
    public static func load(path: String) throws -> GraphModel {
        throw ONNXError(path: path, message: "not implemented yet")
    }
}

/// A model file that cannot be decoded: which file, and what is wrong with it.
public struct ONNXError: Error, Sendable, CustomStringConvertible, Equatable {
    public let path: String
    public let message: String
    public init(path: String, message: String) {
        self.path = path
        self.message = message
    }
    public var description: String { "\(path): \(message)" }
}
