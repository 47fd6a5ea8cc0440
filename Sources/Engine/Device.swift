/// Which device a session runs on, as the user asked for it (`--device`, or a model's config).
public enum DeviceSelection: Sendable, Equatable, CustomStringConvertible {
    /// CUDA when a device is there and can run the whole model, else the CPU.
    case auto
    case cpu
    /// A CUDA device; nil = the first one.
    case cuda(Int?)

    /// Parses `auto`, `cpu`, `cuda`, `cuda:N`; nil for anything else.
    public init?(parsing text: String) {
        switch text {
        case "auto": self = .auto
        case "cpu": self = .cpu
        case "cuda": self = .cuda(nil)
        default:
            guard text.hasPrefix("cuda:"), let n = Int(text.dropFirst(5)), n >= 0 else { return nil }
            self = .cuda(n)
        }
    }

    public var description: String {
        switch self {
        case .auto: return "auto"
        case .cpu: return "cpu"
        case .cuda(nil): return "cuda"
        case .cuda(let n?): return "cuda:\(n)"
        }
    }
}

/// A device that sessions run on, resolved from a `DeviceSelection`.
public enum Device: Sendable, Equatable, CustomStringConvertible {
    case cpu

    /// Name used in metadata and logs (`cpu`).
    public var description: String {
        switch self {
        case .cpu: return "cpu"
        }
    }
}
