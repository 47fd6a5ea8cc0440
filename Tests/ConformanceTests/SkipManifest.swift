import Foundation

/// The committed list of conformance cases Swerve does not run (`skipped.txt` next to this file):
/// one line per case, `SUITE/test_NAME  category: detail`, where the category is `operator` (not
/// implemented, or an attribute value it refuses), `type` (an element type the engine does not hold,
/// or one the operator's record does not list) or `io` (sequence, map or optional inputs and outputs). `#` starts a comment.
struct SkipManifest {
    static let path: String = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("skipped.txt").path

    /// Case key -> reason.
    let reasons: [String: String]

    static func load() throws -> SkipManifest {
        let text = try String(contentsOfFile: path, encoding: .utf8)
        var reasons: [String: String] = [:]
        for raw in text.split(separator: "\n") {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.isEmpty || line.hasPrefix("#") { continue }
            let parts = line.split(separator: " ", maxSplits: 1)
            reasons[String(parts[0])] = parts.count > 1 ? parts[1].trimmingCharacters(in: .whitespaces) : ""
        }
        return SkipManifest(reasons: reasons)
    }

    /// Writes a manifest listing `reasons`, sorted, with the category counts in its header.
    static func write(_ reasons: [String: String], to path: String) throws {
        var text = """
            # ONNX conformance cases that Swerve does not run, with the reason. Only unsupported
            # operators (or attribute values), element types and non-tensor I/O may be listed here.
            # A listed case that turns out to be supported fails the run: remove it then.
            # Regenerate: SWERVE_CONFORMANCE_MANIFEST_OUT=Tests/ConformanceTests/skipped.txt make unit

            """
        for key in reasons.keys.sorted() {
            let reason = reasons[key]!.replacingOccurrences(of: "\n", with: " ")
            text += "\(key) \(reason)\n"
        }
        try text.write(toFile: path, atomically: true, encoding: .utf8)
    }
}
