#!/usr/bin/env bash
# Installs the Debian packages Swerve needs to build, run and test, when they are missing.
# Usage: tools/install-deps.sh [--test]   (--test adds what `make test` needs)
set -euo pipefail
packages=(libmicrohttpd-dev libjansson-dev libopenblas-dev pkg-config)
if [ "${1:-}" = "--test" ]; then
  packages+=(curl)
  # promtool (lints /metrics) and headless Chromium (status page test); ~15 s and ~40 s to install.
  packages+=(prometheus chromium)
  python3 -m venv --help >/dev/null 2>&1 && python3 -c 'import ensurepip' 2>/dev/null || packages+=(python3-venv)
fi
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "Swerve needs these Debian packages, which are not installed: ${missing[*]}" >&2
  echo "Install them as root, then run make again:  sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
echo "installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
