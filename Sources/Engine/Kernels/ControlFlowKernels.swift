import Glibc
import Tensors

/// If: runs `then_branch` or `else_branch` (each planned once at load) by the boolean scalar
/// `cond`, with the outer values the branches read; returns the branch's outputs.
struct IfKernel: Kernel {
    let thenPlan: Plan
    let elsePlan: Plan
    let outer: [String]
    let formal: Int

    init(context: NodeContext) throws {
        guard case .graph(let thenGraph)? = context.node.attributes["then_branch"],
            case .graph(let elseGraph)? = context.node.attributes["else_branch"]
        else { throw context.invalid("needs the graph attributes then_branch and else_branch") }
        formal = ControlFlow.formalInputs(context.node)
        guard formal == 1 else { throw context.invalid("has \(formal) inputs; If takes exactly one, cond") }
        outer = ControlFlow.outerNames(context.node)
        thenPlan = try ControlFlow.plan(of: thenGraph, context: context)
        elsePlan = try ControlFlow.plan(of: elseGraph, context: context)
        guard thenPlan.outputNames.count == elsePlan.outputNames.count else {
            throw context.invalid(
                "then_branch has \(thenPlan.outputNames.count) outputs but else_branch \(elsePlan.outputNames.count)")
        }
    }

    func run(_ inputs: [Tensor?]) throws -> [Tensor] {
        let cond = try Check.input(inputs, 0, "cond")
        guard cond.count == 1, cond.dataType == .bool else {
            throw KernelError.shape("If's cond must be one boolean, got \(cond.dataType.v2Name) \(cond.shape)")
        }
        let plan = cond.elements(as: Bool.self)[0] ? thenPlan : elsePlan
        let feeds = try ControlFlow.feeds(plan, formal: [], outerNames: outer, outerValues: inputs[formal...])
        return try ControlFlow.ordered(try plan.run(feeds), plan)
    }
}

/// Loop: runs `body` while the trip count `M` is not reached and `cond` holds (either may be
/// omitted), carrying N values from one iteration to the next and stacking K scan outputs along a
/// new axis 0. The body's inputs are (iteration_num, cond, carried...), its outputs (cond,
/// carried..., scan outputs...).
struct LoopKernel: Kernel {
    let body: Plan
    let outer: [String]
    let formal: Int
    /// A Loop with neither a trip count nor a condition that turns false would run forever: a
    /// request cannot be allowed to, so this many iterations end it with an error.
    static let iterationLimit = 1 << 24

    init(context: NodeContext) throws {
        guard case .graph(let graph)? = context.node.attributes["body"] else {
            throw context.invalid("needs the graph attribute body")
        }
        formal = ControlFlow.formalInputs(context.node)
        guard formal >= 2 else { throw context.invalid("needs the inputs M and cond (either may be empty)") }
        outer = ControlFlow.outerNames(context.node)
        body = try ControlFlow.plan(of: graph, context: context)
        let carried = formal - 2
        guard graph.inputs.count == carried + 2 else {
            throw context.invalid("body has \(graph.inputs.count) inputs; it needs 2 + \(carried) (iteration, cond, carried values)")
        }
        guard body.outputNames.count >= carried + 1 else {
            throw context.invalid("body has \(body.outputNames.count) outputs; it needs at least 1 + \(carried)")
        }
    }

    func run(_ inputs: [Tensor?]) throws -> [Tensor] {
        let carriedCount = formal - 2
        var tripLimit = Int64.max
        if let m = inputs[0] {
            guard m.count == 1, m.dataType == .int64 else { throw KernelError.shape("Loop's M must be one INT64, got \(m.shape)") }
            tripLimit = m.elements(as: Int64.self)[0]
        }
        var keepGoing = true
        if let c = inputs[1] {
            guard c.count == 1, c.dataType == .bool else { throw KernelError.shape("Loop's cond must be one boolean") }
            keepGoing = c.elements(as: Bool.self)[0]
        }
        var carried: [Tensor] = try (0..<carriedCount).map { try Check.input(inputs, 2 + $0, "v_initial \($0)") }
        let scanCount = body.outputNames.count - 1 - carriedCount
        var scans = [[Tensor]](repeating: [], count: scanCount)
        var iteration: Int64 = 0
        while keepGoing && iteration < tripLimit {
            guard iteration < Int64(Self.iterationLimit) else {
                throw KernelError.failed("Loop ran \(Self.iterationLimit) iterations without its condition turning false")
            }
            let formalFeeds = [Tensor(scalar: iteration), Tensor(scalar: keepGoing)] + carried
            let feeds = try ControlFlow.feeds(body, formal: formalFeeds, outerNames: outer, outerValues: inputs[formal...])
            let outputs = try ControlFlow.ordered(try body.run(feeds), body)
            guard outputs[0].count == 1, outputs[0].dataType == .bool else {
                throw KernelError.failed("Loop's body returned a cond that is not one boolean")
            }
            keepGoing = outputs[0].elements(as: Bool.self)[0]
            carried = Array(outputs[1...carriedCount])
            for k in 0..<scanCount { scans[k].append(outputs[1 + carriedCount + k]) }
            iteration += 1
        }
        return try carried + scans.map { try Stacking.stack($0, axis: 0) }
    }
}

/// Scan: runs `body` once per position along the scan inputs' axes, carrying N state values and
/// stacking the scan outputs. Opset 9 on: inputs are N initial states, then M scan inputs; body
/// inputs: N states, M slices; body outputs: N states, K scan output slices. Opset 8: a first input
/// `sequence_lens` (absent, or every length the full one), then states and scan inputs with a
/// leading batch axis that the body does not see: each batch row is scanned on its own along axis 1
/// (`directions` per scan input) and the results are stacked back along axis 0.
struct ScanKernel: Kernel {
    let body: Plan
    let outer: [String]
    let formal: Int
    let scanInputs: Int
    let inputAxes: [Int]
    let inputReversed: [Bool]
    let outputAxes: [Int]
    let outputReversed: [Bool]
    /// Opset 8's leading batch axis and `sequence_lens` input.
    let batched: Bool

    init(context: NodeContext) throws {
        guard case .graph(let graph)? = context.node.attributes["body"] else {
            throw context.invalid("needs the graph attribute body")
        }
        batched = context.opset < 9
        formal = ControlFlow.formalInputs(context.node)
        outer = ControlFlow.outerNames(context.node)
        guard let m = try context.int("num_scan_inputs"), m >= 1, m <= formal - (batched ? 1 : 0) else {
            throw context.invalid("needs num_scan_inputs between 1 and its number of inputs")
        }
        scanInputs = m
        let states = formal - m - (batched ? 1 : 0)
        body = try ControlFlow.plan(of: graph, context: context)
        let k = body.outputNames.count - states
        guard k >= 0, graph.inputs.count == states + m else {
            throw context.invalid("body's inputs and outputs do not match the \(states) states and \(m) scan inputs")
        }
        if batched {
            inputAxes = [Int](repeating: 0, count: m)
            inputReversed = try context.ints("directions", default: [Int](repeating: 0, count: m)).map { $0 != 0 }
            outputAxes = [Int](repeating: 0, count: k)
            outputReversed = [Bool](repeating: false, count: k)
        } else {
            inputAxes = try context.ints("scan_input_axes", default: [Int](repeating: 0, count: m))
            inputReversed = try context.ints("scan_input_directions", default: [Int](repeating: 0, count: m)).map { $0 != 0 }
            outputAxes = try context.ints("scan_output_axes", default: [Int](repeating: 0, count: k))
            outputReversed = try context.ints("scan_output_directions", default: [Int](repeating: 0, count: k)).map { $0 != 0 }
        }
        guard inputAxes.count == m, inputReversed.count == m, outputAxes.count == k, outputReversed.count == k else {
            throw context.invalid("scan axes and directions must have one entry per scan input and scan output")
        }
    }

    func run(_ inputs: [Tensor?]) throws -> [Tensor] {
        guard batched else {
            let values = try (0..<formal).map { try Check.input(inputs, $0, "input \($0)") }
            return try scan(values, outerValues: inputs[formal...])
        }
        let values = try (1..<formal).map { try Check.input(inputs, $0, "input \($0)") }
        guard let batch = values.first?.shape.first, values.allSatisfy({ $0.rank >= 1 && $0.shape[0] == batch }) else {
            throw KernelError.shape("Scan (opset 8) needs states and scan inputs with one leading batch axis, got "
                + values.map { "\($0.shape)" }.joined(separator: ", "))
        }
        if let lengths = inputs[0] {
            let full = values.last!.rank >= 2 ? values.last!.shape[1] : 0
            guard try IntInput.values(lengths, "Scan's sequence_lens").allSatisfy({ $0 == full }) else {
                throw KernelError.failed("Scan (opset 8) with sequence_lens shorter than the sequences is not supported")
            }
        }
        var rows: [[Tensor]] = []
        for b in 0..<batch {
            rows.append(try scan(try values.map { try Stacking.slice($0, axis: 0, index: b) }, outerValues: inputs[formal...]))
        }
        return try (0..<(rows.first?.count ?? 0)).map { j in try Stacking.stack(rows.map { $0[j] }, axis: 0) }
    }

    /// One scan over `values` (states, then scan inputs) as opset 9 defines it.
    private func scan(_ values: [Tensor], outerValues: ArraySlice<Tensor?>) throws -> [Tensor] {
        let states = values.count - scanInputs
        var state = Array(values[..<states])
        var sequences: [(Tensor, Int)] = []
        var length = -1
        for i in 0..<scanInputs {
            let x = values[states + i]
            let axis = try Check.axis(inputAxes[i], rank: x.rank, "scan_input_axes[\(i)]")
            if length >= 0 && x.shape[axis] != length {
                throw KernelError.shape("Scan's inputs have different lengths along their scan axes (\(length) and \(x.shape[axis]))")
            }
            length = x.shape[axis]
            sequences.append((x, axis))
        }
        let k = body.outputNames.count - states
        var scans = [[Tensor]](repeating: [], count: k)
        for t in 0..<max(length, 0) {
            var formalFeeds = state
            for (i, (x, axis)) in sequences.enumerated() {
                formalFeeds.append(try Stacking.slice(x, axis: axis, index: inputReversed[i] ? length - 1 - t : t))
            }
            let feeds = try ControlFlow.feeds(body, formal: formalFeeds, outerNames: outer, outerValues: outerValues)
            let outputs = try ControlFlow.ordered(try body.run(feeds), body)
            state = Array(outputs[0..<states])
            for j in 0..<k { scans[j].append(outputs[states + j]) }
        }
        var results = state
        for j in 0..<k {
            let parts = outputReversed[j] ? Array(scans[j].reversed()) : scans[j]
            let rank = (parts.first?.rank ?? 0) + 1
            results.append(try Stacking.stack(parts, axis: try Check.axis(outputAxes[j], rank: rank, "scan_output_axes[\(j)]")))
        }
        return results
    }
}

/// Byte-level stacking and slicing along one axis, for any element type.
enum Stacking {
    /// `parts` (one shape, one type) stacked along a new axis `axis`. No parts: shape [0].
    static func stack(_ parts: [Tensor], axis: Int) throws -> Tensor {
        guard let first = parts.first else { return try Tensor(allocating: .float32, shape: [0]) }
        for p in parts where p.dataType != first.dataType || p.shape != first.shape {
            throw KernelError.shape(
                "values to stack differ: \(first.dataType.v2Name) \(first.shape) and \(p.dataType.v2Name) \(p.shape)")
        }
        var shape = first.shape
        shape.insert(parts.count, at: axis)
        let out = try Tensor(allocating: first.dataType, shape: shape)
        let outer = first.shape[..<axis].reduce(1, *)
        let block = first.byteCount / max(outer, 1)
        guard block > 0 else { return out }
        let dst = out.mutableBytes.baseAddress!
        for (t, part) in parts.enumerated() {
            let src = part.rawBytes.baseAddress!
            for o in 0..<outer {
                memcpy(dst + (o * parts.count + t) * block, src + o * block, block)
            }
        }
        return out
    }

    /// Position `index` of `x` along `axis`, that axis removed.
    static func slice(_ x: Tensor, axis: Int, index: Int) throws -> Tensor {
        var shape = x.shape
        let length = shape.remove(at: axis)
        let out = try Tensor(allocating: x.dataType, shape: shape)
        let outer = x.shape[..<axis].reduce(1, *)
        let block = out.byteCount / max(outer, 1)
        guard block > 0 else { return out }
        let src = x.rawBytes.baseAddress!
        let dst = out.mutableBytes.baseAddress!
        for o in 0..<outer { memcpy(dst + o * block, src + (o * length + index) * block, block) }
        return out
    }
}
