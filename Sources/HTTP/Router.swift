/// Maps method + path to a handler, with `{name}` path parameters.
///
/// A pattern is a path of segments: a literal (`models`), a parameter (`{model}`), or a parameter
/// with a literal suffix (`{model}:predict`, for TF Serving's verbs). A plain parameter does not
/// match a segment containing `:`. Routes are tried in the order
/// they were added. Build it once at startup; after that it is read-only and thread-safe.
public struct Router<Handler: Sendable>: Sendable {
    enum Segment: Sendable {
        case literal(String)
        case parameter(String, suffix: String)
    }
    struct Route: Sendable {
        let method: String
        let segments: [Segment]
        let handler: Handler
        let pattern: String
    }

    /// A routing decision.
    public enum Match {
        case found(Handler, parameters: [String: String])
        /// The path exists but not for this method; `allowed` lists the methods that would match.
        case methodNotAllowed(allowed: [String])
        case notFound
    }

    private var routes: [Route] = []

    public init() {}

    /// Adds a route. `pattern` starts with `/`.
    public mutating func add(_ method: String, _ pattern: String, _ handler: Handler) {
        let segments = Router.split(pattern).map { part -> Segment in
            guard part.hasPrefix("{"), let close = part.firstIndex(of: "}") else { return .literal(String(part)) }
            let name = String(part[part.index(after: part.startIndex)..<close])
            return .parameter(name, suffix: String(part[part.index(after: close)...]))
        }
        routes.append(Route(method: method, segments: segments, handler: handler, pattern: pattern))
    }

    /// Like `match`, plus the pattern of the route that matched (`/v2/models/{model}/infer`), for
    /// metrics and logs with bounded cardinality: for a 405, the pattern of the path's first
    /// route; nil when no route has that path.
    public func matchRoute(method: String, path: String) -> (match: Match, pattern: String?) {
        let parts = Router.split(path)
        var allowed: [String] = []
        var pathPattern: String?
        for route in routes {
            guard let parameters = Router.bind(route.segments, to: parts) else { continue }
            if route.method == method || (method == "HEAD" && route.method == "GET") {
                return (.found(route.handler, parameters: parameters), route.pattern)
            }
            if !allowed.contains(route.method) { allowed.append(route.method) }
            pathPattern = pathPattern ?? route.pattern
        }
        return (allowed.isEmpty ? .notFound : .methodNotAllowed(allowed: allowed), pathPattern)
    }

    /// Finds the handler for `method` and `path`.
    public func match(method: String, path: String) -> Match { matchRoute(method: method, path: path).match }

    private static func split(_ path: String) -> [Substring] {
        path.split(separator: "/", omittingEmptySubsequences: true)
    }

    private static func bind(_ segments: [Segment], to parts: [Substring]) -> [String: String]? {
        guard segments.count == parts.count else { return nil }
        var parameters: [String: String] = [:]
        for (segment, part) in zip(segments, parts) {
            switch segment {
            case .literal(let literal):
                guard part == literal else { return nil }
            case .parameter(let name, let suffix):
                if suffix.isEmpty {
                    // A plain parameter never swallows a TF Serving verb (`m:predict`), so a wrong
                    // method on a verb route is a 405, not a lookup of model "m:predict".
                    guard !part.isEmpty, !part.contains(":") else { return nil }
                    parameters[name] = String(part)
                } else {
                    guard part.hasSuffix(suffix), part.count > suffix.count else { return nil }
                    parameters[name] = String(part.dropLast(suffix.count))
                }
            }
        }
        return parameters
    }
}
