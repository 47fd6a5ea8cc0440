import Engine

/// The device the daemon will run on, and why (logged at startup).
public struct DeviceChoice: Sendable, Equatable {
    public let device: Device
    /// One sentence: why this device (e.g. `no CUDA: libcuda.so.1 not found in: ...; using the CPU`).
    public let reason: String
    /// What the probe found, when it ran and a driver answered.
    public let cuda: CUDAReport?
}

/// Turns `--device` into a `Device`: `cpu` without probing; `auto` probes and falls back to the CPU
/// with the reason; `cuda`/`cuda:N` probes and fails with `CUDA not available: ...` when it cannot
/// run there. This build has no CUDA execution engine (`docs/gpu.md`), so a found GPU still ends on
/// the CPU for `auto` and in an error for `cuda`: the message says so.
///
/// A namespace of pure functions; the probe is passed in, so tests use a fake.
public enum DeviceSelector {
    /// Whether this build can execute plans on a CUDA device. False until the CUDA engine lands.
    public static let executionEngineAvailable = false

    /// Chooses the device for `selection`; `probe` runs at most once (never for `cpu`).
    public static func select(
        _ selection: DeviceSelection, probe: () -> Result<CUDAReport, CUDAUnavailable>
    ) throws(EngineError) -> DeviceChoice {
        switch selection {
        case .cpu:
            return DeviceChoice(device: .cpu, reason: "--device cpu", cuda: nil)
        case .auto:
            switch probe() {
            case .failure(let unavailable):
                return DeviceChoice(device: .cpu, reason: "no CUDA: \(unavailable.reason); using the CPU", cuda: nil)
            case .success(let report):
                return DeviceChoice(device: .cpu, reason: "\(report.devices[0]) found, but \(blocker(report)); using the CPU", cuda: report)
            }
        case .cuda(let ordinal):
            let hint = "; run with --device cpu (or --device auto, which falls back to the CPU)"
            let report: CUDAReport
            switch probe() {
            case .failure(let unavailable): throw .deviceUnavailable(unavailable.description + hint)
            case .success(let r): report = r
            }
            let index = ordinal ?? 0
            guard index < report.devices.count else {
                let list = report.devices.map { "\($0.index): \($0.name)" }.joined(separator: ", ")
                let noun = report.devices.count == 1 ? "device" : "devices"
                throw .deviceUnavailable(
                    "CUDA not available: cuda:\(index) does not exist; the driver sees \(report.devices.count) \(noun) (\(list)); "
                        + "run with --device cuda:0 or --device cpu")
            }
            throw .deviceUnavailable("CUDA not available: \(report.devices[index]) found, but \(blocker(report))" + hint)
        }
    }

    /// What stands between a found device and running on it: a missing cuBLAS or NVRTC, then the
    /// engine itself.
    static func blocker(_ report: CUDAReport) -> String {
        for library in [CUDALibrary.cublas, .nvrtc] {
            if let failure = report.status(of: library)?.failure { return failure }
        }
        return executionEngineAvailable ? "" : "the CUDA execution engine is not implemented yet in this build of Swerve"
    }
}
