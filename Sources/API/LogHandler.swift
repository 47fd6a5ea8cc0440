import Glibc
import Logging

/// How log lines look: `key=value` pairs, or one JSON object per line.
public enum LogFormat: String, Sendable, CaseIterable {
    case text
    case json
}

/// A swift-log handler writing one line per event to standard error, as `key=value` pairs or
/// JSON. Lines are written with a single `write(2)`, so lines from several threads do not mix.
public struct SwerveLogHandler: LogHandler {
    public var logLevel: Logger.Level
    public var metadata: Logger.Metadata = [:]
    let label: String
    let format: LogFormat

    public init(label: String, level: Logger.Level, format: LogFormat) {
        self.label = label
        self.logLevel = level
        self.format = format
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var fields: [(String, String)] = [("ts", SwerveLogHandler.timestamp()), ("level", event.level.rawValue), ("msg", "\(event.message)")]
        var merged = metadata
        if let extra = event.metadata { merged.merge(extra) { _, new in new } }
        for key in merged.keys.sorted() { fields.append((key, "\(merged[key]!)")) }
        var line: [UInt8] = []
        switch format {
        case .json:
            line.append(UInt8(ascii: "{"))
            for (i, (k, v)) in fields.enumerated() {
                if i > 0 { line.append(UInt8(ascii: ",")) }
                appendQuoted(k, to: &line)
                line.append(UInt8(ascii: ":"))
                appendQuoted(v, to: &line)
            }
            line.append(UInt8(ascii: "}"))
        case .text:
            for (i, (k, v)) in fields.enumerated() {
                if i > 0 { line.append(UInt8(ascii: " ")) }
                line.append(contentsOf: k.utf8)
                line.append(UInt8(ascii: "="))
                let plain = !v.isEmpty && v.utf8.allSatisfy { $0 > 32 && $0 != 34 && $0 != 61 && $0 < 127 }
                if plain { line.append(contentsOf: v.utf8) } else { appendQuoted(v, to: &line) }
            }
        }
        line.append(10)
        line.withUnsafeBytes { _ = write(2, $0.baseAddress, $0.count) }
    }

    private func appendQuoted(_ s: String, to out: inout [UInt8]) {
        out.append(34)
        for c in s.utf8 {
            switch c {
            case 34: out.append(contentsOf: [92, 34])
            case 92: out.append(contentsOf: [92, 92])
            case 10: out.append(contentsOf: [92, 110])
            case 0..<32: out.append(32)
            default: out.append(c)
            }
        }
        out.append(34)
    }

    static func timestamp() -> String {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        var t = time_t(ts.tv_sec)
        var parts = tm()
        gmtime_r(&t, &parts)
        func pad(_ v: Int32, _ n: Int) -> String {
            let s = String(v)
            return String(repeating: "0", count: max(0, n - s.count)) + s
        }
        return "\(pad(parts.tm_year + 1900, 4))-\(pad(parts.tm_mon + 1, 2))-\(pad(parts.tm_mday, 2))T"
            + "\(pad(parts.tm_hour, 2)):\(pad(parts.tm_min, 2)):\(pad(parts.tm_sec, 2)).\(pad(Int32(ts.tv_nsec / 1_000_000), 3))Z"
    }
}
