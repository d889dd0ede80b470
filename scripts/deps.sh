#!/usr/bin/env bash
# Install the Debian packages Custos needs, or say exactly how to.
set -euo pipefail
pkgs=(build-essential cmake pkg-config clang libclang-rt-dev libssl-dev openssl libjansson-dev
      libsqlite3-dev sqlite3 libcmocka-dev libevent-dev libcurl4-openssl-dev curl jq
      chromium iproute2)
# The browser tests run on Node.js and npm: Debian's, unless the machine has its own.
command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || pkgs+=(nodejs npm)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ]; then
  echo "deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "deps: missing Debian packages: ${missing[*]}" >&2
  echo "deps: run: sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
