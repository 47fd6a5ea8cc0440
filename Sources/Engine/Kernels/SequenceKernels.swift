import Tensors

/// The sequence and optional operators (ONNX opsets 11+ and 15+). A sequence or an empty optional
/// is a `Tensor` whose `container` says so (`ValueContainer`); these kernels build and take them
/// apart without copying element bytes, except SplitToSequence and ConcatFromSequence.
enum SequenceValue {
    /// The elements of input `index`, which must be a sequence.
    static func elements(_ inputs: [Tensor?], _ index: Int, _ op: String) throws -> (elements: [Tensor], type: DataType) {
        let s = try Check.input(inputs, index, "input_sequence")
        guard let elements = s.sequenceElements else {
            throw KernelError.failed("\(op) needs a sequence as input \(index), got a \(s.kindDescription)")
        }
        return (elements, s.dataType)
    }

    /// A position input (int32/int64 scalar) resolved against `count`; `allowEnd` admits `count`
    /// itself (SequenceInsert's append position).
    static func position(_ t: Tensor, count: Int, allowEnd: Bool, _ op: String) throws -> Int {
        let values = try IntInput.values(t, "\(op)'s position")
        guard values.count == 1 else { throw KernelError.shape("\(op)'s position must be one integer, got shape \(t.shape)") }
        let p = values[0] < 0 ? values[0] + count : values[0]
        guard p >= 0, p < count || (allowEnd && p == count) else {
            throw KernelError.shape("\(op)'s position \(values[0]) is outside a sequence of \(count) tensors")
        }
        return p
    }

    /// Element type from a `dtype` attribute (TensorProto data type number), FLOAT by default.
    static func dataType(_ context: NodeContext, _ name: String) throws -> DataType {
        let raw = try context.int(name, default: Int(DataType.float32.rawValue))
        guard let type = DataType(rawValue: Int32(truncatingIfNeeded: raw)), type != .string else {
            throw context.invalid("'\(name)' \(raw) is not an element type the engine has")
        }
        return type
    }
}

/// SequenceEmpty: an empty sequence of `dtype`.
struct SequenceEmptyKernel: Kernel {
    let type: DataType
    init(context: NodeContext) throws {
        try context.requireInputs(0)
        type = try SequenceValue.dataType(context, "dtype")
    }
    func run(_ inputs: [Tensor?]) throws -> [Tensor] { [Tensor(sequence: [], elementType: type)] }
}

/// SequenceConstruct: a sequence of its inputs (one element type).
struct SequenceConstructKernel: Kernel {
    init(context: NodeContext) throws {
        guard context.inputCount >= 1 else { throw context.invalid("needs one or more inputs") }
    }
    func run(_ inputs: [Tensor?]) throws -> [Tensor] {
        let parts = try inputs.indices.map { try Check.input(inputs, $0, "input \($0)") }
        for p in parts where p.container != nil || p.dataType != parts[0].dataType {
            throw KernelError.failed(
                "SequenceConstruct needs tensors of one element type, got \(p.kindDescription) \(p.dataType.v2Name) "
                    + "after \(parts[0].dataType.v2Name)")
        }
        return [Tensor(sequence: parts, elementType: parts[0].dataType)]
    }
}

/// SequenceInsert: the sequence with `tensor` inserted at `position` (the end by default).
struct SequenceInsertKernel: Kernel {
    init(context: NodeContext) throws { try context.requireInputs(2, 3) }
    func run(_ inputs: [Tensor?]) throws -> [Tensor] {
        var (elements, type) = try SequenceValue.elements(inputs, 0, "SequenceInsert")
        let t = try Check.input(inputs, 1, "tensor")
        guard t.container == nil, elements.isEmpty || t.dataType == type else {
            throw KernelError.failed("SequenceInsert: a \(t.kindDescription) of \(t.dataType.v2Name) cannot join a sequence of \(type.v2Name)")
        }
        var at = elements.count
        if inputs.count > 2, let p = inputs[2] {
            at = try SequenceValue.position(p, count: elements.count, allowEnd: true, "SequenceInsert")
        }
        elements.insert(t, at: at)
        return [Tensor(sequence: elements, elementType: t.dataType)]
    }
}

/// SequenceErase: the sequence without the element at `position` (the last by default).
struct SequenceEraseKernel: Kernel {
    init(context: NodeContext) throws { try context.requireInputs(1, 2) }
    func run(_ inputs: [Tensor?]) throws -> [Tensor] {
        var (elements, type) = try SequenceValue.elements(inputs, 0, "SequenceErase")
        guard !elements.isEmpty else { throw KernelError.shape("SequenceErase on an empty sequence") }
        var at = elements.count - 1
        if inputs.count > 1, let p = inputs[1] {
            at = try SequenceValue.position(p, count: elements.count, allowEnd: false, "SequenceErase")
        }
        elements.remove(at: at)
        return [Tensor(sequence: elements, elementType: type)]
    }
}

/// SequenceAt: the element at `position`.
struct SequenceAtKernel: Kernel {
    init(context: NodeContext) throws { try context.requireInputs(2) }
    func run(_ inputs: [Tensor?]) throws -> [Tensor] {
        let (elements, _) = try SequenceValue.elements(inputs, 0, "SequenceAt")
        let p = try Check.input(inputs, 1, "position")
        return [elements[try SequenceValue.position(p, count: elements.count, allowEnd: false, "SequenceAt")]]
    }
}

/// SequenceLength: the number of elements, an INT64 scalar.
struct SequenceLengthKernel: Kernel {
    init(context: NodeContext) throws { try context.requireInputs(1) }
    func run(_ inputs: [Tensor?]) throws -> [Tensor] {
        [Tensor(scalar: Int64(try SequenceValue.elements(inputs, 0, "SequenceLength").elements.count))]
    }
}

/// SplitToSequence: `input` split along `axis` into a sequence: by the sizes in `split` (a 1-D
/// tensor), into chunks of `split` (a scalar; the last may be shorter), or into size-1 slices
/// (squeezed unless `keepdims` is 1) when `split` is absent.
struct SplitToSequenceKernel: Kernel {
    let axis: Int
    let keepDims: Bool

    init(context: NodeContext) throws {
        try context.requireInputs(1, 2)
        axis = try context.int("axis", default: 0)
        keepDims = try context.int("keepdims", default: 1) != 0
    }

    func run(_ inputs: [Tensor?]) throws -> [Tensor] {
        let x = try Check.input(inputs, 0, "input")
        let a = try Check.axis(axis, rank: x.rank, "SplitToSequence's axis")
        let n = x.shape[a]
        var sizes: [Int]
        var squeeze = false
        if inputs.count > 1, let s = inputs[1] {
            let values = try IntInput.values(s, "SplitToSequence's split")
            if s.rank == 0 {
                guard values[0] > 0 else { throw KernelError.shape("SplitToSequence's split must be positive, got \(values[0])") }
                sizes = stride(from: 0, to: n, by: values[0]).map { min(values[0], n - $0) }
            } else {
                guard values.allSatisfy({ $0 >= 0 }), values.reduce(0, +) == n else {
                    throw KernelError.shape("SplitToSequence's sizes \(values) do not add up to dimension \(a) (\(n)) of \(x.shape)")
                }
                sizes = values
            }
        } else {
            sizes = [Int](repeating: 1, count: n)
            squeeze = !keepDims
        }
        let strides = Broadcast.contiguousStrides(x.shape)
        var start = 0
        var parts: [Tensor] = []
        parts.reserveCapacity(sizes.count)
        for size in sizes {
            var shape = x.shape
            shape[a] = size
            var part = try StridedCopy.tensor(x, shape: shape, strides: strides, elementOffset: start * strides[a])
            if squeeze {
                shape.remove(at: a)
                part = part.reshaped(shape)
            }
            parts.append(part)
            start += size
        }
        return [Tensor(sequence: parts, elementType: x.dataType)]
    }
}

/// ConcatFromSequence: the elements joined along `axis`, or stacked along a new `axis` when
/// `new_axis` is 1 (then `axis` may also be the new last position).
struct ConcatFromSequenceKernel: Kernel {
    let axis: Int
    let newAxis: Bool

    init(context: NodeContext) throws {
        try context.requireInputs(1)
        guard let a = try context.int("axis") else { throw context.invalid("has no 'axis' attribute") }
        axis = a
        newAxis = try context.int("new_axis", default: 0) != 0
    }

    func run(_ inputs: [Tensor?]) throws -> [Tensor] {
        let (elements, _) = try SequenceValue.elements(inputs, 0, "ConcatFromSequence")
        guard let first = elements.first else {
            throw KernelError.shape("ConcatFromSequence of an empty sequence: there is nothing to join")
        }
        if newAxis {
            return [try Stacking.stack(elements, axis: try Check.axis(axis, rank: first.rank + 1, "ConcatFromSequence's axis"))]
        }
        return try ConcatKernel(axis: axis).run(elements, into: nil)
    }
}

/// SequenceMap: runs `body` once per position of the sequence inputs (the first input and any
/// other sequence input, all of one length); tensor inputs are handed to every run as they are.
/// Each body output becomes one output sequence.
struct SequenceMapKernel: Kernel {
    let body: Plan
    let outer: [String]
    let formal: Int

    init(context: NodeContext) throws {
        guard case .graph(let graph)? = context.node.attributes["body"] else {
            throw context.invalid("needs the graph attribute body")
        }
        formal = ControlFlow.formalInputs(context.node)
        guard formal >= 1, graph.inputs.count == formal else {
            throw context.invalid("body has \(graph.inputs.count) inputs; it needs one per input of the node (\(formal))")
        }
        outer = ControlFlow.outerNames(context.node)
        body = try ControlFlow.plan(of: graph, context: context)
    }

    func run(_ inputs: [Tensor?]) throws -> [Tensor] {
        let values = try (0..<formal).map { try Check.input(inputs, $0, "input \($0)") }
        let (first, _) = try SequenceValue.elements(inputs, 0, "SequenceMap")
        for v in values.dropFirst() {
            if let e = v.sequenceElements, e.count != first.count {
                throw KernelError.shape("SequenceMap's sequences have different lengths (\(first.count) and \(e.count))")
            }
        }
        var results = [[Tensor]](repeating: [], count: body.outputNames.count)
        for i in 0..<first.count {
            let formalFeeds = values.map { $0.sequenceElements?[i] ?? $0 }
            let feeds = try ControlFlow.feeds(body, formal: formalFeeds, outerNames: outer, outerValues: inputs[formal...])
            for (k, t) in try ControlFlow.ordered(try body.run(feeds), body).enumerated() { results[k].append(t) }
        }
        // An empty input sequence gives empty sequences (their element type is not known: FLOAT).
        return results.map { Tensor(sequence: $0, elementType: $0.first?.dataType ?? .float32) }
    }
}

/// Optional: an optional holding `input`, or the empty optional when the input is absent.
struct OptionalKernel: Kernel {
    init(context: NodeContext) throws { try context.requireInputs(0, 1) }
    func run(_ inputs: [Tensor?]) throws -> [Tensor] {
        if let t = inputs.first ?? nil { return [t] }
        return [Tensor(noneOptional: .float32)]
    }
}

/// OptionalHasElement: whether the optional holds a value (an absent input is an empty optional).
struct OptionalHasElementKernel: Kernel {
    init(context: NodeContext) throws { try context.requireInputs(0, 1) }
    func run(_ inputs: [Tensor?]) throws -> [Tensor] {
        guard let t = inputs.first ?? nil else { return [Tensor(scalar: false)] }
        return [Tensor(scalar: !t.isNoneOptional)]
    }
}

/// OptionalGetElement: the value the optional holds (a tensor or sequence as it is).
struct OptionalGetElementKernel: Kernel {
    init(context: NodeContext) throws { try context.requireInputs(1) }
    func run(_ inputs: [Tensor?]) throws -> [Tensor] {
        let t = try Check.input(inputs, 0, "input")
        guard !t.isNoneOptional else {
            throw KernelError.failed("OptionalGetElement of an empty optional; check OptionalHasElement first")
        }
        return [t]
    }
}
