/* A stand-in for libcuda.so.1 and libnvidia-ml.so.1, for the device-selection tests on machines
 * without a GPU (Tests/e2e/test_cli.py). It exports the entry points Swerve's probe and metrics
 * resolve with dlsym. Compile with -DFAKE_NO_DEVICE for a driver whose cuInit finds no device. */
#include <stddef.h>
#include <string.h>

int cuInit(unsigned flags) {
    (void)flags;
#ifdef FAKE_NO_DEVICE
    return 100; /* CUDA_ERROR_NO_DEVICE */
#else
    return 0;
#endif
}
int cuDriverGetVersion(int *v) { *v = 12080; return 0; }
int cuDeviceGetCount(int *n) { *n = 1; return 0; }
int cuDeviceGet(int *d, int ordinal) { *d = ordinal; return ordinal == 0 ? 0 : 101; }
int cuDeviceGetName(char *name, int len, int d) { (void)d; strncpy(name, "Fake H200", (size_t)len); return 0; }
int cuDeviceTotalMem_v2(size_t *bytes, int d) { (void)d; *bytes = (size_t)141 << 30; return 0; }

typedef struct { unsigned long long total, free, used; } nvmlMemory_t;
typedef struct { unsigned gpu, memory; } nvmlUtilization_t;
int nvmlInit_v2(void) { return 0; }
int nvmlDeviceGetCount_v2(unsigned *n) { *n = 1; return 0; }
int nvmlDeviceGetHandleByIndex_v2(unsigned i, void **h) { *h = (void *)(size_t)(i + 1); return 0; }
int nvmlDeviceGetMemoryInfo(void *h, nvmlMemory_t *m) {
    (void)h;
    m->total = 1000; m->used = 250; m->free = 750;
    return 0;
}
int nvmlDeviceGetUtilizationRates(void *h, nvmlUtilization_t *u) { (void)h; u->gpu = 40; u->memory = 10; return 0; }

/* cuBLAS and NVRTC, linked as libcublas.so.12 and libnvrtc.so.12 in the `gpu` fake: present, never called. */
int cublasCreate_v2(void **h) { (void)h; return 1; }
int cublasSgemm_v2(void) { return 1; }
int cublasSgemmStridedBatched(void) { return 1; }
int nvrtcVersion(int *major, int *minor) { *major = 12; *minor = 8; return 0; }
int nvrtcCreateProgram(void) { return 1; }
int nvrtcGetPTX(void) { return 1; }
