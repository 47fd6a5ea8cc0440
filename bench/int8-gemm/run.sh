#!/usr/bin/env bash
# The int8 GEMM (IntegerGemm) against the float32 packed SGEMM at BERT-base (sequence 128) and
# resnet50 (224 x 224, batch 1, im2col) shapes, 1 and 2 threads, medians of alternated runs; prints
# the CPU model, its flags and the kernels chosen first. Usage (from the repo root):
#   bench/int8-gemm/run.sh [SWERVE_BINARY] [extra bench-gemm options]
# Needs a release build (make build). SWERVE_CPU_LEVEL=avx2 measures the AVX2 / AVX-VNNI path.
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=${1:-.build/release/swerve}
shift || true
exec "$bin" bench-gemm --threads 1 --threads 2 --iterations 30 "$@"
