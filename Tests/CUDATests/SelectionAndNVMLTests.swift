import Engine
import Testing

@testable import CUDA

@Suite struct SelectionAndNVMLTests {
    let report = CUDAReport(
        driverLocation: "/usr/lib/x86_64-linux-gnu/libcuda.so.1", driverVersion: 12080,
        devices: [CUDADeviceInfo(index: 0, name: "NVIDIA H200", totalMemoryBytes: 150_000_000_000)],
        libraries: [
            LibraryStatus(library: .cublas, location: "libcublas.so.12", version: nil, failure: nil),
            LibraryStatus(library: .nvrtc, location: "libnvrtc.so.12", version: "12.8", failure: nil),
        ])
    let absent = CUDAUnavailable("libcuda.so.1 not found in: /usr/lib/x86_64-linux-gnu, nor by the dynamic linker (x)")

    func message(_ selection: DeviceSelection, _ probe: Result<CUDAReport, CUDAUnavailable>) -> String {
        do {
            let choice = try DeviceSelector.select(selection) { probe }
            return "chose \(choice.device)"
        } catch {
            return error.description
        }
    }

    @Test func autoWithoutCUDAUsesTheCPUAndSaysWhy() throws {
        let choice = try DeviceSelector.select(.auto) { .failure(absent) }
        #expect(choice.device == .cpu)
        #expect(choice.reason == "no CUDA: \(absent.reason); using the CPU")
        #expect(choice.cuda == nil)
    }

    @Test func autoWithAGPUStillUsesTheCPUUntilTheEngineExists() throws {
        let choice = try DeviceSelector.select(.auto) { .success(report) }
        #expect(choice.device == .cpu)
        #expect(
            choice.reason
                == "CUDA device 0 (NVIDIA H200) found, but the CUDA execution engine is not implemented yet in this build of Swerve; using the CPU")
        #expect(choice.cuda == report)
    }

    @Test func cudaWithoutCUDAFailsNamingWhatFailed() {
        #expect(
            message(.cuda(nil), .failure(absent))
                == "CUDA not available: \(absent.reason); run with --device cpu (or --device auto, which falls back to the CPU)")
        #expect(message(.cuda(0), .failure(CUDAUnavailable("cuInit returned 100 (no device)"))).hasPrefix(
            "CUDA not available: cuInit returned 100 (no device); run with --device cpu"))
    }

    @Test func cudaWithAGPUFailsUntilTheEngineExists() {
        #expect(
            message(.cuda(0), .success(report))
                == "CUDA not available: CUDA device 0 (NVIDIA H200) found, but the CUDA execution engine is not implemented yet "
                + "in this build of Swerve; run with --device cpu (or --device auto, which falls back to the CPU)")
    }

    @Test func aMissingCuBLASIsTheReasonBeforeTheEngine() {
        let noBLAS = CUDAReport(
            driverLocation: report.driverLocation, driverVersion: 12080, devices: report.devices,
            libraries: [LibraryStatus(library: .cublas, location: nil, version: nil, failure: "libcublas.so.12 not found in: /x")])
        #expect(message(.cuda(nil), .success(noBLAS)).hasPrefix("CUDA not available: CUDA device 0 (NVIDIA H200) found, but libcublas.so.12 not found in: /x;"))
    }

    @Test func aDeviceNumberPastTheLastFails() {
        #expect(
            message(.cuda(3), .success(report))
                == "CUDA not available: cuda:3 does not exist; the driver sees 1 device (0: NVIDIA H200); run with --device cuda:0 or --device cpu")
    }

    @Test func cpuDoesNotProbe() throws {
        let choice = try DeviceSelector.select(.cpu) {
            Issue.record("the probe ran for --device cpu")
            return .failure(absent)
        }
        #expect(choice.device == .cpu)
    }

    @Test func nvmlAbsentIsAFailureNamingTheLibrary() {
        let loader = LibraryLoader(environment: [:], fileSystem: FakeFileSystem([]), linker: FakeLinker([:]))
        switch NVMLMonitor.open(loader: loader) {
        case .success: Issue.record("NVML opened from nothing")
        case .failure(let error): #expect(error.reason.hasPrefix("libnvidia-ml.so.1 not found in:"))
        }
    }

    @Test func nvmlInitFailingIsAFailure() {
        let loader = LibraryLoader(environment: [:], fileSystem: FakeFileSystem([]), linker: FakeLinker(["libnvidia-ml.so.1": Fakes.nvml(initFails: true)]))
        switch NVMLMonitor.open(loader: loader) {
        case .success: Issue.record("NVML opened though nvmlInit_v2 failed")
        case .failure(let error): #expect(error.reason == "nvmlInit_v2 in libnvidia-ml.so.1 returned 9 (no NVIDIA driver running?)")
        }
    }

    @Test func nvmlReadingsPerGPU() throws {
        let loader = LibraryLoader(environment: [:], fileSystem: FakeFileSystem([]), linker: FakeLinker(["libnvidia-ml.so.1": Fakes.nvml()]))
        let monitor = try NVMLMonitor.open(loader: loader).get()
        #expect(
            monitor.readings() == [
                GPUReading(index: 0, memoryUsedBytes: 40 << 30, memoryTotalBytes: 100 << 30, utilization: 0.75),
                GPUReading(index: 1, memoryUsedBytes: (40 << 30) + 1, memoryTotalBytes: 100 << 30, utilization: nil),
            ])
    }
}
