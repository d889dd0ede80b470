#!/usr/bin/env bash
# The upstream gateway API of a real `custosd serve` on loopback (docs/api.md,
# "Gateway API"), called with curl as a gateway calls it: the client
# certificate and key of a hub device that provisioned itself with
# custos-device (taken out of its device files by the test-only
# custos-test-devtool). A forwarded batch is verified item by item like the
# device protocol and recorded as via the gateway; status returns the
# profile; forwarded receipts mark devices provisioned; a request of another
# system and a one-byte-altered request are refused; no client certificate,
# a non-gateway device's certificate and a disabled gateway get 403; the
# admin endpoints; the hub's server certificate names only the declared
# gateway hosts and passes `openssl verify -purpose sslserver`; audit verifies.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/serve_lib.sh"

D=$T/data
SYS=site
OTHER=infusion-x2
WAIT=90 # seconds a device process may take (ASan builds are slow)
DEVTOOL=$CUSTOS_BIN/tests/custos-test-devtool
[ -x "$DEVTOOL" ] || fail "$DEVTOOL is missing (build the tests)"
printf 'gateway api passphrase\n' >"$T/pass"

cat >"$T/site.json" <<'JSON'
{"name": "site", "display_name": "Ward 3",
 "services": {"cloud_url": "https://custos.example.com",
              "gateways": ["https://Hub.Ward3.example:9443", "https://127.0.0.2", "https://[::1]:9443/"]},
 "components": [
   {"name": "ctl", "templates": [{"name": "tls", "usage": ["tls-client"]},
                                 {"name": "sign", "algorithm": "ecdsa-p384", "usage": ["signing"]}]},
   {"name": "hub", "gateway": true,
    "templates": [{"name": "tls", "usage": ["tls-client"], "subject": "CN={serial},OU={component}"},
                  {"name": "server", "usage": ["tls-server"], "subject": "CN={serial}.hub,OU={component}"}]}]}
JSON

# gw PATH JSON [CURL ARGS...]: a gateway call with the hub's identity; status on
# stdout, body in $T/body.
gw() {
    local path=$1 body=$2
    shift 2
    TOKEN='' hcode POST "$path" -H 'Content-Type: application/json' --data-binary "$body" \
        --cert "$T/hub-cert.pem" --key "$T/hub-key.pem" "$@"
}

b64() {
    base64 -w0 <"$1"
}

# device_mk NAME SERIAL COMPONENT PKG: an offline request (kept package).
device_mk() {
    "$DEVICE" request --package "$4" --passphrase-file "$T/pass" --component "$3" \
        --serial "$2" --device-dir "$T/dev-$1" --secret-file "$T/$1.secret" --keep-package \
        >"$T/dev-$1.out" 2>&1 || { cat "$T/dev-$1.out" >&2; fail "custos-device request for $1"; }
}

step "custosd init and serve; system site (a gateway component) and another system"
init_data "$D"
start_custosd "$D" --poll-interval 1
TOKEN=$(login_as admin "$ADMIN_PASSWORD")
ADMIN_TOKEN=$TOKEN
create_system_api "$T/site.json"
jq -e '.components[] | select(.name == "hub") | .gateway == true' "$T/body" >/dev/null ||
    fail "the created system does not keep \"gateway\": true: $(cat "$T/body")"
jq -e '[.components[] | select(.name == "ctl") | has("gateway")] == [false]' "$T/body" >/dev/null ||
    fail "a component that is no gateway shows the flag: $(cat "$T/body")"
create_system_api "$VECTORS/system-infusion.json"

step "system create refuses a gateway without tls-server, a tls-server template without services.gateways"
expect_error 400 malformed POST /api/v1/systems -H 'Content-Type: application/json' --data-binary \
    '{"name":"bad1","components":[{"name":"hub","gateway":true,"templates":[{"name":"tls","usage":["tls-client"]}]}]}'
[ "$(jq -r .error.field "$T/body")" = "components[0].templates" ] || fail "wrong field: $(cat "$T/body")"
expect_error 400 malformed POST /api/v1/systems -H 'Content-Type: application/json' --data-binary \
    '{"name":"bad2","components":[{"name":"web","templates":[{"name":"s","usage":["tls-server","tls-client"]}]}]}'
jq -e '.error.field == "services.gateways" and (.error.message | contains("services.gateways is required for a tls-server template"))' \
    "$T/body" >/dev/null || fail "wrong error: $(cat "$T/body")"
expect_error 400 malformed POST /api/v1/systems -H 'Content-Type: application/json' --data-binary \
    '{"name":"bad3","components":[{"name":"hub","gateway":"yes","templates":[{"name":"tls","usage":["tls-client"]}]}]}'
expect_code 404 GET /api/v1/systems/bad2

create_package_api "$SYS" 30 "$T/pass" "$T/site.mcpp"
set_policy_api "$SYS" package
create_package_api "$OTHER" 30 "$T/pass" "$T/other.mcpp"

step "the hub provisions itself (connected); its identity for curl"
cp "$T/site.mcpp" "$T/hub.mcpp"
run "$DEVICE" provision --package "$T/hub.mcpp" --passphrase-file "$T/pass" --component hub \
    --serial HUB-0001 --device-dir "$T/dev-hub" --secret-file "$T/hub.secret" --server "$URL" \
    --timeout "$WAIT" >/dev/null
HUB_ID=$("$DEVICE" status --device-dir "$T/dev-hub" --secret-file "$T/hub.secret" --json | jq -r .device_id)
[ -n "$HUB_ID" ] && [ "$HUB_ID" != null ] || fail "the hub has no device id"
run "$DEVTOOL" tls-pem "$T/dev-hub" "$T/hub.secret" tls "$T/hub-key.pem" "$T/hub-cert.pem"
openssl verify -purpose sslclient -CAfile "$CA" -untrusted "$T/hub-cert.pem" "$T/hub-cert.pem" >/dev/null ||
    fail "the hub's tls certificate does not verify as a TLS client"

step "the hub's server certificate names the declared hosts only; openssl verify -purpose sslserver"
run "$DEVICE" export-cert --device-dir "$T/dev-hub" --secret-file "$T/hub.secret" --key server \
    --out "$T/hub-server.pem" >/dev/null
awk 'n > 0 || /END CERTIFICATE/ { if (n > 0) print; if (/END CERTIFICATE/) n++ }' "$T/hub-cert.pem" \
    >"$T/chain.pem" # the issuing CA after the leaf
grep -q 'BEGIN CERTIFICATE' "$T/chain.pem" || fail "no issuing CA certificate beside the hub's"
san=$(openssl x509 -in "$T/hub-server.pem" -noout -ext subjectAltName | tail -n +2 | tr -d ' ')
echo "    subjectAltName: $san"
[ "$san" = "DNS:hub.ward3.example,IPAddress:127.0.0.2,IPAddress:0:0:0:0:0:0:0:1" ] ||
    fail "unexpected subjectAltName: $san"
openssl verify -purpose sslserver -CAfile "$CA" -untrusted "$T/chain.pem" "$T/hub-server.pem" >/dev/null ||
    fail "openssl verify -purpose sslserver refuses the hub's server certificate"
openssl verify -purpose sslserver -verify_hostname hub.ward3.example -CAfile "$CA" \
    -untrusted "$T/chain.pem" "$T/hub-server.pem" >/dev/null || fail "-verify_hostname hub.ward3.example"
openssl verify -purpose sslserver -verify_ip ::1 -CAfile "$CA" -untrusted "$T/chain.pem" \
    "$T/hub-server.pem" >/dev/null || fail "-verify_ip ::1"
! openssl verify -purpose sslserver -verify_hostname custos.example.com -CAfile "$CA" \
    -untrusted "$T/chain.pem" "$T/hub-server.pem" >/dev/null 2>&1 ||
    fail "the hub's server certificate is valid for the cloud's name"
! openssl verify -purpose sslserver -CAfile "$CA" -untrusted "$T/chain.pem" "$T/hub-cert.pem" \
    >/dev/null 2>&1 || fail "the hub's tls-client certificate verifies as a server's"

step "GET /api/v1/gateways lists the hub (never seen yet)"
expect_code 200 GET /api/v1/gateways
jq -e --arg id "$HUB_ID" '.items | length == 1 and .[0].device_id == $id and .[0].system == "site"
    and .[0].serial == "HUB-0001" and .[0].enabled == true and .[0].last_seen == null and .[0].forwarded == 0' \
    "$T/body" >/dev/null || fail "GET /api/v1/gateways: $(cat "$T/body")"

step "devices behind the hub make their requests offline"
device_mk c1 CTL-0001 ctl "$T/site.mcpp"
device_mk c2 CTL-0002 ctl "$T/site.mcpp"
device_mk o1 OTH-0001 pump "$T/other.mcpp"
size=$(stat -c %s "$T/dev-c2/request.mcpr")
flip_byte "$T/dev-c2/request.mcpr" $((size - 10)) "$T/c2-bad.mcpr"

step "no client certificate, a device that is no gateway -> 403 forbidden"
batch=$(jq -cn --arg a "$(b64 "$T/dev-c1/request.mcpr")" '{requests: [$a]}')
TOKEN='' expect_error 403 forbidden POST /gateway/v1/requests -H 'Content-Type: application/json' \
    --data-binary "$batch"
cp "$T/other.mcpp" "$T/p1.mcpp"
bg_start prov-p1 "$DEVICE" provision --package "$T/p1.mcpp" --passphrase-file "$T/pass" \
    --component pump --serial PMP-0001 --device-dir "$T/dev-p1" --secret-file "$T/p1.secret" \
    --server "$URL" --timeout "$WAIT"
P1=$BG_PID
ID_P1=$(wait_request_by_serial PMP-0001 pending 60)
expect_code 200 POST "/api/v1/requests/$ID_P1/approve"
bg_wait "$P1" "$((WAIT + 15))"
[ "$BG_RC" = 0 ] || { cat "$T/prov-p1.err" >&2; fail "the pump device did not provision"; }
run "$DEVTOOL" tls-pem "$T/dev-p1" "$T/p1.secret" tls "$T/p1-key.pem" "$T/p1-cert.pem"
TOKEN='' expect_error 403 forbidden POST /gateway/v1/requests -H 'Content-Type: application/json' \
    --data-binary "$batch" --cert "$T/p1-cert.pem" --key "$T/p1-key.pem"
echo "    $(jq -c .error "$T/body")"
[ "$(db_count "$D" "select count(*) from requests where serial = 'CTL-0001'")" = 0 ] ||
    fail "a refused call stored a request"

step "a forwarded batch: accepted, refused for another system, refused when altered"
batch=$(jq -cn --arg a "$(b64 "$T/dev-c1/request.mcpr")" --arg b "$(b64 "$T/dev-c2/request.mcpr")" \
    --arg o "$(b64 "$T/dev-o1/request.mcpr")" --arg x "$(b64 "$T/c2-bad.mcpr")" \
    '{requests: [$a, $b, $o, $x, "not base64!"]}')
code=$(gw /gateway/v1/requests "$batch")
[ "$code" = 200 ] || fail "POST /gateway/v1/requests: $code $(head -c 400 "$T/body")"
jq -c '.results[] | if .error then .error else {state, retry_after} end' "$T/body" | sed 's/^/    /'
ID_C1=$(jq -r '.results[0].request_id' "$T/body")
ID_C2=$(jq -r '.results[1].request_id' "$T/body")
jq -e '.results | length == 5' "$T/body" >/dev/null || fail "not one result per item: $(cat "$T/body")"
jq -e '.results[0].state == "certified" and .results[0].retry_after == 0 and (.results[0].device_id | length == 26)' \
    "$T/body" >/dev/null || fail "item 0 not accepted (auto-approved): $(cat "$T/body")"
jq -e '.results[1].state == "certified"' "$T/body" >/dev/null || fail "item 1 not accepted: $(cat "$T/body")"
jq -e '.results[2].error.code == "forbidden" and .results[2].error.field == "system"' "$T/body" >/dev/null ||
    fail "a request of another system was not refused (forbidden, field system): $(jq -c '.results[2]' "$T/body")"
jq -e '.results[3].error.code | test("^(bad_signature|untrusted|proof_of_possession)$")' "$T/body" >/dev/null ||
    fail "a one-byte-altered request was not refused with a verification (422) code: $(jq -c '.results[3]' "$T/body")"
jq -e '.results[4].error.code == "malformed" and .results[4].error.field == "requests[4]"' "$T/body" >/dev/null ||
    fail "bad base64 not refused: $(jq -c '.results[4]' "$T/body")"
[ "$(db_count "$D" "select count(*) from requests where serial = 'OTH-0001'")" = 0 ] ||
    fail "the request of another system was stored"
expect_request "$ID_C1" certified gateway
jq -e --arg id "$HUB_ID" '.gateway == {device_id: $id, serial: "HUB-0001"}' "$T/body" >/dev/null ||
    fail "GET /api/v1/requests/{id} does not name the gateway: $(jq -c '{via, gateway}' "$T/body")"
jq -e '[.history[] | select(.action == "request.import")][0] | .actor | startswith("gateway:")' "$T/body" \
    >/dev/null || fail "the import is not audited with the gateway as actor: $(jq -c .history "$T/body")"
expect_code 200 GET "/api/v1/requests?q=CTL-000"
jq -e --arg id "$HUB_ID" '[.items[] | .gateway.device_id] == [$id, $id]' "$T/body" >/dev/null ||
    fail "the request rows do not name the gateway: $(jq -c '[.items[] | {serial, via, gateway}]' "$T/body")"
# The same bytes again: the same request.
code=$(gw /gateway/v1/requests "$(jq -cn --arg a "$(b64 "$T/dev-c1/request.mcpr")" '{requests: [$a]}')")
[ "$code" = 200 ] && [ "$(jq -r '.results[0].request_id' "$T/body")" = "$ID_C1" ] ||
    fail "forwarding the same request again: $code $(cat "$T/body")"
# Body and batch limits.
TOKEN='' expect_error 413 too_large POST /gateway/v1/requests -H 'Content-Type: application/json' \
    --data-binary "$(jq -cn '{requests: [range(65) | "AAAA"]}')" --cert "$T/hub-cert.pem" --key "$T/hub-key.pem"
TOKEN='' expect_error 400 malformed POST /gateway/v1/requests -H 'Content-Type: application/json' \
    --data-binary '{"requests": [], "extra": 1}' --cert "$T/hub-cert.pem" --key "$T/hub-key.pem"

step "status: the profile for certified requests; other systems' requests are not found"
TOKEN=$ADMIN_TOKEN
code=$(hcode POST /api/v1/requests -H 'Content-Type: application/vnd.custos.mcpr' --data-binary "@$T/dev-o1/request.mcpr")
[ "$code" = 201 ] || fail "upload of the other system's request: $code"
ID_O1=$(jq -r .request_id "$T/body")
code=$(gw /gateway/v1/status "$(jq -cn --arg a "$ID_C1" --arg b "$ID_C2" --arg o "$ID_O1" \
    '{request_ids: [$a, $b, $o, "aaaaaaaaaaaaaaaaaaaaaaaaaa"]}')")
[ "$code" = 200 ] || fail "POST /gateway/v1/status: $code $(head -c 400 "$T/body")"
jq -e --arg a "$ID_C1" '.results[0].request_id == $a and .results[0].state == "certified" and (.results[0].profile | length > 100)' \
    "$T/body" >/dev/null || fail "status of a certified request: $(jq -c '.results[0] | del(.profile)' "$T/body")"
jq -e --arg o "$ID_O1" '.results[2].request_id == $o and .results[2].error.code == "not_found"' "$T/body" >/dev/null ||
    fail "another system's request is visible: $(jq -c '.results[2]' "$T/body")"
jq -e '.results[3].error.code == "not_found"' "$T/body" >/dev/null || fail "unknown id: $(jq -c '.results[3]' "$T/body")"
jq -r '.results[0].profile' "$T/body" | base64 -d >"$T/c1.mccp"
jq -r '.results[1].profile' "$T/body" | base64 -d >"$T/c2.mccp"
openssl cms -verify -inform DER -in "$T/c1.mccp" -CAfile "$CA" -purpose any -out /dev/null 2>/dev/null ||
    fail "the profile from status does not verify against the Root of Trust"
TOKEN='' expect_code 200 GET "/device/v1/requests/$ID_C1"
cmp -s "$T/body" "$T/c1.mccp" || fail "status returned another profile than the device protocol serves"

step "receipts forwarded by the gateway mark the devices provisioned"
for n in c1 c2; do
    run "$DEVICE" install --device-dir "$T/dev-$n" --secret-file "$T/$n.secret" --profile "$T/$n.mccp" >/dev/null
    run "$DEVTOOL" receipt "$T/dev-$n" "$T/$n.secret" "$T/$n-receipt.der"
done
size=$(stat -c %s "$T/c2-receipt.der")
flip_byte "$T/c2-receipt.der" $((size / 2)) "$T/c2-receipt-bad.der"
code=$(gw /gateway/v1/receipts "$(jq -cn --arg a "$(b64 "$T/c1-receipt.der")" --arg x "$(b64 "$T/c2-receipt-bad.der")" \
    '{receipts: [$a, $x]}')")
[ "$code" = 200 ] || fail "POST /gateway/v1/receipts: $code $(head -c 400 "$T/body")"
jq -c '.results[]' "$T/body" | sed 's/^/    /'
jq -e --arg a "$ID_C1" '.results[0] == {request_id: $a, device_id: .results[0].device_id, state: "provisioned"}' \
    "$T/body" >/dev/null || fail "receipt not accepted: $(jq -c '.results[0]' "$T/body")"
jq -e '.results[1].error.code | length > 0' "$T/body" >/dev/null || fail "an altered receipt was accepted"
TOKEN=$ADMIN_TOKEN
expect_request "$ID_C1" provisioned gateway
expect_request "$ID_C2" certified gateway
code=$(gw /gateway/v1/receipts "$(jq -cn --arg a "$(b64 "$T/c2-receipt.der")" '{receipts: [$a]}')")
jq -e '.results[0].state == "provisioned"' "$T/body" >/dev/null || fail "the good receipt of c2: $(cat "$T/body")"
TOKEN=$ADMIN_TOKEN
expect_request "$ID_C2" provisioned gateway
expect_code 200 GET /api/v1/audit?action=device.provisioned
jq -e --arg id "$ID_C2" '[.items[] | select(.object == $id)][0].actor | startswith("gateway:")' "$T/body" >/dev/null ||
    fail "the receipt is not audited with the gateway as actor"

step "an admin disables the gateway: 403 gateway_disabled at once; technicians may not; enable works"
expect_code 200 GET /api/v1/gateways
jq -e '.items[0].forwarded == 5 and (.items[0].last_seen | type == "string")' "$T/body" >/dev/null ||
    fail "forwarded / last_seen not kept: $(cat "$T/body")"
code=$(api_json POST /api/v1/users '{"username": "tech1", "role": "technician", "password": "technician-password-1"}')
[ "$code" = 201 ] || fail "POST /api/v1/users: $code $(cat "$T/body")"
TECH=$(login_as tech1 technician-password-1)
TOKEN=$TECH expect_error 403 forbidden POST "/api/v1/gateways/$HUB_ID/disable"
TOKEN=$TECH expect_code 200 GET /api/v1/gateways
TOKEN=$ADMIN_TOKEN
expect_code 200 POST "/api/v1/gateways/$HUB_ID/disable"
jq -e '.enabled == false' "$T/body" >/dev/null || fail "disable answered: $(cat "$T/body")"
code=$(gw /gateway/v1/status "$(jq -cn --arg a "$ID_C1" '{request_ids: [$a]}')")
[ "$code" = 403 ] && [ "$(jq -r .error.code "$T/body")" = gateway_disabled ] ||
    fail "a disabled gateway was answered $code: $(cat "$T/body")"
code=$(gw /gateway/v1/requests "$batch")
[ "$code" = 403 ] && [ "$(jq -r .error.code "$T/body")" = gateway_disabled ] || fail "requests of a disabled gateway: $code"
expect_error 404 not_found POST "/api/v1/gateways/$ID_C1/disable"
expect_code 200 POST "/api/v1/gateways/$HUB_ID/enable"
code=$(gw /gateway/v1/status "$(jq -cn --arg a "$ID_C1" '{request_ids: [$a]}')")
[ "$code" = 200 ] && [ "$(jq -r '.results[0].state' "$T/body")" = provisioned ] ||
    fail "the enabled gateway: $code $(cat "$T/body")"
expect_code 200 GET "/api/v1/audit?object=$HUB_ID"
jq -e '[.items[].action] | index("gateway.disabled") != null and index("gateway.enabled") != null' "$T/body" >/dev/null ||
    fail "disable/enable not audited: $(jq -c '[.items[] | {action, actor}]' "$T/body")"
jq -e '[.items[] | select(.action | startswith("gateway.")) | .actor] | all(. == "user:admin")' "$T/body" >/dev/null ||
    fail "disable/enable audited without the admin: $(jq -c '[.items[] | {action, actor, from}]' "$T/body")"

stop_custosd
step "audit verify; the log names the gateway as actor and holds no secret"
"$CUSTOSD" audit verify --data "$D" >"$T/audit.txt" 2>&1 || { cat "$T/audit.txt" >&2; fail "custosd audit verify"; }
keep_log
check_log_json "$T/custosd.all.log"
grep -q "\"actor\":\"gateway:$HUB_ID\"" "$T/custosd.all.log" || fail "no log line names the gateway"
check_log_secrets "$T/custosd.all.log" "$ADMIN_PASSWORD" "$ADMIN_TOKEN" "$TECH" "$(cat "$T/pass")" \
    "$(sed -n 2p "$T/hub-key.pem")"

echo "PASS: gateway api"
