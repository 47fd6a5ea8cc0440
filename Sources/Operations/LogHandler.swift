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
        // Written straight into one byte buffer (no intermediate strings per field): access logs
        // call this once per request.
        var line: [UInt8] = []
        line.reserveCapacity(256)
        var first = true
        func field(_ key: String, _ value: String) {
            switch format {
            case .json:
                line.append(first ? UInt8(ascii: "{") : UInt8(ascii: ","))
                appendQuoted(key, to: &line)
                line.append(UInt8(ascii: ":"))
                appendQuoted(value, to: &line)
            case .text:
                if !first { line.append(UInt8(ascii: " ")) }
                line.append(contentsOf: key.utf8)
                line.append(UInt8(ascii: "="))
                let plain = !value.isEmpty && value.utf8.allSatisfy { $0 > 32 && $0 != 34 && $0 != 61 && $0 < 127 }
                if plain { line.append(contentsOf: value.utf8) } else { appendQuoted(value, to: &line) }
            }
            first = false
        }
        field("ts", SwerveLogHandler.timestamp())
        field("level", event.level.rawValue)
        field("msg", event.message.description)
        if let extra = event.metadata, !metadata.isEmpty {
            let merged = metadata.merging(extra) { _, new in new }
            for key in merged.keys.sorted() { field(key, SwerveLogHandler.text(merged[key]!)) }
        } else {
            let fields = event.metadata ?? metadata
            for key in fields.keys.sorted() { field(key, SwerveLogHandler.text(fields[key]!)) }
        }
        if format == .json { line.append(UInt8(ascii: "}")) }
        line.append(10)
        line.withUnsafeBytes { _ = write(2, $0.baseAddress, $0.count) }
    }

    static func text(_ value: Logger.Metadata.Value) -> String {
        if case .string(let s) = value { return s }
        return value.description
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

    /// `2026-11-24T18:06:54.983Z`, formatted from digits (no per-field strings).
    static func timestamp() -> String {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        var t = time_t(ts.tv_sec)
        var parts = tm()
        gmtime_r(&t, &parts)
        var out = [UInt8](repeating: 0, count: 24)
        func put(_ value: Int, _ at: Int, _ width: Int) {
            var v = value
            for i in stride(from: at + width - 1, through: at, by: -1) {
                out[i] = UInt8(48 + v % 10)
                v /= 10
            }
        }
        put(Int(parts.tm_year) + 1900, 0, 4)
        out[4] = 45
        put(Int(parts.tm_mon) + 1, 5, 2)
        out[7] = 45
        put(Int(parts.tm_mday), 8, 2)
        out[10] = 84
        put(Int(parts.tm_hour), 11, 2)
        out[13] = 58
        put(Int(parts.tm_min), 14, 2)
        out[16] = 58
        put(Int(parts.tm_sec), 17, 2)
        out[19] = 46
        put(Int(ts.tv_nsec / 1_000_000), 20, 3)
        out[23] = 90
        return String(decoding: out, as: UTF8.self)
    }

}
