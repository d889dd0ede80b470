#!/usr/bin/env bash
# The technician path through the service (disconnected provisioning): the
# device writes its .mcpr offline, a technician uploads it with `custos`, an
# approver approves, the technician downloads the profile, installs it on the
# device and completes provisioning. The same endpoints with curl and their
# documented status codes; a tampered upload; an upload twice; packages and
# mock device files through the API, checked with openssl and tar.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/serve_lib.sh"

D=$T/data
SYS=infusion-x2
MCPR='Content-Type: application/vnd.custos.mcpr'
printf 'disconnected flow passphrase\n' >"$T/pass"

# as TOKEN CMD...: run CMD with $TOKEN set to TOKEN (for hcode/expect_*).
as() {
    local saved=${TOKEN:-}
    TOKEN=$1
    shift
    "$@"
    TOKEN=$saved
}

# cli NAME TOKEN ARGS...: the custos CLI; stdout in $T/NAME.out; must exit 0.
cli() {
    local name=$1 tok=$2
    shift 2
    custos_cli "$tok" "$@" >"$T/$name.out" 2>"$T/$name.err" ||
        { cat "$T/$name.err" >&2; fail "custos $*"; }
}

step "custosd init and serve; admin makes a technician and an approver through the API"
init_data "$D"
start_custosd "$D"
TOKEN=$(login_as admin "$ADMIN_PASSWORD")
ADMIN_TOKEN=$TOKEN
create_system_api "$VECTORS/system-infusion.json"
TECH_PW="tech-$(head -c 12 /dev/urandom | base64 | tr -dc 'A-Za-z0-9')"
APPR_PW="appr-$(head -c 12 /dev/urandom | base64 | tr -dc 'A-Za-z0-9')"
expect_code 201 POST /api/v1/users -H 'Content-Type: application/json' \
    --data-binary "{\"username\":\"tina\",\"role\":\"technician\",\"password\":\"$TECH_PW\"}"
[ "$(jq -r .role "$T/body")" = technician ] || fail "POST /api/v1/users: role not technician: $(cat "$T/body")"
expect_code 201 POST /api/v1/users -H 'Content-Type: application/json' \
    --data-binary "{\"username\":\"arno\",\"role\":\"approver\",\"password\":\"$APPR_PW\"}"
expect_error 409 already_exists POST /api/v1/users -H 'Content-Type: application/json' \
    --data-binary "{\"username\":\"arno\",\"role\":\"approver\",\"password\":\"$APPR_PW\"}"
TECH=$(login_as tina "$TECH_PW")
APPR=$(login_as arno "$APPR_PW")
as "$TECH" expect_code 200 GET /api/v1/session
[ "$(jq -r .role "$T/body")" = technician ] || fail "GET /api/v1/session as tina: $(cat "$T/body")"

step "packages through the API: create, list, download, openssl cms -verify against the Root of Trust"
create_package_api "$SYS" 30 "$T/pass" "$T/pkg.mcpp"
grep -qi '^content-type: application/vnd.custos.mcpp' "$T/headers" ||
    fail "the package download is not application/vnd.custos.mcpp: $(grep -i content-type "$T/headers")"
grep -qi '^content-disposition: attachment; filename=' "$T/headers" ||
    fail "the package download has no Content-Disposition attachment"
openssl cms -verify -inform DER -in "$T/pkg.mcpp" -CAfile "$CA" -purpose any -out "$T/pkg.json" \
    2>"$T/ossl.err" || { cat "$T/ossl.err" >&2; fail "openssl rejects the downloaded package"; }
[ "$(jq -r .system "$T/pkg.json")" = "$SYS" ] || fail "the package names no system"
expect_code 200 GET "/api/v1/packages?system=$SYS"
jq -e --arg id "$PACKAGE_ID" '[.items[].package_id] | index($id) != null' "$T/body" >/dev/null ||
    fail "GET /api/v1/packages does not list $PACKAGE_ID"
# Without a passphrase one is generated and shown once.
expect_code 201 POST "/api/v1/systems/$SYS/packages" -H 'Content-Type: application/json' \
    --data-binary '{"valid_days": 7}'
GEN_PASS=$(jq -r '.passphrase // empty' "$T/body")
[ -n "$GEN_PASS" ] || fail "a package made without a passphrase shows none: $(cat "$T/body")"
as "$TECH" expect_error 403 forbidden POST "/api/v1/systems/$SYS/packages" \
    -H 'Content-Type: application/json' --data-binary '{"valid_days": 7}'
as "$TECH" expect_error 403 forbidden GET "/api/v1/packages/$PACKAGE_ID/file"

# --- the technician path with the CLI ------------------------------------------------
step "device: custos-device request offline"
device_request p1 DIS-0001 "$T/pkg.mcpp" "$T/pass"
cp "$T/dev-p1/request.mcpr" "$T/p1.mcpr"

step "technician: custos requests upload; approver: custos devices approve"
cli upload "$TECH" requests upload "$T/p1.mcpr" --json
ID1=$(jq -r .request_id "$T/upload.out")
[ -n "$ID1" ] && [ "$ID1" != null ] || fail "custos requests upload --json printed no request_id: $(cat "$T/upload.out")"
expect_request "$ID1" pending upload
# The technician may not approve.
rc=0
custos_cli "$TECH" devices approve "$ID1" >/dev/null 2>"$T/tapprove.err" || rc=$?
[ "$rc" = 1 ] || fail "custos devices approve as a technician exited $rc, want 1"
grep -q "error: forbidden:" "$T/tapprove.err" || fail "technician approve: no 'error: forbidden:': $(cat "$T/tapprove.err")"
expect_request "$ID1" pending
cli approve "$APPR" devices approve "$ID1"
expect_request "$ID1" certified upload

step "technician: custos profiles download; device: install; technician: custos devices complete"
cli download "$TECH" profiles download "$ID1" -o "$T/p1.mccp"
openssl cms -verify -inform DER -in "$T/p1.mccp" -CAfile "$CA" -purpose any -out "$T/p1.cp.json" \
    2>"$T/ossl.err" || { cat "$T/ossl.err" >&2; fail "openssl rejects the downloaded profile"; }
[ "$(jq -r .request_id "$T/p1.cp.json")" = "$ID1" ] || fail "the profile answers another request"
run "$DEVICE" install --device-dir "$T/dev-p1" --secret-file "$T/p1.secret" --profile "$T/p1.mccp" >/dev/null
[ "$(device_state p1)" = provisioned ] || fail "device p1 not provisioned after install"
cli complete "$TECH" devices complete "$ID1"
expect_request "$ID1" provisioned upload
cli show "$TECH" devices show "$ID1" --json
[ "$(jq -r .state "$T/show.out")" = provisioned ] || fail "custos devices show: $(head -c 300 "$T/show.out")"
cli list "$TECH" devices list --state provisioned --json
grep -q "$ID1" "$T/list.out" || fail "custos devices list --state provisioned does not show $ID1"

# --- the same with curl -----------------------------------------------------------------
step "curl: POST /api/v1/requests 201, again 200 with the same id"
device_request p2 DIS-0002 "$T/pkg.mcpp" "$T/pass"
as "$TECH" expect_code 201 POST /api/v1/requests -H "$MCPR" --data-binary "@$T/dev-p2/request.mcpr"
ID2=$(jq -r .request_id "$T/body")
[ "$(jq -r .state "$T/body")" = pending ] || fail "uploaded request not pending: $(cat "$T/body")"
[ "$(jq -r .via "$T/body")" = upload ] || fail "uploaded request not via upload: $(cat "$T/body")"
as "$TECH" expect_code 200 POST /api/v1/requests -H "$MCPR" --data-binary "@$T/dev-p2/request.mcpr"
[ "$(jq -r .request_id "$T/body")" = "$ID2" ] || fail "the same upload again gave another id"
[ "$(db_count "$D" "select count(*) from requests where serial = 'DIS-0002'")" = 1 ] ||
    fail "the same upload twice stored two requests"
TOKEN='' expect_error 401 unauthenticated POST /api/v1/requests -H "$MCPR" --data-binary "@$T/dev-p2/request.mcpr" \
    -H 'Authorization: Bearer cst_not_a_token'
as "$APPR" expect_error 403 forbidden POST /api/v1/requests -H "$MCPR" --data-binary "@$T/dev-p2/request.mcpr"

step "curl: profile before approval 409; approve; profile; complete"
as "$TECH" expect_error 409 invalid_state GET "/api/v1/requests/$ID2/profile"
as "$TECH" expect_error 409 invalid_state POST "/api/v1/requests/$ID2/complete"
as "$TECH" expect_error 403 forbidden POST "/api/v1/requests/$ID2/approve"
as "$APPR" expect_code 200 POST "/api/v1/requests/$ID2/approve"
[ "$(jq -r .state "$T/body")" = certified ] || fail "approve answered $(cat "$T/body")"
as "$APPR" expect_error 409 invalid_state POST "/api/v1/requests/$ID2/approve"
as "$APPR" expect_error 403 forbidden GET "/api/v1/requests/$ID2/profile"
as "$TECH" expect_code 200 GET "/api/v1/requests/$ID2/profile"
grep -qi '^content-type: application/vnd.custos.mccp' "$T/headers" ||
    fail "the profile download is not application/vnd.custos.mccp"
grep -qi '^content-disposition: attachment; filename=' "$T/headers" ||
    fail "the profile download has no Content-Disposition attachment"
cp "$T/body" "$T/p2.mccp"
run "$DEVICE" install --device-dir "$T/dev-p2" --secret-file "$T/p2.secret" --profile "$T/p2.mccp" >/dev/null
as "$TECH" expect_code 200 POST "/api/v1/requests/$ID2/complete"
[ "$(jq -r .state "$T/body")" = provisioned ] || fail "complete answered $(cat "$T/body")"
expect_request "$ID2" provisioned upload
jq -e '.certificates | length == 2' "$T/body" >/dev/null || fail "the request does not list its 2 certificates"
jq -e '.history | length >= 3' "$T/body" >/dev/null || fail "the request's history is short: $(jq -c .history "$T/body")"
as "$TECH" expect_error 404 not_found GET /api/v1/requests/aaaaaaaaaaaaaaaaaaaaaaaaaa

step "reject with curl: reason kept; a rejected request cannot be approved"
device_request p3 DIS-0003 "$T/pkg.mcpp" "$T/pass"
as "$TECH" expect_code 201 POST /api/v1/requests -H "$MCPR" --data-binary "@$T/dev-p3/request.mcpr"
ID3=$(jq -r .request_id "$T/body")
as "$APPR" expect_error 400 malformed POST "/api/v1/requests/$ID3/reject" -H 'Content-Type: application/json' \
    --data-binary '{"reason": 7}'
as "$APPR" expect_code 200 POST "/api/v1/requests/$ID3/reject" -H 'Content-Type: application/json' \
    --data-binary '{"reason": "label does not match"}'
[ "$(jq -r .state "$T/body")" = rejected ] && [ "$(jq -r .reason "$T/body")" = "label does not match" ] ||
    fail "reject answered $(cat "$T/body")"
as "$APPR" expect_error 409 invalid_state POST "/api/v1/requests/$ID3/approve"

step "tampered .mcpr upload: 4xx with a code, nothing stored"
device_request p4 DIS-0004 "$T/pkg.mcpp" "$T/pass"
size=$(stat -c %s "$T/dev-p4/request.mcpr")
before=$(db_count "$D" "select count(*) from requests")
for off in 40 $((size / 2)) $((size - 10)); do
    flip_byte "$T/dev-p4/request.mcpr" "$off" "$T/bad.mcpr"
    as "$TECH" expect_code '400|422' POST /api/v1/requests -H "$MCPR" --data-binary "@$T/bad.mcpr"
    echo "    flipped at $off: $(jq -c .error "$T/body")"
done
head -c $((size / 2)) "$T/dev-p4/request.mcpr" >"$T/trunc.mcpr"
as "$TECH" expect_error 400 malformed POST /api/v1/requests -H "$MCPR" --data-binary "@$T/trunc.mcpr"
[ "$(db_count "$D" "select count(*) from requests")" = "$before" ] || fail "a tampered upload was stored"
as "$TECH" expect_code 201 POST /api/v1/requests -H "$MCPR" --data-binary "@$T/dev-p4/request.mcpr"

step "mock device files through the API: a tar with identity.mcpi and profile.mccp"
as "$TECH" expect_code '200|201' POST "/api/v1/systems/$SYS/components/pump/mock" \
    -H 'Content-Type: application/json' --data-binary '{"serial": "MOCK-0001"}'
grep -qi '^content-type: application/x-tar' "$T/headers" || fail "mock answer is not application/x-tar"
cp "$T/body" "$T/mock.tar"
tar -tf "$T/mock.tar" | sed 's|^\./||' | sort >"$T/mock.list" || fail "the mock answer is not a tar"
grep -qx identity.mcpi "$T/mock.list" && grep -qx profile.mccp "$T/mock.list" ||
    fail "the mock tar lacks identity.mcpi/profile.mccp: $(tr '\n' ' ' <"$T/mock.list")"
mkdir -p "$T/mock" && tar -xf "$T/mock.tar" -C "$T/mock"
openssl cms -verify -inform DER -in "$T/mock/profile.mccp" -CAfile "$CA" -purpose any -out /dev/null \
    2>/dev/null && fail "a mock profile verifies against the production Root of Trust"
as "$TECH" expect_error '404|422' 'not_found|unknown_component' POST "/api/v1/systems/$SYS/components/nope/mock" \
    -H 'Content-Type: application/json' --data-binary '{"serial": "MOCK-0002"}'
as "$APPR" expect_error 403 forbidden POST "/api/v1/systems/$SYS/components/pump/mock" \
    -H 'Content-Type: application/json' --data-binary '{"serial": "MOCK-0003"}'

step "audit through the API; the log is JSON and holds no secret"
expect_code 200 GET /api/v1/audit/verify
jq -e '.ok == true and .entries > 0' "$T/body" >/dev/null || fail "audit verify: $(cat "$T/body")"
expect_code 200 GET "/api/v1/audit?limit=500"
jq -e --arg id "$ID1" '[.items[] | select(.object | contains($id)) | .actor] | any(. == "user:tina") and any(. == "user:arno")' "$T/body" >/dev/null ||
    fail "the audit trail of $ID1 does not name tina and arno: $(jq -c '[.items[] | {actor, action}]' "$T/body")"
stop_custosd
"$CUSTOSD" audit verify --data "$D" >"$T/audit.txt" 2>&1 || { cat "$T/audit.txt" >&2; fail "custosd audit verify"; }
check_log_json "$T/custosd.log"
check_log_secrets "$T/custosd.log" "$ADMIN_PASSWORD" "$ADMIN_TOKEN" "$TECH_PW" "$APPR_PW" "$TECH" "$APPR" \
    "$GEN_PASS" "$(cat "$T/pass")"
echo "PASS: serve disconnected"
