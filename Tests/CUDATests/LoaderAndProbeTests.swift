import Testing

@testable import CUDA

@Suite struct LoaderAndProbeTests {
    let driverPath = "/usr/lib/x86_64-linux-gnu/libcuda.so.1"

    func loader(_ files: [String], _ libraries: [String: FakeSymbols], env: [String: String] = [:]) -> LibraryLoader {
        LibraryLoader(environment: env, fileSystem: FakeFileSystem(files), linker: FakeLinker(libraries))
    }

    @Test func missingDriverNamesTheLibraryTheDirectoriesAndTheLinkersReason() {
        let l = loader(["/usr/local/cuda/lib64/libcublas.so.12", "/usr/lib/x86_64-linux-gnu/libc.so.6"], [:], env: ["SWERVE_CUDA_LIBRARY_PATH": "/opt/absent"])
        #expect(throws: CUDAUnavailable.self) { try l.load(.driver) }
        let message = loadFailure(l, .driver)
        #expect(message.hasPrefix("CUDA not available: libcuda.so.1 not found in: /usr/local/cuda/lib64, /usr/lib/x86_64-linux-gnu"))
        #expect(message.contains("nor by the dynamic linker (libcuda.so.1: cannot open shared object file"))
        #expect(message.contains("absent: /opt/absent"))
        #expect(message.contains("set SWERVE_CUDA_LIBRARY_PATH"))
    }

    @Test func aFileThatFailsToLoadIsReportedAndTheSearchGoesOn() throws {
        let files = ["/opt/a/libcublas.so.12", "/usr/local/cuda/lib64/libcublas.so.12"]
        let l = loader(files, ["/usr/local/cuda/lib64/libcublas.so.12": Fakes.cublas()], env: ["SWERVE_CUDA_LIBRARY_PATH": "/opt/a"])
        #expect(try l.load(.cublas).location == "/usr/local/cuda/lib64/libcublas.so.12")
        let broken = loader(["/opt/a/libcublas.so.12"], [:], env: ["SWERVE_CUDA_LIBRARY_PATH": "/opt/a"])
        #expect(loadFailure(broken, .cublas).contains("found /opt/a/libcublas.so.12 but could not load it (/opt/a/libcublas.so.12: cannot open"))
    }

    @Test func theEnvironmentDirectoryWinsOverTheStandardOnes() throws {
        let files = ["/opt/a/libcuda.so.1", driverPath]
        let l = loader(files, ["/opt/a/libcuda.so.1": Fakes.driver(), driverPath: Fakes.driver()], env: ["SWERVE_CUDA_LIBRARY_PATH": "/opt/a"])
        #expect(try l.load(.driver).location == "/opt/a/libcuda.so.1")
    }

    @Test func theSonameIsTriedLast() throws {
        let l = loader([], ["libcuda.so.1": Fakes.driver()])
        #expect(try l.load(.driver).location == "libcuda.so.1")
    }

    @Test func cuInitNoDeviceIsExplained() {
        let probe = CUDAProbe(loader: loader([driverPath], [driverPath: Fakes.driver(noDevice: true)]))
        #expect(
            probeFailure(probe)
                == "CUDA not available: cuInit returned 100 (CUDA_ERROR_NO_DEVICE: no CUDA-capable device is detected)")
        let named = CUDAProbe(loader: loader([driverPath], [driverPath: Fakes.driver(noDevice: true, errorNames: true)]))
        #expect(probeFailure(named) == "CUDA not available: cuInit returned 100 (CUDA_ERROR_FAKE_NAME)")
    }

    @Test func aMissingSymbolNamesIt() {
        let probe = CUDAProbe(loader: loader([driverPath], [driverPath: Fakes.driver(dropping: "cuDeviceTotalMem_v2")]))
        #expect(probeFailure(probe).contains("\(driverPath) has no symbol cuDeviceTotalMem_v2"))
    }

    @Test func aWorkingDriverListsDevicesAndLibraries() throws {
        let nvrtc = "/venv/lib/python3.12/site-packages/nvidia/cuda_nvrtc/lib/libnvrtc.so.12"
        let l = loader([driverPath, nvrtc], [driverPath: Fakes.driver(), nvrtc: Fakes.nvrtc(), "libnvidia-ml.so.1": Fakes.nvml()], env: ["VIRTUAL_ENV": "/venv"])
        let report = try CUDAProbe(loader: l).run().get()
        #expect(report.driverVersion == 12080 && report.driverVersionText == "12.8")
        #expect(report.driverLocation == driverPath)
        #expect(
            report.devices == [
                CUDADeviceInfo(index: 0, name: "Fake H200 #0", totalMemoryBytes: 141 << 30),
                CUDADeviceInfo(index: 1, name: "Fake H200 #1", totalMemoryBytes: (141 << 30) + 1),
            ])
        #expect(report.status(of: .nvrtc) == LibraryStatus(library: .nvrtc, location: nvrtc, version: "12.8", failure: nil))
        #expect(report.status(of: .nvml)?.location == "libnvidia-ml.so.1")
        #expect(report.status(of: .cublas)?.failure?.hasPrefix("libcublas.so.13, libcublas.so.12 or libcublas.so.11 not found in:") == true)
        #expect(report.status(of: .cudnn)?.location == nil)
    }

    @Test func theRealDriverIsAbsentHereOrAnswers() {
        // On a machine without an NVIDIA driver (CI) this is the message `--device cuda` prints.
        switch CUDAProbe(loader: .system()).run() {
        case .failure(let error):
            #expect(error.description.hasPrefix("CUDA not available: "))
            // Either the library is missing or a named driver call failed.
            #expect(
                error.reason.hasPrefix("libcuda.so.1 not found in: ") || error.reason.hasPrefix("cuInit returned ")
                    || error.reason.contains("sees no CUDA device"), "\(error)")
        case .success(let report):
            #expect(!report.devices.isEmpty)
        }
    }

    func probeFailure(_ probe: CUDAProbe) -> String {
        switch probe.run() {
        case .failure(let error): return error.description
        case .success: return "probe succeeded"
        }
    }
}

/// The message of the `CUDAUnavailable` that loading `library` throws ("" when it loads).
func loadFailure(_ loader: LibraryLoader, _ library: CUDALibrary) -> String {
    do {
        _ = try loader.load(library)
        return ""
    } catch {
        return error.description
    }
}
