import Glibc

/// What is on disk in a model store: `<root>/<model>/<version>/model.onnx`, optional
/// `<root>/<model>/config.json`. Reading only; knows nothing of loading.
public struct StoreLayout: Sendable {
    public let root: String

    public init(root: String) { self.root = root }

    /// A model directory found in the store.
    public struct ModelEntry: Sendable, Equatable {
        public var name: String
        /// Version numbers whose directory holds a `model.onnx`.
        public var versions: [Int]
        /// Path of `config.json`, when there is one.
        public var configPath: String?
    }

    /// Model names: letters, digits, `_`, `-` and `.`, not starting with `.` (no path tricks).
    public static func isValidModelName(_ name: String) -> Bool {
        guard let first = name.utf8.first, first != UInt8(ascii: "."), name.utf8.count <= 200 else { return false }
        return name.utf8.allSatisfy { c in
            (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c == 95 || c == 45 || c == 46
        }
    }

    /// A version directory name: a positive integer without leading zeros.
    public static func versionNumber(_ name: String) -> Int? {
        guard let first = name.first, first != "0", let v = Int(name), v > 0, String(v) == name else { return nil }
        return v
    }

    /// A file name inside a version directory (uploads): a single path component of letters,
    /// digits, `_`, `-` and `.`, not starting with `.`.
    public static func isValidFileName(_ name: String) -> Bool { isValidModelName(name) }

    public func modelPath(_ model: String, version: Int) -> String { "\(root)/\(model)/\(version)/model.onnx" }

    /// Lists the models of the store, sorted by name.
    public func scan() throws -> [ModelEntry] {
        guard isDirectory(root) else {
            throw StoreError.unreadableStore(path: root, reason: "no such directory")
        }
        var models: [ModelEntry] = []
        for name in try listDirectory(root) where StoreLayout.isValidModelName(name) {
            let dir = "\(root)/\(name)"
            guard isDirectory(dir) else { continue }
            let versions = ((try? listDirectory(dir)) ?? []).compactMap { entry -> Int? in
                guard let v = StoreLayout.versionNumber(entry), isRegularFile("\(dir)/\(entry)/model.onnx") else {
                    return nil
                }
                return v
            }.sorted()
            let config = "\(dir)/config.json"
            models.append(ModelEntry(name: name, versions: versions, configPath: isRegularFile(config) ? config : nil))
        }
        return models.sorted { $0.name < $1.name }
    }
}

func isDirectory(_ path: String) -> Bool {
    var st = stat()
    return stat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR
}

func isRegularFile(_ path: String) -> Bool {
    var st = stat()
    return stat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFREG
}

func listDirectory(_ path: String) throws -> [String] {
    guard let dir = opendir(path) else {
        throw StoreError.unreadableStore(path: path, reason: String(cString: strerror(errno)))
    }
    defer { closedir(dir) }
    var names: [String] = []
    while let entry = readdir(dir) {
        let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
            String(cString: raw.baseAddress!.assumingMemoryBound(to: CChar.self))
        }
        if name != "." && name != ".." { names.append(name) }
    }
    return names
}

/// Reads a whole (small) file.
func readFile(_ path: String) throws -> [UInt8] {
    guard let f = fopen(path, "rb") else {
        throw StoreError.unreadableStore(path: path, reason: String(cString: strerror(errno)))
    }
    defer { fclose(f) }
    var out: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = fread(&buffer, 1, buffer.count, f)
        if n <= 0 { break }
        out.append(contentsOf: buffer[0..<n])
    }
    return out
}
