#!/usr/bin/env bash
# Devices that can reach only their hub: a network namespace joined to the
# host by a veth pair. custos-gateway listens on the host end of the pair;
# custosd listens on the host's loopback, which the namespace cannot reach.
# Devices run inside the namespace: talking to the cloud directly fails, and
# through the gateway they provision. Needs root and `ip netns`; elsewhere it
# says so and exits 77 (CTest: skipped).
set -euo pipefail

skip() {
    echo "SKIP: $* (this test needs root and a working 'ip netns')"
    exit 77
}
[ "$(id -u)" = 0 ] || skip "not running as root"
command -v ip >/dev/null || skip "no 'ip' command (iproute2)"
NS=custos-gw-$$
ip netns add "$NS" 2>/dev/null || skip "cannot create a network namespace"
ip netns del "$NS"

source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/serve_lib.sh"
NET=10.231.$((RANDOM % 250 + 1))
GW_HOST=$NET.1
source "$(dirname "$0")/gateway_lib.sh"

VH=cgw$$h
VN=cgw$$n
netns_cleanup() {
    ip netns del "$NS" 2>/dev/null || true
    ip link del "$VH" 2>/dev/null || true
    serve_cleanup
}
trap netns_cleanup EXIT

step "a namespace $NS joined by a veth pair: host $NET.1, devices $NET.2"
ip netns add "$NS"
ip link add "$VH" type veth peer name "$VN"
ip link set "$VN" netns "$NS"
ip addr add "$NET.1/30" dev "$VH"
ip link set "$VH" up
ip netns exec "$NS" ip addr add "$NET.2/30" dev "$VN"
ip netns exec "$NS" ip link set "$VN" up
ip netns exec "$NS" ip link set lo up

in_ns() {
    ip netns exec "$NS" "$@"
}

step "custosd on the host's loopback; the hub provisioned; the gateway on $GW_HOST"
gw_setup
start_gateway
in_ns curl -sS --max-time 5 --cacert "$CA" -o /dev/null "$GWURL/device/v1/requests/x" 2>"$T/curl.err" ||
    fail "the gateway is not reachable from the namespace: $(cat "$T/curl.err")"

step "from the namespace, the cloud cannot be reached directly"
for server in "$URL" "https://$NET.1:$PORT"; do
    cp "$T/pkg.mcpp" "$T/direct.mcpp"
    rm -rf "$T/dev-direct"
    expect_fail 'io_error|timeout' in_ns "$DEVICE" provision --package "$T/direct.mcpp" \
        --passphrase-file "$T/pass" --component pump --serial NS-DIRECT --device-dir "$T/dev-direct" \
        --secret-file "$T/direct.secret" --server "$server" --timeout 3
done
expect_code 200 GET "/api/v1/requests?q=NS-DIRECT"
[ "$(jq '.items | length' "$T/body")" = 0 ] || fail "a device in the namespace reached the cloud"

step "devices in the namespace provision through the gateway"
pids=()
for i in 1 2 3 4 5; do
    cp "$T/pkg.mcpp" "$T/n$i.mcpp"
    bg_start "prov-n$i" in_ns "$DEVICE" provision --package "$T/n$i.mcpp" --passphrase-file "$T/pass" \
        --component pump --serial "NS-000$i" --device-dir "$T/dev-n$i" --secret-file "$T/n$i.secret" \
        --server "$GWURL" --timeout "$GW_WAIT"
    pids+=("$BG_PID")
done
for i in 1 2 3 4 5; do
    gw_expect_exit "${pids[$((i - 1))]}" 0 "n$i"
done
expect_code 200 GET "/api/v1/requests?q=NS-0&limit=50"
jq -e --arg gw "$HUB_ID" '[.items[] | select(.state == "provisioned" and .via == "gateway" and .gateway.device_id == $gw)] | length == 5' \
    "$T/body" >/dev/null || fail "not all 5 devices are provisioned via the gateway: $(jq -c '[.items[] | {serial, state, via}]' "$T/body")"
grep -q "\"client\":\"$NET.2\"" "$T/gw.log" || fail "the gateway log does not show the devices' address $NET.2"
stop_gateway
echo "PASS: gateway_netns"
