@testable import Engine
import Dispatch
import Tensors
import Synchronization
import Testing

/// The engine's own parallel loops (depthwise channel blocks and planes, max-pool planes) under a budget of two threads
/// give what one thread gives.
@Suite struct ThreadBudgetTests {
    /// The step cost model: below the minimum one chunk; with two threads every step from the
    /// minimum splits in two; with a wide budget a step takes one chunk per half minimum, never
    /// more than its items or the budget.
    @Test func stepChunksFollowTheirWork() {
        let minimum = 400_000
        #expect(Parallel.chunks(work: minimum - 1, minimumWork: minimum, budget: 16) == 1)
        #expect(Parallel.chunks(work: 10 * minimum, minimumWork: minimum, budget: 1) == 1)
        for work in [minimum, minimum + 1, 3 * minimum / 2, 100 * minimum] {
            #expect(Parallel.chunks(work: work, minimumWork: minimum, budget: 2) == 2)
        }
        #expect(Parallel.chunks(work: minimum, minimumWork: minimum, budget: 16) == 2)
        #expect(Parallel.chunks(work: 3 * minimum, minimumWork: minimum, budget: 16) == 6)
        #expect(Parallel.chunks(work: 100 * minimum, minimumWork: minimum, budget: 16) == 16)
        #expect(Parallel.chunks(work: 100 * minimum, minimumWork: minimum, budget: 16, items: 3) == 3)
        #expect(Parallel.chunks(work: .max, minimumWork: minimum, budget: 16) == 16)
        #expect(Parallel.chunks(work: 100 * minimum, minimumWork: 1, budget: 0) == 1)
    }

    @Test func depthwiseAndPoolAgreeAcrossBudgets() throws {
        var rng = TestRNG(seed: 500)
        let nodes = [
            Node(name: "dw", opType: "Conv", inputs: ["x", "w", "b"], outputs: ["c"],
                attributes: ["group": .int(10), "pads": .ints([1, 1, 1, 1]), "strides": .ints([2, 2])]),
            Node(name: "relu6", opType: "Clip", inputs: ["c", "lo", "hi"], outputs: ["r"]),
            Node(name: "pool", opType: "MaxPool", inputs: ["r"], outputs: ["y"],
                attributes: ["kernel_shape": .ints([3, 3]), "pads": .ints([1, 1, 1, 1])]),
        ]
        let graph = Graph(
            nodes: nodes, inputs: [ValueInfo(name: "x", dataType: .float32, shape: [.symbolic("n"), .fixed(10), .fixed(40), .fixed(44)])],
            outputs: [ValueInfo(name: "y", dataType: .float32, shape: nil)],
            initializers: [
                "w": rng.tensor([10, 1, 3, 3]), "b": rng.tensor([10]), "lo": Tensor(scalar: Float(0)),
                "hi": Tensor(scalar: Float(0.5)),
            ])
        let model = GraphModel(graph: graph, opsets: ["": 13], irVersion: 8)
        let x = rng.tensor([3, 10, 40, 44])
        let one = try InferenceSession(model: model, options: SessionOptions(blasThreads: 1))
        let expected = try one.run(["x": x])["y"]!
        let two = try InferenceSession(model: model, options: SessionOptions(blasThreads: 2))
        for _ in 0..<2 {
            let y = try two.run(["x": x])["y"]!
            #expect(y.shape == expected.shape)
            #expect(y.scalars(as: Float.self) == expected.scalars(as: Float.self))
        }
    }

    /// The strided elementwise loops split their rows between threads from 1M elements: an
    /// attention-mask pattern (broadcast Add, Where with a contiguous mask and a scalar, Transpose
    /// of the heads) gives the definition at 1 and 2 threads.
    @Test func stridedElementwiseAgreeAcrossBudgets() throws {
        var rng = TestRNG(seed: 502)
        let (n, h, s) = (4, 2, 384)  // 1.18M elements
        let nodes = [
            Node(name: "add", opType: "Add", inputs: ["x", "bias"], outputs: ["a"]),
            Node(name: "where", opType: "Where", inputs: ["mask", "a", "low"], outputs: ["w"]),
            Node(name: "t", opType: "Transpose", inputs: ["w"], outputs: ["y"], attributes: ["perm": .ints([0, 2, 1, 3])]),
        ]
        let graph = Graph(
            nodes: nodes,
            inputs: [
                ValueInfo(name: "x", dataType: .float32, shape: [.symbolic("n"), .fixed(h), .fixed(s), .fixed(s)]),
                ValueInfo(name: "bias", dataType: .float32, shape: [.symbolic("n"), .fixed(1), .fixed(1), .fixed(s)]),
                ValueInfo(name: "mask", dataType: .bool, shape: [.symbolic("n"), .fixed(1), .fixed(1), .fixed(s)]),
            ],
            outputs: [ValueInfo(name: "y", dataType: .float32, shape: nil)],
            initializers: ["low": Tensor(scalar: Float(-1e4))])
        let model = GraphModel(graph: graph, opsets: ["": 13], irVersion: 8)
        let x = rng.tensor([n, h, s, s])
        let bias = rng.tensor([n, 1, 1, s])
        let maskValues = (0..<(n * s)).map { _ in rng.float() > -0.5 }
        let mask = Tensor(maskValues, shape: [n, 1, 1, s])
        let xs = x.scalars(as: Float.self)
        let bs = bias.scalars(as: Float.self)
        var expected = [Float](repeating: 0, count: n * h * s * s)
        for b in 0..<n {
            for head in 0..<h {
                for q in 0..<s {
                    for k in 0..<s {
                        let v = maskValues[b * s + k] ? xs[((b * h + head) * s + q) * s + k] + bs[b * s + k] : -1e4
                        expected[((b * s + q) * h + head) * s + k] = v
                    }
                }
            }
        }
        for threads in [1, 2] {
            let session = try InferenceSession(model: model, options: SessionOptions(blasThreads: threads))
            for _ in 0..<2 {
                let y = try session.run(["x": x, "bias": bias, "mask": mask])["y"]!
                #expect(y.shape == [n, s, h, s])
                #expect(y.scalars(as: Float.self) == expected, "\(threads) threads")
            }
        }
    }

    /// Packed-weight convolutions (3x3 from patches, then pointwise) on a batch: images split
    /// between two threads give exactly what one thread gives, and so does a single image, whose
    /// GEMM is split instead.
    @Test func packedConvolutionsAgreeAcrossBudgets() throws {
        var rng = TestRNG(seed: 501)
        let nodes = [
            Node(name: "c3", opType: "Conv", inputs: ["x", "w1", "b1"], outputs: ["a"],
                attributes: ["pads": .ints([1, 1, 1, 1]), "__activation": .string(Array("relu".utf8))]),
            Node(name: "c1", opType: "Conv", inputs: ["a", "w2"], outputs: ["y"]),
        ]
        let graph = Graph(
            nodes: nodes, inputs: [ValueInfo(name: "x", dataType: .float32, shape: [.symbolic("n"), .fixed(8), .fixed(30), .fixed(34)])],
            outputs: [ValueInfo(name: "y", dataType: .float32, shape: nil)],
            initializers: ["w1": rng.tensor([20, 8, 3, 3]), "b1": rng.tensor([20]), "w2": rng.tensor([13, 20, 1, 1])])
        let model = GraphModel(graph: graph, opsets: ["": 13], irVersion: 8)
        let one = try InferenceSession(model: model, options: SessionOptions(blasThreads: 1))
        let batch = rng.tensor([3, 8, 30, 34])
        let single = rng.tensor([1, 8, 30, 34])
        let expected = try [batch, single].map { try one.run(["x": $0])["y"]! }
        let two = try InferenceSession(model: model, options: SessionOptions(blasThreads: 2))
        for (x, want) in zip([batch, single], expected) {
            let y = try two.run(["x": x])["y"]!
            #expect(y.shape == want.shape)
            #expect(y.scalars(as: Float.self) == want.scalars(as: Float.self))
        }
    }

    /// The worker pool under contention: four threads each run 2,000 jobs of a few chunks (the
    /// pool takes one caller at a time; the others run their chunks themselves). Every chunk of
    /// every job runs exactly once, and no job returns before its chunks are done.
    @Test func workerPoolRunsEveryChunkOnceUnderContention() {
        let failures = Atomic<Int>(0)
        DispatchQueue.concurrentPerform(iterations: 4) { caller in
            for job in 0..<2_000 {
                let chunks = 2 + (job + caller) % 3
                let counts = UnsafeMutablePointer<Int>.allocate(capacity: chunks)
                counts.initialize(repeating: 0, count: chunks)
                let address = Int(bitPattern: counts)
                WorkerPool.shared.run(chunks: chunks) { c in
                    UnsafeMutablePointer<Int>(bitPattern: address)![c] += 1
                }
                if (0..<chunks).contains(where: { counts[$0] != 1 }) { failures.wrappingAdd(1, ordering: .relaxed) }
                counts.deallocate()
            }
        }
        #expect(failures.load(ordering: .relaxed) == 0)
    }

    /// LayerNormalization, Softmax and Gelu rows split between two threads (large enough to pass
    /// their higher minimum of work) give exactly what one thread gives.
    @Test func rowKernelsAgreeAcrossBudgets() throws {
        var rng = TestRNG(seed: 502)
        let nodes = [
            Node(name: "ln", opType: "LayerNormalization", inputs: ["x", "scale", "bias"], outputs: ["n"],
                attributes: ["axis": .int(-1)]),
            Node(name: "gelu", opType: "Gelu", inputs: ["n"], outputs: ["g"]),
            Node(name: "sm", opType: "Softmax", inputs: ["g"], outputs: ["y"], attributes: ["axis": .int(-1)]),
        ]
        let graph = Graph(
            nodes: nodes, inputs: [ValueInfo(name: "x", dataType: .float32, shape: [.symbolic("n"), .fixed(256), .fixed(300)])],
            outputs: [ValueInfo(name: "y", dataType: .float32, shape: nil)],
            initializers: ["scale": rng.tensor([300]), "bias": rng.tensor([300])])
        let model = GraphModel(graph: graph, opsets: ["": 20], irVersion: 9)
        let x = rng.tensor([8, 256, 300])
        let one = try InferenceSession(model: model, options: SessionOptions(blasThreads: 1))
        let expected = try one.run(["x": x])["y"]!
        let two = try InferenceSession(model: model, options: SessionOptions(blasThreads: 2))
        let y = try two.run(["x": x])["y"]!
        #expect(y.scalars(as: Float.self) == expected.scalars(as: Float.self))
    }

    /// MatMul of two computed operands with broadcast batch dimensions: the batch's matrices split
    /// between two threads (each started mid-odometer) give exactly what one thread gives.
    @Test func batchedMatMulAgreesAcrossBudgets() throws {
        var rng = TestRNG(seed: 503)
        let node = Node(name: "mm", opType: "MatMul", inputs: ["a", "b"], outputs: ["y"])
        let graph = Graph(
            nodes: [node],
            inputs: [
                ValueInfo(name: "a", dataType: .float32, shape: [.fixed(2), .fixed(3), .fixed(40), .fixed(50)]),
                ValueInfo(name: "b", dataType: .float32, shape: [.fixed(3), .fixed(50), .fixed(60)]),
            ],
            outputs: [ValueInfo(name: "y", dataType: .float32, shape: nil)])
        let model = GraphModel(graph: graph, opsets: ["": 13], irVersion: 8)
        let feeds = ["a": rng.tensor([2, 3, 40, 50]), "b": rng.tensor([3, 50, 60])]
        let one = try InferenceSession(model: model, options: SessionOptions(blasThreads: 1))
        let expected = try one.run(feeds)["y"]!
        let two = try InferenceSession(model: model, options: SessionOptions(blasThreads: 2))
        let y = try two.run(feeds)["y"]!
        #expect(y.shape == [2, 3, 40, 60])
        #expect(y.scalars(as: Float.self) == expected.scalars(as: Float.self))
    }

    /// Add of two tensors, and Mul by a scalar, over 1.2M elements (split into blocks on the pool
    /// at 2 threads) give exactly what one thread gives, and the definition.
    @Test func largeElementwiseAgreesAcrossBudgets() throws {
        var rng = TestRNG(seed: 504)
        let nodes = [
            Node(name: "add", opType: "Add", inputs: ["a", "b"], outputs: ["s"]),
            Node(name: "mul", opType: "Mul", inputs: ["s", "k"], outputs: ["y"]),
        ]
        let shape = [3, 400_000 + 7]
        let graph = Graph(
            nodes: nodes,
            inputs: [
                ValueInfo(name: "a", dataType: .float32, shape: shape.map { .fixed($0) }),
                ValueInfo(name: "b", dataType: .float32, shape: shape.map { .fixed($0) }),
            ],
            outputs: [ValueInfo(name: "y", dataType: .float32, shape: nil)], initializers: ["k": Tensor(scalar: Float(0.5))])
        let model = GraphModel(graph: graph, opsets: ["": 13], irVersion: 8)
        let feeds = ["a": rng.tensor(shape), "b": rng.tensor(shape)]
        let two = try InferenceSession(model: model, options: SessionOptions(blasThreads: 2))
        let y = try two.run(feeds)["y"]!.scalars(as: Float.self)
        let a = feeds["a"]!.scalars(as: Float.self)
        let b = feeds["b"]!.scalars(as: Float.self)
        #expect(y.count == a.count)
        #expect(zip(y, zip(a, b)).allSatisfy { $0 == ($1.0 + $1.1) * 0.5 })
    }

    /// A session's runs use its own budget, whatever sessions were built after it: a test kernel
    /// records the budget it sees while the plan runs.
    @Test func eachSessionRunsWithItsOwnBudget() throws {
        let seen = Atomic<Int>(0)
        var registry = OperatorRegistry()
        registry.register("Relu") { _ in
            FunctionKernel { inputs in
                seen.store(BLAS.threads, ordering: .relaxed)
                return [inputs[0]!]
            }
        }
        let graph = Graph(
            nodes: [Node(name: "probe", opType: "Relu", inputs: ["x"], outputs: ["y"])],
            inputs: [ValueInfo(name: "x", dataType: .float32, shape: [.fixed(2)])],
            outputs: [ValueInfo(name: "y", dataType: .float32, shape: nil)])
        let model = GraphModel(graph: graph, opsets: ["": 13], irVersion: 8)
        let x = Tensor([Float(1), 2], shape: [2])
        let three = try InferenceSession(model: model, options: SessionOptions(blasThreads: 3), registry: registry)
        let one = try InferenceSession(model: model, options: SessionOptions(blasThreads: 1), registry: registry)
        _ = try three.run(["x": x])
        #expect(seen.load(ordering: .relaxed) == 3)
        _ = try one.run(["x": x])
        #expect(seen.load(ordering: .relaxed) == 1)
        _ = try three.run(["x": x])
        #expect(seen.load(ordering: .relaxed) == 3)
    }
}
