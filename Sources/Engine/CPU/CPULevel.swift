import CKernels
import Glibc

/// The instruction-set level the engine's hand-written kernels run at, chosen once per process
/// from what the CPU and the OS support (`CPUFeatures.host`), or from `SWERVE_CPU_LEVEL`.
///
/// - `avx2` (x86-64-v3: AVX2, FMA, BMI2): the kernels written in Swift, which the `Tensors` and
///   `Engine` targets are compiled for (Package.swift). Every level includes it.
/// - `avx512` (AVX-512 F, BW, VL, DQ, with the OS saving ZMM state): the kernels of the C target
///   `CKernels` (`__attribute__((target))` functions) where one exists (the packed SGEMM of Conv,
///   Winograd, Gemm and MatMul), the `avx2` kernels elsewhere. VNNI and BF16 are noted in
///   `CPUFeatures`: the integer GEMM uses VNNI (`IntegerGemm.Path`), BF16 no kernel yet.
///
/// Kernels read `CPULevel.current` once per call on the calling thread (before splitting work
/// between threads) and pass it down; tests run each level with `withLevel`. Thread-safe.
public enum CPULevel: String, Sendable, CaseIterable, CustomStringConvertible {
    case avx2
    case avx512

    public var description: String { rawValue }

    /// The level's name with what it needs, for logs and `swerve devices`.
    public var summary: String {
        switch self {
        case .avx2: return "avx2 (x86-64-v3: AVX2, FMA, BMI2)"
        case .avx512: return "avx512 (AVX-512 F/BW/VL/DQ)"
        }
    }

    /// Parses a `SWERVE_CPU_LEVEL` value: `avx2` (or `x86-64-v3`), `avx512` (or `avx-512`,
    /// `x86-64-v4`); case-insensitive. nil for anything else.
    public init?(name: String) {
        switch name.lowercased() {
        case "avx2", "x86-64-v3", "v3": self = .avx2
        case "avx512", "avx-512", "x86-64-v4", "v4": self = .avx512
        default: return nil
        }
    }

    /// The level of this process: `CPULevelChoice.process.level`.
    public static var active: CPULevel { CPULevelChoice.process.level }

    /// The level kernels use on this thread: the one `withLevel` set, else `active`.
    @inline(__always)
    public static var current: CPULevel {
        if let own = pthread_getspecific(threadLevel) { return CPULevel.allCases[Int(bitPattern: own) - 1] }
        return active
    }

    private static let threadLevel: pthread_key_t = {
        var key = pthread_key_t()
        let created = pthread_key_create(&key, nil)
        precondition(created == 0, "pthread_key_create failed: \(created)")
        return key
    }()

    /// Runs `body` with `current` = `level` on this thread (tests: each level against the scalar
    /// reference in one process). `level` must be supported (`CPUFeatures.host.supports`).
    public static func withLevel<R>(_ level: CPULevel, _ body: () throws -> R) rethrows -> R {
        precondition(CPUFeatures.host.supports(level), "CPU level \(level) is not supported by this CPU")
        let previous = pthread_getspecific(threadLevel)
        let index = CPULevel.allCases.firstIndex(of: level)! + 1
        pthread_setspecific(threadLevel, UnsafeRawPointer(bitPattern: index))
        defer { pthread_setspecific(threadLevel, previous) }
        return try body()
    }
}

/// What cpuid and xgetbv report about the CPU the process runs on, read once (`host`).
public struct CPUFeatures: Sendable, Equatable {
    public var avx2 = false, fma = false, f16c = false, bmi1 = false, bmi2 = false, lzcnt = false, movbe = false
    /// The OS saves YMM state (XCR0 bits 1-2).
    public var osYMM = false
    public var avx512f = false, avx512bw = false, avx512vl = false, avx512dq = false, avx512cd = false
    public var avx512vnni = false, avx512bf16 = false
    /// AVX-VNNI: `vpdpbusd` on ymm with a VEX encoding (Alder Lake, Zen 5); needs `osYMM`.
    public var avxVNNI = false
    /// The OS saves opmask and ZMM state (XCR0 bits 5-7).
    public var osZMM = false
    /// cpuid's display family and model (AMD Zen 4 is family 25, Zen 5 family 26).
    public var family = 0, model = 0

    public init() {}

    /// This machine's features (cpuid once, at first use).
    public static let host: CPUFeatures = {
        var raw = swerve_cpu_features()
        swerve_cpu_detect(&raw)
        var f = CPUFeatures()
        f.avx2 = raw.avx2 != 0
        f.fma = raw.fma != 0
        f.f16c = raw.f16c != 0
        f.bmi1 = raw.bmi1 != 0
        f.bmi2 = raw.bmi2 != 0
        f.lzcnt = raw.lzcnt != 0
        f.movbe = raw.movbe != 0
        f.osYMM = raw.os_ymm != 0
        f.avx512f = raw.avx512f != 0
        f.avx512bw = raw.avx512bw != 0
        f.avx512vl = raw.avx512vl != 0
        f.avx512dq = raw.avx512dq != 0
        f.avx512cd = raw.avx512cd != 0
        f.avx512vnni = raw.avx512_vnni != 0
        f.avx512bf16 = raw.avx512_bf16 != 0
        f.osZMM = raw.os_zmm != 0
        f.avxVNNI = raw.avx_vnni != 0
        f.family = Int(raw.family)
        f.model = Int(raw.model)
        return f
    }()

    /// What `level` needs that this CPU or OS lacks (empty: supported).
    public func missing(for level: CPULevel) -> [String] {
        #if arch(x86_64)
        var need: [(String, Bool)] = [
            ("avx2", avx2), ("fma", fma), ("f16c", f16c), ("bmi1", bmi1), ("bmi2", bmi2), ("lzcnt", lzcnt),
            ("movbe", movbe), ("OS YMM state", osYMM),
        ]
        if level == .avx512 {
            need += [
                ("avx512f", avx512f), ("avx512bw", avx512bw), ("avx512vl", avx512vl), ("avx512dq", avx512dq),
                ("OS ZMM state", osZMM),
            ]
        }
        return need.filter { !$0.1 }.map(\.0)
        #else
        return level == .avx2 ? [] : ["x86-64"]
        #endif
    }

    public func supports(_ level: CPULevel) -> Bool { missing(for: level).isEmpty }

    /// The best level this CPU supports (`avx2` when none is: the engine's baseline, which the
    /// executable's start-up check guards).
    public var bestLevel: CPULevel { supports(.avx512) ? .avx512 : .avx2 }

    /// The levels this CPU supports, lowest first.
    public var supportedLevels: [CPULevel] { CPULevel.allCases.filter { supports($0) } }

    /// The ISA flags that matter to the engine, space-separated (`avx2 fma avx512f ... avx512_bf16`).
    public var flags: String {
        let all: [(String, Bool)] = [
            ("avx2", avx2), ("fma", fma), ("f16c", f16c), ("bmi2", bmi2), ("avx512f", avx512f), ("avx512bw", avx512bw),
            ("avx512vl", avx512vl), ("avx512dq", avx512dq), ("avx512cd", avx512cd), ("avx512_vnni", avx512vnni),
            ("avx512_bf16", avx512bf16), ("avx_vnni", avxVNNI),
        ]
        let present = all.filter(\.1).map(\.0)
        return present.isEmpty ? "(none)" : present.joined(separator: " ")
    }
}

/// How the process's level was chosen: detected, or asked for with `SWERVE_CPU_LEVEL` (and
/// whether that request could be honoured). Made once (`process`).
public struct CPULevelChoice: Sendable, Equatable {
    public let level: CPULevel
    /// The `SWERVE_CPU_LEVEL` value, if set and not empty.
    public let requested: String?
    /// Why the request was not followed (an unknown name, a level the CPU lacks); nil otherwise.
    public let problem: String?

    /// Chooses from the features and the environment variable's value (a pure function, tested).
    public static func choose(features: CPUFeatures, requested: String?) -> CPULevelChoice {
        let best = features.bestLevel
        guard let requested, !requested.isEmpty else { return CPULevelChoice(level: best, requested: nil, problem: nil) }
        guard let asked = CPULevel(name: requested) else {
            return CPULevelChoice(
                level: best, requested: requested,
                problem: "SWERVE_CPU_LEVEL=\(requested) is not a level; use one of "
                    + CPULevel.allCases.map(\.rawValue).joined(separator: ", "))
        }
        let missing = features.missing(for: asked)
        if !missing.isEmpty {
            return CPULevelChoice(
                level: best, requested: requested,
                problem: "SWERVE_CPU_LEVEL=\(requested): this CPU lacks \(missing.joined(separator: ", ")); "
                    + "supported: \(features.supportedLevels.map(\.rawValue).joined(separator: ", "))")
        }
        return CPULevelChoice(level: asked, requested: requested, problem: nil)
    }

    /// The process's choice: the host's features and `SWERVE_CPU_LEVEL` at first use. A request
    /// that cannot be followed falls back to the best supported level (never an instruction the
    /// CPU lacks); the executable refuses to start on it instead (`problem`).
    public static let process: CPULevelChoice = choose(
        features: .host, requested: getenv("SWERVE_CPU_LEVEL").map { String(cString: $0) })

    /// One line for logs and `swerve devices`: level, how it was chosen, the CPU and its flags.
    public var report: String {
        let how = requested.map { problem == nil ? "SWERVE_CPU_LEVEL=\($0)" : "detected; SWERVE_CPU_LEVEL=\($0) ignored" }
            ?? "detected"
        let f = CPUFeatures.host
        return "\(level.summary), \(how); cpu family \(f.family) model \(f.model) (\(CPUModel.name)); flags: \(f.flags)"
    }
}

/// The CPU's model name as the kernel reports it (`/proc/cpuinfo`), for reports and benchmarks.
public enum CPUModel {
    public static let name: String = {
        guard let file = fopen("/proc/cpuinfo", "r") else { return "unknown" }
        defer { fclose(file) }
        var line: UnsafeMutablePointer<CChar>? = nil
        var capacity = 0
        defer { free(line) }
        while getline(&line, &capacity, file) > 0 {
            let text = String(cString: line!)
            if text.hasPrefix("model name"), let colon = text.firstIndex(of: ":") {
                return text[text.index(after: colon)...].trimmingCharacters(in: " \t\n")
            }
        }
        return "unknown"
    }()
}

extension Substring {
    fileprivate func trimmingCharacters(in set: String) -> String {
        var s = self
        while let c = s.first, set.contains(c) { s.removeFirst() }
        while let c = s.last, set.contains(c) { s.removeLast() }
        return String(s)
    }
}
