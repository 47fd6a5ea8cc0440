import Tensors

/// Flatten: reshapes to [prod(dims before axis), prod(dims from axis)]. Zero-copy.
struct FlattenKernel: Kernel {
    let axis: Int

    init(context: NodeContext) throws {
        try context.requireInputs(1)
        axis = try context.int("axis", default: 1)
    }

    func run(_ inputs: [Tensor?]) throws -> [Tensor] {
        let x = try Check.input(inputs, 0, "input")
        let a = try Check.axis(axis, rank: x.rank, inclusiveEnd: true)
        return [x.reshaped([x.shape[..<a].reduce(1, *), x.shape[a...].reduce(1, *)])]
    }
}

/// Reshape: the target shape comes from the `shape` input (opset >= 5) or attribute (opset < 5).
/// 0 copies the input's dimension at that position unless `allowzero` = 1 (opset 14+); one -1 is
/// inferred. Zero-copy.
struct ReshapeKernel: Kernel {
    let allowZero: Bool
    /// The attribute shape of opset < 5 (nil: the shape is input 1).
    let attributeShape: [Int]?

    init(context: NodeContext) throws {
        if context.opset < 5 {
            try context.requireInputs(1)
            guard let s = try context.ints("shape") else { throw context.invalid("has no 'shape' attribute") }
            attributeShape = s
        } else {
            try context.requireInputs(2)
            attributeShape = nil
        }
        let flag = try context.int("allowzero", default: 0)
        allowZero = context.opset >= 14 && flag != 0
    }

    func run(_ inputs: [Tensor?]) throws -> [Tensor] {
        let x = try Check.input(inputs, 0, "data")
        let requested: [Int]
        if let attributeShape {
            requested = attributeShape
        } else {
            let s = try Check.input(inputs, 1, "shape")
            try Check.dataType(s, [.int64], "shape")
            guard s.rank == 1 else { throw KernelError.failed("Reshape's shape input must be 1-D, got \(s.shape)") }
            requested = s.elements(as: Int64.self).map { Int($0) }
        }
        return [x.reshaped(try Self.resolve(requested, input: x.shape, allowZero: allowZero))]
    }

    /// The output shape for `requested` applied to a tensor of shape `input`.
    static func resolve(_ requested: [Int], input: [Int], allowZero: Bool) throws -> [Int] {
        var out = requested
        var inferred: Int? = nil
        for (i, d) in requested.enumerated() {
            if d == -1 {
                guard inferred == nil else {
                    throw KernelError.failed("Reshape's shape \(requested) has more than one -1")
                }
                inferred = i
            } else if d == 0 && !allowZero {
                guard i < input.count else {
                    throw KernelError.shape(
                        "Reshape's shape \(requested) copies dimension \(i) (0) but the input \(input) has rank \(input.count)")
                }
                out[i] = input[i]
            } else if d < 0 {
                throw KernelError.failed("Reshape's shape \(requested) has the invalid dimension \(d)")
            }
        }
        if allowZero && inferred != nil && requested.contains(0) {
            throw KernelError.failed("Reshape's shape \(requested) has both 0 and -1 while allowzero=1")
        }
        let total = input.reduce(1, *)
        // The requested dimensions may come from a request: multiply without trapping on overflow.
        var known = 1
        for (j, d) in out.enumerated() where j != inferred {
            let (p, overflow) = known.multipliedReportingOverflow(by: d)
            guard !overflow else {
                throw KernelError.shape("Reshape's shape \(requested) has more elements than can be addressed")
            }
            known = p
        }
        if let i = inferred {
            guard known != 0, total % known == 0 else {
                throw KernelError.shape("cannot reshape a tensor of shape \(input) (\(total) elements) to \(requested)")
            }
            out[i] = total / known
        }
        guard inferred != nil || known == total else {
            throw KernelError.shape("cannot reshape a tensor of shape \(input) (\(total) elements) to \(requested)")
        }
        return out
    }
}

/// Identity: the input itself (no copy).
struct IdentityKernel: Kernel {
    init(context: NodeContext) throws { try context.requireInputs(1) }

    func run(_ inputs: [Tensor?]) throws -> [Tensor] { [try Check.input(inputs, 0, "input")] }
}

/// Constant: a tensor from `value`, `value_float`, `value_floats`, `value_int` or `value_ints`. The plan
/// runs it once when it is built.
struct ConstantKernel: Kernel {
    let value: Tensor

    init(context: NodeContext) throws {
        try context.requireInputs(0)
        if let t = try context.tensor("value") {
            value = t
        } else if let f = try context.float("value_float") {
            value = Tensor(scalar: f)
        } else if let fs = try context.floats("value_floats") {
            value = Tensor(fs, shape: [fs.count])
        } else if let i = try context.int("value_int") {
            value = Tensor(scalar: Int64(i))
        } else if let ints = try context.ints("value_ints") {
            value = Tensor(ints.map { Int64($0) }, shape: [ints.count])
        } else if context.has("sparse_value") || context.has("value_string") || context.has("value_strings") {
            throw context.invalid("uses a sparse or string value, which the engine does not support")
        } else {
            throw context.invalid("has none of the attributes value, value_float(s), value_int(s)")
        }
    }

    func run(_ inputs: [Tensor?]) throws -> [Tensor] { [value] }
}

/// BitCast (opset 26): the input's bytes as another element type of the same width, same shape. A
/// view: the bytes are not copied.
struct BitCastKernel: Kernel {
    let to: DataType

    init(context: NodeContext) throws {
        try context.requireInputs(1)
        guard let raw = try context.int("to"), let t = DataType(rawValue: Int32(truncatingIfNeeded: raw)), t != .string else {
            throw context.invalid("has no 'to' attribute naming an element type the engine has")
        }
        to = t
    }

    func run(_ inputs: [Tensor?]) throws -> [Tensor] {
        let x = try Check.input(inputs, 0, "input")
        guard x.container == nil, x.dataType.byteSize == to.byteSize, x.dataType != .string else {
            throw KernelError.failed("BitCast from \(x.dataType.v2Name) to \(to.v2Name): the widths differ")
        }
        return [Tensor(dataType: to, shape: x.shape, storage: x.storage, byteOffset: x.byteOffset)]
    }
}
