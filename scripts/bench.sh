#!/usr/bin/env bash
# make bench: every benchmark, each printing its figure against the limit measured in the same run.
set -euo pipefail
build=$1
echo "== openssl speed (reference, same machine, same run)"
openssl speed -seconds 1 ecdsap256 2>/dev/null | tail -n 2
echo
"$build/bench/bench_provision" "${BENCH_N:-300}"
