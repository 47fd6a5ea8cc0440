import Tensors

/// Decodes a TensorProto into a `Tensor`: `raw_data` borrowed from the mapping when aligned (copied
/// otherwise), typed fields converted, external data resolved through the context.
enum TensorDecoder {
    /// The values a TensorProto carries in its typed (`*_data`) fields.
    private struct TypedValues {
        var floats: [Float] = []
        var int32s: [Int32] = []
        var int64s: [Int64] = []
        var doubles: [Double] = []
        var uint64s: [UInt64] = []
        var strings = 0
    }

    /// Reads the tensor message `r` walks. Returns the tensor and its name.
    static func decode(_ r: inout ProtoReader, context: DecodeContext) throws -> (name: String, tensor: Tensor) {
        var dims: [Int] = []
        var dataTypeNumber: Int64 = 0
        var name = ""
        var raw: UnsafeRawBufferPointer?
        var typed = TypedValues()
        var external: [(key: String, value: String)] = []
        var location: Int64 = 0

        while let f = try r.next() {
            switch f.number {
            case 1:
                try r.forEachVarint(f) { dims.append(Int(Int64(bitPattern: $0))) }
            case 2: dataTypeNumber = try r.int64(f)
            case 4:
                typed.floats.reserveCapacity(typed.floats.count + r.valueCount(f, width: 4))
                try r.forEachFixed(f, width: 4) { typed.floats.append(Float(bitPattern: UInt32(truncatingIfNeeded: $0))) }
            case 5:
                try r.forEachVarint(f) { typed.int32s.append(Int32(truncatingIfNeeded: $0)) }
            case 6:
                _ = try r.bytes(f)
                typed.strings += 1
            case 7:
                try r.forEachVarint(f) { typed.int64s.append(Int64(bitPattern: $0)) }
            case 8:
                name = try r.string(f)
                r.label = "tensor \(quoted(name))"
            case 9:
                raw = try r.bytes(f)
            case 10:
                typed.doubles.reserveCapacity(typed.doubles.count + r.valueCount(f, width: 8))
                try r.forEachFixed(f, width: 8) { typed.doubles.append(Double(bitPattern: $0)) }
            case 11:
                try r.forEachVarint(f) { typed.uint64s.append($0) }
            case 13:
                let entry = try r.nested(f, .stringEntry, "external_data entry of \(r.label)") { sub in
                    var key = "", value = ""
                    while let e = try sub.next() {
                        if e.number == 1 { key = try sub.string(e) } else if e.number == 2 { value = try sub.string(e) }
                    }
                    return (key: key, value: value)
                }
                external.append(entry)
            case 14: location = try r.int64(f)
            default: break
            }
        }
        let label = r.label
        if let d = dims.first(where: { $0 < 0 }) {
            throw DecodeFailure("malformed: \(label) has negative dimension \(d) in its shape \(dims)")
        }
        let dataType = try checkedDataType(dataTypeNumber, label: label)
        let count = try elementCount(dims, label: label)
        // Packed in the file: 4- and 2-bit types take ceil(count x bits / 8) bytes.
        let bytesNeeded =
            dataType.bitWidth < 8 ? NarrowConversion.packedByteCount(count, dataType) : Tensor.checkedByteCount(dataType, dims)
        guard let byteCount = bytesNeeded else {
            throw DecodeFailure("malformed: \(label) of shape \(dims) is too large to address")
        }
        let what = "\(label) (\(dataType.onnxName) \(dims))"

        let tensor: Tensor
        if location == 1 {
            tensor = try externalTensor(external, dataType: dataType, dims: dims, byteCount: byteCount, what: what,
                                        label: label, context: context)
        } else if let raw {
            guard raw.count == byteCount else {
                throw DecodeFailure("malformed: \(what) needs \(byteCount) bytes but its raw_data has \(raw.count)")
            }
            tensor = borrowOrCopy(raw, dataType: dataType, dims: dims, owner: context.file, packedCount: count)
        } else {
            tensor = try typedTensor(typed, dataType: dataType, dims: dims, count: count, what: what)
        }
        return (name, tensor)
    }

    /// The held (one byte per element) tensor of `count` 4- or 2-bit elements packed in `bytes`.
    static func unpacked(_ bytes: UnsafeRawBufferPointer, dataType: DataType, dims: [Int], count: Int) -> Tensor {
        let tensor = Tensor(uninitialized: dataType, shape: dims)
        if count > 0 {
            NarrowConversion.unpack(
                bytes, type: dataType, count: count,
                into: tensor.mutableBytes.baseAddress!.assumingMemoryBound(to: UInt8.self))
        }
        return tensor
    }

    // MARK: Data sources

    /// A tensor over `bytes`, borrowed when they are aligned to the element size, copied otherwise
    /// (protobuf does not align fields).
    /// 4- and 2-bit types are unpacked into a new tensor (`packedCount` elements).
    static func borrowOrCopy(
        _ bytes: UnsafeRawBufferPointer, dataType: DataType, dims: [Int], owner: MappedFile, packedCount: Int
    ) -> Tensor {
        guard let base = bytes.baseAddress, !bytes.isEmpty else { return Tensor(zeros: dataType, shape: dims) }
        if dataType.bitWidth < 8 {
            let tensor = unpacked(bytes, dataType: dataType, dims: dims, count: packedCount)
            owner.releaseResidentPages(base, byteCount: bytes.count)
            return tensor
        }
        if Int(bitPattern: base) % dataType.byteSize == 0 {
            let storage = TensorStorage(borrowing: base, byteCount: bytes.count, owner: owner)
            return Tensor(dataType: dataType, shape: dims, storage: storage)
        }
        let tensor = Tensor(uninitialized: dataType, shape: dims)
        tensor.mutableBytes.copyMemory(from: bytes)
        // The copy is what the engine reads from now on; the file pages the copy touched need not
        // stay resident (most of a PyTorch export's weights are unaligned: 39 of resnet18's 47 MB).
        owner.releaseResidentPages(base, byteCount: bytes.count)
        return tensor
    }

    private static func externalTensor(
        _ entries: [(key: String, value: String)], dataType: DataType, dims: [Int], byteCount: Int, what: String,
        label: String, context: DecodeContext
    ) throws -> Tensor {
        var location: String?
        var offset = 0
        var declaredLength: Int?
        for (key, value) in entries {
            switch key {
            case "location": location = value
            case "offset", "length":
                guard let n = Int(value), n >= 0 else {
                    throw DecodeFailure("malformed: \(label) has external data \(key) \(quoted(value)), not a byte count")
                }
                if key == "offset" { offset = n } else { declaredLength = n }
            default: break
            }
        }
        guard let location else {
            throw DecodeFailure("malformed: \(label) says its data is external but names no location")
        }
        let file = try context.externalFile(location: location, for: label)
        let available = offset <= file.count ? file.count - offset : -1
        let length = declaredLength ?? byteCount
        guard available >= 0, length <= available else {
            throw DecodeFailure("truncated: \(label) needs \(length) bytes at offset \(offset) of external file "
                + "'\(location)', which has \(file.count) bytes; the .data file does not match the model")
        }
        guard length == byteCount else {
            throw DecodeFailure("malformed: \(what) needs \(byteCount) bytes but its external data length is \(length)")
        }
        let bytes = UnsafeRawBufferPointer(rebasing: file.bytes[offset..<(offset + length)])
        return borrowOrCopy(bytes, dataType: dataType, dims: dims, owner: file, packedCount: Tensor.elementCount(dims))
    }

    private static func typedTensor(
        _ typed: TypedValues, dataType: DataType, dims: [Int], count: Int, what: String
    ) throws -> Tensor {
        let present: [(String, Int)] = [
            ("float_data", typed.floats.count), ("int32_data", typed.int32s.count), ("int64_data", typed.int64s.count),
            ("double_data", typed.doubles.count), ("uint64_data", typed.uint64s.count), ("string_data", typed.strings),
        ].filter { $0.1 > 0 }
        let field: String
        switch dataType {
        case .float32: field = "float_data"
        case .int32, .int16, .int8, .uint8, .uint16, .bool, .float16, .bfloat16, .float8e4m3fn, .float8e4m3fnuz,
            .float8e5m2, .float8e5m2fnuz, .float8e8m0, .float4e2m1, .int4, .uint4, .int2, .uint2:
            field = "int32_data"
        case .int64: field = "int64_data"
        case .float64: field = "double_data"
        case .uint32, .uint64: field = "uint64_data"
        case .string: field = "string_data"
        }
        if let other = present.first(where: { $0.0 != field }) {
            throw DecodeFailure("malformed: \(what) has its values in \(other.0), but that type belongs in \(field)")
        }
        let have = present.first?.1 ?? 0
        // 4- and 2-bit types: each int32_data entry holds one packed byte (2 or 4 elements).
        let entries = dataType.bitWidth < 8 ? NarrowConversion.packedByteCount(count, dataType) ?? count : count
        guard have == entries else {
            if have == 0 {
                throw DecodeFailure("malformed: \(what) has no data (no raw_data, \(field) or external data)")
            }
            throw DecodeFailure("malformed: \(what) has \(have) values in \(field) but its shape needs \(entries)")
        }
        if dataType.bitWidth < 8 {
            let bytes = typed.int32s.map { UInt8(truncatingIfNeeded: $0) }
            return bytes.withUnsafeBytes { unpacked($0, dataType: dataType, dims: dims, count: Tensor.elementCount(dims)) }
        }
        let tensor = Tensor(uninitialized: dataType, shape: dims)
        let out = tensor.mutableBytes
        switch dataType {
        case .float32: store(typed.floats, into: out)
        case .int32: store(typed.int32s, into: out)
        case .int16: store(typed.int32s.map { Int16(truncatingIfNeeded: $0) }, into: out)
        case .int8: store(typed.int32s.map { Int8(truncatingIfNeeded: $0) }, into: out)
        case .uint8: store(typed.int32s.map { UInt8(truncatingIfNeeded: $0) }, into: out)
        case .bool: store(typed.int32s.map { UInt8($0 != 0 ? 1 : 0) }, into: out)
        case .uint16, .float16, .bfloat16: store(typed.int32s.map { UInt16(truncatingIfNeeded: $0) }, into: out)
        case .float8e4m3fn, .float8e4m3fnuz, .float8e5m2, .float8e5m2fnuz, .float8e8m0, .float4e2m1, .int4, .uint4, .int2,
            .uint2:
            // float8: one code per entry (4- and 2-bit types were unpacked above).
            store(typed.int32s.map { UInt8(truncatingIfNeeded: $0) }, into: out)
        case .int64: store(typed.int64s, into: out)
        case .float64: store(typed.doubles, into: out)
        case .uint32: store(typed.uint64s.map { UInt32(truncatingIfNeeded: $0) }, into: out)
        case .uint64: store(typed.uint64s, into: out)
        case .string: break
        }
        return tensor
    }

    private static func store<T>(_ values: [T], into out: UnsafeMutableRawBufferPointer) {
        values.withUnsafeBytes { out.copyMemory(from: $0) }
    }

    // MARK: Checks

    static func checkedDataType(_ number: Int64, label: String) throws -> DataType {
        if let t = DataType(rawValue: Int32(truncatingIfNeeded: number)), Int64(t.rawValue) == number, t != .string {
            return t
        }
        let names: [Int64: String] = [
            0: "UNDEFINED (not set)", 8: "STRING", 14: "COMPLEX64", 15: "COMPLEX128", 27: "FLOAT6E2M3", 28: "FLOAT6E3M2",
        ]
        let name = names[number].map { "\(number) (\($0))" } ?? "\(number) (unknown)"
        throw DecodeFailure("unsupported: \(label) has data type \(name), which the engine does not support; "
            + "convert the model's tensors to a supported type (float, double, float16, bfloat16, float8, float4, int2-64, "
            + "uint2-64, bool)")
    }

    static func elementCount(_ dims: [Int], label: String) throws -> Int {
        var count = 1
        for d in dims {
            let (c, overflow) = count.multipliedReportingOverflow(by: d)
            if overflow { throw DecodeFailure("malformed: \(label) has shape \(dims), whose element count overflows") }
            count = c
        }
        return count
    }
}
