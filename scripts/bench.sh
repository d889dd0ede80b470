#!/usr/bin/env bash
# make bench: every benchmark, each printing its figure against the limit measured in the same run.
set -euo pipefail
build=$1
echo "== openssl speed (reference, same machine, same run)"
openssl speed -seconds 1 ecdsap256 2>/dev/null | tail -n 2
echo
"$build/bench/bench_provision" "${BENCH_N:-300}"
echo
# Connected provisioning over HTTPS against custosd serve (bench/bench_serve.c):
# BENCH_SERVE_DEVICES devices, BENCH_SERVE_CONCURRENCY in flight, store on disk.
"$build/bench/bench_serve" --custosd "$build/custosd" \
    --devices "${BENCH_SERVE_DEVICES:-2000}" --concurrency "${BENCH_SERVE_CONCURRENCY:-200}"
# BENCH_SERVE_P256=1: the same with a one-key P-256 component (no P-384 proof of possession).
if [ "${BENCH_SERVE_P256:-0}" = 1 ]; then
    echo
    "$build/bench/bench_serve" --custosd "$build/custosd" --p256 \
        --devices "${BENCH_SERVE_DEVICES:-2000}" --concurrency "${BENCH_SERVE_CONCURRENCY:-200}"
fi
echo
# Devices/s through one custos-gateway versus directly to custosd, same run
# (bench/bench_gateway.sh): BENCH_GW_DEVICES per run, BENCH_GW_CONCURRENCY in flight.
bash "$(dirname "$0")/../bench/bench_gateway.sh" "$build"
echo
# The Devices page's API calls on a million devices (bench/bench_console.c):
# BENCH_CONSOLE_ROWS requests seeded into the store, then custosd serve asked 100 times each.
"$build/bench/bench_console" --custosd "$build/custosd" --rows "${BENCH_CONSOLE_ROWS:-1000000}"
