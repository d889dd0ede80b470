#!/usr/bin/env bash
# make demo: Custos end to end over the network, with commentary.
#   - custosd serve on loopback with a fresh data directory;
#   - three devices provision themselves over the connected path (auto-approval);
#   - one connected device waits for a person: the demo approves it with `custos`;
#   - one device goes the disconnected path: upload, approve, download, install, complete;
#   - the service keeps running (Ctrl-C stops it) with the operator URL and credential shown.
# Usage: scripts/demo.sh BUILD_DIR. Files go under ./demo-out/ (removed first).
# DEMO_PORT (default 8443) is the HTTPS port; DEMO_EXIT=1 stops at the end instead of
# serving until Ctrl-C (for scripted runs).
set -euo pipefail

build=${1:?usage: scripts/demo.sh BUILD_DIR}
build=$(cd "$build" && pwd)
src=$(cd "$(dirname "$0")/.." && pwd)
for b in custosd custos-device custos; do
    [ -x "$build/$b" ] || { echo "demo: $build/$b is missing; build first (make build)" >&2; exit 1; }
done
for t in curl jq openssl; do
    command -v "$t" >/dev/null || { echo "demo: needs '$t' (make deps)" >&2; exit 1; }
done
export PATH="$build:$PATH"
unset CUSTOS_FAKE_NOW CUSTOS_TOKEN

port=${DEMO_PORT:-8443}
out=$PWD/demo-out
rm -rf "$out"
mkdir -p "$out/exchange" "$out/factory" "$out/devices"
DATA=$out/data
EX=$out/exchange
LOG=$out/custosd.log
cd "$out"

n=0
step() {
    n=$((n + 1))
    printf '\n==> step %d: %s (%s)\n' "$n" "$1" "$2"
}
show() {
    local line="$*"
    printf '    $ %s\n' "${line//$out\//}"
    "$@" 2>&1 | sed 's/^/      /'
    return "${PIPESTATUS[0]}"
}
where() {
    printf '    -> %s\n' "$*"
}

PID=
cleanup() {
    [ -n "$PID" ] && kill -TERM "$PID" 2>/dev/null && wait "$PID" 2>/dev/null
    return 0
}
trap cleanup EXIT

echo "Custos demo: infusion pumps get their identity from a Custos service on this machine."
echo "Output: $out"

step "create the CA's data directory and the first operator" "security admin, on the CA host"
custosd init --data "$DATA" | tee "$out/init.txt" | sed 's/^/      /'
ADMIN_PASSWORD=$(sed -n 's/.*password: \([A-Za-z0-9_-]*\).*/\1/p' "$out/init.txt" | head -n 1)
[ -n "$ADMIN_PASSWORD" ] || { echo "demo: custosd init printed no admin password" >&2; exit 1; }
where "data/: store, Root of Trust (data/root.pem), CA keys encrypted at rest"

step "start the service on https://127.0.0.1:$port" "operations"
custosd serve --data "$DATA" --listen "127.0.0.1:$port" --poll-interval 1 2>"$LOG" &
PID=$!
for _ in $(seq 1 100); do
    grep -q '"event":"listening"' "$LOG" 2>/dev/null && break
    kill -0 "$PID" 2>/dev/null || { cat "$LOG" >&2; echo "demo: custosd serve failed (port $port busy? set DEMO_PORT)" >&2; exit 1; }
    sleep 0.1
done
URL=https://127.0.0.1:$port
export CUSTOS_SERVER=$URL CUSTOS_CA_FILE=$DATA/root.pem XDG_CONFIG_HOME=$out/operator
where "logs: custosd.log (one JSON line per request)"

step "sign in with the operator CLI" "security admin"
printf '%s\n' "$ADMIN_PASSWORD" >"$out/admin.password"
chmod 600 "$out/admin.password"
show custos login --user admin --password-file "$out/admin.password"

step "define the system and let valid packages approve their devices" "security admin"
jq --arg url "$URL" '.services.cloud_url = $url' \
    "$src/tests/vectors/system-infusion.json" >"$out/system.json"
show custos systems create "$out/system.json"
show custos policies set --system infusion-x2 --mode package
where "policy package: requests signed by a valid package of infusion-x2 are approved at once"

step "make the provisioning package" "security admin"
printf 'demo passphrase: change me\n' >"$out/passphrase.txt"
chmod 600 "$out/passphrase.txt"
show custos packages create --system infusion-x2 --days 30 \
    --passphrase-file "$out/passphrase.txt" -o "$EX/infusion-x2.mcpp"

provision() { # serial: one device on the connected path, in the background
    local sn=$1
    cp "$EX/infusion-x2.mcpp" "$out/factory/$sn.mcpp"
    custos-device provision --package "$out/factory/$sn.mcpp" \
        --passphrase-file "$out/passphrase.txt" --component pump --serial "$sn" --model X2 \
        --firmware 2.4.1 --device-dir "$out/devices/$sn" --secret-file "$out/devices/$sn.secret" \
        --server "$URL" --timeout 120 >"$out/devices/$sn.log" 2>&1
}

step "three pumps provision themselves (connected, auto-approved)" "devices on the line"
pids=()
for sn in PX2-0001 PX2-0002 PX2-0003; do
    provision "$sn" &
    pids+=($!)
done
for p in "${pids[@]}"; do wait "$p" || { echo "demo: a device failed:"; cat "$out"/devices/*.log; exit 1; }; done
for sn in PX2-0001 PX2-0002 PX2-0003; do
    printf '      %s: %s\n' "$sn" "$(grep "^provisioned" "$out/devices/$sn.log" | tail -n 1)"
done
show custos devices list

step "a pump waits for a person: policy manual, then approve it" "approver"
show custos policies set --system infusion-x2 --mode manual
provision PX2-0004 &
waiting=$!
ID=
for _ in $(seq 1 100); do
    ID=$(custos devices list --state pending --json | jq -r '.items[0].request_id // empty')
    [ -n "$ID" ] && break
    sleep 0.2
done
[ -n "$ID" ] || { echo "demo: the waiting device never appeared" >&2; exit 1; }
where "request $ID (PX2-0004) is pending on the Devices page; the device polls"
show custos devices approve "$ID"
wait "$waiting" || { cat "$out/devices/PX2-0004.log"; exit 1; }
printf '      PX2-0004: %s\n' "$(grep "^provisioned" "$out/devices/PX2-0004.log" | tail -n 1)"

step "disconnected: a pump in the field without network" "field technician"
cp "$EX/infusion-x2.mcpp" "$out/factory/PX2-0005.mcpp"
show custos-device request --package "$out/factory/PX2-0005.mcpp" \
    --passphrase-file "$out/passphrase.txt" --component pump --serial PX2-0005 \
    --device-dir "$out/devices/PX2-0005" --secret-file "$out/devices/PX2-0005.secret"
cp "$out/devices/PX2-0005/request.mcpr" "$EX/PX2-0005.mcpr"
show custos requests upload "$EX/PX2-0005.mcpr"
ID5=$(custos devices list --search PX2-0005 --json | jq -r '.items[0].request_id')
show custos devices approve "$ID5"
show custos profiles download "$ID5" -o "$EX/PX2-0005.mccp"
show custos-device install --device-dir "$out/devices/PX2-0005" \
    --secret-file "$out/devices/PX2-0005.secret" --profile "$EX/PX2-0005.mccp"
show custos devices complete "$ID5"

step "what the Devices page shows, and the audit trail" "auditor"
show custos devices list
show custos audit verify

printf '\n==> the service is running\n\n'
printf '    web console:    %s/ (sign in as admin; the browser must trust %s, or accept the warning)\n' "$URL" "$DATA/root.pem"
printf '    URL:            %s (operator API: %s/api/v1, device protocol: %s/device/v1)\n' "$URL" "$URL" "$URL"
printf '    Root of Trust:  %s\n' "$DATA/root.pem"
printf '    operator:       admin, password: %s (shown once; also in demo-out/admin.password)\n' "$ADMIN_PASSWORD"
printf '    try:            CUSTOS_SERVER=%s CUSTOS_CA_FILE=%s XDG_CONFIG_HOME=%s custos devices list\n' \
    "$URL" "$DATA/root.pem" "$out/operator"
printf '    logs:           %s\n' "$LOG"
if [ "${DEMO_EXIT:-0}" = 1 ]; then
    echo "demo complete (DEMO_EXIT=1: stopping the service)"
    exit 0
fi
echo "    Ctrl-C stops the service."
wait "$PID"
