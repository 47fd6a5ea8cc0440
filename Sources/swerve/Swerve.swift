import API
import ArgumentParser
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
        subcommands: [Serve.self, Check.self, Bench.self, BenchJSON.self, Devices.self],
        defaultSubcommand: Serve.self)
}

/// Reads `SWERVE_<NAME>` from the environment.
func environment(_ name: String) -> String? {
    getenv("SWERVE_" + name).map { String(cString: $0) }
}
