/// How a request's body is delimited, decided from its header fields alone (RFC 9112 section 6),
/// or why the request must be refused with 400 and its connection closed.
///
/// libmicrohttpd 0.9.75 frames bodies itself; these checks refuse every head that it and a proxy in
/// front of it could read differently (request smuggling). What libmicrohttpd 0.9.75 hands the
/// access handler, measured with raw sockets:
/// - every header line, duplicates included, names as sent (`MHD_get_connection_values`);
/// - a name followed by whitespace before the colon keeps that whitespace (`"Content-Length "`),
///   and libmicrohttpd does not use it for framing;
/// - an obs-fold continuation line is appended to the preceding header's *name*
///   (`Transfer-Encoding:\r\n chunked` arrives as the name `Transfer-Encodingchunked`, empty value);
/// - a value with its leading whitespace removed and its trailing whitespace kept;
/// - it de-chunks only when a `Transfer-Encoding` value equals `chunked` ignoring case (trailing
///   whitespace included, so `chunked ` is not de-chunked); any other coding makes it read the body
///   until the client closes;
/// - it refuses by itself (400 or 413, its own HTML body, connection closed) a Content-Length that
///   is not all digits (sign, empty, hex, a comma list) or that overflows, before the handler runs.
///
/// A value type; computed on the connection's thread from the collected header fields.
struct RequestFraming: Equatable {
    /// Declared body length; nil when the request has no Content-Length.
    var contentLength: Int?
    /// The body is chunked.
    var chunked: Bool

    /// Why a head is refused: the message of the 400 answer.
    struct Problem: Error, Equatable {
        var message: String
    }

    /// Decides the framing of a request with these header fields (names as sent, in order) and this
    /// protocol version, or the reason to refuse it.
    static func decide(fields: [(name: String, value: String)], version: String) -> Result<RequestFraming, Problem> {
        var lengths: [String] = []
        var codings: [String] = []
        for (name, value) in fields {
            if name.utf8.contains(where: { $0 == 0x20 || $0 == 0x09 }) {
                return .failure(Problem(message:
                    "header '\(printable(name))' has whitespace in its name (between the name and the colon, or a folded "
                    + "continuation line); write each header as 'Name: value' on one line"))
            }
            let lower = name.lowercased()
            if lower == "content-length" {
                lengths.append(value)
            } else if lower == "transfer-encoding" {
                codings.append(value)
            } else if lower.hasPrefix("content-length") || lower.hasPrefix("transfer-encoding") {
                // libmicrohttpd appends an obs-fold continuation to the header name.
                return .failure(Problem(message:
                    "header '\(printable(name))' is a folded (continued on the next line) or misspelt framing header; "
                    + "send Content-Length or Transfer-Encoding on one line"))
            }
        }
        if !lengths.isEmpty && !codings.isEmpty {
            return .failure(Problem(message:
                "the request has both Content-Length and Transfer-Encoding, so its body length is ambiguous; "
                + "send exactly one of them"))
        }
        if lengths.count > 1 {
            return .failure(Problem(message:
                "the request has \(lengths.count) Content-Length headers; send exactly one"))
        }
        if let text = lengths.first {
            guard let length = parseLength(text) else {
                return .failure(Problem(message:
                    "Content-Length '\(printable(text))' is not a byte count; send one decimal number of bytes "
                    + "with no sign, list or spaces"))
            }
            return .success(RequestFraming(contentLength: length, chunked: false))
        }
        if codings.count > 1 {
            return .failure(Problem(message:
                "the request has \(codings.count) Transfer-Encoding headers; send one, 'Transfer-Encoding: chunked'"))
        }
        if let coding = codings.first {
            // Exactly what libmicrohttpd de-chunks: any other spelling would be read to the end of
            // the connection by libmicrohttpd while a proxy might read it as chunked.
            guard coding.lowercased() == "chunked" else {
                return .failure(Problem(message:
                    "Transfer-Encoding '\(printable(coding))' is not supported; the only transfer coding accepted is "
                    + "'chunked' alone (no list, no trailing spaces); or send a Content-Length instead"))
            }
            if version == "HTTP/1.0" {
                return .failure(Problem(message:
                    "Transfer-Encoding is not defined for HTTP/1.0; send HTTP/1.1, or a Content-Length"))
            }
            return .success(RequestFraming(contentLength: nil, chunked: true))
        }
        return .success(RequestFraming(contentLength: nil, chunked: false))
    }

    /// A Content-Length value: 1 to 18 decimal digits (no sign, list, spaces); nil otherwise.
    static func parseLength(_ text: String) -> Int? {
        let digits = text.utf8
        guard !digits.isEmpty, digits.count <= 18, digits.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else { return nil }
        return Int(text)
    }

    /// `text` cut to 64 characters with control characters replaced, for an error message.
    static func printable(_ text: String) -> String {
        let cleaned = String(text.unicodeScalars.map { $0.value < 0x20 || $0.value == 0x7F ? "?" : Character($0) })
        return cleaned.count > 64 ? String(cleaned.prefix(64)) + "..." : cleaned
    }
}
