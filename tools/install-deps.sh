#!/usr/bin/env bash
# Installs the Debian packages Swerve needs to build, run and test, when they are missing.
# Usage: tools/install-deps.sh [--test]   (--test adds what `make test` needs)
set -euo pipefail
packages=(libmicrohttpd-dev libjansson-dev libopenblas-dev pkg-config)
if [ "${1:-}" = "--test" ]; then
  packages+=(curl libb64-0d)  # libb64: perf_analyzer
  # promtool (lints /metrics) and headless Chromium (status page test); ~15 s and ~40 s to install.
  packages+=(prometheus chromium)
  python3 -m venv --help >/dev/null 2>&1 && python3 -c 'import ensurepip' 2>/dev/null || packages+=(python3-venv)
fi
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
if [ "$(id -u)" -ne 0 ]; then
  echo "Swerve needs these Debian packages, which are not installed: ${missing[*]}" >&2
  echo "Install them as root, then run make again:  sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
echo "installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# kubectl renders the kustomize manifests in the deployment tests. Best effort: not every apt
# source has it, and the test says how to get it when it is missing.
if [ "${1:-}" = "--test" ] && ! command -v kubectl >/dev/null 2>&1 && [ "$(id -u)" -eq 0 ]; then
  apt-get install -y -qq --no-install-recommends kubectl 2>/dev/null \
    || echo "note: kubectl is not available from apt here; the deployment tests need kubectl >= 1.27 on PATH" >&2
fi
