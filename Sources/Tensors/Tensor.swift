/// A dense, row-major tensor: element type, shape, and the bytes behind it.
///
/// A value type over a shared `TensorStorage`. Tensors are immutable once shared: a kernel creates
/// its output with `Tensor(zeros:shape:)` or `Tensor(uninitialized:shape:)`, writes it through
/// `mutableBytes`, then hands it on. `string` tensors are not supported by the engine.
public struct Tensor: Sendable {
    public let dataType: DataType
    public let shape: [Int]
    public let storage: TensorStorage
    /// Byte offset of element 0 inside `storage`.
    public let byteOffset: Int
    /// Set when this value is not a tensor but an ONNX sequence or an empty optional
    /// (`Tensor(sequence:elementType:)`, `Tensor(noneOptional:)`); nil for every tensor.
    public let container: ValueContainer?

    /// Drops this tensor's bytes from the resident set when they are a file mapping's (weights a
    /// kernel has copied into its own layout); see `TensorStorage.releaseResidentPages`.
    public func releaseResidentPages() {
        storage.releaseResidentPages(byteOffset: byteOffset, byteCount: byteCount)
    }

    /// Wraps existing storage. `storage` must hold at least `byteOffset + count * byteSize` bytes.
    public init(
        dataType: DataType, shape: [Int], storage: TensorStorage, byteOffset: Int = 0, container: ValueContainer? = nil
    ) {
        precondition(shape.allSatisfy { $0 >= 0 }, "negative dimension in \(shape)")
        precondition(
            byteOffset + Tensor.elementCount(shape) * dataType.byteSize <= storage.byteCount,
            "storage of \(storage.byteCount) bytes is too small for \(dataType) \(shape)")
        self.dataType = dataType
        self.shape = shape
        self.storage = storage
        self.byteOffset = byteOffset
        self.container = container
    }

    /// A new zero-filled tensor.
    public init(zeros dataType: DataType, shape: [Int]) {
        self.init(
            dataType: dataType, shape: shape,
            storage: TensorStorage(zeroedByteCount: Tensor.elementCount(shape) * dataType.byteSize))
    }

    /// A new tensor whose elements the caller must all write before sharing it.
    public init(uninitialized dataType: DataType, shape: [Int]) {
        self.init(
            dataType: dataType, shape: shape,
            storage: TensorStorage(uninitializedByteCount: Tensor.elementCount(shape) * dataType.byteSize))
    }

    /// A new tensor charged to the current memory budget (`TensorStorage(checkedByteCount:)`):
    /// throws `MemoryLimitError` when the shape's byte count overflows, or the budget or the
    /// system refuses it. Zero-filled when `zeroed`, else the caller must write every element.
    public init(allocating dataType: DataType, shape: [Int], zeroed: Bool = false) throws(MemoryLimitError) {
        guard let bytes = Tensor.checkedByteCount(dataType, shape) else {
            let ledger = MemoryLedger.current ?? MemoryLedger.process
            throw MemoryLimitError(
                requested: Int.max, held: ledger.bytesHeld, limit: ledger.limit, purpose: ledger.purpose,
                setting: "\(dataType.v2Name) \(shape) cannot be allocated: its byte count overflows")
        }
        self.init(
            dataType: dataType, shape: shape, storage: try TensorStorage(checkedByteCount: bytes, zeroed: zeroed))
    }

    /// The byte count of a `dataType` tensor of `shape`, or nil when a dimension is negative or the
    /// count overflows (shapes that come from a request or a file).
    public static func checkedByteCount(_ dataType: DataType, _ shape: [Int]) -> Int? {
        guard var total = checkedElementCount(shape) else { return nil }
        let (bytes, overflow) = total.multipliedReportingOverflow(by: max(dataType.byteSize, 1))
        if overflow { return nil }
        total = bytes
        return total
    }

    /// The element count of `shape`, or nil when a dimension is negative or the product overflows.
    public static func checkedElementCount(_ shape: [Int]) -> Int? {
        var total = 1
        for d in shape {
            guard d >= 0 else { return nil }
            let (p, overflow) = total.multipliedReportingOverflow(by: d)
            if overflow { return nil }
            total = p
        }
        return total
    }

    /// Number of elements (1 for a scalar, whose shape is `[]`).
    public var count: Int { Tensor.elementCount(shape) }
    public var rank: Int { shape.count }
    public var byteCount: Int { count * dataType.byteSize }

    /// Read-only bytes of the elements.
    public var rawBytes: UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: storage.bytes + byteOffset, count: byteCount)
    }

    /// Writable bytes; only for the creator of the tensor, before it is shared.
    public var mutableBytes: UnsafeMutableRawBufferPointer {
        UnsafeMutableRawBufferPointer(start: storage.bytes + byteOffset, count: byteCount)
    }

    /// Typed read-only view. `T` must match `dataType`'s element size.
    public func elements<T>(as: T.Type) -> UnsafeBufferPointer<T> {
        precondition(MemoryLayout<T>.stride == dataType.byteSize, "\(T.self) does not match \(dataType)")
        return UnsafeBufferPointer(
            start: (storage.bytes + byteOffset).assumingMemoryBound(to: T.self), count: count)
    }

    /// Typed writable view; only for the creator of the tensor, before it is shared.
    public func mutableElements<T>(as: T.Type) -> UnsafeMutableBufferPointer<T> {
        precondition(MemoryLayout<T>.stride == dataType.byteSize, "\(T.self) does not match \(dataType)")
        return UnsafeMutableBufferPointer(
            start: (storage.bytes + byteOffset).assumingMemoryBound(to: T.self), count: count)
    }

    /// The same bytes viewed with another shape of equal element count (Reshape, Flatten, ...).
    public func reshaped(_ newShape: [Int]) -> Tensor {
        precondition(Tensor.elementCount(newShape) == count, "cannot reshape \(shape) to \(newShape)")
        return Tensor(dataType: dataType, shape: newShape, storage: storage, byteOffset: byteOffset)
    }

    public static func elementCount(_ shape: [Int]) -> Int { shape.reduce(1, *) }
}

extension Tensor {
    /// A tensor holding a copy of `values`. `T` selects the data type.
    public init<T: TensorElement>(_ values: [T], shape: [Int]) {
        precondition(values.count == Tensor.elementCount(shape), "\(values.count) values for shape \(shape)")
        self.init(uninitialized: T.dataType, shape: shape)
        let out = mutableElements(as: T.self)
        for i in 0..<values.count { out[i] = values[i] }
    }

    /// A scalar (shape `[]`).
    public init<T: TensorElement>(scalar: T) { self.init([scalar], shape: []) }

    /// A copy of the elements as an array. `T` must be this tensor's element type.
    public func scalars<T: TensorElement>(as type: T.Type) -> [T] {
        precondition(T.dataType == dataType, "\(T.self) is not \(dataType)")
        return Array(elements(as: T.self))
    }

    /// The elements converted to Double, for any numeric type (tests, JSON rendering of odd types).
    public func doubleValues() -> [Double] {
        switch dataType {
        case .float32: return elements(as: Float.self).map(Double.init)
        case .float64: return Array(elements(as: Double.self))
        case .int64: return elements(as: Int64.self).map(Double.init)
        case .int32: return elements(as: Int32.self).map(Double.init)
        case .int16: return elements(as: Int16.self).map(Double.init)
        case .int8: return elements(as: Int8.self).map(Double.init)
        case .uint8: return elements(as: UInt8.self).map(Double.init)
        case .uint16: return elements(as: UInt16.self).map(Double.init)
        case .uint32: return elements(as: UInt32.self).map { Double($0) }
        case .uint64: return elements(as: UInt64.self).map { Double($0) }
        case .bool: return elements(as: Bool.self).map { $0 ? 1 : 0 }
        case .float16: return elements(as: UInt16.self).map { Double(HalfConversion.float(fromFloat16: $0)) }
        case .bfloat16: return elements(as: UInt16.self).map { Double(HalfConversion.float(fromBFloat16: $0)) }
        case .string: return []
        case .float8e4m3fn, .float8e4m3fnuz, .float8e5m2, .float8e5m2fnuz, .float8e8m0, .float4e2m1, .int4, .uint4,
            .int2, .uint2:
            return elements(as: UInt8.self).map { NarrowConversion.value(ofElement: $0, format: dataType) }
        }
    }
}

/// Swift types that can be tensor elements.
public protocol TensorElement: Sendable {
    static var dataType: DataType { get }
}
extension Float: TensorElement { public static var dataType: DataType { .float32 } }
extension Double: TensorElement { public static var dataType: DataType { .float64 } }
extension Int64: TensorElement { public static var dataType: DataType { .int64 } }
extension Int32: TensorElement { public static var dataType: DataType { .int32 } }
extension Int16: TensorElement { public static var dataType: DataType { .int16 } }
extension Int8: TensorElement { public static var dataType: DataType { .int8 } }
extension UInt8: TensorElement { public static var dataType: DataType { .uint8 } }
extension UInt16: TensorElement { public static var dataType: DataType { .uint16 } }
extension UInt32: TensorElement { public static var dataType: DataType { .uint32 } }
extension UInt64: TensorElement { public static var dataType: DataType { .uint64 } }
extension Bool: TensorElement { public static var dataType: DataType { .bool } }
