import Tensors

/// The arithmetic of one elementwise binary operator on one element type. Integer operations wrap on
/// overflow and integer division truncates toward zero (as C); division by zero is checked before.
protocol BinaryOperation {
    associatedtype Element
    associatedtype Output = Element
    static func apply(_ a: Element, _ b: Element) -> Output
}

enum FloatAdd: BinaryOperation { static func apply(_ a: Float, _ b: Float) -> Float { a + b } }
enum FloatSub: BinaryOperation { static func apply(_ a: Float, _ b: Float) -> Float { a - b } }
enum FloatMul: BinaryOperation { static func apply(_ a: Float, _ b: Float) -> Float { a * b } }
enum FloatDiv: BinaryOperation { static func apply(_ a: Float, _ b: Float) -> Float { a / b } }

enum RealAdd<Element: FloatElement>: BinaryOperation { static func apply(_ a: Element, _ b: Element) -> Element { a + b } }
enum RealSub<Element: FloatElement>: BinaryOperation { static func apply(_ a: Element, _ b: Element) -> Element { a - b } }
enum RealMul<Element: FloatElement>: BinaryOperation { static func apply(_ a: Element, _ b: Element) -> Element { a * b } }
enum RealDiv<Element: FloatElement>: BinaryOperation { static func apply(_ a: Element, _ b: Element) -> Element { a / b } }

enum IntAdd<Element: FixedWidthInteger>: BinaryOperation {
    static func apply(_ a: Element, _ b: Element) -> Element { a &+ b }
}
enum IntSub<Element: FixedWidthInteger>: BinaryOperation {
    static func apply(_ a: Element, _ b: Element) -> Element { a &- b }
}
enum IntMul<Element: FixedWidthInteger>: BinaryOperation {
    static func apply(_ a: Element, _ b: Element) -> Element { a &* b }
}
enum IntDiv<Element: FixedWidthInteger>: BinaryOperation {
    /// Truncating division; `min / -1` wraps to `min` instead of trapping.
    static func apply(_ a: Element, _ b: Element) -> Element {
        let (q, overflow) = a.dividedReportingOverflow(by: b)
        return overflow ? (b == 0 ? 0 : a &* -1) : q
    }
}

/// Add, Sub, Mul, Div with multidirectional (numpy) broadcasting for float32, float64 and every
/// integer type (wrapping; Div truncates toward zero and fails on a zero divisor).
struct BinaryKernel: BufferedKernel {
    enum Op: String, Sendable { case add = "Add", sub = "Sub", mul = "Mul", div = "Div" }
    let op: Op
    /// Opsets 1-6 with `broadcast` = 1 and `axis`: B's dimensions line up with A's from `axis` on
    /// (not from the right, as numpy's do). nil for numpy broadcasting.
    let legacyAxis: Int?

    init(context: NodeContext, op: Op) throws {
        try context.requireInputs(2)
        if context.opset < 7, try context.int("broadcast", default: 0) != 0, let axis = try context.int("axis") {
            legacyAxis = axis
        } else {
            legacyAxis = nil
        }
        self.op = op
    }

    func run(_ inputs: [Tensor?], into output: Tensor?) throws -> [Tensor] {
        let a = try Check.input(inputs, 0, "A")
        var b = try Check.input(inputs, 1, "B")
        if let legacyAxis {
            // B aligned at `axis`: trailing size-1 dimensions make numpy broadcasting do the same.
            let axis = legacyAxis < 0 ? legacyAxis + a.rank : legacyAxis
            guard axis >= 0, axis + b.rank <= a.rank else {
                throw KernelError.shape("\(op.rawValue): B \(b.shape) does not fit A \(a.shape) from axis \(legacyAxis)")
            }
            b = b.reshaped(b.shape + [Int](repeating: 1, count: a.rank - axis - b.rank))
        }
        guard a.dataType == b.dataType else {
            throw KernelError.failed(
                "\(op.rawValue) needs inputs of one type, got \(a.dataType.v2Name) and \(b.dataType.v2Name)")
        }
        switch (a.dataType, op) {
        case (.float32, .add): return [try BinaryLoop<FloatAdd>.run(a, b, into: output)]
        case (.float32, .sub): return [try BinaryLoop<FloatSub>.run(a, b, into: output)]
        case (.float32, .mul): return [try BinaryLoop<FloatMul>.run(a, b, into: output)]
        case (.float32, .div): return [try BinaryLoop<FloatDiv>.run(a, b, into: output)]
        default:
            guard let out = try a.dataType.dispatch(Arithmetic(op: op, a: a, b: b, output: output)) else {
                throw KernelError.unsupportedType(op.rawValue, a.dataType, supported: DataType.realNumbers)
            }
            return [out]
        }
    }

    /// The operation on any other numeric type.
    private struct Arithmetic: NumericBody {
        let op: Op
        let a: Tensor
        let b: Tensor
        let output: Tensor?

        func integer<T: FixedWidthInteger & TensorElement>(_: T.Type) throws -> Tensor {
            switch op {
            case .add: return try BinaryLoop<IntAdd<T>>.run(a, b, into: output)
            case .sub: return try BinaryLoop<IntSub<T>>.run(a, b, into: output)
            case .mul: return try BinaryLoop<IntMul<T>>.run(a, b, into: output)
            case .div:
                if b.elements(as: T.self).contains(0) {
                    throw KernelError.failed("integer division by zero in Div")
                }
                return try BinaryLoop<IntDiv<T>>.run(a, b, into: output)
            }
        }

        func float<T: FloatElement>(_: T.Type) throws -> Tensor {
            switch op {
            case .add: return try BinaryLoop<RealAdd<T>>.run(a, b, into: output)
            case .sub: return try BinaryLoop<RealSub<T>>.run(a, b, into: output)
            case .mul: return try BinaryLoop<RealMul<T>>.run(a, b, into: output)
            case .div: return try BinaryLoop<RealDiv<T>>.run(a, b, into: output)
            }
        }
    }
}

/// The loops of a broadcasting binary operation: same shape, scalar operand, and a general strided
/// loop over the broadcast shape with adjacent dimensions merged where the strides allow.
enum BinaryLoop<Op: BinaryOperation> where Op.Element: TensorElement, Op.Output: TensorElement {
    typealias T = Op.Element
    typealias R = Op.Output

    static func run(_ a: Tensor, _ b: Tensor, into output: Tensor? = nil) throws -> Tensor {
        guard let shape = Broadcast.shape([a.shape, b.shape]) else {
            throw KernelError.shape("shapes \(a.shape) and \(b.shape) do not broadcast")
        }
        let out = try Output.tensor(output, R.dataType, shape)
        let count = out.count
        if count == 0 { return out }
        let x = a.elements(as: T.self).baseAddress!
        let y = b.elements(as: T.self).baseAddress!
        let z = out.mutableElements(as: R.self).baseAddress!
        if a.count == count && b.count == count {
            blocks(count) { lo, hi in for i in lo..<hi { z[i] = Op.apply(x[i], y[i]) } }
        } else if b.count == 1 && a.count == count {
            let v = y[0]
            blocks(count) { lo, hi in for i in lo..<hi { z[i] = Op.apply(x[i], v) } }
        } else if a.count == 1 && b.count == count {
            let v = x[0]
            blocks(count) { lo, hi in for i in lo..<hi { z[i] = Op.apply(v, y[i]) } }
        } else {
            strided(shape, Broadcast.strides(of: a.shape, broadcastTo: shape), x,
                Broadcast.strides(of: b.shape, broadcastTo: shape), y, z)
        }
        return out
    }

    /// `body(lo, hi)` over `0..<count` in blocks of 16384 elements, split over the thread budget
    /// (the worker pool) from 64k elements. Not for the arithmetic (a 64k-element Add is about
    /// 20 us) but for where the data is: the step before (a convolution split by channels) left
    /// each half in its own core's cache, and one thread reading both halves took 4-7x as long
    /// with 2 threads as with 1 (MobileNetV3's squeeze-and-excitation Muls and residual Adds,
    /// 25 -> 161 us; batch 1 was slower at 2 threads than at 1 until this split them too).
    @inline(__always)
    private static func blocks(_ count: Int, _ body: (Int, Int) -> Void) {
        let block = 16_384
        Parallel.forEach((count + block - 1) / block, costPerItem: block, minimumWork: 1 << 16) { range in
            body(range.lowerBound * block, min(count, range.upperBound * block))
        }
    }

    /// The general case. Merges dimensions that are contiguous for both operands, then walks the outer
    /// dimensions with an odometer and runs the innermost one as a plain loop.
    private static func strided(
        _ fullShape: [Int], _ fullSA: [Int], _ x: UnsafePointer<T>, _ fullSB: [Int], _ y: UnsafePointer<T>,
        _ z: UnsafeMutablePointer<R>
    ) {
        var shape: [Int] = []
        var sa: [Int] = []
        var sb: [Int] = []
        for d in 0..<fullShape.count where fullShape[d] != 1 {
            if let last = shape.indices.last, sa[last] == fullSA[d] * fullShape[d],
                sb[last] == fullSB[d] * fullShape[d]
            {
                shape[last] *= fullShape[d]
                sa[last] = fullSA[d]
                sb[last] = fullSB[d]
            } else {
                shape.append(fullShape[d])
                sa.append(fullSA[d])
                sb.append(fullSB[d])
            }
        }
        if shape.isEmpty {
            z[0] = Op.apply(x[0], y[0])
            return
        }
        let inner = shape.count - 1
        let n = shape[inner]
        let ia = sa[inner]
        let ib = sb[inner]
        // Rows split between threads from 64k elements (`Odometer.forEachRow`; see `blocks`).
        let walk = Odometer(shape: Array(shape.dropLast()), strides: [Array(sa.dropLast()), Array(sb.dropLast())])
        walk.forEachRow(rowLength: n) { row, offsets in
            let px = x + offsets[0]
            let py = y + offsets[1]
            let pz = z + row * n
            if ia == 1 && ib == 1 {
                for i in 0..<n { pz[i] = Op.apply(px[i], py[i]) }
            } else if ia == 1 && ib == 0 {
                let v = py[0]
                for i in 0..<n { pz[i] = Op.apply(px[i], v) }
            } else if ia == 0 && ib == 1 {
                let v = px[0]
                for i in 0..<n { pz[i] = Op.apply(v, py[i]) }
            } else {
                for i in 0..<n { pz[i] = Op.apply(px[i * ia], py[i * ib]) }
            }
        }
    }
}
