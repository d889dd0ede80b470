#!/usr/bin/env bash
# A crash of `custosd serve` mid-stream: devices submit requests while an
# approver approves them, and the daemon is killed with SIGKILL. After a
# restart on the same data directory: every acknowledged (202) request is
# there, every acknowledged approval holds, no certificate serial is issued
# twice, nothing is half done, the audit chain verifies; then the rest is
# submitted and approved and three devices finish end to end.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/serve_lib.sh"

D=$T/data
SYS=infusion-x2
N=30
MCPR='Content-Type: application/vnd.custos.mcpr'
printf 'crash test passphrase\n' >"$T/pass"

step "offline: data directory, system, package; $N requests from $N devices"
init_data "$D"
run "$CUSTOSD" system create --data "$D" --file "$VECTORS/system-infusion.json" >/dev/null
run "$CUSTOSD" package create --data "$D" --system "$SYS" --passphrase-file "$T/pass" \
    --out "$T/pkg.mcpp" --valid-days 30 >/dev/null
t0=$SECONDS
for i in $(seq 1 "$N"); do
    device_request "k$i" "$(printf 'CRASH-%04d' "$i")" "$T/pkg.mcpp" "$T/pass"
done
echo "    $N requests generated in $((SECONDS - t0)) s"

start_custosd "$D"
TOKEN=$(login_as admin "$ADMIN_PASSWORD")
ADMIN_TOKEN=$TOKEN
set_policy_api "$SYS" manual

# submitter FIRST LAST: POST each .mcpr in turn; "I ID" per 202 to $T/acked;
# stops at the first transport failure (the daemon died). Runs in a subshell.
submitter() {
    set +e
    local i code wait
    for i in $(seq "$1" "$2"); do
        while :; do
            code=$(curl -sS --max-time 10 --cacert "$CA" -D "$T/a.hdr" -o "$T/a.body" -w '%{http_code}' \
                -H "$MCPR" --data-binary "@$T/dev-k$i/request.mcpr" "$URL/device/v1/requests" 2>>"$T/a.err")
            if [ "$code" = 429 ]; then
                wait=$(sed -n 's/^[Rr]etry-[Aa]fter: *\([0-9]*\).*/\1/p' "$T/a.hdr")
                echo "429 at $i, retry after ${wait:-1}" >>"$T/a.log"
                sleep "${wait:-1}"
                continue
            fi
            break
        done
        if [ "$code" = 202 ]; then
            echo "$i $(jq -r .request_id "$T/a.body")" >>"$T/acked"
        else
            echo "stopped at $i: $code $(head -c 200 "$T/a.body")" >>"$T/a.log"
            return 0
        fi
        sleep 0.1
    done
}

# approver: approve pending requests as they come; "ID CODE" per answer to
# $T/approved; ends after 3 transport failures in a row.
approver() {
    set +e
    local ids id code fails=0
    while [ "$fails" -lt 3 ]; do
        code=$(curl -sS --max-time 10 --cacert "$CA" -o "$T/b.list" -w '%{http_code}' \
            -H "Authorization: Bearer $TOKEN" "$URL/api/v1/requests?state=pending&limit=50" 2>>"$T/b.err")
        if [ "$code" != 200 ]; then
            fails=$((fails + 1))
            sleep 0.2
            continue
        fi
        fails=0
        ids=$(jq -r '.items[].request_id' "$T/b.list")
        for id in $ids; do
            code=$(curl -sS --max-time 10 --cacert "$CA" -o /dev/null -w '%{http_code}' -X POST \
                -H "Authorization: Bearer $TOKEN" "$URL/api/v1/requests/$id/approve" 2>>"$T/b.err")
            echo "$id $code" >>"$T/approved"
        done
        sleep 0.2
    done
}

step "devices submit while an approver approves; SIGKILL custosd mid-stream"
: >"$T/acked"
: >"$T/approved"
bg_start loop-a submitter 1 "$N"
PID_A=$BG_PID
bg_start loop-b approver
PID_B=$BG_PID
for i in $(seq 1 600); do
    [ "$(wc -l <"$T/acked")" -ge 12 ] && [ "$(grep -c ' 200$' "$T/approved")" -ge 4 ] && break
    kill -0 "$PID_A" 2>/dev/null || break
    sleep 0.1
done
n_acked=$(wc -l <"$T/acked")
[ "$n_acked" -ge 12 ] || fail "only $n_acked of $N requests acknowledged before the kill: $(cat "$T/a.log" 2>/dev/null)"
stop_custosd KILL
bg_wait "$PID_A" 30
bg_wait "$PID_B" 30
n_acked=$(wc -l <"$T/acked")
n_ok=$(grep -c ' 200$' "$T/approved" || true)
echo "    killed: $n_acked requests acknowledged, $n_ok approvals acknowledged"
[ "$n_acked" -lt "$N" ] || echo "    (every request was acknowledged before the kill landed)"

step "restart on the same data directory: nothing acknowledged is lost"
keep_log
start_custosd "$D"
TOKEN=$(login_as admin "$ADMIN_PASSWORD")
while read -r i id; do
    expect_code 200 GET "/api/v1/requests/$id"
    st=$(jq -r .state "$T/body")
    case $st in
    pending | certified) ;;
    *) fail "acknowledged request $id (device $i) is '$st' after the crash, want pending or certified" ;;
    esac
    [ "$(jq -r .serial "$T/body")" = "$(printf 'CRASH-%04d' "$i")" ] || fail "request $id holds another serial"
done <"$T/acked"
grep ' 200$' "$T/approved" | while read -r id _; do
    expect_request "$id" certified
done
dups=$(db_count "$D" "select serial || ' x' || count(*) from certificates group by serial having count(*) > 1")
[ -z "$dups" ] || fail "certificate serials issued twice: $dups"
# No half-issued request: certified ones have both certificates and a profile,
# pending ones have none.
expect_code 200 GET "/api/v1/requests?limit=500"
jq -r '.items[] | "\(.request_id) \(.state)"' "$T/body" >"$T/states"
db_count "$D" "select r.id, (select count(*) from certificates c where c.request_id = r.id),
    (select count(*) from profiles p where p.request_id = r.id) from requests r" | tr '|' ' ' | sort >"$T/issued"
sort "$T/states" | join - "$T/issued" >"$T/joined"
[ "$(wc -l <"$T/joined")" = "$(wc -l <"$T/states")" ] || fail "the API lists requests the store does not hold"
while read -r id st certs prof; do
    case $st in
    certified) [ "$certs" = 2 ] && [ "$prof" = 1 ] || fail "certified request $id has $certs certificates and $prof profiles after the crash" ;;
    pending) [ "$certs" = 0 ] && [ "$prof" = 0 ] || fail "pending request $id has $certs certificates and $prof profiles after the crash" ;;
    *) fail "request $id is '$st' after the crash" ;;
    esac
done <"$T/joined"
echo "    $(wc -l <"$T/states") requests stored: $(cut -d' ' -f2 "$T/states" | sort | uniq -c | tr -s ' \n' ' ')"

step "audit verify with the daemon stopped"
stop_custosd
"$CUSTOSD" audit verify --data "$D" >"$T/audit.txt" 2>&1 || { cat "$T/audit.txt" >&2; fail "custosd audit verify after the crash"; }
cat "$T/audit.txt"

step "submit every request again (the acknowledged ones keep their id), approve all"
keep_log
start_custosd "$D"
: >"$T/ids"
for i in $(seq 1 "$N"); do
    expect_code 202 POST /device/v1/requests -H "$MCPR" --data-binary "@$T/dev-k$i/request.mcpr"
    id=$(jq -r .request_id "$T/body")
    echo "$i $id" >>"$T/ids"
    prev=$(awk -v i="$i" '$1 == i { print $2 }' "$T/acked")
    [ -z "$prev" ] || [ "$prev" = "$id" ] || fail "device $i: acknowledged as $prev, resubmitted as $id"
done
[ "$(db_count "$D" "select count(*) from requests")" = "$N" ] ||
    fail "$N devices, $(db_count "$D" "select count(*) from requests") requests stored"
expect_code 200 GET "/api/v1/requests?state=pending&limit=500"
for id in $(jq -r '.items[].request_id' "$T/body"); do
    expect_code 200 POST "/api/v1/requests/$id/approve"
done
expect_code 200 GET "/api/v1/requests?limit=500"
jq -e --argjson n "$N" '[.items[] | select(.state == "certified")] | length == $n' "$T/body" >/dev/null ||
    fail "not every request certified: $(jq -c '[.items[].state] | group_by(.) | map({(.[0]): length}) | add' "$T/body")"
dups=$(db_count "$D" "select serial || ' x' || count(*) from certificates group by serial having count(*) > 1")
[ -z "$dups" ] || fail "certificate serials issued twice: $dups"
[ "$(db_count "$D" "select count(*) from certificates")" = $((2 * N)) ] ||
    fail "$(db_count "$D" "select count(*) from certificates") certificates for $N requests of 2 keys"

step "races: one .mcpr posted 8 times at once, then 8 approvals of it at once"
device_request race CRASH-RACE "$T/pkg.mcpp" "$T/pass"
rpids=()
for j in 1 2 3 4 5 6 7 8; do
    curl -sS --max-time 30 --cacert "$CA" -o "$T/race$j.body" -w '%{http_code}\n' -H "$MCPR" \
        --data-binary "@$T/dev-race/request.mcpr" "$URL/device/v1/requests" >"$T/race$j.code" 2>&1 &
    rpids+=($!)
done
for p in "${rpids[@]}"; do wait "$p" || true; done
RACE_ID=$(jq -r .request_id "$T/race1.body")
for j in 1 2 3 4 5 6 7 8; do
    [ "$(cat "$T/race$j.code")" = 202 ] || fail "concurrent submission $j: $(cat "$T/race$j.code") $(head -c 300 "$T/race$j.body")"
    [ "$(jq -r .request_id "$T/race$j.body")" = "$RACE_ID" ] || fail "concurrent submissions of one .mcpr got different ids"
done
[ "$(db_count "$D" "select count(*) from requests where serial = 'CRASH-RACE'")" = 1 ] ||
    fail "concurrent submissions of one .mcpr stored $(db_count "$D" "select count(*) from requests where serial = 'CRASH-RACE'") requests"
rpids=()
for j in 1 2 3 4 5 6 7 8; do
    curl -sS --max-time 30 --cacert "$CA" -o "$T/appr$j.body" -w '%{http_code}\n' -X POST \
        -H "Authorization: Bearer $TOKEN" "$URL/api/v1/requests/$RACE_ID/approve" >"$T/appr$j.code" 2>&1 &
    rpids+=($!)
done
for p in "${rpids[@]}"; do wait "$p" || true; done
codes=$(cat "$T"/appr?.code | sort | uniq -c | tr -s ' \n' ' ')
[ "$(cat "$T"/appr?.code | grep -c '^200$')" = 1 ] && [ "$(cat "$T"/appr?.code | grep -c '^409$')" = 7 ] ||
    fail "8 concurrent approvals of one request: want one 200 and seven 409, got:$codes"
[ "$(db_count "$D" "select count(*) from certificates where request_id = '$RACE_ID'")" = 2 ] ||
    fail "8 concurrent approvals issued $(db_count "$D" "select count(*) from certificates where request_id = '$RACE_ID'") certificates, want 2"
echo "    approvals:$codes"

step "paging: ?limit=7 and next_cursor visit every request exactly once"
: >"$T/paged"
cursor=
for _ in $(seq 1 20); do
    expect_code 200 GET "/api/v1/requests?limit=7${cursor:+&cursor=$cursor}"
    jq -r '.items[].request_id' "$T/body" >>"$T/paged"
    cursor=$(jq -r '.next_cursor // empty' "$T/body")
    [ -n "$cursor" ] || break
    cursor=$(printf '%s' "$cursor" | jq -sRr @uri)
done
total=$(db_count "$D" "select count(*) from requests")
[ "$(wc -l <"$T/paged")" = "$total" ] && [ "$(sort -u "$T/paged" | wc -l)" = "$total" ] ||
    fail "paging by 7 gave $(wc -l <"$T/paged") items ($(sort -u "$T/paged" | wc -l) distinct) for $total requests"

step "three devices finish: profile from the device protocol, install, complete"
for i in 1 $((N / 2)) "$N"; do
    id=$(awk -v i="$i" '$1 == i { print $2 }' "$T/ids")
    TOKEN='' expect_code 200 GET "/device/v1/requests/$id"
    grep -qi '^content-type: application/vnd.custos.mccp' "$T/headers" || fail "GET /device/v1/requests/$id is not a profile"
    cp "$T/body" "$T/k$i.mccp"
    run "$DEVICE" install --device-dir "$T/dev-k$i" --secret-file "$T/k$i.secret" --profile "$T/k$i.mccp" >/dev/null
    [ "$(device_state "k$i")" = provisioned ] || fail "device k$i not provisioned after install"
    expect_code 200 POST "/api/v1/requests/$id/complete"
    expect_request "$id" provisioned connected
done

step "final audit verify; the log is JSON and holds no secret"
stop_custosd
"$CUSTOSD" audit verify --data "$D" >"$T/audit.txt" 2>&1 || { cat "$T/audit.txt" >&2; fail "custosd audit verify"; }
keep_log
check_log_json "$T/custosd.all.log"
check_log_secrets "$T/custosd.all.log" "$ADMIN_PASSWORD" "$ADMIN_TOKEN" "$TOKEN"
echo "PASS: serve crash"
