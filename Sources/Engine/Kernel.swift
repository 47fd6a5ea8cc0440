import Tensors

/// One operator instance ready to run: built once per node by an `OperatorRegistry` factory, with its
/// attributes already read and checked.
///
/// A kernel is immutable after construction and is called from many threads at once (one call per
/// request), so it must keep no per-call state. `inputs` holds one entry per node input, nil where an
/// optional input is omitted. It returns the node's outputs in order (it may return fewer than the node
/// declares only when the missing ones are optional and unused). Throw `KernelError` for failures.
public protocol Kernel: Sendable {
    func run(_ inputs: [Tensor?]) throws -> [Tensor]
}

/// A kernel made of a closure, for operators that need no state beyond what the closure captures.
public struct FunctionKernel: Kernel {
    public let body: @Sendable ([Tensor?]) throws -> [Tensor]

    public init(_ body: @escaping @Sendable ([Tensor?]) throws -> [Tensor]) { self.body = body }

    public func run(_ inputs: [Tensor?]) throws -> [Tensor] { try body(inputs) }
}

/// Why a kernel failed. The plan adds the node's name and maps it to an `EngineError`:
/// `.shape` (the tensors it was given do not fit together, which at run time comes from the request's
/// shapes) becomes `EngineError.invalidInput`; `.failed` becomes `EngineError.executionFailed`.
public enum KernelError: Error, Sendable, Equatable {
    case shape(String)
    case failed(String)
}

/// Small checks shared by kernels. Each throws a `KernelError` naming what is wrong.
enum Check {
    /// The input at `index`, or a failure naming the missing input.
    static func input(_ inputs: [Tensor?], _ index: Int, _ what: String) throws -> Tensor {
        guard index < inputs.count, let t = inputs[index] else {
            throw KernelError.failed("required input \(index) (\(what)) is missing")
        }
        return t
    }

    static func dataType(_ t: Tensor, _ allowed: [DataType], _ what: String) throws {
        guard allowed.contains(t.dataType) else {
            let names = allowed.map(\.v2Name).joined(separator: ", ")
            throw KernelError.failed("\(what) has type \(t.dataType.v2Name); this kernel supports \(names)")
        }
    }

    /// Fails unless `shape` (computed at run time: Expand, Tile, ConstantOfShape) has non-negative
    /// dimensions and at most 2^34 elements, so a bad shape never traps on overflow or exhausts memory.
    static func computedShape(_ shape: [Int], _ op: String) throws {
        var total = 1
        for d in shape {
            guard d >= 0 else { throw KernelError.shape("\(op) output shape \(shape) has a negative dimension") }
            let (p, overflow) = total.multipliedReportingOverflow(by: d)
            guard !overflow, p <= 1 << 34 else { throw KernelError.shape("\(op) output shape \(shape) is too large") }
            total = p
        }
    }

    /// Normalises a possibly negative `axis` for a tensor of `rank` into `0..<rank`
    /// (`0...rank` when `inclusiveEnd`).
    static func axis(_ axis: Int, rank: Int, inclusiveEnd: Bool = false, _ what: String = "axis") throws -> Int {
        let upper = inclusiveEnd ? rank : rank - 1
        let a = axis < 0 ? axis + rank : axis
        guard a >= 0, a <= upper else {
            throw KernelError.shape(
                "\(what) \(axis) is out of range for a tensor of rank \(rank) (allowed \(-rank)...\(upper))")
        }
        return a
    }
}

/// A kernel with one output that can write it into a buffer the plan provides (a slice of the plan's
/// per-run memory arena) instead of allocating it. `run(_:into:)` with `output == nil` allocates as
/// before; with a buffer, the kernel writes every element of it and returns it (it fails if the
/// buffer's type or shape is not what it computes). Kernels without this conformance keep
/// allocating their outputs (the plan adapts).
protocol BufferedKernel: Kernel {
    func run(_ inputs: [Tensor?], into output: Tensor?) throws -> [Tensor]
}

extension BufferedKernel {
    func run(_ inputs: [Tensor?]) throws -> [Tensor] { try run(inputs, into: nil) }
}

/// A buffered kernel that also needs scratch memory (Conv's im2col): the shape plan reserves
/// `scratchCount` floats (the largest over its steps) at the end of its arena and passes them in;
/// steps run one at a time, so they share that region.
protocol ScratchKernel: BufferedKernel {
    func scratchCount(_ inputs: [Tensor?]) -> Int
    func run(_ inputs: [Tensor?], into output: Tensor?, scratch: UnsafeMutablePointer<Float>?) throws -> [Tensor]
}

/// A kernel that keeps its own form of some constant inputs (Conv's weights packed for
/// `PackedGemm`). The plan passes nil at those input positions and drops the original tensors when
/// no other step reads them, so the model's weights are held once, in the kernel's layout.
protocol ConstantAbsorbingKernel: Kernel {
    /// Input positions the kernel needs no tensor for at run time.
    var absorbedInputs: [Int] { get }
}

/// Output allocation for `BufferedKernel`s.
enum Output {
    /// `buffer` when given (checked against `type` and `shape`), else a new uninitialised tensor
    /// charged to the run's memory budget (`MemoryLimitError` when it does not fit).
    @inline(__always)
    static func tensor(_ buffer: Tensor?, _ type: DataType, _ shape: [Int]) throws -> Tensor {
        guard let buffer else { return try Tensor(allocating: type, shape: shape) }
        guard buffer.dataType == type, buffer.shape == shape else {
            throw KernelError.failed(
                "the plan's buffer (\(buffer.dataType.v2Name) \(buffer.shape)) does not fit the output "
                    + "(\(type.v2Name) \(shape)); this is an engine bug, please report it")
        }
        return buffer
    }
}
