#!/usr/bin/env bash
# Throughput of the tiny digits model with metrics on and off (and with the access log), in one
# run, alternating the configurations so drift hits all of them alike. The access log goes to a file.
# Usage: bench/operations_overhead.sh [swerve binary] [seconds per run] [rounds]
set -euo pipefail
BIN=${1:-.build/release/swerve}
SECONDS_PER_RUN=${2:-10}
ROUNDS=${3:-3}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
command -v wrk >/dev/null || { echo "needs wrk (apt-get install wrk)" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cat > "$work/post.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = io.open("$ROOT/docs/examples/digit.json")
wrk.body = f:read("*a")
f:close()
LUA
run() {  # name, flags...
  local name=$1; shift
  "$BIN" serve --model-store "$ROOT/models" --host 127.0.0.1 --port 0 --management-port 0 \
    --poll-interval 0 "$@" 2> "$work/log" &
  local pid=$!
  local port=""
  for _ in $(seq 100); do
    port=$(sed -n 's/.*http_port=\([0-9]*\).*/\1/p' "$work/log" | head -1)
    [ -n "$port" ] && break
    sleep 0.1
  done
  curl -sf -o /dev/null "http://127.0.0.1:$port/v2/models/digits/infer" -d @"$ROOT/docs/examples/digit.json"
  local before after out rps requests
  before=$(awk '{print $14 + $15}' "/proc/$pid/stat")
  out=$(wrk -t1 -c16 -d"${SECONDS_PER_RUN}s" -s "$work/post.lua" "http://127.0.0.1:$port/v2/models/digits/infer")
  after=$(awk '{print $14 + $15}' "/proc/$pid/stat")
  kill -TERM "$pid"; wait "$pid" || true
  rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  requests=$(echo "$out" | awk '/requests in/ {print $1}')
  # server CPU (user + system) per request, microseconds; less sensitive to a busy machine than req/s
  echo "$name $rps $(awk -v t=$((after - before)) -v n="$requests" -v hz="$(getconf CLK_TCK)" 'BEGIN {printf "%.1f", t / hz / n * 1e6}')"
}
for round in $(seq "$ROUNDS"); do
  run metrics-off --no-metrics
  run metrics-on
  run metrics-on+access-log --access-log
done | awk '{sum[$1]+=$2; cpu[$1]+=$3; n[$1]++; print} END {print "--- mean: req/s, server CPU us/request"; for (k in sum) printf "%s %.0f %.1f\n", k, sum[k]/n[k], cpu[k]/n[k]}'
