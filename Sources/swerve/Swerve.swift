import API
import ArgumentParser
import CCPU
import Engine
import Glibc
import HTTP
import Logging
import ModelStore

/// The `swerve` command. With no subcommand it serves (`swerve` = `swerve serve`).
@main
struct Swerve: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "swerve",
        abstract: "Serve ONNX models over KServe V2 and TF Serving REST.",
        discussion: """
            'swerve' alone is 'swerve serve': it serves ./models on 0.0.0.0:8000, management on \
            127.0.0.1:8001. 'swerve serve --help' lists every option of the server.

            Every option can also be set with an environment variable SWERVE_<OPTION>, for example \
            SWERVE_PORT=9000 or SWERVE_MODEL_STORE=/models; a flag on the command line wins.
            """,
        version: ServerInfo().version,
        subcommands: [Serve.self, Check.self, Bench.self, BenchJSON.self, BenchGemm.self, Devices.self],
        defaultSubcommand: Serve.self)

    /// Checks the CPU before any engine code runs (the engine is built for x86-64-v3; see
    /// Package.swift), then parses the command line as usual.
    static func main() {
        if swerve_cpu_supports_engine_level() == 0 {
            let message =
                "swerve: this CPU lacks the x86-64-v3 instructions (AVX2, FMA, BMI2) this build of the engine "
                    + "uses. Rebuild for any x86-64 CPU with `SWERVE_PORTABLE=1 swift build -c release --product "
                    + "swerve` (slower kernels), or run on a newer CPU.\n"
            _ = message.withCString { write(2, $0, strlen($0)) }
            Glibc.exit(70)  // EX_SOFTWARE
        }
        // The kernels' level (CPULevel): a SWERVE_CPU_LEVEL that cannot be followed stops here
        // rather than running at another level than asked.
        if let problem = CPULevelChoice.process.problem {
            let message = "swerve: \(problem)\n"
            _ = message.withCString { write(2, $0, strlen($0)) }
            Glibc.exit(64)  // EX_USAGE
        }
        main(nil)
    }
}

/// Reads `SWERVE_<NAME>` from the environment.
func environment(_ name: String) -> String? {
    getenv("SWERVE_" + name).map { String(cString: $0) }
}
