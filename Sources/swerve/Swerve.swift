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
            Every option can also be set with an environment variable SWERVE_<OPTION>, for example \
            SWERVE_PORT=9000 or SWERVE_MODEL_STORE=/models; a flag on the command line wins.
            """,
        version: ServerInfo().version,
        subcommands: [Serve.self],
        defaultSubcommand: Serve.self)
}

/// Reads `SWERVE_<NAME>` from the environment.
func environment(_ name: String) -> String? {
    getenv("SWERVE_" + name).map { String(cString: $0) }
}
