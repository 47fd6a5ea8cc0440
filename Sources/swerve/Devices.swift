import ArgumentParser
import CUDA
import Engine
import Foundation
import Glibc

/// `swerve devices`: probes CUDA the way `serve --device auto` does and prints what it found (driver,
/// devices, cuBLAS, NVRTC, cuDNN, NVML, and the device `serve` would use). Exit status 0 when a
/// CUDA device answered, 1 when CUDA is not available. `bench/gpu/run.sh` runs it first. The first
/// line is the CPU and the instruction-set level of the engine's kernels (`CPULevelChoice`).
struct Devices: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Probe for CUDA devices and the NVIDIA libraries, and say which device 'serve' would use.")

    func run() throws {
        let loader = LibraryLoader.system()
        let result = CUDAProbe(loader: loader).run()
        print(Self.report(result, search: loader.search, nvml: NVMLMonitor.open(loader: loader)), terminator: "")
        if case .failure = result { throw ExitCode(1) }
    }

    /// The printed report (a pure function of what was probed).
    static func report(
        _ result: Result<CUDAReport, CUDAUnavailable>, search: LibrarySearch, nvml: Result<NVMLMonitor, CUDAUnavailable>
    ) -> String {
        var out = "cpu: \(CPULevelChoice.process.report)\n"
        out += "searched: " + (search.directories.isEmpty ? "(no candidate directory exists)" : search.directories.map {
            "\($0.path) [\($0.origin.rawValue)]"
        }.joined(separator: ", ")) + "; then the dynamic linker's path\n"
        switch result {
        case .failure(let error):
            out += "cuda: \(error)\n"
        case .success(let report):
            out += "cuda: driver \(report.driverVersionText) (\(report.driverLocation))\n"
            for d in report.devices {
                out += "cuda:\(d.index): \(d.name), \(String(format: "%.1f", Double(d.totalMemoryBytes) / 1_073_741_824)) GiB\n"
            }
            for s in report.libraries {
                let found = s.location.map { "\($0)" + (s.version.map { " (version \($0))" } ?? "") }
                out += "\(s.library.rawValue): \(found ?? "not available: \(s.failure ?? "")")\n"
            }
        }
        if case .success(let monitor) = nvml {
            for r in monitor.readings() {
                let used = Double(r.memoryUsedBytes) / 1_073_741_824, total = Double(r.memoryTotalBytes) / 1_073_741_824
                let busy = r.utilization.map { ", \(Int($0 * 100))% busy" } ?? ""
                out += "nvml gpu \(r.index): \(String(format: "%.1f", used)) of \(String(format: "%.1f", total)) GiB used\(busy)\n"
            }
        }
        let choice = try? DeviceSelector.select(.auto) { result }
        out += "serve --device auto: \(choice.map { "\($0.device) (\($0.reason))" } ?? "cpu")\n"
        return out
    }
}
