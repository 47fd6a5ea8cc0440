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
    // Narrow types (docs/architecture.md, "Narrow element types"): held one element per byte
    // inside the engine, packed only in ONNX files; no KServe V2 or TF Serving datatype exists.
    case float8e4m3fn = 17
    case float8e4m3fnuz = 18
    case float8e5m2 = 19
    case float8e5m2fnuz = 20
    case uint4 = 21
    case int4 = 22
    case float4e2m1 = 23
    case float8e8m0 = 24
    case uint2 = 25
    case int2 = 26

    /// Bytes per element; 0 for `string`, whose elements have no fixed size.
    public var byteSize: Int {
        switch self {
        case .bool, .uint8, .int8: return 1
        case .float8e4m3fn, .float8e4m3fnuz, .float8e5m2, .float8e5m2fnuz, .float8e8m0, .float4e2m1, .int4, .uint4,
            .int2, .uint2:
            return 1
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
        // Not V2 datatypes: the ONNX names, for messages (`isOnWire` is false for these).
        case .float8e4m3fn: return "FLOAT8E4M3FN"
        case .float8e4m3fnuz: return "FLOAT8E4M3FNUZ"
        case .float8e5m2: return "FLOAT8E5M2"
        case .float8e5m2fnuz: return "FLOAT8E5M2FNUZ"
        case .float8e8m0: return "FLOAT8E8M0"
        case .float4e2m1: return "FLOAT4E2M1"
        case .int4: return "INT4"
        case .uint4: return "UINT4"
        case .int2: return "INT2"
        case .uint2: return "UINT2"
        }
    }

    /// Looks a type up by its V2 name; nil for names the protocol does not define (the narrow
    /// types' ONNX names included: no request can carry them).
    public init?(v2Name: String) {
        guard let match = DataType.allCases.first(where: { $0.isOnWire && $0.v2Name == v2Name }) else { return nil }
        self = match
    }

    /// Whether KServe V2 and TF Serving have a datatype for this type: false for the narrow types
    /// (float8, float4, int4, int2), which a served model may not take or return.
    public var isOnWire: Bool { !isNarrow }

    /// float8 (all five), float4, int4/uint4 and int2/uint2: held one element per byte inside the
    /// engine (`NarrowConversion`), packed to `bitWidth` bits only in ONNX files.
    public var isNarrow: Bool { rawValue >= 17 && rawValue <= 26 }

    /// Bits per element in an ONNX file's packed data: 4 for int4/uint4/float4e2m1, 2 for
    /// int2/uint2, else 8 x `byteSize`.
    public var bitWidth: Int {
        switch self {
        case .int4, .uint4, .float4e2m1: return 4
        case .int2, .uint2: return 2
        default: return 8 * byteSize
        }
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
        case .float8e4m3fn: return "DT_FLOAT8_E4M3FN"
        case .float8e5m2: return "DT_FLOAT8_E5M2"
        case .int4: return "DT_INT4"
        case .uint4: return "DT_UINT4"
        // TensorFlow has no such type (and no request carries these types: `isOnWire`).
        case .float8e4m3fnuz, .float8e5m2fnuz, .float8e8m0, .float4e2m1, .int2, .uint2: return "DT_INVALID"
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
        case .int8, .int16, .int32, .int64, .uint8, .uint16, .uint32, .uint64: return String(describing: self)
        default: return v2Name.lowercased()
        }
    }

    /// float32, float64, float16, bfloat16 and the narrow float formats (float8, float4).
    public var isFloatingPoint: Bool {
        switch self {
        case .float32, .float64, .float16, .bfloat16, .float8e4m3fn, .float8e4m3fnuz, .float8e5m2, .float8e5m2fnuz,
            .float8e8m0, .float4e2m1:
            return true
        default: return false
        }
    }

    public var description: String { v2Name }
}
