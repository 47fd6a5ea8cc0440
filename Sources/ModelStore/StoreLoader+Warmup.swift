import Batching
import Engine
import Glibc
import Tensors

/// `model_warmup` from config.json: the configured samples, run before the version is
/// AVAILABLE; the first failure fails the load with the sample's name and the reason.
extension StoreLoader {
    static func runWarmup(
        _ samples: [WarmupSample], _ session: InferenceSession, batching: BatchingOptions, modelDirectory: String
    ) throws {
        let ledger = MemoryLedger(
            limit: session.options.maxRunMemory, purpose: "the warm-up's inputs", setting: "--max-request-memory")
        for sample in samples {
            func failure(_ reason: String) -> StoreError {
                .badConfig(path: "\(modelDirectory)/config.json", reason: "model_warmup sample '\(sample.name)': \(reason)")
            }
            let missing = session.inputs.map(\.name).filter { sample.inputs[$0] == nil }
            if !missing.isEmpty {
                throw failure("no data for input(s) \(missing.joined(separator: ", ")); give every input of the model")
            }
            if let extra = sample.inputs.keys.sorted().first(where: { name in !session.inputs.contains { $0.name == name } }) {
                throw failure("input '\(extra)' is not in the model; its inputs are \(session.inputs.map(\.name).joined(separator: ", "))")
            }
            var feeds: [String: Tensor] = [:]
            do {
                try MemoryLedger.withCurrent(ledger) {
                    for (name, input) in sample.inputs {
                        let shape = batching.batches ? [max(sample.batchSize, 1)] + input.dims : input.dims
                        feeds[name] = try makeInput(input, shape: shape, modelDirectory: modelDirectory)
                    }
                }
            } catch let error as StoreError {
                throw failure("\(error)")
            } catch {
                throw failure("\(error)")
            }
            for run in 0..<sample.count {
                do {
                    _ = try session.run(feeds)
                } catch {
                    throw failure("run \(run + 1) of \(sample.count) failed: \(error); fix the sample's shapes or data, or the model")
                }
            }
        }
    }

    static func makeInput(_ input: WarmupSample.Input, shape: [Int], modelDirectory: String) throws -> Tensor {
        let tensor = try Tensor(allocating: input.dataType, shape: shape, zeroed: true)
        let bytes = tensor.count * input.dataType.byteSize
        switch input.data {
        case .zero:
            break
        case .random:
            var state: UInt64 = 0x9E37_79B9_7F4A_7C15
            func next() -> UInt64 {
                state ^= state << 13
                state ^= state >> 7
                state ^= state << 17
                return state
            }
            switch input.dataType {
            case .float32:
                let p = tensor.mutableElements(as: Float.self)
                for i in 0..<p.count { p[i] = Float(next() >> 40) / Float(1 << 24) }
            case .float64:
                let p = tensor.mutableElements(as: Double.self)
                for i in 0..<p.count { p[i] = Double(next() >> 11) / Double(UInt64(1) << 53) }
            default:
                // Integers and booleans: 0 or 1 (safe as indices into anything non-empty).
                let raw = tensor.mutableBytes
                if input.dataType.byteSize > 0 {
                    for i in 0..<tensor.count { raw.storeBytes(of: UInt8(next() & 1), toByteOffset: i * input.dataType.byteSize, as: UInt8.self) }
                }
            }
        case .file(let name):
            let path = "\(modelDirectory)/warmup/\(name)"
            let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
            guard fd >= 0 else {
                throw StoreError.badConfig(path: path, reason: "cannot open the warm-up data file: \(String(cString: strerror(errno)))")
            }
            defer { close(fd) }
            var st = stat()
            guard fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG, Int(st.st_size) == bytes else {
                throw StoreError.badConfig(
                    path: path,
                    reason: "the warm-up data file must be a regular file of exactly \(bytes) bytes "
                        + "(\(tensor.count) \(input.dataType.v2Name) elements of shape \(shape)), little-endian, row-major")
            }
            var done = 0
            while done < bytes {
                let n = read(fd, tensor.mutableBytes.baseAddress! + done, bytes - done)
                if n < 0 && errno == EINTR { continue }
                guard n > 0 else { throw StoreError.badConfig(path: path, reason: "reading the warm-up data file failed") }
                done += n
            }
        }
        return tensor
    }
}
