#!/usr/bin/env bash
# Batching off versus on (2 ms window) versus adaptive, one run: throughput and latency percentiles with wrk at several
# concurrencies, plus server CPU time per request on a tiny model. Usage (from the repo root):
#   bench/batching/run.sh [SECONDS_PER_POINT]
# Needs: a release build (make build), .venv (make test-deps), wrk (apt-get install wrk).
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-5}
work=$(mktemp -d)
trap 'kill $pid 2>/dev/null || true; rm -rf "$work"' EXIT
.venv/bin/python bench/batching/make_models.py "$work/models"
.build/release/swerve serve --model-store "$work/models" --host 127.0.0.1 --port 0 --management-port 0 \
  --poll-interval 0 --log-level info >"$work/log" 2>&1 &
pid=$!
# The inference port from the startup line (`event=listening ... http_port=N`): `ss` lists the
# management port too, in no fixed order.
port=""
for _ in $(seq 100); do
  port=$(sed -n 's/.*event=listening.* http_port=\([0-9]*\).*/\1/p' "$work/log" | head -1)
  [ -n "$port" ] && curl -sf "127.0.0.1:$port/v2/health/ready" >/dev/null && break
  sleep 0.2
done
body() { .venv/bin/python -c "import json,sys; n=int(sys.argv[1]); print(json.dumps({'inputs':[{'name':'x','shape':[1,n],'datatype':'FP32','data':[0.5]*n}]}))" "$1"; }
body 1024 >"$work/big.json"
body 10 >"$work/tiny.json"
cat >"$work/post.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = io.open(os.getenv("BODY"), "r"); wrk.body = f:read("*a"); f:close()
LUA
cpu() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
printf "| model | batching | connections | req/s | p50 ms | p99 ms | server CPU us/req |\n|---|---|---|---|---|---|---|\n"
for model in big tiny; do
  conns="1 8 32 64"; [ $model = tiny ] && conns="16"
  for c in $conns; do
    modes="off on adaptive"; [ $model = tiny ] && modes="off on"
    for mode in $modes; do
      before=$(cpu)
      out=$(BODY="$work/$model.json" wrk -t"$(( c < 2 ? 1 : 2 ))" -c"$c" -d"${secs}s" --latency -s "$work/post.lua" \
        "http://127.0.0.1:$port/v2/models/${model}_$mode/infer")
      after=$(cpu)
      reqs=$(echo "$out" | awk '/requests in/ {print $1}')
      rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
      p50=$(echo "$out" | awk '$1=="50%" {print $2}')
      p99=$(echo "$out" | awk '$1=="99%" {print $2}')
      non2xx=$(echo "$out" | awk '/Non-2xx/ {print $4}')
      cpu_us=$(awk -v t=$((after - before)) -v n="$reqs" -v hz="$(getconf CLK_TCK)" 'BEGIN {printf "%.0f", t / hz * 1e6 / n}')
      printf "| %s | %s | %s | %s | %s | %s | %s |%s\n" "$model" "$mode" "$c" "$rps" "$p50" "$p99" "$cpu_us" "${non2xx:+ non-2xx: $non2xx}"
    done
  done
done
