import Engine
import Tensors

/// Loads ONNX model files into the engine's graph.
///
/// A hand-written protobuf decoder over the memory-mapped file: initializers borrow the mapping
/// (zero-copy) when their bytes are aligned, and keep it alive; external data files (PyTorch's
/// `model.onnx.data`) are mapped too, each once per load, and must lie inside the model's
/// directory. Every malformed or truncated input gives an `ONNXError` naming the file and what is
/// wrong; nothing in a file can crash the decoder. Stateless; safe to call from any thread.
public enum ONNXLoader {
    /// Graphs nested deeper than this through attributes (If/Loop/Scan bodies) are refused.
    public static let maxGraphDepth = 32

    /// Decodes the ModelProto at `path` (memory-mapped; external data files resolved next to it).
    /// Throws `ONNXError` naming the file and what is wrong with it.
    public static func load(path: String) throws -> GraphModel {
        let file = try map(path)
        return try decodeModel(file: file, directory: directory(of: path))
    }

    /// Decodes a ModelProto held in memory (tests, tools). The bytes are copied once; `path` names
    /// them in errors, and external data is resolved relative to `directory` (nil: refused).
    public static func decode(bytes: some Collection<UInt8>, path: String = "<memory>", directory: String? = nil)
        throws -> GraphModel
    {
        try decodeModel(file: MappedFile(copying: bytes, path: path), directory: directory)
    }

    /// Decodes a standalone TensorProto file (the `input_0.pb` / `output_0.pb` files of ONNX's
    /// conformance tests). External data is resolved relative to the file's directory.
    public static func loadTensor(path: String) throws -> Tensor {
        let file = try map(path)
        return try decodeTensor(file: file, directory: directory(of: path))
    }

    /// Reads a value file of the ONNX test-data layout: a TensorProto for `.tensor`, a SequenceProto
    /// of tensors for `.sequence`, an OptionalProto for `.optional` / `.optionalSequence` (see
    /// `ValueContainer`). `elementType` is what an empty sequence or optional reports.
    public static func loadValue(path: String, kind: ValueKind, elementType: DataType?) throws -> Tensor {
        switch kind {
        case .tensor, .unknown: return try loadTensor(path: path)
        case .other: throw ONNXError(path: path, message: "maps and sparse tensors are not supported")
        case .sequence, .optional, .optionalSequence:
            let file = try map(path)
            let context = DecodeContext(file: file, directory: directory(of: path))
            do {
                var r = context.reader(kind == .sequence ? .sequence : .optional, label: "value")
                return try kind == .sequence
                    ? decodeSequence(&r, context: context, elementType: elementType)
                    : decodeOptional(&r, context: context, elementType: elementType)
            } catch let failure as DecodeFailure {
                throw ONNXError(path: file.path, message: withAdvice(failure.message))
            }
        }
    }

    private static func decodeSequence(_ r: inout ProtoReader, context: DecodeContext, elementType: DataType?) throws -> Tensor {
        var elements: [Tensor] = []
        while let f = try r.next() {
            switch f.number {
            case 3:
                elements.append(try r.nested(f, .tensor, "tensor_values \(elements.count)") {
                    try TensorDecoder.decode(&$0, context: context).tensor
                })
            case 4, 5, 6, 7:
                throw DecodeFailure("unsupported: a sequence of sequences, maps or optionals")
            default: break
            }
        }
        return Tensor(sequence: elements, elementType: elements.first?.dataType ?? elementType ?? .float32)
    }

    private static func decodeOptional(_ r: inout ProtoReader, context: DecodeContext, elementType: DataType?) throws -> Tensor {
        var value: Tensor?
        while let f = try r.next() {
            switch f.number {
            case 3:
                value = try r.nested(f, .tensor, "tensor_value") { try TensorDecoder.decode(&$0, context: context).tensor }
            case 5:
                value = try r.nested(f, .sequence, "sequence_value") {
                    try decodeSequence(&$0, context: context, elementType: elementType)
                }
            case 4, 6, 7:
                throw DecodeFailure("unsupported: an optional of a map or optional")
            default: break
            }
        }
        return value ?? Tensor(noneOptional: elementType ?? .float32)
    }

    /// Decodes a TensorProto held in memory.
    public static func decodeTensor(bytes: some Collection<UInt8>, path: String = "<memory>") throws -> Tensor {
        try decodeTensor(file: MappedFile(copying: bytes, path: path), directory: nil)
    }

    // MARK: Implementation

    private static func map(_ path: String) throws -> MappedFile {
        do {
            return try MappedFile(path: path)
        } catch {
            throw ONNXError(path: path, message: "\(error.reason); check the path and the file's permissions")
        }
    }

    /// The directory of `path` ("" for a bare file name: the current directory).
    static func directory(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "" }
        return slash == path.startIndex ? "/" : String(path[..<slash])
    }

    private static func decodeModel(file: MappedFile, directory: String?) throws -> GraphModel {
        guard file.count > 0 else {
            throw ONNXError(path: file.path, message: "file is empty; it is not an ONNX model (re-export or re-copy it)")
        }
        let context = DecodeContext(file: file, directory: directory, maxGraphDepth: maxGraphDepth)
        do {
            var r = context.reader(.model, label: "model")
            var irVersion = 0
            var producerName = "", producerVersion = ""
            var graph: Graph?
            var opsets: [String: Int] = [:]
            while let f = try r.next() {
                switch f.number {
                case 1: irVersion = try r.int(f)
                case 2: producerName = try r.string(f)
                case 3: producerVersion = try r.string(f)
                case 7:
                    graph = try r.nested(f, .graph, "graph") {
                        try GraphDecoder.decodeGraph(&$0, context: context, depth: 0)
                    }
                case 8:
                    let (domain, version) = try r.nested(f, .operatorSetId, "opset_import \(opsets.count)") { o in
                        var domain = "", version = 0
                        while let of = try o.next() {
                            if of.number == 1 { domain = try o.string(of) } else if of.number == 2 { version = try o.int(of) }
                        }
                        return (domain, version)
                    }
                    opsets[domain] = version
                default: break
                }
            }
            guard let graph else {
                throw DecodeFailure("not an ONNX model: no graph (ModelProto field 7); is this an ONNX model file?")
            }
            return GraphModel(
                graph: graph, opsets: opsets, irVersion: irVersion, producerName: producerName,
                producerVersion: producerVersion)
        } catch let failure as DecodeFailure {
            throw ONNXError(path: file.path, message: withAdvice(failure.message))
        } catch {
            throw ONNXError(path: file.path, message: "\(error)")
        }
    }

    /// Adds what to do about a damaged file.
    static func withAdvice(_ message: String) -> String {
        if message.hasPrefix("truncated") { return message + "; the file is incomplete: copy or export it again" }
        if message.hasPrefix("malformed") { return message + "; the file is corrupt or not an ONNX file" }
        return message
    }

    private static func decodeTensor(file: MappedFile, directory: String?) throws -> Tensor {
        let context = DecodeContext(file: file, directory: directory)
        do {
            var r = context.reader(.tensor, label: "tensor")
            return try TensorDecoder.decode(&r, context: context).tensor
        } catch let failure as DecodeFailure {
            throw ONNXError(path: file.path, message: withAdvice(failure.message))
        } catch {
            throw ONNXError(path: file.path, message: "\(error)")
        }
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
