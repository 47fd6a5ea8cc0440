#!/usr/bin/env bash
# GPU checks for the CUDA device (issue 8, docs/gpu.md). The GPU machine keeps nothing and has no
# Swift toolchain, so this runs in two halves:
#
#   bench/gpu/run.sh pack [DIR]   HERE: builds a release swerve with the Swift runtime linked in
#                                 (--static-swift-stdlib, RPATH $ORIGIN/lib with --disable-new-dtags so it
#                                 also covers transitive deps), strips it and the .so files it needs that
#                                 a bare machine may lack, adds the test models and this script, and
#                                 writes DIR/swerve-gpu.tar.gz (DIR default .build-gpu-pack, git-ignored).
#   bench/gpu/run.sh gpu [DIR]    THERE, with DIR carried over: the probe (swerve devices), the daemon with
#                                 --device cuda (today: must refuse with the reason) and --device auto
#                                 (serves on the CPU, logs why, exports swerve_gpu_* from NVML), one
#                                 inference; then the CUDA-engine checks once that engine exists.
#                                 Unpacks DIR/swerve-gpu.tar.gz into DIR/swerve-gpu, writes report.txt
#                                 there, and copies it with the logs to $OUT when $OUT is set.
#
# From this repository with the project's device tool:
#   bench/gpu/run.sh pack
#   run(command: "bench/gpu/run.sh gpu .build-gpu-pack", carry: [".build-gpu-pack"])
# NVIDIA libraries are found as docs/gpu.md says (SWERVE_CUDA_LIBRARY_PATH, Python wheels, /usr/local/cuda,
# the system); set SWERVE_CUDA_LIBRARY_PATH there if cuBLAS/NVRTC live somewhere else.
set -uo pipefail

mode=${1:-}
dir=${2:-.build-gpu-pack}

pack() {
    local root scratch bin stage
    root=$(cd "$(dirname "$0")/../.." && pwd)
    scratch=${SWERVE_GPU_SCRATCH:-$root/.build-gpu}
    cd "$root" || exit 1
    swift build --scratch-path "$scratch" -c release --product swerve --static-swift-stdlib \
        -Xlinker --disable-new-dtags -Xlinker -rpath -Xlinker '$ORIGIN/lib' || exit 1
    bin="$scratch/release/swerve"
    stage="$scratch/stage/swerve-gpu"
    rm -rf "$stage" && mkdir -p "$stage/lib" "$stage/models" || exit 1
    cp "$bin" "$stage/swerve" && cp "$root/bench/gpu/run.sh" "$stage/run.sh"
    # Every shared library the binary pulls in except glibc's own and the C++ runtime, which every
    # machine has (and which must not shadow a newer system copy that cuBLAS or NVRTC need).
    ldd "$bin" | awk '/=> \// {print $3}' | while read -r lib; do
        case "$(basename "$lib")" in
            libc.so.*|libm.so.*|libpthread.so.*|libdl.so.*|librt.so.*|libutil.so.*|ld-linux*|libstdc++.so.*|libgcc_s.so.*) ;;
            *) cp -L "$lib" "$stage/lib/" ;;
        esac
    done
    # Stripped and gzipped it fits the 64 MiB a device run may carry (about 40 MB).
    strip "$stage/swerve" "$stage"/lib/*.so*
    cp -r "$root/Tests/e2e/models/mlp" "$stage/models/mlp"
    cp -r "$root/models/digits" "$stage/models/digits"
    git -C "$root" rev-parse --short HEAD > "$stage/commit.txt" 2>/dev/null || true
    rm -rf "$dir" && mkdir -p "$dir" && tar -C "$(dirname "$stage")" -czf "$dir/swerve-gpu.tar.gz" swerve-gpu || exit 1
    echo "packed $dir/swerve-gpu.tar.gz ($(du -h "$dir/swerve-gpu.tar.gz" | cut -f1)); libraries: $(ls "$stage/lib" | tr '\n' ' ')"
}

gpu() {
    if [ -f "$dir/swerve-gpu.tar.gz" ] && [ ! -x "$dir/swerve-gpu/swerve" ]; then
        tar -C "$dir" -xzf "$dir/swerve-gpu.tar.gz" || exit 2
    fi
    dir="$dir/swerve-gpu"
    local bin="$dir/swerve" report="$dir/report.txt" status=0
    [ -x "$bin" ] || { echo "no swerve binary at $bin; run 'bench/gpu/run.sh pack' on the build machine first" >&2; exit 2; }
    : > "$report"
    say() { echo "$*" | tee -a "$report"; }
    say "# bench/gpu/run.sh gpu, $(date -u +%FT%TZ), commit $(cat "$dir/commit.txt" 2>/dev/null || echo '?')"
    say "## machine"
    if command -v nvidia-smi > /dev/null; then
        say "$(uname -srm); $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | head -4)"
    else
        say "$(uname -srm); no nvidia-smi on this machine"
    fi
    say "## missing shared libraries of the binary (must be none)"
    say "$(ldd "$bin" | grep 'not found' || echo none)"

    say "## swerve devices"
    "$bin" devices > "$dir/devices.txt" 2>&1
    local probe=$?
    tee -a "$report" < "$dir/devices.txt"
    say "exit status $probe (0 = a CUDA device answered)"
    [ $probe -eq 0 ] || status=1

    say "## swerve serve --device cuda"
    local store="$dir/models"
    timeout 60 "$bin" serve --model-store "$store" --device cuda --host 127.0.0.1 --port 0 \
        --management-host 127.0.0.1 --management-port 0 --poll-interval 0 > "$dir/serve-cuda.log" 2>&1 &
    local pid=$!
    local port
    port=$(wait_port "$dir/serve-cuda.log" $pid)
    if [ -n "$port" ]; then
        say "serving on CUDA (port $port)"
        check_server "$port" "$dir/serve-cuda.log" || status=1
        kill -TERM $pid; wait $pid
    else
        wait $pid
        say "exit status $? (expected non-zero while there is no CUDA engine):"
        say "$(grep -o 'cannot start: .*' "$dir/serve-cuda.log" || tail -3 "$dir/serve-cuda.log")"
        grep -q 'CUDA not available' "$dir/serve-cuda.log" || status=1
    fi

    say "## swerve serve --device auto"
    timeout 120 "$bin" serve --model-store "$store" --device auto --host 127.0.0.1 --port 0 \
        --management-host 127.0.0.1 --management-port 0 --poll-interval 0 --max-batch-size 8 > "$dir/serve-auto.log" 2>&1 &
    pid=$!
    port=$(wait_port "$dir/serve-auto.log" $pid)
    if [ -n "$port" ]; then
        say "$(grep -o 'msg="device selected".*' "$dir/serve-auto.log")"
        check_server "$port" "$dir/serve-auto.log" || status=1
        kill -TERM $pid; wait $pid
    else
        wait $pid; say "did not start (exit status $?):"; say "$(tail -5 "$dir/serve-auto.log")"; status=1
    fi

    say "## CUDA engine: conformance and real models against the CPU and onnxruntime"
    if grep -q 'execution engine is not implemented yet' "$dir/devices.txt"; then
        say "SKIPPED: this build has no CUDA execution engine (docs/gpu.md, 'What is not built')."
    else
        # To be written with the engine: the conformance cases and the real exports run with
        # SessionOptions(device: .cuda(0)) against the CPU and onnxruntime (same tolerances), and
        # bench/engine-style timings against PyTorch eager on the same GPU, batch 1/32/128.
        say "NOT WRITTEN: the CUDA engine exists but this script has no conformance step yet."
        status=1
    fi
    say "## result: $([ $status -eq 0 ] && echo ok || echo FAILED)"
    if [ -n "${OUT:-}" ]; then cp "$report" "$dir"/*.log "$dir/devices.txt" "$OUT/" 2>/dev/null; fi
    exit $status
}

# Waits for the daemon's "http_port=N" line; prints N, or nothing when the process ended first.
wait_port() {
    local log=$1 pid=$2 i
    for i in $(seq 1 600); do
        local p
        p=$(grep -o 'http_port=[0-9]*' "$log" 2>/dev/null | head -1 | cut -d= -f2)
        if [ -n "$p" ]; then echo "$p"; return; fi
        kill -0 "$pid" 2>/dev/null || return
        sleep 0.1
    done
}

# One V2 inference on mlp (checked against numpy when it is there) and the swerve_gpu_* metrics.
check_server() {
    local port=$1 log=$2
    python3 - "$port" <<'PY' 2>&1 | tee -a "$report"
import json, sys, time, urllib.request
base = f"http://127.0.0.1:{sys.argv[1]}"
for _ in range(600):
    try:
        if urllib.request.urlopen(base + "/v2/health/ready").status == 200:
            break
    except Exception:
        time.sleep(0.1)
x = [[0.1 * (i + j) for j in range(8)] for i in range(3)]
body = json.dumps({"inputs": [{"name": "input", "shape": [3, 8], "datatype": "FP32", "data": x}]}).encode()
answer = json.load(urllib.request.urlopen(urllib.request.Request(base + "/v2/models/mlp/infer", body, {"Content-Type": "application/json"})))
print("inference mlp:", answer["outputs"][0]["shape"], [round(v, 4) for v in answer["outputs"][0]["data"][:4]], "...")
metrics = urllib.request.urlopen(base + "/metrics").read().decode()
gpu = [l for l in metrics.splitlines() if l.startswith("swerve_gpu_")]
print("swerve_gpu_* metrics:", "\n  " + "\n  ".join(gpu) if gpu else "none")
sys.exit(0 if gpu else 3)
PY
}

case "$mode" in
    pack) pack ;;
    gpu) gpu ;;
    *) echo "usage: bench/gpu/run.sh pack [DIR] (on the build machine) | gpu [DIR] (on the GPU machine)" >&2; exit 2 ;;
esac
