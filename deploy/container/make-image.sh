#!/usr/bin/env bash
# `make image`: builds the Dockerfile's runtime stage (target `prebuilt`) around a swerve binary
# built on this machine, with podman and no image registry, then runs the container the way the
# Kubernetes manifests do (non-root, read-only root filesystem, no capabilities) and checks that it
# answers /v2/health/ready, its HEALTHCHECK and a prediction of the bundled digits model.
#
# Usage: deploy/container/make-image.sh BINARY
#   BINARY  a release build: swift build -c release --static-swift-stdlib --product swerve
# Env: IMAGE (default localhost/swerve:dev), IMAGE_WORK (podman storage and the base image tarball;
#      default /tmp/swerve-image-$UID), KEEP_RUNNING=1 leaves the container running.
# Needs root and the Debian packages podman, runc, mmdebstrap (installed when missing).
set -euo pipefail

binary=${1:?usage: make-image.sh BINARY (a release swerve binary built on this machine)}
repo=$(cd "$(dirname "$0")/../.." && pwd)
image=${IMAGE:-localhost/swerve:dev}
base_image=localhost/debian:bookworm-slim
work=${IMAGE_WORK:-/tmp/swerve-image-$(id -u)}
name=swerve-image-check-$$
t0=$(date +%s)
step() { echo "== [$(( $(date +%s) - t0 )) s] $*"; }

if [ "$(id -u)" -ne 0 ]; then
  echo "make image runs podman as root (rootful storage under $work); run it as root or with sudo" >&2
  exit 1
fi
missing=()
for p in podman runc mmdebstrap; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  step "installing ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
[ -x "$binary" ] || { echo "no executable swerve binary at $binary; build it first" >&2; exit 1; }

mkdir -p "$work"
podman=(podman --root "$work/root" --runroot "$work/run" --storage-driver vfs)

# A Debian base standing in for debian:bookworm-slim (no registry is reachable here).
if ! "${podman[@]}" image exists "$base_image"; then
  if [ ! -s "$work/base.tar" ]; then
    step "making the Debian base with mmdebstrap (minbase, no docs or man pages)"
    mmdebstrap --quiet --variant=minbase --format=tar \
      --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
      --dpkgopt='path-exclude=/usr/share/locale/*' bookworm "$work/base.tar.tmp"
    mv "$work/base.tar.tmp" "$work/base.tar"
  fi
  step "importing the base as $base_image"
  "${podman[@]}" import --quiet "$work/base.tar" "$base_image" >/dev/null
fi

step "building $image (Dockerfile target prebuilt) around $binary"
mkdir -p "$repo/.build-image"
install -m 0755 "$binary" "$repo/.build-image/swerve"
"${podman[@]}" build --quiet --isolation chroot --format docker --target prebuilt \
  --build-arg RUNTIME_IMAGE="$base_image" -t "$image" -f "$repo/Dockerfile" "$repo" >/dev/null \
  2>"$work/podman-build.log" || { echo "podman build failed:" >&2; cat "$work/podman-build.log" >&2; exit 1; }
step "built: $("${podman[@]}" image inspect --format '{{.Size}}' "$image" | awk '{printf "%.1f MB", $1/1e6}') \
(base $("${podman[@]}" image inspect --format '{{.Size}}' "$base_image" | awk '{printf "%.1f MB", $1/1e6}'))"

cleanup() {
  if [ "${KEEP_RUNNING:-0}" != 1 ]; then "${podman[@]}" rm -f "$name" >/dev/null 2>&1 || true; fi
  rm -f "$repo/.build-image/swerve"
}
trap cleanup EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
step "running it on 127.0.0.1:$port (read-only root filesystem, non-root, no capabilities)"
"${podman[@]}" run -d --name "$name" --runtime runc \
  --ulimit nofile=1024:1024 --ulimit nproc=1024:1024 \
  --read-only --cap-drop ALL --security-opt no-new-privileges \
  -p "127.0.0.1:$port:8000" "$image" >/dev/null 2>"$work/podman-run.log" \
  || { echo "podman run failed:" >&2; cat "$work/podman-run.log" >&2; exit 1; }

base="http://127.0.0.1:$port"
for _ in $(seq 1 120); do
  if [ "$(curl -s -o /dev/null -w '%{http_code}' "$base/v2/health/ready" || true)" = 200 ]; then break; fi
  if [ "$("${podman[@]}" inspect --format '{{.State.Running}}' "$name")" != true ]; then
    echo "the container exited while starting; its log:" >&2; "${podman[@]}" logs "$name" >&2; exit 1
  fi
  sleep 0.5
done
ready=$(curl -s -o /dev/null -w '%{http_code}' "$base/v2/health/ready" || true)
if [ "$ready" != 200 ]; then
  echo "GET /v2/health/ready answered '$ready', not 200, within 60 s; the container's log:" >&2
  "${podman[@]}" logs "$name" >&2; exit 1
fi
step "GET /v2/health/ready -> 200"

answer=$(curl -s --fail-with-body "$base/v2/models/digits/infer" -d @"$repo/docs/examples/digit.json")
label=$(python3 -c 'import json,sys; d=json.load(sys.stdin); print([o for o in d["outputs"] if o["name"]=="label"][0]["data"][0])' <<<"$answer")
if [ "$label" != 6 ]; then
  echo "the digits model answered label '$label', expected 6: $answer" >&2; exit 1
fi
step "POST /v2/models/digits/infer (docs/examples/digit.json) -> label 6"

"${podman[@]}" healthcheck run "$name" 2>>"$work/podman-run.log" && step "HEALTHCHECK -> healthy" \
  || { echo "the image's HEALTHCHECK failed against a ready server" >&2; exit 1; }
user=$("${podman[@]}" exec "$name" id -u)
[ "$user" = 10001 ] || { echo "the server runs as uid $user, expected 10001" >&2; exit 1; }
step "runs as uid $user"

if [ "${KEEP_RUNNING:-0}" = 1 ]; then
  step "left running as $name on $base (podman --root $work/root --runroot $work/run rm -f $name)"
  exit 0
fi
"${podman[@]}" stop --time 30 "$name" >/dev/null 2>>"$work/podman-run.log"
status=$("${podman[@]}" inspect --format '{{.State.ExitCode}}' "$name")
[ "$status" = 0 ] || { echo "swerve exited with status $status on SIGTERM; log:" >&2; "${podman[@]}" logs "$name" >&2; exit 1; }
step "SIGTERM -> exit status 0; image $image is in podman --root $work/root"
