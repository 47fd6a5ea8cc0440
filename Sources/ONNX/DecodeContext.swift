#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif
import Tensors

/// The state of one decode: the model's mapped file, its directory, and the external data files
/// mapped so far (each at most once per load). Created by `ONNXLoader` for one call and used on
/// that call's thread only.
final class DecodeContext {
    /// The file being decoded; tensors borrow its bytes and keep it alive.
    let file: MappedFile
    /// The directory external data locations are relative to; nil when the bytes have no file
    /// (then external data is an error).
    let directory: String?
    /// How deeply graphs may nest through attributes (If/Loop/Scan bodies).
    let maxGraphDepth: Int
    private var externalFiles: [String: MappedFile] = [:]

    init(file: MappedFile, directory: String?, maxGraphDepth: Int = 32) {
        self.file = file
        self.directory = directory
        self.maxGraphDepth = maxGraphDepth
    }

    /// A reader over the whole file.
    func reader(_ message: ProtoMessage, label: String) -> ProtoReader {
        ProtoReader(file: file.bytes, start: 0, end: file.count, message: message, label: label)
    }

    /// The external data file `location` (relative to the model's directory), mapped once.
    /// Absolute locations and `..` that would leave the model's directory are refused: a model may
    /// only read files inside its own directory.
    func externalFile(location: String, for label: String) throws -> MappedFile {
        guard let directory else {
            throw DecodeFailure("\(label) keeps its data in external file \(quoted(location)), but the model was "
                + "decoded from memory; load it from its file with ONNXLoader.load(path:)")
        }
        let relative = try Self.safeRelativePath(location, for: label)
        if let cached = externalFiles[relative] { return cached }
        let full = directory.isEmpty ? relative : directory + "/" + relative
        // A symbolic link inside the directory must not lead out of it either.
        if let real = Self.realPath(full), let realDirectory = Self.realPath(directory.isEmpty ? "." : directory),
            !real.hasPrefix(realDirectory == "/" ? "/" : realDirectory + "/")
        {
            throw DecodeFailure("\(label) has external data location \(quoted(location)), which is refused: it "
                + "resolves to \(real), outside the model's directory \(realDirectory); copy the data file into "
                + "the model's directory instead of linking to it")
        }
        do {
            let mapped = try MappedFile(path: full)
            externalFiles[relative] = mapped
            return mapped
        } catch {
            throw DecodeFailure("\(label) keeps its data in external file \(quoted(location)) (\(full)): "
                + "\(error.reason); copy the model's .data file next to the model file")
        }
    }

    private static func realPath(_ path: String) -> String? {
        guard let p = realpath(path, nil) else { return nil }
        defer { free(p) }
        return String(cString: p)
    }

    /// `location` normalised to a path inside the model's directory, or an error.
    static func safeRelativePath(_ location: String, for label: String) throws -> String {
        let refuse = { (why: String) in
            DecodeFailure("\(label) has external data location \(quoted(location)), which is refused: \(why); "
                + "external data must be a relative path inside the model's directory")
        }
        if location.isEmpty { throw refuse("it is empty") }
        if location.utf8.contains(0) { throw refuse("it contains a NUL byte") }
        if location.hasPrefix("/") { throw refuse("it is an absolute path") }
        var parts: [Substring] = []
        for part in location.split(separator: "/", omittingEmptySubsequences: true) {
            if part == "." { continue }
            if part == ".." {
                if parts.isEmpty { throw refuse("'..' leads out of the model's directory") }
                parts.removeLast()
                continue
            }
            parts.append(part)
        }
        if parts.isEmpty { throw refuse("it names the model's directory itself") }
        return parts.joined(separator: "/")
    }
}
