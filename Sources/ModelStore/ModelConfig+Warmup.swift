import Tensors

/// One `model_warmup` sample (Triton's shape): inputs by name, each with its type, dims and
/// data (zeros, random values, or the raw bytes of a file in `<model>/warmup/`), run `count`
/// times before the version becomes AVAILABLE. Any failure fails the load.
///
/// A value, parsed with the rest of `config.json`.
public struct WarmupSample: Sendable, Equatable {
    /// Where a warm-up input's values come from.
    public enum Data: Sendable, Equatable {
        case zero
        case random
        /// Raw little-endian elements, row-major, in `<store>/<model>/warmup/<name>`.
        case file(String)
    }

    public struct Input: Sendable, Equatable {
        public var dataType: DataType
        /// Without the batch dimension when the model batches (`max_batch_size` > 0).
        public var dims: [Int]
        public var data: Data

        public init(dataType: DataType, dims: [Int], data: Data) {
            self.dataType = dataType
            self.dims = dims
            self.data = data
        }
    }

    public var name: String
    /// Rows per run when the model batches (prepended to every input's dims); default 1.
    public var batchSize: Int
    /// Runs of this sample; default 1.
    public var count: Int
    public var inputs: [String: Input]
}

/// `model_warmup[i]` in the file.
struct WarmupField: StrictFields {
    static let fieldNames = ["name", "batch_size", "inputs", "count"]
    var name: String?
    var batch_size: Int?
    var inputs: [String: Strict<WarmupInputField>]?
    var count: Int?
}

/// `model_warmup[i].inputs.<name>` in the file.
struct WarmupInputField: StrictFields {
    static let fieldNames = ["data_type", "dims", "zero_data", "random_data", "input_data_file"]
    var data_type: String
    var dims: [Int]
    var zero_data: Bool?
    var random_data: Bool?
    var input_data_file: String?
}

extension ModelConfig {
    /// Most samples, runs per sample, and elements per warm-up input (64 Mi).
    static let maxWarmupSamples = 64
    static let maxWarmupCount = 1000
    static let maxWarmupElements = 1 << 26

    static func warmupSamples(_ fields: [WarmupField]?, path: String) throws -> [WarmupSample] {
        guard let fields else { return [] }
        guard fields.count <= maxWarmupSamples else {
            throw StoreError.badConfig(path: path, reason: "field 'model_warmup': at most \(maxWarmupSamples) samples")
        }
        return try fields.enumerated().map { i, field in
            let here = "model_warmup[\(i)]"
            func bad(_ reason: String) -> StoreError { .badConfig(path: path, reason: reason) }
            let name = field.name ?? "sample \(i)"
            let batch = field.batch_size ?? 1
            guard (0...ConfigFile.maxBatchSizeLimit).contains(batch) else {
                throw bad("field '\(here).batch_size': \(batch) is out of range; use 0 to \(ConfigFile.maxBatchSizeLimit)")
            }
            let count = field.count ?? 1
            guard (1...maxWarmupCount).contains(count) else {
                throw bad("field '\(here).count': \(count) is out of range; use 1 to \(maxWarmupCount)")
            }
            guard let inputs = field.inputs, !inputs.isEmpty else {
                throw bad("field '\(here).inputs' is required: give every input of the model by name")
            }
            var parsed: [String: WarmupSample.Input] = [:]
            for (input, strict) in inputs {
                let f = strict.value
                let at = "\(here).inputs.\(quoted(input))"
                let typeName = f.data_type.hasPrefix("TYPE_") ? String(f.data_type.dropFirst(5)) : f.data_type
                guard let type = DataType(v2Name: typeName), type != .string else {
                    throw bad("field '\(at).data_type': unknown or unsupported type \(quoted(f.data_type)); use e.g. TYPE_FP32")
                }
                var elements = 1
                for d in f.dims {
                    guard d >= 0, elements.multipliedReportingOverflow(by: max(d, 1)).overflow == false else {
                        throw bad("field '\(at).dims': sizes must be 0 or more (no -1: a warm-up runs real shapes)")
                    }
                    elements *= max(d, 1)
                }
                guard elements.multipliedReportingOverflow(by: max(batch, 1)).partialValue <= maxWarmupElements else {
                    throw bad("field '\(at).dims': more than \(maxWarmupElements) elements; warm up on smaller shapes")
                }
                let sources = [f.zero_data == true, f.random_data == true, f.input_data_file != nil].filter { $0 }.count
                guard sources == 1 else {
                    throw bad("field '\(at)': give exactly one of zero_data: true, random_data: true or input_data_file")
                }
                let data: WarmupSample.Data
                if let file = f.input_data_file {
                    guard !file.isEmpty, !file.hasPrefix("."), !file.contains("/") else {
                        throw bad("field '\(at).input_data_file': \(quoted(file)) must be a file name in the model's warmup/ directory")
                    }
                    data = .file(file)
                } else {
                    data = f.random_data == true ? .random : .zero
                }
                parsed[input] = .init(dataType: type, dims: f.dims, data: data)
            }
            return WarmupSample(name: name, batchSize: batch, count: count, inputs: parsed)
        }
    }
}
