#!/usr/bin/env bash
# Connected provisioning against a real `custosd serve` on loopback: devices
# run `custos-device provision --server` themselves (submit, poll, install,
# receipt). Auto-approval (policy package) with concurrent devices; manual
# approval and rejection through the operator CLI; an interrupted device that
# resumes; reprovisioning with `custos-device rotate --server`; forged and
# altered install receipts; a request whose package expired (server clock
# moved with CUSTOS_FAKE_NOW).
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/serve_lib.sh"

D=$T/data
SYS=infusion-x2
printf 'connected flow passphrase\n' >"$T/pass"
WAIT=90 # seconds a device process may take (ASan builds are slow)

# provision_bg NAME SERIAL [ARGS...]: custos-device provision in the
# background, its own copy of the package; sets BG_PID.
provision_bg() {
    local name=$1 serial=$2
    shift 2
    [ -d "$T/dev-$name" ] || cp "$T/pkg.mcpp" "$T/$name.mcpp" # a fresh device gets the package
    bg_start "prov-$name" "$DEVICE" provision --package "$T/$name.mcpp" --passphrase-file "$T/pass" \
        --component pump --serial "$serial" --device-dir "$T/dev-$name" \
        --secret-file "$T/$name.secret" --server "$URL" --timeout "$WAIT" "$@"
}

# expect_bg_exit PID WANT NAME: the background device process ends with WANT.
expect_bg_exit() {
    bg_wait "$1" "$((WAIT + 15))"
    [ "$BG_RC" = "$2" ] || {
        cat "$T/prov-$3.err" "$T/rot-$3.err" 2>/dev/null | tail -n 20 >&2
        fail "custos-device for $3 exited $BG_RC, want $2"
    }
}

# device_request_id NAME: the request id of the device's installed profile.
device_request_id() {
    "$DEVICE" status --device-dir "$T/dev-$1" --secret-file "$T/$1.secret" --json | jq -r .request_id
}

tls_serial() {
    "$DEVICE" export-cert --device-dir "$T/dev-$1" --secret-file "$T/$1.secret" --key tls \
        --out "$T/$1-tls.pem" >/dev/null || fail "export-cert for $1"
    openssl x509 -in "$T/$1-tls.pem" -noout -serial
}

step "custosd init and serve; system, package and policy through the API"
init_data "$D"
start_custosd "$D" --poll-interval 1
TOKEN=$(login_as admin "$ADMIN_PASSWORD")
ADMIN_TOKEN=$TOKEN
create_system_api "$VECTORS/system-infusion.json"
create_package_api "$SYS" 30 "$T/pass" "$T/pkg.mcpp"
openssl cms -verify -inform DER -in "$T/pkg.mcpp" -CAfile "$CA" -purpose any -out /dev/null 2>/dev/null ||
    fail "the package downloaded from the API does not verify against $CA"
set_policy_api "$SYS" package
expect_code 200 GET "/api/v1/systems/$SYS/policy"
[ "$(jq -r .mode "$T/body")" = package ] || fail "GET policy does not show mode package: $(cat "$T/body")"

# --- auto-approval, three devices at once ------------------------------------
step "policy package: three devices provision concurrently"
pids=()
for i in 1 2 3; do
    provision_bg "c$i" "CON-000$i"
    pids+=("$BG_PID")
done
for i in 1 2 3; do
    expect_bg_exit "${pids[$((i - 1))]}" 0 "c$i"
done
IDS=()
for i in 1 2 3; do
    [ "$(device_state "c$i")" = provisioned ] || fail "device c$i is '$(device_state "c$i")', want provisioned"
    [ ! -e "$T/c$i.mcpp" ] || fail "provision left the package on device c$i (not shredded)"
    id=$(device_request_id "c$i")
    expect_request "$id" provisioned connected
    IDS+=("$id")
done
ID_c1=${IDS[0]} ID_c2=${IDS[1]} ID_c3=${IDS[2]}
[ "$ID_c1" != "$ID_c2" ] && [ "$ID_c2" != "$ID_c3" ] && [ "$ID_c1" != "$ID_c3" ] ||
    fail "two devices share a request id"
echo "    3 devices provisioned: $ID_c1 $ID_c2 $ID_c3"
expect_code 200 GET "/api/v1/audit?limit=500"
jq -e --arg id "$ID_c1" '[.items[] | select(.object | contains($id)) | .actor] | any(. == "policy:package") and any(. == "device")' \
    "$T/body" >/dev/null ||
    fail "the audit trail of $ID_c1 does not name policy:package and device: $(jq -c --arg id "$ID_c1" '[.items[] | select(.object | contains($id)) | {actor, action}]' "$T/body")"
# What the device installed is what the server issued.
expect_code 200 GET "/device/v1/requests/$ID_c1"
cmp -s "$T/body" "$T/dev-c1/profile.mccp" || fail "the installed profile is not the one GET /device/v1/requests/{id} serves"

# --- manual approval through the CLI -------------------------------------------
step "policy manual: the device waits; approved with 'custos devices approve'"
set_policy_api "$SYS" manual
provision_bg m1 MAN-0001
PID_m1=$BG_PID
ID_m1=$(wait_request_by_serial MAN-0001 pending 60)
expect_request "$ID_m1" pending connected
expect_code 202 GET "/device/v1/requests/$ID_m1"
jq -e '.state == "pending" and .retry_after == 1' "$T/body" >/dev/null ||
    fail "GET /device/v1/requests/{pending} with --poll-interval 1: want {state: pending, retry_after: 1}, got $(cat "$T/body")"
kill -0 "$PID_m1" 2>/dev/null || fail "the device process stopped while its request is pending: $(cat "$T/prov-m1.err")"
custos_cli "$ADMIN_TOKEN" devices approve "$ID_m1" >"$T/approve.out" 2>"$T/approve.err" ||
    { cat "$T/approve.err" >&2; fail "custos devices approve $ID_m1"; }
expect_bg_exit "$PID_m1" 0 m1
expect_request "$ID_m1" provisioned connected
[ "$(device_state m1)" = provisioned ] || fail "device m1 not provisioned after approval"

# --- rejection -------------------------------------------------------------------
step "rejected with a reason: the device exits 1 with it; the device protocol answers 403"
REASON="serial not on the build sheet"
provision_bg r1 REJ-0001
PID_r1=$BG_PID
ID_r1=$(wait_request_by_serial REJ-0001 pending 60)
custos_cli "$ADMIN_TOKEN" devices reject "$ID_r1" --reason "$REASON" >"$T/reject.out" 2>"$T/reject.err" ||
    { cat "$T/reject.err" >&2; fail "custos devices reject $ID_r1 --reason ..."; }
expect_bg_exit "$PID_r1" 1 r1
grep -q "error: rejected:" "$T/prov-r1.err" || fail "the rejected device does not say 'error: rejected:': $(cat "$T/prov-r1.err")"
grep -qF "$REASON" "$T/prov-r1.err" || fail "the rejected device does not show the reason: $(cat "$T/prov-r1.err")"
expect_error 403 rejected GET "/device/v1/requests/$ID_r1"
jq -e --arg r "$REASON" '.error.message | contains($r)' "$T/body" >/dev/null ||
    fail "403 rejected does not carry the approver's reason: $(cat "$T/body")"
expect_request "$ID_r1" rejected
[ "$(request_field "$ID_r1" reason)" = "$REASON" ] || fail "the request does not keep the reason"

# --- resume after the device process dies ---------------------------------------
step "resume: kill the device while it waits, run the same command, approve"
provision_bg s1 RES-0001
PID_s1=$BG_PID
ID_s1=$(wait_request_by_serial RES-0001 pending 60)
kill -KILL "$PID_s1"
bg_wait "$PID_s1" 10
# The same command again (its package copy was shredded by the first run).
provision_bg s1 RES-0001
PID_s1=$BG_PID
sleep 2
kill -0 "$PID_s1" 2>/dev/null || fail "the resumed device process ended before approval: $(cat "$T/prov-s1.err")"
expect_code 200 GET "/api/v1/requests?q=RES-0001"
n=$(jq '[.items[] | select(.serial == "RES-0001")] | length' "$T/body")
[ "$n" = 1 ] || fail "the resumed device made $n requests, want 1 (the same request resumed): $(jq -c '[.items[] | {request_id, state}]' "$T/body")"
custos_cli "$ADMIN_TOKEN" devices approve "$ID_s1" >/dev/null 2>"$T/approve.err" ||
    { cat "$T/approve.err" >&2; fail "custos devices approve $ID_s1"; }
expect_bg_exit "$PID_s1" 0 s1
expect_request "$ID_s1" provisioned connected
[ "$(device_request_id s1)" = "$ID_s1" ] || fail "the resumed device installed another request than $ID_s1"

step "the server restarts (same port) while a device waits; the device carries on"
provision_bg w1 RST-0001
PID_w1=$BG_PID
ID_w1=$(wait_request_by_serial RST-0001 pending 60)
keep_log
stop_custosd
sleep 2 # the device polls a server that is down
kill -0 "$PID_w1" 2>/dev/null || fail "the device gave up while the server was down: $(tail -n 3 "$T/prov-w1.err")"
start_custosd_on "$D" "127.0.0.1:$PORT" --poll-interval 1
custos_cli "$ADMIN_TOKEN" devices approve "$ID_w1" >/dev/null 2>"$T/approve.err" ||
    { cat "$T/approve.err" >&2; fail "custos devices approve $ID_w1 after the restart"; }
expect_bg_exit "$PID_w1" 0 w1
expect_request "$ID_w1" provisioned connected

# --- receipts: forged and altered --------------------------------------------------
step "receipts: device c1's receipt posted for another request -> 422 mismatch; altered -> 4xx"
device_request b1 RCP-0001 "$T/pkg.mcpp" "$T/pass"
expect_code 202 POST /device/v1/requests -H 'Content-Type: application/vnd.custos.mcpr' \
    --data-binary "@$T/dev-b1/request.mcpr"
ID_b1=$(jq -r .request_id "$T/body")
custos_cli "$ADMIN_TOKEN" devices approve "$ID_b1" >/dev/null 2>"$T/approve.err" ||
    { cat "$T/approve.err" >&2; fail "custos devices approve $ID_b1"; }
expect_request "$ID_b1" certified
n=$(db_count "$D" "select count(*) from receipts where request_id = '$ID_c1'")
[ "$n" = 1 ] || fail "the server stored $n receipts for $ID_c1, want 1"
sqlite3 -readonly "$D/custos.db" \
    "select writefile('$T/receipt-c1.der', der) from receipts where request_id = '$ID_c1'" >/dev/null
[ -s "$T/receipt-c1.der" ] || fail "could not read device c1's receipt from the store"
# Its own request: idempotent 200.
expect_code 200 POST "/device/v1/requests/$ID_c1/receipt" -H 'Content-Type: application/vnd.custos.receipt' \
    --data-binary "@$T/receipt-c1.der"
[ "$(jq -r .state "$T/body")" = provisioned ] || fail "receipt again: state not provisioned: $(cat "$T/body")"
expect_error 422 mismatch POST "/device/v1/requests/$ID_b1/receipt" \
    -H 'Content-Type: application/vnd.custos.receipt' --data-binary "@$T/receipt-c1.der"
size=$(stat -c %s "$T/receipt-c1.der")
for off in $((size / 2)) $((size - 20)); do
    flip_byte "$T/receipt-c1.der" "$off" "$T/receipt-bad.der"
    expect_code '4[0-9][0-9]' POST "/device/v1/requests/$ID_b1/receipt" \
        -H 'Content-Type: application/vnd.custos.receipt' --data-binary "@$T/receipt-bad.der"
    echo "    altered at $off: $(jq -c .error "$T/body")"
    expect_code '4[0-9][0-9]' POST "/device/v1/requests/$ID_c1/receipt" \
        -H 'Content-Type: application/vnd.custos.receipt' --data-binary "@$T/receipt-bad.der"
done
expect_error 415 unsupported_media_type POST "/device/v1/requests/$ID_b1/receipt" \
    -H 'Content-Type: application/octet-stream' --data-binary "@$T/receipt-c1.der"
expect_request "$ID_b1" certified
# A receipt for a request that is not certified.
expect_error 409 invalid_state POST "/device/v1/requests/$ID_r1/receipt" \
    -H 'Content-Type: application/vnd.custos.receipt' --data-binary "@$T/receipt-c1.der"

# --- reprovisioning over the network -------------------------------------------------
step "rotate --server: policy package approves the reprovisioning of a provisioned device"
set_policy_api "$SYS" package
old_serial=$(tls_serial c1)
cp "$T/dev-c1/profile.mccp" "$T/c1-first.mccp"
cp -a "$T/dev-c1" "$T/dev-c1old" # the identity before the rotation (a clone, or a restored backup)
bg_start rot-c1 "$DEVICE" rotate --device-dir "$T/dev-c1" --secret-file "$T/c1.secret" \
    --server "$URL" --timeout "$WAIT"
expect_bg_exit "$BG_PID" 0 c1
[ "$(device_state c1)" = provisioned ] || fail "c1 is '$(device_state c1)' after rotate, want provisioned"
new_serial=$(tls_serial c1)
[ "$old_serial" != "$new_serial" ] || fail "rotation kept the certificate ($old_serial)"
[ -f "$T/dev-c1/profile.previous.mccp" ] || fail "rotation kept no profile.previous.mccp"
cmp -s "$T/dev-c1/profile.previous.mccp" "$T/c1-first.mccp" || fail "profile.previous.mccp is not the first profile"
ROT_ID=$(device_request_id c1)
[ "$ROT_ID" != "$ID_c1" ] || fail "the rotated device still shows its first request"
expect_request "$ROT_ID" provisioned connected
[ "$(jq -r .kind "$T/body")" = reprovision ] || fail "the rotation request's kind is '$(jq -r .kind "$T/body")'"
[ "$(jq -r .device_id "$T/body")" = "$(request_field "$ID_c1" device_id)" ] ||
    fail "the rotation request has another device id than the device's first request"

step "the superseded identity (a copy from before the rotation) cannot reprovision"
"$DEVICE" rotate --device-dir "$T/dev-c1old" --secret-file "$T/c1.secret" --out "$T/old.mcpr" >/dev/null 2>"$T/old.err" ||
    { cat "$T/old.err" >&2; fail "offline rotate of the old identity copy"; }
n_before=$(db_count "$D" "select count(*) from requests")
expect_code 422 POST /device/v1/requests -H 'Content-Type: application/vnd.custos.mcpr' --data-binary "@$T/old.mcpr"
echo "    $(jq -c .error "$T/body")"
[ "$(db_count "$D" "select count(*) from requests")" = "$n_before" ] || fail "a request signed by a superseded identity was stored"

# --- expiry: the server's clock two days on ----------------------------------------------
step "expired: a 1-day package, the server restarted two days later -> 410 expired, nothing stored"
create_package_api "$SYS" 1 "$T/pass" "$T/short.mcpp"
device_request x1 EXP-0001 "$T/short.mcpp" "$T/pass"
set_policy_api "$SYS" manual
device_request x2 EXP-0002 "$T/short.mcpp" "$T/pass"
expect_code 202 POST /device/v1/requests -H 'Content-Type: application/vnd.custos.mcpr' \
    --data-binary "@$T/dev-x2/request.mcpr"
ID_x2=$(jq -r .request_id "$T/body")
stop_custosd
before=$(db_count "$D" "select count(*) from requests")
keep_log
CUSTOS_FAKE_NOW=$(($(date +%s) + 2 * 86400)) start_custosd "$D"
expect_error 410 expired POST /device/v1/requests -H 'Content-Type: application/vnd.custos.mcpr' \
    --data-binary "@$T/dev-x1/request.mcpr"
[ "$(jq -r .error.field "$T/body")" = signer ] || fail "410 expired without field signer: $(cat "$T/body")"
echo "    $(jq -c .error "$T/body")"
after=$(db_count "$D" "select count(*) from requests")
[ "$before" = "$after" ] || fail "an expired request was stored (requests $before -> $after)"

step "a pending request whose signer expired: 410 to the device, cannot be approved, shown expired"
expect_error 401 unauthenticated GET /api/v1/session # the 12-hour session is over
TOKEN=$(login_as admin "$ADMIN_PASSWORD")
ADMIN_TOKEN2=$TOKEN
# Before anyone touches it: the operator's views must already say expired.
expect_code 200 GET "/api/v1/requests/$ID_x2"
one_state=$(jq -r .state "$T/body")
expect_code 200 GET "/api/v1/requests?state=pending"
in_pending=$(jq --arg id "$ID_x2" '[.items[].request_id] | index($id) != null' "$T/body")
n_pending=$(jq '.counts.pending' "$T/body")
[ "$one_state" = expired ] && [ "$in_pending" = false ] ||
    fail "request $ID_x2, whose signer expired a day ago (the device protocol answers 410 expired): GET /api/v1/requests/{id} says '$one_state', listed under ?state=pending: $in_pending (counts.pending $n_pending); want expired and not pending"
TOKEN='' expect_error 410 expired GET "/device/v1/requests/$ID_x2"
expect_error 410 expired POST "/api/v1/requests/$ID_x2/approve"
[ "$(db_count "$D" "select count(*) from certificates where request_id = '$ID_x2'")" = 0 ] ||
    fail "certificates were issued for the expired request $ID_x2"
expect_code 200 GET "/api/v1/requests?state=expired"
jq -e --arg id "$ID_x2" '[.items[].request_id] | index($id) != null' "$T/body" >/dev/null ||
    fail "GET /api/v1/requests?state=expired does not list $ID_x2"
stop_custosd

step "audit verify; the log is JSON and holds no secret"
"$CUSTOSD" audit verify --data "$D" >"$T/audit.txt" 2>&1 || { cat "$T/audit.txt" >&2; fail "custosd audit verify"; }
keep_log
check_log_json "$T/custosd.all.log"
check_log_secrets "$T/custosd.all.log" "$ADMIN_PASSWORD" "$ADMIN_TOKEN" "$ADMIN_TOKEN2" "$(cat "$T/pass")"
step "a server whose certificate does not chain to the package's Root of Trust is refused"
init_data "$T/other"
start_custosd "$T/other"
cp "$T/pkg.mcpp" "$T/imp.mcpp"
rc=0
"$DEVICE" provision --package "$T/imp.mcpp" --passphrase-file "$T/pass" --component pump \
    --serial IMP-0001 --device-dir "$T/dev-imp" --secret-file "$T/imp.secret" --server "$URL" \
    --timeout 5 >"$T/imp.out" 2>"$T/imp.err" || rc=$?
[ "$rc" -eq 1 ] || fail "provisioning against a server of another root exited $rc: $(cat "$T/imp.err")"
grep -Eiq "certificate|tls|ssl" "$T/imp.err" || fail "no TLS error shown: $(cat "$T/imp.err")"
echo "    refused: $(grep -Ei 'certificate|tls|ssl' "$T/imp.err" | head -n 1)"
[ "$(db_count "$T/other" "select count(*) from requests")" = 0 ] ||
    fail "the impostor server received the request"
stop_custosd

echo "PASS: serve connected"
