import Glibc

/// The standard `process_*` metrics (as Prometheus' Go and Python clients export them), read
/// from `/proc/self` at each scrape: swift-prometheus has no process collector on Linux.
///
/// Stateless; safe from any thread.
enum ProcessMetrics {
    /// What `/proc/self/stat` says about this process.
    struct Stat {
        var cpuSeconds: Double
        var startTicks: Double
        var virtualBytes: Double
        var residentBytes: Double
    }

    /// Appends the exposition text of the process metrics that can be read.
    static func render(startTime: Double, into out: inout [UInt8]) {
        func family(_ name: String, _ type: String, _ help: String, _ value: Double) {
            out.append(contentsOf: "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n\(name) \(format(value))\n".utf8)
        }
        if let stat = readStat() {
            family("process_cpu_seconds_total", "counter", "Total user and system CPU time spent in seconds.", stat.cpuSeconds)
            family("process_resident_memory_bytes", "gauge", "Resident memory size in bytes.", stat.residentBytes)
            family("process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.", stat.virtualBytes)
        }
        if let fds = openFileDescriptors() {
            family("process_open_fds", "gauge", "Number of open file descriptors.", Double(fds))
        }
        var limit = rlimit()
        if getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 {
            family("process_max_fds", "gauge", "Maximum number of open file descriptors.", Double(limit.rlim_cur))
        }
        family(
            "process_start_time_seconds", "gauge", "Start time of the process since unix epoch in seconds.", startTime)
    }

    /// Integers without a fraction, others as Swift prints them (both valid exposition floats).
    static func format(_ v: Double) -> String {
        v == v.rounded() && abs(v) < 1e15 ? String(Int64(v)) : String(v)
    }

    /// Parses `/proc/self/stat` (fields after the parenthesised command name, which may hold spaces).
    static func readStat() -> Stat? {
        guard let text = readSmallFile("/proc/self/stat"), let close = text.lastIndex(of: ")") else { return nil }
        // Field 3 (state) is the first after ") ".
        let fields = text[text.index(after: close)...].split(separator: " ")
        func field(_ n: Int) -> Double? { n - 3 < fields.count ? Double(fields[n - 3]) : nil }
        guard let utime = field(14), let stime = field(15), let start = field(22), let vsize = field(23),
            let rss = field(24)
        else { return nil }
        let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
        let page = Double(sysconf(Int32(_SC_PAGESIZE)))
        return Stat(
            cpuSeconds: (utime + stime) / ticks, startTicks: start, virtualBytes: vsize, residentBytes: rss * page)
    }

    /// Wall-clock start of this process: boot time (`btime` in `/proc/stat`) plus the start tick.
    static func startTime() -> Double? {
        guard let stat = readStat(), let text = readSmallFile("/proc/stat") else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix("btime ") {
            guard let boot = Double(line.dropFirst(6)) else { return nil }
            return boot + stat.startTicks / Double(sysconf(Int32(_SC_CLK_TCK)))
        }
        return nil
    }

    /// Entries of `/proc/self/fd` (the directory's own descriptor included, as other clients do).
    static func openFileDescriptors() -> Int? {
        guard let dir = opendir("/proc/self/fd") else { return nil }
        defer { closedir(dir) }
        var count = 0
        while let entry = readdir(dir) {
            let isDot = withUnsafeBytes(of: entry.pointee.d_name) { name in
                name[0] == UInt8(ascii: ".") && (name[1] == 0 || (name[1] == UInt8(ascii: ".") && name[2] == 0))
            }
            if !isDot { count += 1 }
        }
        return count
    }

    /// A small text file read whole (procfs files report size 0, so read until EOF).
    static func readSmallFile(_ path: String) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n <= 0 { break }
            bytes.append(contentsOf: chunk[0..<n])
            if bytes.count > 1 << 20 { break }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
