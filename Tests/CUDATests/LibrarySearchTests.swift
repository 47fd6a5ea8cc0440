import Testing

@testable import CUDA

@Suite struct LibrarySearchTests {
    /// A machine with every kind of location: an explicit directory, a venv with wheels, a system
    /// Python with wheels, two toolkits and the driver in the multiarch directory.
    let fs = FakeFileSystem([
        "/opt/mine/libcublas.so.12",
        "/venv/lib/python3.12/site-packages/nvidia/cublas/lib/libcublas.so.12",
        "/venv/lib/python3.12/site-packages/nvidia/cuda_nvrtc/lib/libnvrtc.so.12",
        "/venv/lib/python3.12/site-packages/nvidia/nccl/include/nccl.h",  // no lib/: not a candidate
        "/usr/local/lib/python3.10/dist-packages/nvidia/cudnn/lib/libcudnn.so.9",
        "/usr/local/cuda/lib64/libcublas.so.12",
        "/usr/local/cuda-11.8/lib64/libcublas.so.11",
        "/usr/local/cuda-12.4/lib64/libcublas.so.12",
        "/usr/local/cuda-12.4/lib64/libcublas.so.13",
        "/usr/lib/x86_64-linux-gnu/libcuda.so.1",
    ])

    @Test func environmentFirstThenWheelsThenCUDAInstallThenSoname() {
        let env = ["SWERVE_CUDA_LIBRARY_PATH": "/opt/mine/:/opt/absent", "VIRTUAL_ENV": "/venv"]
        let search = LibrarySearch(environment: env, fileSystem: fs)
        #expect(
            search.directories.map(\.path) == [
                "/opt/mine",
                "/venv/lib/python3.12/site-packages/nvidia/cublas/lib",
                "/venv/lib/python3.12/site-packages/nvidia/cuda_nvrtc/lib",
                "/usr/local/lib/python3.10/dist-packages/nvidia/cudnn/lib",
                "/usr/local/cuda/lib64",
                "/usr/local/cuda-12.4/lib64",  // newest toolkit first
                "/usr/local/cuda-11.8/lib64",
                "/usr/lib/x86_64-linux-gnu",
            ])
        #expect(search.directories.map(\.origin.rawValue).prefix(2) == ["SWERVE_CUDA_LIBRARY_PATH", "Python wheel"])
        #expect(
            search.candidates(for: .cublas, fileSystem: fs) == [
                .file(path: "/opt/mine/libcublas.so.12", origin: .environment),
                .file(path: "/venv/lib/python3.12/site-packages/nvidia/cublas/lib/libcublas.so.12", origin: .pythonWheel),
                .file(path: "/usr/local/cuda/lib64/libcublas.so.12", origin: .cudaInstall),
                .file(path: "/usr/local/cuda-12.4/lib64/libcublas.so.13", origin: .cudaInstall),  // newest soname first
                .file(path: "/usr/local/cuda-12.4/lib64/libcublas.so.12", origin: .cudaInstall),
                .file(path: "/usr/local/cuda-11.8/lib64/libcublas.so.11", origin: .cudaInstall),
                .soname("libcublas.so.13"), .soname("libcublas.so.12"), .soname("libcublas.so.11"),
            ])
        #expect(
            search.candidates(for: .driver, fileSystem: fs) == [
                .file(path: "/usr/lib/x86_64-linux-gnu/libcuda.so.1", origin: .cudaInstall), .soname("libcuda.so.1"),
            ])
    }

    @Test func missingDirectoriesAreSkippedAndReported() {
        let search = LibrarySearch(environment: ["SWERVE_CUDA_LIBRARY_PATH": "/opt/absent::/opt/mine"], fileSystem: fs)
        #expect(!search.directories.map(\.path).contains("/opt/absent"))
        #expect(search.directories.first?.path == "/opt/mine")
        #expect(search.missing.first == "/opt/absent")
        #expect(search.missing.contains("/usr/lib/python3/dist-packages/nvidia/*/lib"))
    }

    @Test func nothingInstalledLeavesOnlyTheSonames() {
        let empty = FakeFileSystem([])
        let search = LibrarySearch(environment: [:], fileSystem: empty)
        #expect(search.directories.isEmpty)
        #expect(search.candidates(for: .driver, fileSystem: empty) == [.soname("libcuda.so.1")])
        #expect(search.candidates(for: .nvml, fileSystem: empty) == [.soname("libnvidia-ml.so.1")])
    }

    @Test func userAndCondaWheelsAreSearchedAfterTheVirtualenv() {
        let fs = FakeFileSystem([
            "/home/u/.local/lib/python3.11/site-packages/nvidia/cublas/lib/libcublas.so.12",
            "/conda/lib/python3.9/site-packages/nvidia/cublas/lib/libcublas.so.12",
            "/venv/lib/python3.12/site-packages/nvidia/cublas/lib/libcublas.so.12",
        ])
        let env = ["HOME": "/home/u", "CONDA_PREFIX": "/conda", "VIRTUAL_ENV": "/venv"]
        #expect(
            LibrarySearch(environment: env, fileSystem: fs).directories.map(\.path) == [
                "/venv/lib/python3.12/site-packages/nvidia/cublas/lib",
                "/conda/lib/python3.9/site-packages/nvidia/cublas/lib",
                "/home/u/.local/lib/python3.11/site-packages/nvidia/cublas/lib",
            ])
    }

    @Test func duplicatesAppearOnce() {
        let search = LibrarySearch(environment: ["SWERVE_CUDA_LIBRARY_PATH": "/usr/local/cuda/lib64"], fileSystem: fs)
        #expect(search.directories.filter { $0.path == "/usr/local/cuda/lib64" }.count == 1)
        #expect(search.directories[0].origin == .environment)
    }

    @Test func naturalOrderComparesNumbersAsNumbers() {
        #expect(LibrarySearch.naturalOrder("cuda-9.2", "cuda-12.1"))
        #expect(!LibrarySearch.naturalOrder("cuda-12.1", "cuda-9.2"))
        #expect(LibrarySearch.naturalOrder("python3.9", "python3.10"))
        #expect(LibrarySearch.naturalOrder("cuda-12", "cuda-12.1"))
    }

    @Test func realFileSystemListsAndTestsPaths() {
        let local = LocalFileSystem()
        #expect(local.isDirectory("/usr"))
        #expect(!local.isFile("/usr"))
        #expect(local.entries(of: "/").contains("usr"))
        #expect(!local.entries(of: "/").contains("."))
        #expect(local.entries(of: "/no/such/dir").isEmpty)
    }
}
