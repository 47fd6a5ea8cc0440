/// One of the NVIDIA libraries Swerve loads at run time with `dlopen` (never linked at build time).
///
/// Each case knows its sonames, newest first: the loader takes the first one it finds in each
/// directory. A plain value; safe anywhere.
public enum CUDALibrary: String, Sendable, CaseIterable, CustomStringConvertible {
    /// The driver API (`cuInit`, `cuMemAlloc`, ...), installed with the NVIDIA driver.
    case driver
    /// cuBLAS: sgemm and strided-batched sgemm.
    case cublas
    /// NVRTC: compiles the engine's CUDA C kernels to PTX at run time.
    case nvrtc
    /// cuDNN: convolutions, when present (optional).
    case cudnn
    /// NVML: memory and utilisation per GPU for the metrics (optional).
    case nvml

    /// File names to look for, newest major version first.
    public var sonames: [String] {
        switch self {
        case .driver: return ["libcuda.so.1"]
        case .cublas: return ["libcublas.so.13", "libcublas.so.12", "libcublas.so.11"]
        case .nvrtc: return ["libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so.11.2", "libnvrtc.so.11.1", "libnvrtc.so.11.0"]
        case .cudnn: return ["libcudnn.so.9", "libcudnn.so.8"]
        case .nvml: return ["libnvidia-ml.so.1"]
        }
    }

    /// The name used in messages: the preferred soname.
    public var description: String { sonames.count == 1 ? sonames[0] : sonames.dropLast().joined(separator: ", ") + " or " + sonames.last! }
}
