import Tensors

/// Errors from building or running a session. Each message says what happened and what to do.
///
/// The API layer maps `.invalidInput` to HTTP 400, `.memoryLimit` of a request to 413; everything else about a request is a 500, and
/// everything at load time fails the load of that model version.
public enum EngineError: Error, Sendable, CustomStringConvertible, Equatable {
    /// The model uses an operator the engine does not implement.
    case unsupportedOperator(opType: String, domain: String, opset: Int, node: String)
    /// The model uses several operator types the engine does not implement (every one listed,
    /// subgraphs included, so that one load says all that is missing).
    case unsupportedOperators([UnsupportedOperator])
    /// The model is inconsistent (missing value, bad attribute, wrong arity, ...).
    case invalidModel(String)
    /// A request's inputs do not fit the model (missing, unknown, wrong type or shape).
    case invalidInput(String)
    /// A kernel failed while running (shapes that only go wrong at run time, for instance).
    case executionFailed(node: String, message: String)
    /// The requested device cannot be used.
    case deviceUnavailable(String)
    /// A run or a load would pass its memory budget (`MemoryLedger`); nothing was allocated.
    case memoryLimit(MemoryLimitError)

    public var description: String {
        switch self {
        case .unsupportedOperator(let op, let domain, let opset, let node):
            let d = domain.isEmpty ? "" : "\(domain)."
            return "operator '\(d)\(op)' (opset \(opset)) used by node '\(node)' is not supported; "
                + "run 'swerve check --list-ops' for the supported operators, or re-export the model with other operators"
        case .unsupportedOperators(let list):
            return "\(list.count) operator types used by the model are not supported: "
                + list.map(\.summary).joined(separator: "; ")
                + "; run 'swerve check --list-ops' for the supported operators, or re-export the model with other operators"
        case .invalidModel(let m): return "invalid model: \(m)"
        case .invalidInput(let m): return m
        case .executionFailed(let node, let m): return "inference failed at node '\(node)': \(m)"
        case .deviceUnavailable(let m): return m
        case .memoryLimit(let e):
            return e.purpose == MemoryLedger.requestPurpose
                ? "\(e); send a smaller batch or shorter inputs, or raise --max-request-memory"
                : "\(e); give the server more memory, or use a smaller model"
        }
    }
}
