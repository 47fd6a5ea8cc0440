import Dispatch
import Engine
import Foundation
import Synchronization
import Tensors
import Testing

/// A 2-layer MLP (Gemm -> Relu -> Gemm -> Softmax) with a symbolic batch dimension, and its weights.
struct MLP {
    static let inputs = 6
    static let hidden = 5
    static let classes = 4
    let w1: [Float]  // [hidden, inputs], used with transB=1
    let b1: [Float]
    let w2: [Float]  // [hidden, classes]
    let b2: [Float]

    init(seed: UInt64) {
        var rng = TestRNG(seed: seed)
        w1 = rng.floats(Self.hidden * Self.inputs)
        b1 = rng.floats(Self.hidden)
        w2 = rng.floats(Self.hidden * Self.classes).map { $0 * 3 }
        b2 = rng.floats(Self.classes)
    }

    var model: GraphModel {
        let nodes = [
            Node(name: "fc1", opType: "Gemm", inputs: ["x", "w1", "b1"], outputs: ["h"], attributes: ["transB": .int(1)]),
            Node(name: "act", opType: "Relu", inputs: ["h"], outputs: ["r"]),
            Node(name: "fc2", opType: "Gemm", inputs: ["r", "w2", "b2"], outputs: ["logits"]),
            Node(name: "prob", opType: "Softmax", inputs: ["logits"], outputs: ["y"], attributes: ["axis": .int(1)]),
        ]
        let graph = Graph(
            name: "mlp", nodes: nodes,
            inputs: [ValueInfo(name: "x", dataType: .float32, shape: [.symbolic("batch"), .fixed(Self.inputs)])],
            outputs: [ValueInfo(name: "y", dataType: .float32, shape: [.symbolic("batch"), .fixed(Self.classes)])],
            initializers: [
                "w1": Tensor(w1, shape: [Self.hidden, Self.inputs]), "b1": Tensor(b1, shape: [Self.hidden]),
                "w2": Tensor(w2, shape: [Self.hidden, Self.classes]), "b2": Tensor(b2, shape: [1, Self.classes]),
            ])
        return GraphModel(graph: graph, opsets: ["": 13], irVersion: 8)
    }

    /// The same computation written out by hand, in Double.
    func reference(_ x: [Float], batch: Int) -> [Float] {
        var out: [Float] = []
        for r in 0..<batch {
            var h = [Double](repeating: 0, count: Self.hidden)
            for j in 0..<Self.hidden {
                var s = Double(b1[j])
                for i in 0..<Self.inputs { s += Double(x[r * Self.inputs + i]) * Double(w1[j * Self.inputs + i]) }
                h[j] = max(s, 0)
            }
            var logits = [Double](repeating: 0, count: Self.classes)
            for c in 0..<Self.classes {
                var s = Double(b2[c])
                for j in 0..<Self.hidden { s += h[j] * Double(w2[j * Self.classes + c]) }
                logits[c] = s
            }
            let m = logits.max()!
            let e = logits.map { Foundation.exp($0 - m) }
            let sum = e.reduce(0, +)
            out += e.map { Float($0 / sum) }
        }
        return out
    }
}

@Suite struct SessionTests {
    @Test(arguments: [1, 3, 8])
    func mlpMatchesHandComputation(batch: Int) throws {
        let mlp = MLP(seed: 61)
        let session = try InferenceSession(model: mlp.model)
        var rng = TestRNG(seed: 62)
        let x = rng.floats(batch * MLP.inputs).map { $0 * 2 }
        let out = try session.run(["x": Tensor(x, shape: [batch, MLP.inputs])])
        #expect(Array(out.keys) == ["y"])
        expectClose(out["y"]!, mlp.reference(x, batch: batch), shape: [batch, MLP.classes])
    }

    @Test func nodesOutOfOrderAreSorted() throws {
        var mlp = MLP(seed: 63).model
        mlp.graph.nodes.reverse()
        // The plan alone (the session's optimiser would fuse "act" into "fc1").
        let sorted = try Plan(model: mlp)
        #expect(sorted.steps.map(\.node) == ["fc1", "act", "fc2", "prob"])
        var rng = TestRNG(seed: 64)
        let x = rng.tensor([2, MLP.inputs])
        expectClose(try sorted.run(["x": x])["y"]!, MLP(seed: 63).reference(x.scalars(as: Float.self), batch: 2), shape: [2, 4])
    }

    @Test func cycleIsAnInvalidModel() {
        let graph = Graph(
            nodes: [
                Node(name: "a", opType: "Relu", inputs: ["q"], outputs: ["p"]),
                Node(name: "b", opType: "Relu", inputs: ["p"], outputs: ["q"]),
            ],
            inputs: [], outputs: [ValueInfo(name: "q", dataType: .float32, shape: nil)])
        let error = engineError { _ = try InferenceSession(model: GraphModel(graph: graph, opsets: ["": 13], irVersion: 8)) }
        guard case .invalidModel(let m)? = error else {
            Issue.record("expected invalidModel, got \(String(describing: error))")
            return
        }
        #expect(m.contains("cycle"))
    }

    @Test func undefinedValueAndDuplicateOutputAreInvalidModels() {
        let undefined = Graph(
            nodes: [Node(name: "r", opType: "Relu", inputs: ["nowhere"], outputs: ["y"])],
            inputs: [], outputs: [ValueInfo(name: "y", dataType: nil, shape: nil)])
        let twice = Graph(
            nodes: [
                Node(name: "r1", opType: "Relu", inputs: ["x"], outputs: ["y"]),
                Node(name: "r2", opType: "Relu", inputs: ["x"], outputs: ["y"]),
            ],
            inputs: [ValueInfo(name: "x", dataType: .float32, shape: nil)],
            outputs: [ValueInfo(name: "y", dataType: nil, shape: nil)])
        let missingOutput = Graph(
            nodes: [], inputs: [ValueInfo(name: "x", dataType: .float32, shape: nil)],
            outputs: [ValueInfo(name: "z", dataType: nil, shape: nil)])
        for (graph, word) in [(undefined, "nowhere"), (twice, "twice"), (missingOutput, "'z'")] {
            let error = engineError { _ = try InferenceSession(model: GraphModel(graph: graph, opsets: ["": 13], irVersion: 8)) }
            guard case .invalidModel(let m)? = error else {
                Issue.record("expected invalidModel, got \(String(describing: error))")
                continue
            }
            #expect(m.contains(word), "\(m)")
        }
    }

    @Test func unsupportedOperatorNamesOpOpsetAndNode() {
        for (op, domain, opsets) in [("StringNormalizer", "", ["": 12]), ("FusedGemm", "com.microsoft", ["": 13, "com.microsoft": 1])] {
            let graph = Graph(
                nodes: [Node(name: "mystery_node", opType: op, domain: domain, inputs: ["x"], outputs: ["y"])],
                inputs: [ValueInfo(name: "x", dataType: .float32, shape: nil)],
                outputs: [ValueInfo(name: "y", dataType: nil, shape: nil)])
            let error = engineError { _ = try InferenceSession(model: GraphModel(graph: graph, opsets: opsets, irVersion: 8)) }
            let opset = opsets[domain]!
            #expect(error == .unsupportedOperator(opType: op, domain: domain, opset: opset, node: "mystery_node"))
            let text = error.map(String.init(describing:)) ?? ""
            #expect(text.contains(op) && text.contains("opset \(opset)") && text.contains("mystery_node"), "\(text)")
        }
    }

    @Test func supportedOperatorsAreListed() {
        let ops = InferenceSession.supportedOperators
        for op in ["Gemm", "MatMul", "Add", "Sub", "Mul", "Div", "Relu", "Sigmoid", "Tanh", "Softmax", "Flatten",
            "Reshape", "Identity", "Dropout", "Constant", "ArgMax"]
        {
            #expect(ops.contains(op), "\(op)")
        }
        #expect(ops == ops.sorted())
    }

    @Test func customRegistryOperator() throws {
        var registry = OperatorRegistry()
        registry.register("Twice") { _ in
            FunctionKernel { inputs in
                let x = inputs[0]!.scalars(as: Float.self)
                return [Tensor(x.map { $0 * 2 }, shape: inputs[0]!.shape)]
            }
        }
        let graph = Graph(
            nodes: [Node(name: "t", opType: "Twice", inputs: ["x"], outputs: ["y"])],
            inputs: [ValueInfo(name: "x", dataType: .float32, shape: [.unknown])],
            outputs: [ValueInfo(name: "y", dataType: .float32, shape: nil)])
        let session = try InferenceSession(
            model: GraphModel(graph: graph, opsets: ["": 13], irVersion: 8), options: SessionOptions(), registry: registry)
        #expect(try session.run(["x": Tensor([1, 2] as [Float], shape: [2])])["y"]!.scalars(as: Float.self) == [2, 4])
    }

    @Test func constantNodesAreFoldedIntoThePlan() throws {
        let graph = Graph(
            nodes: [
                Node(name: "k", opType: "Constant", inputs: [], outputs: ["shape"], attributes: ["value_ints": .ints([-1, 2])]),
                Node(name: "r", opType: "Reshape", inputs: ["x", "shape"], outputs: ["y"]),
            ],
            inputs: [ValueInfo(name: "x", dataType: .float32, shape: [.fixed(2), .fixed(3)])],
            outputs: [ValueInfo(name: "y", dataType: .float32, shape: nil), ValueInfo(name: "shape", dataType: .int64, shape: nil)])
        let session = try InferenceSession(model: GraphModel(graph: graph, opsets: ["": 13], irVersion: 8))
        #expect(session.plan.steps.map(\.opType) == ["Reshape"])
        let out = try session.run(["x": Tensor([1, 2, 3, 4, 5, 6] as [Float], shape: [2, 3])])
        #expect(out["y"]!.shape == [3, 2])
        #expect(out["shape"]!.scalars(as: Int64.self) == [-1, 2])
    }

    @Test func valuesReadTwiceSurviveUntilTheirLastUse() throws {
        // x -> a = Relu(x); b = Tanh(a); y = Add(a, b): `a` must still be there for the Add.
        let graph = Graph(
            nodes: [
                Node(name: "n1", opType: "Relu", inputs: ["x"], outputs: ["a"]),
                Node(name: "n2", opType: "Tanh", inputs: ["a"], outputs: ["b"]),
                Node(name: "n3", opType: "Add", inputs: ["a", "b"], outputs: ["y"]),
                Node(name: "n4", opType: "Identity", inputs: ["x"], outputs: ["x_copy"]),
            ],
            inputs: [ValueInfo(name: "x", dataType: .float32, shape: [.unknown])],
            outputs: [ValueInfo(name: "y", dataType: .float32, shape: nil), ValueInfo(name: "x", dataType: .float32, shape: nil)])
        let session = try InferenceSession(model: GraphModel(graph: graph, opsets: ["": 13], irVersion: 8))
        let x: [Float] = [-1, 0.5, 2]
        let out = try session.run(["x": Tensor(x, shape: [3])])
        expectClose(out["y"]!, x.map { max($0, 0) + Float(Foundation.tanh(Double(max($0, 0)))) }, shape: [3])
        #expect(out["x"]!.scalars(as: Float.self) == x)
    }

    @Test func manyConcurrentRunsAgree() throws {
        let mlp = MLP(seed: 71)
        let session = try InferenceSession(model: mlp.model)
        var rng = TestRNG(seed: 72)
        var made: [Tensor] = []
        for i in 0..<16 { made.append(rng.tensor([1 + i % 5, MLP.inputs])) }
        let batches = made
        let expected = try batches.map { try session.run(["x": $0])["y"]!.scalars(as: Float.self) }
        let mismatches = Mutex(0)
        let failures = Mutex(0)
        DispatchQueue.concurrentPerform(iterations: 8) { thread in
            for round in 0..<50 {
                let i = (thread * 7 + round) % batches.count
                do {
                    let y = try session.run(["x": batches[i]])["y"]!.scalars(as: Float.self)
                    if y != expected[i] { mismatches.withLock { $0 += 1 } }
                } catch {
                    failures.withLock { $0 += 1 }
                }
            }
        }
        #expect(mismatches.withLock { $0 } == 0)
        #expect(failures.withLock { $0 } == 0)
    }
}
