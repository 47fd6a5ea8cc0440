import Tensors

/// Options for building a session.
public struct SessionOptions: Sendable {
    public var device: Device
    /// Threads OpenBLAS may use for one call (the engine's thread budget). Default 1.
    public var blasThreads: Int

    public init(device: Device = .cpu, blasThreads: Int = 1) {
        self.device = device
        self.blasThreads = blasThreads
    }
}

/// A model ready to run: kernels chosen, plan built. Immutable and safe to call from any thread.
///
/// OWNED BY THE ENGINE HELPER: the real implementation replaces this stub.
public final class InferenceSession: Sendable {
    public let model: GraphModel
    public let options: SessionOptions

    /// Declared real inputs and outputs of the model.
    public var inputs: [ValueInfo] { model.graph.inputs }
    public var outputs: [ValueInfo] { model.graph.outputs }

    /// Builds the plan; throws `EngineError.unsupportedOperator` / `.invalidModel` when it cannot.
    public init(model: GraphModel, options: SessionOptions = SessionOptions()) throws {
        self.model = model
        self.options = options
    }

    /// Runs the model. `feeds` maps input names to tensors; every declared input is required and
    /// must match its declared type and fixed dimensions (`EngineError.invalidInput` otherwise).
    /// Returns every graph output by name.
    public func run(_ feeds: [String: Tensor]) throws -> [String: Tensor] {
        throw EngineError.executionFailed(node: "", message: "not implemented yet")
    }
}
