/// The ONNX protobuf messages the decoder reads, with the names of the fields it knows (from
/// onnx.proto, proto2; verified against onnx 1.23's copy). Used to name fields in errors.
enum ProtoMessage {
    case model, operatorSetId, graph, node, attribute, tensor, stringEntry
    case valueInfo, typeProto, elementType, tensorType, tensorShape, dimension, sequence, optional

    func fieldName(_ number: Int) -> String? {
        switch self {
        case .model:
            return [1: "ir_version", 2: "producer_name", 3: "producer_version", 7: "graph", 8: "opset_import"][number]
        case .operatorSetId:
            return [1: "domain", 2: "version"][number]
        case .graph:
            return [1: "node", 2: "name", 5: "initializer", 11: "input", 12: "output", 13: "value_info"][number]
        case .node:
            return [1: "input", 2: "output", 3: "name", 4: "op_type", 5: "attribute", 7: "domain"][number]
        case .attribute:
            return [
                1: "name", 2: "f", 3: "i", 4: "s", 5: "t", 6: "g", 7: "floats", 8: "ints", 9: "strings",
                10: "tensors", 11: "graphs", 14: "tp", 15: "type_protos", 20: "type", 22: "sparse_tensor",
                23: "sparse_tensors",
            ][number]
        case .tensor:
            return [
                1: "dims", 2: "data_type", 4: "float_data", 5: "int32_data", 6: "string_data", 7: "int64_data",
                8: "name", 9: "raw_data", 10: "double_data", 11: "uint64_data", 13: "external_data",
                14: "data_location",
            ][number]
        case .stringEntry:
            return [1: "key", 2: "value"][number]
        case .valueInfo:
            return [1: "name", 2: "type"][number]
        case .typeProto:
            return [1: "tensor_type", 4: "sequence_type", 5: "map_type", 8: "sparse_tensor_type", 9: "optional_type"][number]
        case .sequence:
            return [1: "name", 2: "elem_type", 3: "tensor_values", 5: "sequence_values"][number]
        case .optional:
            return [1: "name", 2: "elem_type", 3: "tensor_value", 5: "sequence_value"][number]
        case .elementType:
            return [1: "elem_type"][number]
        case .tensorType:
            return [1: "elem_type", 2: "shape"][number]
        case .tensorShape:
            return [1: "dim"][number]
        case .dimension:
            return [1: "dim_value", 2: "dim_param"][number]
        }
    }
}
