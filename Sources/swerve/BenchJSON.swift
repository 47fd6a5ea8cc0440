import API
import ArgumentParser

/// `swerve bench-json`: the JSON cost of a V2 request body, request parser against jansson.
struct BenchJSON: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench-json",
        abstract: "Measure parsing and decoding of a V2 JSON body of N floats (request parser vs jansson).",
        shouldDisplay: false)

    @Option(help: "Floats in the body.") var floats = 784
    @Option(help: "Timed repetitions (the median is reported).") var iterations = 2000

    func run() {
        let r = ParseBenchmark.run(floats: floats, iterations: iterations)
        func fixed(_ v: Double, _ digits: Double) -> String { String((v * digits).rounded() / digits) }
        print(
            "floats=\(floats) swerve_us=\(fixed(r.oursMicros, 10)) jansson_us=\(fixed(r.janssonMicros, 10)) "
                + "ratio=\(fixed(r.oursMicros / r.janssonMicros, 100))")
    }
}
