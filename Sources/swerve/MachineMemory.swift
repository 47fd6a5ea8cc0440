import Tensors

/// The default of `--max-buffered-body-bytes`: a quarter of the memory the process may use
/// (`MemoryLimits.availableBytes`: the cgroup's limit or the machine's memory; the rest is for
/// models and their activations), but at least 4 bodies of the largest size accepted, so that a
/// few large requests can always be read at once.
func defaultMaxBufferedBodyBytes(maxBodySize: Int) -> Int {
    let floor = maxBodySize > Int.max / 4 ? Int.max : 4 * maxBodySize
    return max(floor, MemoryLimits.availableBytes / 4)
}
