import Glibc

/// Memory this process may use: the cgroup's limit (v2 `memory.max`, v1 `memory.limit_in_bytes`)
/// when there is one below the machine's physical memory, else the physical memory; nil when
/// neither can be read.
func machineMemoryBytes() -> Int? {
    let pages = sysconf(Int32(_SC_PHYS_PAGES))
    let pageSize = sysconf(Int32(_SC_PAGESIZE))
    var best: Int? = nil
    if pages > 0 && pageSize > 0 {
        let (bytes, overflow) = pages.multipliedReportingOverflow(by: pageSize)
        best = overflow ? Int.max : bytes
    }
    for path in ["/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"] {
        guard let text = readSmallFile(path), let limit = Int(text), limit > 0 else { continue }  // "max": none
        if best == nil || limit < best! { best = limit }
    }
    return best
}

/// The default of `--max-buffered-body-bytes`: a quarter of the memory the process may use (the
/// rest is for models and their activations), but at least 4 bodies of the largest size accepted,
/// so that a few large requests can always be read at once.
func defaultMaxBufferedBodyBytes(maxBodySize: Int) -> Int {
    let floor = maxBodySize > Int.max / 4 ? Int.max : 4 * maxBodySize
    guard let memory = machineMemoryBytes() else { return floor }
    return max(floor, memory / 4)
}

private func readSmallFile(_ path: String) -> String? {
    guard let file = fopen(path, "r") else { return nil }
    defer { fclose(file) }
    var buffer = [CChar](repeating: 0, count: 64)
    guard fgets(&buffer, Int32(buffer.count), file) != nil else { return nil }
    let text = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    return text.filter { !$0.isWhitespace }
}
