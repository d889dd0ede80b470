# Helpers for the gateway tests (test_gateway*.sh): a system with a hub
# component that is a gateway, the hub provisioned with custos-device, and
# custos-gateway running in front of custosd. Source after serve_lib.sh.

GATEWAY=$CUSTOS_BIN/custos-gateway
[ -x "$GATEWAY" ] || fail "$GATEWAY is missing (build first)"
GW_SYS=hubsys
GW_WAIT=${GW_WAIT:-150} # seconds a device process may take (ASan builds are slow)
GW_HOST=${GW_HOST:-127.0.0.1} # where the gateway listens (and the host devices use)

# free_port: a TCP port on 127.0.0.1 that nothing listens on now.
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# gateway_system FILE NAME GWURL: a system NAME with a pump component and a
# hub that is a gateway reachable at GWURL (services.gateways).
gateway_system() {
    cat >"$1" <<EOF
{"name": "$2", "services": {"cloud_url": "", "gateways": ["$3"]},
 "components": [
  {"name": "pump", "templates": [
    {"name": "tls", "algorithm": "ecdsa-p256", "usage": ["tls-client"], "valid_days": 365,
     "subject": "CN={serial},OU={component},O=Gateway Test"}]},
  {"name": "hub", "gateway": true, "templates": [
    {"name": "uplink", "algorithm": "ecdsa-p256", "usage": ["tls-client"], "valid_days": 365,
     "subject": "CN={serial},OU={component},O=Gateway Test"},
    {"name": "server", "algorithm": "ecdsa-p256", "usage": ["tls-server"], "valid_days": 365,
     "subject": "serialNumber={serial},OU={component},O=Gateway Test"}]}]}
EOF
}

# start_gateway [ENV=VALUE...]: custos-gateway for the hub in $T/hub on
# $GW_HOST:$GWPORT, queue $T/queue, upstream $URL; sets GW_PID. Logs are
# appended to $T/gw.log.
start_gateway() {
    local i before
    before=$(grep -c '"event":"listening"' "$T/gw.log" 2>/dev/null || true)
    env "$@" "$GATEWAY" --device-dir "$T/hub" --secret-file "$T/hub.secret" --upstream "$URL" \
        --listen "$GW_HOST:$GWPORT" --queue "$T/queue" --device-rate 2000 --device-burst 4000 \
        2>>"$T/gw.log" &
    GW_PID=$!
    BG_PIDS+=("$GW_PID")
    for i in $(seq 1 300); do
        [ "$(grep -c '"event":"listening"' "$T/gw.log" 2>/dev/null || true)" -gt "${before:-0}" ] && return 0
        kill -0 "$GW_PID" 2>/dev/null || { tail -n 20 "$T/gw.log" >&2; fail "custos-gateway exited at start"; }
        sleep 0.05
    done
    fail "custos-gateway did not start"
}

# stop_gateway [SIGNAL]: default TERM (graceful: must exit 0).
stop_gateway() {
    local sig=${1:-TERM} rc=0
    [ -n "${GW_PID:-}" ] || return 0
    kill -"$sig" "$GW_PID" 2>/dev/null || true
    { wait "$GW_PID"; } 2>/dev/null || rc=$?
    GW_PID=
    if [ "$sig" = TERM ] && [ "$rc" -ne 0 ]; then
        tail -n 20 "$T/gw.log" >&2
        fail "custos-gateway exited $rc after SIGTERM"
    fi
}

# gw_provision_bg NAME SERIAL [SERVER] [ARGS...]: custos-device provision of a
# pump through SERVER (default: the gateway) in the background, its own copy
# of the package; sets BG_PID.
gw_provision_bg() {
    local name=$1 serial=$2 server=${3:-$GWURL}
    shift 2
    [ $# -gt 0 ] && shift
    [ -d "$T/dev-$name" ] || cp "$T/pkg.mcpp" "$T/$name.mcpp"
    bg_start "prov-$name" "$DEVICE" provision --package "$T/$name.mcpp" --passphrase-file "$T/pass" \
        --component pump --serial "$serial" --device-dir "$T/dev-$name" \
        --secret-file "$T/$name.secret" --server "$server" --timeout "$GW_WAIT" "$@"
}

# gw_expect_exit PID WANT NAME: the background device process ends with WANT.
gw_expect_exit() {
    bg_wait "$1" "$((GW_WAIT + 15))"
    [ "$BG_RC" = "$2" ] || {
        tail -n 20 "$T/prov-$3.err" >&2
        tail -n 20 "$T/gw.log" >&2
        fail "custos-device for $3 exited $BG_RC, want $2"
    }
}

# gw_wait_submitted NAME SECS: the device's log says the gateway took its request.
gw_wait_submitted() {
    local end=$((SECONDS + $2))
    while [ "$SECONDS" -lt "$end" ]; do
        grep -q '^submitted request' "$T/prov-$1.err" 2>/dev/null && return 0
        sleep 0.1
    done
    tail -n 5 "$T/prov-$1.err" >&2
    fail "device $1 did not get its request accepted within $2 s"
}

# gw_status_json: custos-gateway status --json into $T/gwstatus.json.
gw_status_json() {
    "$GATEWAY" status --queue "$T/queue" --json >"$T/gwstatus.json" 2>"$T/gwstatus.err" ||
        { cat "$T/gwstatus.err" >&2; fail "custos-gateway status --json"; }
}

# gw_wait_status JQ SECS: until custos-gateway status --json satisfies JQ.
gw_wait_status() {
    local end=$((SECONDS + $2))
    while [ "$SECONDS" -lt "$end" ]; do
        gw_status_json
        jq -e "$1" "$T/gwstatus.json" >/dev/null && return 0
        sleep 0.2
    done
    cat "$T/gwstatus.json" >&2
    fail "custos-gateway status never satisfied: $1"
}

# gw_setup: custosd with a gateway system (hub + pumps), the hub provisioned,
# a pump package in $T/pkg.mcpp (auto-approval). Sets GWPORT, GWURL, HUB_ID,
# ADMIN_TOKEN and TOKEN.
gw_setup() {
    printf 'gateway test passphrase\n' >"$T/pass"
    GWPORT=$(free_port)
    GWURL=https://$GW_HOST:$GWPORT
    init_data "$T/data"
    start_custosd "$T/data" --poll-interval 1 --device-rate 2000 --device-burst 4000
    TOKEN=$(login_as admin "$ADMIN_PASSWORD")
    ADMIN_TOKEN=$TOKEN
    gateway_system "$T/system.json" "$GW_SYS" "$GWURL"
    create_system_api "$T/system.json"
    create_package_api "$GW_SYS" 30 "$T/pass" "$T/pkg.mcpp"
    set_policy_api "$GW_SYS" package
    cp "$T/pkg.mcpp" "$T/hub.mcpp"
    "$DEVICE" provision --package "$T/hub.mcpp" --passphrase-file "$T/pass" --component hub \
        --serial HUB-0001 --device-dir "$T/hub" --secret-file "$T/hub.secret" --server "$URL" \
        --timeout "$GW_WAIT" >"$T/hub.out" 2>"$T/hub.err" ||
        { cat "$T/hub.err" >&2; fail "custos-device provision of the hub"; }
    HUB_ID=$("$DEVICE" status --device-dir "$T/hub" --secret-file "$T/hub.secret" --json | jq -r .device_id)
    [ -n "$HUB_ID" ] && [ "$HUB_ID" != null ] || fail "the hub has no device id"
}
