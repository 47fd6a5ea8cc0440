import Tensors

extension Plan {
    /// Runs the plan on `feeds` (input name -> tensor) and returns every graph output by name.
    ///
    /// Validates the feeds first (`EngineError.invalidInput`), then runs the `ShapePlan` of the feeds'
    /// shape signature; the first request of a signature runs the steps as listed and builds that
    /// shape plan (shape folding, memory arena) from what it saw. A large batch whose rows the graph
    /// keeps apart then runs in slices (`BatchSplit`). Kernel failures become
    /// `.invalidInput` (shapes that do not fit, which come from the request) or `.executionFailed`.
    public func run(_ feeds: [String: Tensor], profile: StepProfile? = nil) throws -> [String: Tensor] {
        try validate(feeds)
        let key = signature(feeds)
        if let plan = shapePlans.plan(for: key) {
            if let split = plan.split { return try run(feeds, split: split, profile: profile) }
            return try plan.run(feeds, profile: profile)
        }
        let (plan, outputs) = try ShapePlan.build(self, feeds: feeds)
        shapePlans.insert(plan, for: key)
        return outputs
    }

    /// The shape plan for the signature of `feeds` (built on a first run when needed), for tests and
    /// diagnostics.
    func shapePlan(for feeds: [String: Tensor]) throws -> ShapePlan {
        _ = try run(feeds)
        return shapePlans.plan(for: signature(feeds))!
    }

    /// Per input in declaration order: data type, rank, dimensions.
    func signature(_ feeds: [String: Tensor]) -> [Int] {
        var key: [Int] = []
        key.reserveCapacity(inputBindings.count * 6)
        for binding in inputBindings {
            let t = feeds[binding.info.name]!
            key.append(Int(t.dataType.rawValue))
            key.append(t.rank)
            key.append(contentsOf: t.shape)
        }
        return key
    }

    /// Runs the steps as listed, without shape plans (the reference the shape plans are tested against).
    func runUnplanned(_ feeds: [String: Tensor]) throws -> [String: Tensor] {
        try validate(feeds)
        var slots = initialSlots
        for binding in inputBindings { slots[binding.slot] = feeds[binding.info.name] }
        var args: [Tensor?] = []
        args.reserveCapacity(maxInputs)
        for step in steps {
            args.removeAll(keepingCapacity: true)
            for s in step.inputs {
                if s < 0 {
                    args.append(nil)
                    continue
                }
                guard let t = slots[s] else {
                    throw EngineError.executionFailed(
                        node: step.node, message: "input '\(slotNames[s])' was not computed by an earlier node")
                }
                args.append(t)
            }
            let results: [Tensor]
            do {
                results = try step.kernel.run(args)
            } catch let error as KernelError {
                throw Self.engineError(error, step: step)
            } catch let error as MemoryLimitError {
                throw EngineError.memoryLimit(error)
            } catch let error as EngineError {
                throw error
            } catch {
                throw EngineError.executionFailed(node: step.node, message: "\(step.opType): \(error)")
            }
            for (i, s) in step.outputs.enumerated() where s >= 0 {
                guard i < results.count else {
                    throw EngineError.executionFailed(
                        node: step.node, message: "\(step.opType) did not produce its output \(i) ('\(slotNames[s])')")
                }
                slots[s] = results[i]
            }
            for s in step.release { slots[s] = nil }
        }
        var out: [String: Tensor] = [:]
        out.reserveCapacity(outputBindings.count)
        for (name, slot) in outputBindings {
            guard let t = slots[slot] else {
                throw EngineError.executionFailed(node: name, message: "graph output '\(name)' was not computed")
            }
            out[name] = t
        }
        return out
    }

    static func engineError(_ error: KernelError, step: Step) -> EngineError {
        switch error {
        case .shape(let m):
            return .invalidInput(
                "inference failed at node '\(step.node)' (\(step.opType)): \(m); check the request's input "
                    + "shapes against what GET /v2/models/{name} reports")
        case .failed(let m):
            return .executionFailed(node: step.node, message: "\(step.opType): \(m)")
        }
    }

    /// Checks that every declared input is present, no unknown name is given, and each tensor has the
    /// declared data type, rank and fixed dimensions (symbolic and unknown dimensions take any size).
    func validate(_ feeds: [String: Tensor]) throws {
        if feeds.count > inputBindings.count || feeds.keys.contains(where: { key in
            !inputBindings.contains { $0.info.name == key }
        }) {
            let unknown = feeds.keys.filter { key in !inputBindings.contains { $0.info.name == key } }.sorted()
            throw EngineError.invalidInput(
                "unknown input \(unknown.map { "'\($0)'" }.joined(separator: ", ")); this model's inputs are "
                    + "\(Self.inputList(inputBindings)) (see GET /v2/models/{name})")
        }
        for binding in inputBindings {
            let info = binding.info
            guard let t = feeds[info.name] else {
                throw EngineError.invalidInput(
                    "input '\(info.name)' is missing: expected \(Self.describe(info)); send every input that "
                        + "GET /v2/models/{name} lists (\(Self.inputList(inputBindings)))")
            }
            if let problem = Self.kindMismatch(info, t) {
                throw EngineError.invalidInput("input '\(info.name)': \(problem)")
            }
            var ok = info.dataType == nil || info.dataType == t.dataType
            if ok, t.container == nil, let dims = info.shape {
                ok = dims.count == t.rank
                    && zip(dims, t.shape).allSatisfy { d, n in d.value == nil || d.value == n }
            }
            if !ok {
                throw EngineError.invalidInput(
                    "input '\(info.name)': expected \(Self.describe(info)), got \(t.dataType.v2Name) \(t.shape); "
                        + "send the datatype and shape that GET /v2/models/{name} reports")
            }
        }
    }

    /// Why `t` cannot be fed where `info` is declared (a tensor where a sequence is expected, ...), or nil.
    static func kindMismatch(_ info: ValueInfo, _ t: Tensor) -> String? {
        let fits: Bool
        switch info.kind {
        case .tensor: fits = t.container == nil
        case .sequence: fits = t.sequenceElements != nil
        case .optional: fits = t.container == nil || t.isNoneOptional
        case .optionalSequence: fits = t.container != nil
        case .other: fits = false
        case .unknown: fits = true
        }
        return fits ? nil : "expected a \(info.kind.rawValue), got a \(t.kindDescription)"
    }

    /// `FP32 tensor of shape [batch, 64]`.
    static func describe(_ info: ValueInfo) -> String {
        let type = info.dataType?.v2Name ?? "any-type"
        guard let dims = info.shape else { return "\(type) tensor of any shape" }
        return "\(type) tensor of shape [\(dims.map(\.description).joined(separator: ", "))]"
    }

    static func inputList(_ bindings: [InputBinding]) -> String {
        bindings.isEmpty ? "none" : bindings.map { "'\($0.info.name)'" }.joined(separator: ", ")
    }
}
