/// The element type of a tensor. Raw values are ONNX's `TensorProto.DataType` numbers, so a decoded
/// model's types map one to one.
public enum DataType: Int32, Sendable, CaseIterable, CustomStringConvertible {
    case float32 = 1
    case uint8 = 2
    case int8 = 3
    case uint16 = 4
    case int16 = 5
    case int32 = 6
    case int64 = 7
    case string = 8
    case bool = 9
    case float16 = 10
    case float64 = 11
    case uint32 = 12
    case uint64 = 13
    case bfloat16 = 16

    /// Bytes per element; 0 for `string`, whose elements have no fixed size.
    public var byteSize: Int {
        switch self {
        case .bool, .uint8, .int8: return 1
        case .uint16, .int16, .float16, .bfloat16: return 2
        case .float32, .int32, .uint32: return 4
        case .float64, .int64, .uint64: return 8
        case .string: return 0
        }
    }

    /// The KServe V2 / Open Inference Protocol name (`FP32`, `INT64`, `BOOL`, ...).
    public var v2Name: String {
        switch self {
        case .float32: return "FP32"
        case .uint8: return "UINT8"
        case .int8: return "INT8"
        case .uint16: return "UINT16"
        case .int16: return "INT16"
        case .int32: return "INT32"
        case .int64: return "INT64"
        case .string: return "BYTES"
        case .bool: return "BOOL"
        case .float16: return "FP16"
        case .float64: return "FP64"
        case .uint32: return "UINT32"
        case .uint64: return "UINT64"
        case .bfloat16: return "BF16"
        }
    }

    /// Looks a type up by its V2 name; nil for names the protocol does not define.
    public init?(v2Name: String) {
        guard let match = DataType.allCases.first(where: { $0.v2Name == v2Name }) else { return nil }
        self = match
    }

    /// The TF Serving / TensorFlow name (`DT_FLOAT`, ...), used in V1 metadata.
    public var tensorFlowName: String {
        switch self {
        case .float32: return "DT_FLOAT"
        case .uint8: return "DT_UINT8"
        case .int8: return "DT_INT8"
        case .uint16: return "DT_UINT16"
        case .int16: return "DT_INT16"
        case .int32: return "DT_INT32"
        case .int64: return "DT_INT64"
        case .string: return "DT_STRING"
        case .bool: return "DT_BOOL"
        case .float16: return "DT_HALF"
        case .float64: return "DT_DOUBLE"
        case .uint32: return "DT_UINT32"
        case .uint64: return "DT_UINT64"
        case .bfloat16: return "DT_BFLOAT16"
        }
    }

    /// The ONNX name (`tensor(float)` style without the wrapper: `float`, `int64`, ...).
    public var onnxName: String {
        switch self {
        case .float32: return "float"
        case .float64: return "double"
        case .float16: return "float16"
        case .bfloat16: return "bfloat16"
        case .bool: return "bool"
        case .string: return "string"
        default: return String(describing: self)
        }
    }

    public var isFloatingPoint: Bool {
        self == .float32 || self == .float64 || self == .float16 || self == .bfloat16
    }

    public var description: String { v2Name }
}
