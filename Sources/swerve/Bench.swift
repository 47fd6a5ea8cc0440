import ArgumentParser
import Engine
import Foundation
import ONNX
import Tensors

/// `swerve bench MODEL`: engine latency without HTTP, for `bench/engine` (hidden from `--help`).
///
/// Loads the model as the daemon does (`ONNXLoader` + `InferenceSession`), measures the load time and
/// the resident memory it added, runs warm-up iterations, then times `--iterations` calls of
/// `InferenceSession.run` on generated inputs (see `FeedGenerator`) and prints one JSON object.
/// A subcommand rather than a separate product: it measures the same binary users run, and the
/// release build that `make test` already makes is enough.
struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Time the engine on one model (no HTTP); prints JSON.", shouldDisplay: false)

    @Argument(help: "The ONNX model file.")
    var model: String

    @Option(help: "Value of the first (batch) dimension when it is not fixed.")
    var batch: Int = 1

    @Option(help: "Engine threads (the thread budget of the engine's parallel steps).")
    var threads: Int = 1

    @Option(help: "Timed iterations.")
    var iterations: Int = 50

    @Option(help: "Untimed warm-up iterations.")
    var warmup: Int = 5

    @Option(name: .customLong("dim"), help: "Value of a symbolic dimension, NAME=VALUE (repeatable).")
    var dims: [String] = []

    @Flag(help: "Also time every step of the timed runs and print them (adds a clock read per step).")
    var profile = false

    func validate() throws {
        guard batch > 0, threads > 0, iterations > 0, warmup >= 0 else {
            throw ValidationError("--batch, --threads and --iterations must be positive, --warmup not negative")
        }
        _ = try FeedGenerator.parseDims(dims)
    }

    func run() throws {
        let clock = ContinuousClock()
        let rssBefore = Self.residentBytes()
        let start = clock.now
        let session: InferenceSession
        do {
            session = try InferenceSession(model: ONNXLoader.load(path: model), options: SessionOptions(blasThreads: threads))
        } catch {
            Check.fail("\(model) cannot be served: \(error)")
        }
        let loadSeconds = Self.seconds(clock.now - start)
        let rssLoaded = Self.residentBytes()
        let feeds = try FeedGenerator(overrides: FeedGenerator.parseDims(dims), batch: batch).feeds(for: session.inputs)
        var times: [Double] = []
        let steps = profile ? StepProfile() : nil
        for i in 0..<(warmup + iterations) {
            let t0 = clock.now
            do {
                _ = try session.run(feeds, profile: i >= warmup ? steps : nil)
            } catch {
                Check.fail("\(model): inference failed: \(error)")
            }
            if i >= warmup { times.append(Self.seconds(clock.now - t0)) }
        }
        let rssRun = Self.residentBytes()
        times.sort()
        func pct(_ p: Double) -> Double { times[min(times.count - 1, Int(Double(times.count) * p))] * 1000 }
        let shapes = feeds.sorted { $0.key < $1.key }.map { "\"\($0.key)\": \($0.value.shape)" }.joined(separator: ", ")
        print("""
            {"model": "\(model)", "batch": \(batch), "threads": \(threads), "iterations": \(iterations), \
            "inputs": {\(shapes)}, "load_ms": \(loadSeconds * 1000), "median_ms": \(pct(0.5)), \
            "p10_ms": \(pct(0.1)), "p90_ms": \(pct(0.9)), "rss_before": \(rssBefore), \
            "rss_loaded": \(rssLoaded), "rss_after_run": \(rssRun)\(Self.stepsJSON(steps, runs: iterations))}
            """)
    }

    /// `, "steps": [...]`: each step's milliseconds per run, slowest first (empty without a profile).
    static func stepsJSON(_ profile: StepProfile?, runs: Int) -> String {
        guard let profile else { return "" }
        let rows = profile.entries.sorted { $0.seconds > $1.seconds }.map { e in
            let name = e.node.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
            return "{\"node\": \"\(name)\", \"op\": \"\(e.opType)\", \"ms\": \(e.seconds * 1000 / Double(runs))}"
        }
        return ", \"steps\": [" + rows.joined(separator: ", ") + "]"
    }

    static func seconds(_ d: Duration) -> Double {
        let (s, atto) = d.components
        return Double(s) + Double(atto) / 1e18
    }

    /// VmRSS of this process from /proc/self/status, in bytes (0 when unreadable).
    static func residentBytes() -> Int {
        guard let text = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
        for line in text.split(separator: "\n") where line.hasPrefix("VmRSS:") {
            let kb = line.split(separator: " ").compactMap { Int($0) }.first ?? 0
            return kb * 1024
        }
        return 0
    }
}
