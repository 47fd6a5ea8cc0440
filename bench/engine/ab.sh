#!/usr/bin/env bash
# A/B of two swerve binaries on one model, alternated in one run (two rounds each), so that a
# change is measured against the binary before it on the same machine at the same time. Prints
# each run's median and the ratio NEW/OLD of the medians over both rounds.
# Usage (from the repo root, after `make realmodels`):
#   bench/engine/ab.sh MODEL BATCH THREADS OLD_BINARY NEW_BINARY [ITERATIONS]
#   e.g. bench/engine/ab.sh resnet18 1 1 /tmp/swerve-before .build/release/swerve 40
# MODEL is a directory of .realmodels without the exporter suffix (mlp, resnet18, mobilenet_v2,
# bert_tiny); bert_tiny runs at sequence 128 as in bench/engine/run.py.
set -euo pipefail
model=$1; batch=$2; threads=$3; old=$4; new=$5; iterations=${6:-30}
path=".realmodels/${model}_torchscript/1/model.onnx"
dims=()
[ "$model" = bert_tiny ] && dims=(--dim sequence=128)
median() {
  "$1" bench "$path" --batch "$batch" --threads "$threads" --iterations "$iterations" --warmup 3 "${dims[@]}" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["median_ms"])'
}
declare -a olds news
for round in 1 2; do
  o=$(median "$old"); n=$(median "$new")
  olds+=("$o"); news+=("$n")
  printf "round %d: old %.3f ms, new %.3f ms\n" "$round" "$o" "$n"
done
python3 -c "import sys, statistics as s; o=[float(v) for v in sys.argv[1:3]]; n=[float(v) for v in sys.argv[3:5]]; \
print(f'{sys.argv[5]} batch {sys.argv[6]} threads {sys.argv[7]}: old {s.mean(o):.3f} ms, new {s.mean(n):.3f} ms, new/old {s.mean(n)/s.mean(o):.2f}')" \
  "${olds[@]}" "${news[@]}" "$model" "$batch" "$threads"
