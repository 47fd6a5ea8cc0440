/// Entry points for the libFuzzer targets (Tests/Fuzz, docs/fuzzing.md) into code that is
/// otherwise internal. Each takes untrusted bytes and either returns or stops the process with a
/// message: a stop is a finding. Not used by the daemon.
public enum FuzzEntryPoints {
    /// Parses `bytes` with the request parser and with jansson (the reference). Both must accept
    /// or both refuse, and accepted documents must be the same tree: the fast numeric path must
    /// round exactly as jansson's `strtod` does. Inputs with a NUL byte must be refused (see below).
    public static func jsonDifferential(_ bytes: [UInt8]) {
        let ours = try? JSONDocument(parsing: bytes)
        // jansson 2.14's buffer reader drops a NUL byte right after a number or literal (it
        // accepts "[1\0]"); RFC 8259 allows no raw NUL anywhere, and the request parser refuses
        // every one (JSONDifferentialTests.nulBytesAreRejected). No comparison for those inputs.
        if bytes.contains(0) {
            guard ours == nil else { fatalError("the request parser accepts a NUL byte: \(describe(bytes))") }
            return
        }
        let reference = try? JanssonDocument(parsing: bytes)
        switch (ours, reference) {
        case (nil, nil): return
        case (let a?, let b?):
            guard a.root == b.node else {
                fatalError("the request parser and jansson read different values from \(describe(bytes))")
            }
        case (_?, nil):
            fatalError("the request parser accepts what jansson refuses: \(describe(bytes))")
        case (nil, _?):
            fatalError("the request parser refuses what jansson accepts: \(describe(bytes))")
        }
    }

    private static func describe(_ bytes: [UInt8]) -> String {
        "\(bytes.count) bytes: \(String(decoding: bytes.prefix(200), as: UTF8.self).debugDescription)"
    }
}
