import Batching
import FoundationEssentials

/// Which versions of a model to serve (`version_policy` in `config.json`).
public enum VersionPolicy: Sendable, Equatable {
    /// The N highest versions (default: 1).
    case latest(Int)
    case all
    case specific([Int])

    /// The versions to serve out of those present in the store.
    public func select(from available: [Int]) -> [Int] {
        let sorted = available.sorted()
        switch self {
        case .latest(let n): return Array(sorted.suffix(max(n, 0)))
        case .all: return sorted
        case .specific(let wanted): return sorted.filter { wanted.contains($0) }
        }
    }
}

/// A model's optional `config.json`. Every field is optional; see docs/model-store.md.
public struct ModelConfig: Sendable, Equatable {
    public var versionPolicy: VersionPolicy = .latest(1)
    /// `max_batch_size`, `dynamic_batching` and `instance_group` (see ModelConfig+Batching.swift).
    public var batching = BatchingOptions()

    public init(versionPolicy: VersionPolicy = .latest(1)) { self.versionPolicy = versionPolicy }

    /// Parses `config.json` bytes. Throws `StoreError.badConfig` naming the field and the reason.
    public static func parse(_ bytes: [UInt8], path: String) throws -> ModelConfig {
        let file: ConfigFile
        do {
            file = try JSONDecoder().decode(ConfigFile.self, from: Data(bytes))
        } catch let error as ConfigFieldError {
            throw StoreError.badConfig(path: path, reason: error.message)
        } catch DecodingError.typeMismatch(_, let context), DecodingError.valueNotFound(_, let context) {
            let field = context.codingPath.map(\.stringValue).joined(separator: ".")
            throw StoreError.badConfig(path: path, reason: "field '\(field)': \(context.debugDescription)")
        } catch {
            throw StoreError.badConfig(path: path, reason: "not valid JSON; fix the file's syntax (\(error))")
        }
        var config = ModelConfig()
        if let policy = file.version_policy { config.versionPolicy = policy.policy }
        do {
            config.batching = try file.batchingOptions()
        } catch let error as ConfigFieldError {
            throw StoreError.badConfig(path: path, reason: error.message)
        }
        return config
    }
}

/// The JSON shape of `config.json` (snake_case as in the file).
struct ConfigFile: Decodable {
    var version_policy: PolicyField?
    var max_batch_size: Int?
    var dynamic_batching: DynamicBatchingField?
    var instance_group: [InstanceGroupField]?
}

struct ConfigFieldError: Error { let message: String }

/// `version_policy`: `{"latest": N}`, `{"latest": {"num_versions": N}}`, `{"all": {}}`,
/// `{"specific": [1, 3]}` or `{"specific": {"versions": [1, 3]}}`.
struct PolicyField: Decodable {
    let policy: VersionPolicy

    struct Key: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }
    struct Latest: Decodable { let num_versions: Int }
    struct Specific: Decodable { let versions: [Int] }

    init(from decoder: any Decoder) throws {
        let usage = "use {\"latest\": N}, {\"all\": {}} or {\"specific\": [1, 3]}"
        let container = try decoder.container(keyedBy: Key.self)
        guard container.allKeys.count == 1, let key = container.allKeys.first else {
            throw ConfigFieldError(message: "version_policy must have exactly one key; \(usage)")
        }
        switch key.stringValue {
        case "all":
            policy = .all
        case "latest":
            let n = (try? container.decode(Int.self, forKey: key))
                ?? (try? container.decode(Latest.self, forKey: key))?.num_versions
            guard let n, n >= 1 else {
                throw ConfigFieldError(message: "version_policy.latest must be a positive integer; \(usage)")
            }
            policy = .latest(n)
        case "specific":
            let list = (try? container.decode([Int].self, forKey: key))
                ?? (try? container.decode(Specific.self, forKey: key))?.versions
            guard let list, !list.isEmpty, list.allSatisfy({ $0 >= 1 }) else {
                throw ConfigFieldError(
                    message: "version_policy.specific must be a non-empty list of positive versions; \(usage)")
            }
            policy = .specific(list)
        default:
            throw ConfigFieldError(message: "unknown version_policy '\(key.stringValue)'; \(usage)")
        }
    }
}

/// Problems with the store's layout or a model's configuration.
public enum StoreError: Error, Sendable, CustomStringConvertible {
    case unreadableStore(path: String, reason: String)
    case badConfig(path: String, reason: String)

    public var description: String {
        switch self {
        case .unreadableStore(let p, let r):
            return "model store '\(p)' cannot be read: \(r); pass an existing directory with --model-store"
        case .badConfig(let p, let r): return "\(p): \(r)"
        }
    }
}
