#!/usr/bin/env bash
# make bench: devices per second provisioned through one custos-gateway
# versus directly to custosd, in the same run on the same machine, printed
# as a ratio. Every device is a real `custos-device provision` process that
# resumes a request made beforehand (identity generation is not timed), so
# both paths cost the device the same: submit, poll, install, receipt; the
# gateway adds its hop, its durable queue and its upstream batches, and a
# device behind it waits at least the 1 s retry_after once (its request is
# answered "pending" at once, before the cloud has seen it).
#   bench/bench_gateway.sh BUILD_DIR   (BENCH_GW_DEVICES, BENCH_GW_CONCURRENCY, BENCH_GW_ROUNDS)
set -euo pipefail
export CUSTOS_BIN=$(cd "${1:?usage: bench_gateway.sh BUILD_DIR}" && pwd)
N=${BENCH_GW_DEVICES:-200}
C=${BENCH_GW_CONCURRENCY:-50}
R=${BENCH_GW_ROUNDS:-2}
here=$(cd "$(dirname "$0")/.." && pwd)
source "$here/tests/integration/lib.sh"
source "$here/tests/integration/serve_lib.sh"
source "$here/tests/integration/gateway_lib.sh"
GW_WAIT=600

gw_setup >/dev/null
start_gateway
# The gateway's own access log lines would cost it what custosd's --quiet saves.
stop_gateway
start_gateway_quiet() {
    "$GATEWAY" --device-dir "$T/hub" --secret-file "$T/hub.secret" --upstream "$URL" \
        --listen "$GW_HOST:$GWPORT" --queue "$T/queue" --device-rate 1e6 --device-burst 1e6 \
        --workers 4 --quiet 2>>"$T/gw.log" &
    GW_PID=$!
    BG_PIDS+=("$GW_PID")
    sleep 0.5
}
keep_log
stop_custosd
start_custosd_on "$T/data" "127.0.0.1:$PORT" --device-rate 1e6 --device-burst 1e6 --quiet
start_gateway_quiet

# make_requests PREFIX: N identities and requests, offline, in parallel.
make_requests() {
    seq 1 "$N" | xargs -P "$(nproc)" -I{} "$DEVICE" request --package "$T/pkg.mcpp" \
        --passphrase-file "$T/pass" --component pump --serial "$1-{}" --device-dir "$T/$1-{}" \
        --secret-file "$T/$1-{}.secret" --keep-package >/dev/null
}

# provision_all PREFIX SERVER: every device of PREFIX resumes and provisions
# through SERVER, C at a time; prints the wall time in seconds.
provision_all() {
    local t0 t1
    t0=$(date +%s.%N)
    seq 1 "$N" | xargs -P "$C" -I{} sh -c '"$0" provision --package "$1" --passphrase-file "$2" \
        --component pump --serial "$3-$4" --device-dir "$5/$3-$4" --secret-file "$5/$3-$4.secret" \
        --server "$6" --timeout 600 >/dev/null 2>"$5/$3-$4.err" || { echo "device $3-$4 failed" >&2; exit 255; }' \
        "$DEVICE" "$T/absent.mcpp" "$T/pass" "$1" {} "$T" "$2"
    t1=$(date +%s.%N)
    echo "$t1 - $t0" | bc -l
}

echo "== custos-gateway (bench/bench_gateway.sh): $N devices per run, $C in flight, $R rounds" \
    "alternating direct and gateway; custos-device processes"
for r in $(seq 1 "$R"); do
    make_requests "d$r"
    make_requests "g$r"
done
sum_d=0 sum_g=0
for r in $(seq 1 "$R"); do
    wall_d=$(provision_all "d$r" "$URL")
    wall_g=$(provision_all "g$r" "$GWURL")
    printf 'round %d: direct %6.1f devices/s (%.1f s), through the gateway %6.1f devices/s (%.1f s)\n' \
        "$r" "$(echo "$N / $wall_d" | bc -l)" "$wall_d" "$(echo "$N / $wall_g" | bc -l)" "$wall_g"
    sum_d=$(echo "$sum_d + $wall_d" | bc -l)
    sum_g=$(echo "$sum_g + $wall_g" | bc -l)
done
expect_code 200 GET "/api/v1/requests?q=g1-&limit=500"
n_gw=$(jq '[.items[] | select(.state == "provisioned" and .via == "gateway")] | length' "$T/body")
[ "$n_gw" = "$N" ] || fail "only $n_gw of $N devices are provisioned via the gateway"
rate_d=$(echo "$R * $N / $sum_d" | bc -l)
rate_g=$(echo "$R * $N / $sum_g" | bc -l)
printf 'direct to custosd        %6.1f devices/s\n' "$rate_d"
printf 'through custos-gateway   %6.1f devices/s\n' "$rate_g"
printf 'gateway / direct         %6.2f\n' "$(echo "$rate_g / $rate_d" | bc -l)"
printf 'bound of the 1 s wait    %6.1f devices/s  (%d in flight / 1 s after the submission)\n' "$C" "$C"
stop_gateway
