/// The values of an ONNX graph that are not tensors: sequences of tensors (SequenceConstruct,
/// SplitToSequence, a Loop's sequence-valued carried state) and optionals (`Optional`,
/// `OptionalHasElement`). They travel through the engine's slots as a `Tensor` whose `container`
/// says what it is, with no elements of its own (shape `[0]`, zero bytes): a kernel that expects a
/// tensor and is handed one of them sees an empty tensor, never memory it does not own, and the
/// sequence kernels check `container` (`Tensor.sequenceElements`).
///
/// An optional that holds a value is that value itself (a tensor or a sequence); only the empty
/// optional needs a marker of its own.
public enum ValueContainer: Sendable {
    /// A sequence; every element is a tensor of `elementType`.
    case sequence([Tensor])
    /// An optional with no value.
    case noneOptional
}

extension Tensor {
    private static let noBytes = TensorStorage(zeroedByteCount: 0)

    /// A sequence of tensors of one element type (`elementType` is what an empty sequence reports).
    public init(sequence elements: [Tensor], elementType: DataType) {
        self.init(dataType: elementType, shape: [0], storage: Tensor.noBytes, container: .sequence(elements))
    }

    /// The empty optional of a tensor or sequence of `elementType`.
    public init(noneOptional elementType: DataType) {
        self.init(dataType: elementType, shape: [0], storage: Tensor.noBytes, container: .noneOptional)
    }

    /// The elements when this is a sequence, else nil.
    public var sequenceElements: [Tensor]? {
        if case .sequence(let elements)? = container { return elements }
        return nil
    }

    /// True for the empty optional.
    public var isNoneOptional: Bool {
        if case .noneOptional? = container { return true }
        return false
    }

    /// "tensor", "sequence" or "empty optional", for messages.
    public var kindDescription: String {
        switch container {
        case nil: return "tensor"
        case .sequence: return "sequence"
        case .noneOptional: return "empty optional"
        }
    }
}
