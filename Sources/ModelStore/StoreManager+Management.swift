import Glibc
import Logging

/// A file of a new version sent to the management `load` (`"file:<version>/<name>"`).
public struct UploadedFile: Sendable {
    public var version: Int
    public var name: String
    public var bytes: [UInt8]

    public init(version: Int, name: String, bytes: [UInt8]) {
        self.version = version
        self.name = name
        self.bytes = bytes
    }
}

/// Why a management `load` or `unload` did not succeed, with the HTTP status it maps to.
public struct ManagementFailure: Error, Sendable, CustomStringConvertible {
    public let status: Int
    public let message: String
    public var description: String { message }
}

/// Explicit loads and unloads (the management API). Uploaded files are written atomically:
/// into a hidden staging directory in the model's directory, each file fsynced, then the whole
/// version directory renamed into place, so the loader (which mmaps files) never sees a partial
/// or changing file.
extension StoreManager {
    /// Writes the uploaded config and files (if any), rescans the model and reports whether it
    /// serves. `completion` gets the versions now AVAILABLE, or the failure.
    public func load(
        model: String, config: [UInt8]?, files: [UploadedFile],
        completion: @escaping @Sendable (Result<[Int], ManagementFailure>) -> Void
    ) {
        queue.async {
            do throws(ManagementFailure) {
                try self.write(model: model, config: config, files: files)
            } catch {
                completion(.failure(error))
                return
            }
            // An explicit load loads an on-demand model too.
            self.state.withLock { $0.tracks[model]?.demanded = true }
            self.reconcile(model: model, .explicit)
            self.whenSettled(model) { completion(self.outcome(model, uploaded: Set(files.map(\.version)))) }
        }
    }

    /// Unloads every version of the model; the poller leaves it alone until the next `load`.
    /// Completes once the versions are out of the serving set (draining goes on in the background).
    public func unload(model: String, completion: @escaping @Sendable (Result<[Int], ManagementFailure>) -> Void) {
        queue.async {
            guard var track = self.state.withLock({ $0.tracks[model] }) else {
                completion(.failure(ManagementFailure(
                    status: 404, message: "model '\(model)' is not loaded; POST /v2/repository/index lists the models")))
                return
            }
            let versions = track.loaded.keys.sorted()
            for v in versions { self.unload(model, v, &track, reason: "unloaded through the management API") }
            track.unloadedByRequest = true
            track.failed = [:]
            track.stamps = [:]
            for (v, vs) in self.registry.snapshot().models[model]?.versions ?? [:]
            where [.start, .failed].contains(vs.state) {
                self.transition(model, v, to: nil)
            }
            self.registry.update(model) { status in
                status?.labels = [:]
                status?.error = "unloaded through the management API; POST /v2/repository/models/\(model)/load to load it again"
            }
            self.state.withLock { $0.tracks[model] = track }
            track = Track()
            self.drainFinished()
            completion(.success(versions))
        }
    }

    private func outcome(_ model: String, uploaded: Set<Int>) -> Result<[Int], ManagementFailure> {
        guard let status = registry.snapshot().models[model] else {
            return .failure(ManagementFailure(
                status: 404, message: "model '\(model)' is not in the store (no directory \(layout.root)/\(model)); upload its files or copy them in"))
        }
        let available = status.versions.values.filter { $0.state == .available }.map(\.version).sorted()
        if let configError = state.withLock({ $0.tracks[model]?.configError }) {
            let keeps = available.isEmpty
                ? "nothing serves"
                : "versions \(available.map(String.init).joined(separator: ", ")) keep serving with the previous configuration"
            return .failure(ManagementFailure(
                status: 400, message: "config.json of model '\(model)' was rejected (\(keeps)): \(configError)"))
        }
        let failed = status.sortedVersions.filter { $0.state == .failed || (uploaded.contains($0.version) && $0.state != .available) }
        if failed.isEmpty && !available.isEmpty { return .success(available) }
        var reasons = failed.map { "version \($0.version): \($0.error ?? $0.state.rawValue)" }
        if let e = status.error { reasons.append(e) }
        if reasons.isEmpty { reasons.append("no version to serve (expected \(layout.root)/\(model)/<version>/model.onnx)") }
        let keeps = available.isEmpty ? "" : " (versions \(available.map(String.init).joined(separator: ", ")) keep serving)"
        return .failure(ManagementFailure(
            status: 400, message: "failed to load model '\(model)'\(keeps): \(reasons.joined(separator: "; "))"))
    }

    private func write(model: String, config: [UInt8]?, files: [UploadedFile]) throws(ManagementFailure) {
        guard StoreLayout.isValidModelName(model) else {
            throw ManagementFailure(status: 400, message: "invalid model name '\(model)'; use letters, digits, '_', '-' and '.', not starting with '.'")
        }
        if config == nil && files.isEmpty { return }
        if let config {
            do {
                _ = try ModelConfig.parse(config, path: "parameters.config")
            } catch {
                throw ManagementFailure(status: 400, message: "\(error); nothing was written")
            }
        }
        let modelDir = "\(layout.root)/\(model)"
        let versions = Set(files.map(\.version)).sorted()
        for v in versions where FileStamp.exists("\(modelDir)/\(v)") {
            throw ManagementFailure(
                status: 409,
                message: "version \(v) of model '\(model)' already exists; upload a new version number (versions are immutable) or delete \(modelDir)/\(v) first")
        }
        do {
            try makeDirectory(modelDir)
            for v in versions {
                let staging = "\(modelDir)/.upload-\(v)-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
                try makeDirectory(staging)
                do {
                    for file in files where file.version == v { try writeSynced("\(staging)/\(file.name)", file.bytes) }
                    try syncDirectory(staging)
                    try renameChecked(staging, "\(modelDir)/\(v)")
                } catch {
                    for file in files where file.version == v { unlink("\(staging)/\(file.name)") }
                    rmdir(staging)
                    throw error
                }
            }
            if let config {
                let temporary = "\(modelDir)/.config.json.\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
                try writeSynced(temporary, config)
                try renameChecked(temporary, "\(modelDir)/config.json")
            }
            try syncDirectory(modelDir)
        } catch {
            throw ManagementFailure(status: 500, message: "writing the uploaded files failed: \(error); check the store's permissions and free space")
        }
        logger.info(
            "model files uploaded", metadata: ["event": "model_uploaded", "model": "\(model)", "versions": "\(versions)", "config": "\(config != nil)"])
    }
}

struct SystemError: Error, CustomStringConvertible {
    let description: String
    init(_ what: String, _ path: String) { description = "\(what) \(path): \(String(cString: strerror(errno)))" }
}

func makeDirectory(_ path: String) throws {
    if mkdir(path, 0o755) != 0 && errno != EEXIST { throw SystemError("mkdir", path) }
}

/// Writes a file and fsyncs it before returning.
func writeSynced(_ path: String, _ bytes: [UInt8]) throws {
    let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
    guard fd >= 0 else { throw SystemError("create", path) }
    defer { close(fd) }
    var written = 0
    try bytes.withUnsafeBytes { raw in
        while written < raw.count {
            let n = Glibc.write(fd, raw.baseAddress! + written, raw.count - written)
            if n < 0 {
                if errno == EINTR { continue }
                throw SystemError("write", path)
            }
            written += n
        }
    }
    guard fsync(fd) == 0 else { throw SystemError("fsync", path) }
}

func syncDirectory(_ path: String) throws {
    let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
    guard fd >= 0 else { throw SystemError("open", path) }
    defer { close(fd) }
    guard fsync(fd) == 0 else { throw SystemError("fsync", path) }
}

func renameChecked(_ from: String, _ to: String) throws {
    guard rename(from, to) == 0 else { throw SystemError("rename to", to) }
}

extension FileStamp {
    static func exists(_ path: String) -> Bool {
        var st = stat()
        return lstat(path, &st) == 0
    }
}
