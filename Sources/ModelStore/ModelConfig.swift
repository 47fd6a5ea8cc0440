import Batching
import FoundationEssentials
import Tensors

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

/// When a model's versions load (`load` in `config.json`).
public enum LoadPolicy: String, Sendable, Equatable {
    /// At scan time, and never evicted (pinned).
    case always
    /// On the first request; evicted (least recently used first) when a load needs the room.
    case onDemand = "on_demand"
}

/// A model's optional `config.json`. Every field is optional; see docs/model-store.md and
/// docs/model-config.schema.json.
///
/// A value, parsed on the store manager's thread and handed to the loader.
public struct ModelConfig: Sendable, Equatable {
    public var versionPolicy: VersionPolicy = .latest(1)
    /// `max_batch_size`, `dynamic_batching` and `instance_group` (see ModelConfig+Batching.swift).
    public var batching = BatchingOptions()
    /// Label name -> version (`version_labels`). Names match `[a-zA-Z0-9_]+`.
    public var versionLabels: [String: Int] = [:]
    /// Declared inputs that override or pin what the ONNX file says (`input`).
    public var inputs: [TensorOverride] = []
    /// Declared outputs (`output`).
    public var outputs: [TensorOverride] = []
    /// `load`: when versions load; nil = the daemon's default (`--load-on-demand`).
    public var load: LoadPolicy?
    /// `idle_timeout_s`: an on-demand model's versions unload after this many seconds without a
    /// request; nil = never (only eviction unloads them).
    public var idleTimeoutSeconds: Double?
    /// `model_warmup`: samples run before a version is AVAILABLE; any failure fails the load.
    /// Empty: a best-effort warm-up on the declared shapes (docs/model-store.md).
    public var warmup: [WarmupSample] = []

    public init(versionPolicy: VersionPolicy = .latest(1)) { self.versionPolicy = versionPolicy }

    /// Top-level keys this module reads.
    public static let storeKeys = ["version_policy", "version_labels", "input", "output", "load", "idle_timeout_s", "model_warmup"]
    /// Top-level keys of the batching work (read elsewhere; accepted here).
    public static let batchingKeys = ["max_batch_size", "dynamic_batching", "instance_group"]

    /// Parses `config.json` bytes. Throws `StoreError.badConfig` naming the field and the reason.
    public static func parse(_ bytes: [UInt8], path: String) throws -> ModelConfig {
        let file: ConfigFile
        do {
            file = try JSONDecoder().decode(ConfigFile.self, from: Data(bytes))
        } catch let error as ConfigFieldError {
            throw StoreError.badConfig(path: path, reason: error.message)
        } catch DecodingError.typeMismatch(_, let context), DecodingError.valueNotFound(_, let context) {
            let field = fieldPath(context.codingPath)
            throw StoreError.badConfig(path: path, reason: "field '\(field)': \(context.debugDescription)")
        } catch DecodingError.dataCorrupted(let context) where !context.codingPath.isEmpty {
            // A number the field's type cannot hold (1e30, 2^64, 1.5 where an integer belongs).
            throw StoreError.badConfig(
                path: path,
                reason: "field '\(fieldPath(context.codingPath))': the number is out of range or not an integer "
                    + "(\(context.debugDescription.prefix(120))); use an integer the field allows")
        } catch DecodingError.keyNotFound(let key, let context) {
            let field = (context.codingPath + [key]).map(\.stringValue).joined(separator: ".")
            throw StoreError.badConfig(path: path, reason: "field '\(field)' is required here")
        } catch {
            // The decoder says "not valid JSON" for a number an integer field cannot hold (1e30):
            // tell that apart from a syntax error, and name the field.
            if let value = try? JSONDecoder().decode(LooseJSON.self, from: Data(bytes)),
                let field = value.firstNonInteger(at: "")
            {
                throw StoreError.badConfig(
                    path: path,
                    reason: "field '\(field)': the number is out of range or not an integer; use an integer the field allows")
            }
            throw StoreError.badConfig(path: path, reason: "not valid JSON; fix the file's syntax (\(error))")
        }
        var config = ModelConfig()
        if let policy = file.version_policy { config.versionPolicy = policy.policy }
        do {
            config.batching = try file.batchingOptions()
        } catch let error as ConfigFieldError {
            throw StoreError.badConfig(path: path, reason: error.message)
        }
        for (label, version) in file.version_labels ?? [:] {
            guard isValidLabel(label) else {
                throw StoreError.badConfig(
                    path: path, reason: "field 'version_labels': label '\(label)' must match [a-zA-Z0-9_]+")
            }
            guard version >= 1 else {
                throw StoreError.badConfig(
                    path: path, reason: "field 'version_labels.\(label)': \(version) is not a positive version number")
            }
            config.versionLabels[label] = version
        }
        if let load = file.load {
            guard let policy = LoadPolicy(rawValue: load) else {
                throw StoreError.badConfig(
                    path: path, reason: "field 'load': \(quoted(load)) is not a load policy; use \"always\" or \"on_demand\"")
            }
            config.load = policy
        }
        if let idle = file.idle_timeout_s {
            guard idle > 0, idle <= 31_536_000 else {
                throw StoreError.badConfig(
                    path: path, reason: "field 'idle_timeout_s': \(idle) is out of range; use seconds from 1 to 31536000 (a year)")
            }
            guard config.load != .always else {
                throw StoreError.badConfig(
                    path: path,
                    reason: "field 'idle_timeout_s' needs \"load\": \"on_demand\" "
                        + "(a model loaded always is never unloaded for idling); remove one of them")
            }
            config.idleTimeoutSeconds = idle
        }
        config.warmup = try warmupSamples(file.model_warmup, path: path)
        config.inputs = try overrides(file.input, field: "input", path: path)
        config.outputs = try overrides(file.output, field: "output", path: path)
        return config
    }

    /// Label names: `[a-zA-Z0-9_]+` (TF Serving's rule).
    public static func isValidLabel(_ label: String) -> Bool {
        !label.isEmpty && label.utf8.count <= 100
            && label.utf8.allSatisfy { c in
                (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c == 95
            }
    }

    private static func overrides(_ list: [TensorField]?, field: String, path: String) throws -> [TensorOverride] {
        var seen = Set<String>()
        return try (list ?? []).enumerated().map { i, entry in
            let here = "\(field)[\(i)]"
            guard !entry.name.isEmpty, seen.insert(entry.name).inserted else {
                throw StoreError.badConfig(path: path, reason: "field '\(here).name': names must be non-empty and unique")
            }
            var dataType: DataType?
            if let text = entry.data_type {
                let name = text.hasPrefix("TYPE_") ? String(text.dropFirst(5)) : text
                guard let type = DataType(v2Name: name) else {
                    throw StoreError.badConfig(
                        path: path, reason: "field '\(here).data_type': unknown type '\(text)'; use e.g. TYPE_FP32 or FP32")
                }
                dataType = type
            }
            if let dims = entry.dims, dims.contains(where: { $0 < -1 || $0 == 0 }) {
                throw StoreError.badConfig(
                    path: path, reason: "field '\(here).dims': sizes must be positive, or -1 for a variable size")
            }
            return TensorOverride(name: entry.name, dataType: dataType, dims: entry.dims)
        }
    }
}

/// One entry of `input` or `output`: the tensor's name, and optionally its type and dims
/// (`-1` = variable). Checked against the ONNX file at load; fixed dims pin symbolic ones.
public struct TensorOverride: Sendable, Equatable {
    public var name: String
    public var dataType: DataType?
    public var dims: [Int]?

    public init(name: String, dataType: DataType? = nil, dims: [Int]? = nil) {
        self.name = name
        self.dataType = dataType
        self.dims = dims
    }
}

/// The JSON shape of `config.json` (snake_case as in the file). Unknown top-level keys are
/// refused, except those of the batching work.
struct ConfigFile: Decodable {
    var version_policy: PolicyField?
    var max_batch_size: Int?
    var dynamic_batching: DynamicBatchingField?
    var instance_group: [InstanceGroupField]?
    var version_labels: [String: Int]?
    var input: [TensorField]?
    var output: [TensorField]?
    var load: String?
    var idle_timeout_s: Double?
    var model_warmup: [WarmupField]?

    enum CodingKeys: String, CodingKey {
        case version_policy, version_labels, input, output, max_batch_size, dynamic_batching, instance_group, load, idle_timeout_s
        case model_warmup
    }

    init(from decoder: any Decoder) throws {
        let all = try decoder.container(keyedBy: PolicyField.Key.self)
        let known = Set(ModelConfig.storeKeys + ModelConfig.batchingKeys)
        if let unknown = all.allKeys.map(\.stringValue).sorted().first(where: { !known.contains($0) }) {
            throw ConfigFieldError(
                message: "unknown field \(quoted(unknown)); the fields are \((ModelConfig.storeKeys + ModelConfig.batchingKeys).joined(separator: ", "))")
        }
        let c = try decoder.container(keyedBy: CodingKeys.self)
        version_policy = try c.decodeIfPresent(PolicyField.self, forKey: .version_policy)
        version_labels = try c.decodeIfPresent([String: Int].self, forKey: .version_labels)
        input = try c.decodeIfPresent([Strict<TensorField>].self, forKey: .input)?.map(\.value)
        output = try c.decodeIfPresent([Strict<TensorField>].self, forKey: .output)?.map(\.value)
        load = try c.decodeIfPresent(String.self, forKey: .load)
        idle_timeout_s = try c.decodeIfPresent(Double.self, forKey: .idle_timeout_s)
        model_warmup = try c.decodeIfPresent([Strict<WarmupField>].self, forKey: .model_warmup)?.map(\.value)
        max_batch_size = try c.decodeIfPresent(Int.self, forKey: .max_batch_size)
        dynamic_batching = try c.decodeIfPresent(Strict<DynamicBatchingField>.self, forKey: .dynamic_batching)?.value
        instance_group = try c.decodeIfPresent([Strict<InstanceGroupField>].self, forKey: .instance_group)?.map(\.value)
    }
}

struct TensorField: StrictFields {
    static let fieldNames = ["name", "data_type", "dims"]
    var name: String
    var data_type: String?
    var dims: [Int]?
}

struct ConfigFieldError: Error { let message: String }

/// An object of `config.json` whose keys are checked: `Strict<Self>` refuses any key outside
/// `fieldNames`, naming where it was found.
protocol StrictFields: Decodable {
    static var fieldNames: [String] { get }
}

/// Decodes a `T` after refusing keys that `T` does not have (an unknown key is most often a typo
/// that would otherwise be ignored in silence).
struct Strict<T: StrictFields>: Decodable {
    let value: T

    init(from decoder: any Decoder) throws {
        let keys = try decoder.container(keyedBy: PolicyField.Key.self).allKeys.map(\.stringValue)
        if let unknown = keys.sorted().first(where: { !T.fieldNames.contains($0) }) {
            throw ConfigFieldError(
                message: "unknown field \(quoted(unknown)) in '\(fieldPath(decoder.codingPath))'; its fields are "
                    + T.fieldNames.joined(separator: ", "))
        }
        value = try T(from: decoder)
    }
}

/// Any JSON value, integers kept apart from other numbers: used to explain a decoding failure.
enum LooseJSON: Decodable {
    case integer, other, number
    case array([LooseJSON])
    case object([String: LooseJSON])

    init(from decoder: any Decoder) throws {
        if let object = try? decoder.container(keyedBy: PolicyField.Key.self) {
            var fields: [String: LooseJSON] = [:]
            for key in object.allKeys { fields[key.stringValue] = try object.decode(LooseJSON.self, forKey: key) }
            self = .object(fields)
        } else if var list = try? decoder.unkeyedContainer() {
            var items: [LooseJSON] = []
            while !list.isAtEnd { items.append(try list.decode(LooseJSON.self)) }
            self = .array(items)
        } else {
            let single = try decoder.singleValueContainer()
            if (try? single.decode(Int.self)) != nil {
                self = .integer
            } else if (try? single.decode(Double.self)) != nil {
                self = .number
            } else {
                self = .other
            }
        }
    }

    /// The path of the first number that is not an integer in `Int`'s range.
    func firstNonInteger(at path: String) -> String? {
        switch self {
        case .number: return path
        case .integer, .other: return nil
        case .array(let items):
            for (i, item) in items.enumerated() {
                if let found = item.firstNonInteger(at: "\(path)[\(i)]") { return found }
            }
            return nil
        case .object(let fields):
            for key in fields.keys.sorted() {
                let here = path.isEmpty ? String(quoted(key).dropFirst().dropLast()) : "\(path).\(quoted(key).dropFirst().dropLast())"
                if let found = fields[key]!.firstNonInteger(at: here) { return found }
            }
            return nil
        }
    }
}

/// `dynamic_batching`, `instance_group[1]`.
func fieldPath(_ path: [any CodingKey]) -> String {
    var text = ""
    for key in path {
        if let i = key.intValue { text += "[\(i)]" } else { text += (text.isEmpty ? "" : ".") + key.stringValue }
    }
    return text
}

/// `text` quoted for a message: at most 40 characters, anything but printable ASCII escaped, so
/// that an error never echoes much of a file (a config.json may be a link to another file).
func quoted(_ text: String) -> String {
    var out = "'"
    var n = 0
    for scalar in text.unicodeScalars {
        if n == 40 {
            out += "..."
            break
        }
        n += 1
        if scalar.value >= 0x20 && scalar.value < 0x7f && scalar != "'" && scalar != "\\" {
            out.unicodeScalars.append(scalar)
        } else {
            out += "\\u{\(String(scalar.value, radix: 16))}"
        }
    }
    return out + "'"
}

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
    struct Latest: StrictFields {
        static let fieldNames = ["num_versions"]
        let num_versions: Int
    }
    struct Specific: StrictFields {
        static let fieldNames = ["versions"]
        let versions: [Int]
    }

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
                ?? (try? container.decode(Strict<Latest>.self, forKey: key))?.value.num_versions
            guard let n, n >= 1 else {
                throw ConfigFieldError(message: "version_policy.latest must be a positive integer; \(usage)")
            }
            policy = .latest(n)
        case "specific":
            let list = (try? container.decode([Int].self, forKey: key))
                ?? (try? container.decode(Strict<Specific>.self, forKey: key))?.value.versions
            guard let list, !list.isEmpty, list.allSatisfy({ $0 >= 1 }) else {
                throw ConfigFieldError(
                    message: "version_policy.specific must be a non-empty list of positive versions; \(usage)")
            }
            policy = .specific(list)
        default:
            throw ConfigFieldError(message: "unknown version_policy \(quoted(key.stringValue)); \(usage)")
        }
    }
}

/// Problems with the store's layout or a model's configuration.
public enum StoreError: Error, Sendable, CustomStringConvertible {
    case unreadableStore(path: String, reason: String)
    case badConfig(path: String, reason: String)
    /// A model name, version or file name that could reach outside the store.
    case invalidName(String)

    public var description: String {
        switch self {
        case .unreadableStore(let p, let r):
            return "model store '\(p)' cannot be read: \(r); pass an existing directory with --model-store"
        case .badConfig(let p, let r): return "\(p): \(r)"
        case .invalidName(let m): return m
        }
    }
}
