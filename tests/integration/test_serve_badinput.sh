#!/usr/bin/env bash
# Bad input against one running `custosd serve`: malformed JSON, oversized
# bodies and headers, wrong content types, unknown paths and methods, slow
# clients (slowloris), 1,000 idle connections, plaintext HTTP on the TLS port.
# Each gets its documented answer (or the connection closed), the server keeps
# serving others meanwhile, nothing partial is stored, the audit chain
# verifies, and the log is JSON with no secret in it.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/serve_lib.sh"
command -v python3 >/dev/null || fail "the test needs python3"

D=$T/data
SYS=infusion-x2
MCPR='Content-Type: application/vnd.custos.mcpr'
JSON='Content-Type: application/json'
NOID=aaaaaaaaaaaaaaaaaaaaaaaaaa # well formed, unknown

# still_serves WHAT: an unauthenticated GET /api/v1/session answers 401 within 5 s.
still_serves() {
    local t0 got
    t0=$(date +%s%N)
    got=$(TOKEN='' HCODE_MAX_TIME=5 hcode GET /api/v1/session)
    [ "$got" = 401 ] || fail "after $1 the server does not answer (GET /api/v1/session: $got $(cat "$T/curl.err"))"
    echo "    still serving after $1 ($(( ($(date +%s%N) - t0) / 1000000 )) ms)"
}

# big FILE BYTES: a file of BYTES bytes.
big() {
    head -c "$2" /dev/zero | tr '\0' 'A' >"$1"
}

step "custosd init and serve"
init_data "$D"
start_custosd "$D"
TOKEN=$(login_as admin "$ADMIN_PASSWORD")
ADMIN_TOKEN=$TOKEN
create_system_api "$VECTORS/system-infusion.json"
TOKEN=
users_before=$(db_count "$D" "select count(*) from users")

step "malformed JSON: 400 malformed"
expect_error 400 malformed POST /api/v1/session -H "$JSON" --data-binary '{"username":'
expect_error 400 malformed POST /api/v1/session -H "$JSON" --data-binary '[]'
expect_error 400 malformed POST /api/v1/session -H "$JSON" --data-binary ''
expect_error 400 malformed POST /api/v1/session -H "$JSON" \
    --data-binary '{"username":"admin","password":"x","username":"admin"}'
printf '{"username":"adm\xffin","password":"x"}' >"$T/badutf8.json"
expect_error 400 malformed POST /api/v1/session -H "$JSON" --data-binary "@$T/badutf8.json"
printf '{"username":"adm\\u0000in","password":"x"}' >"$T/nul.json"
expect_code '400|401' POST /api/v1/session -H "$JSON" --data-binary "@$T/nul.json"
TOKEN=$ADMIN_TOKEN
expect_error 400 malformed PUT "/api/v1/systems/$SYS/policy" -H "$JSON" --data-binary '{"mode":"manual"'
expect_error 400 malformed PUT "/api/v1/systems/$SYS/policy" -H "$JSON" --data-binary '{"mode":"sometimes"}'
expect_error 400 malformed PUT "/api/v1/systems/$SYS/policy" -H "$JSON" --data-binary '{"mode":"allow_list","allow":"SN-1"}'
expect_error 400 malformed POST /api/v1/users -H "$JSON" --data-binary '{"username":"eve","role":"god"}'
expect_error 400 malformed POST /api/v1/users -H "$JSON" --data-binary '{"username":"eve","role":"admin","password":7}'
expect_error 400 malformed POST "/api/v1/systems/$SYS/packages" -H "$JSON" --data-binary '{"valid_days":"ten"}'
expect_error 400 'malformed|limit_exceeded' POST "/api/v1/systems/$SYS/packages" -H "$JSON" --data-binary '{"valid_days":0}'
expect_code '400|422' POST /api/v1/systems -H "$JSON" --data-binary '{"name":"x"}'
expect_error 400 malformed GET '/api/v1/requests?limit=0'
expect_error 400 malformed GET '/api/v1/requests?limit=501'
expect_error 400 malformed GET '/api/v1/requests?cursor=%00garbage'
expect_error 400 malformed GET '/api/v1/requests?state=sleeping'
TOKEN=
[ "$(db_count "$D" "select count(*) from users")" = "$users_before" ] || fail "a bad POST /api/v1/users stored a user"
rid=$(sed -n 's/^[Xx]-[Rr]equest-[Ii]d: *\([a-z2-7]*\).*/\1/p' "$T/headers")
sleep 0.2
jq -e --arg r "$rid" 'select(.request_id == $r and .status == 400)' "$T/custosd.log" >/dev/null ||
    fail "no log line with request_id $rid (the X-Request-Id of the last 400) and its status"

step "device protocol: bad .mcpr bodies"
big "$T/64k1.mcpr" $((64 * 1024 + 1))
expect_error 413 too_large POST /device/v1/requests -H "$MCPR" --data-binary "@$T/64k1.mcpr"
head -c 2048 /dev/urandom >"$T/random.mcpr"
expect_error 400 malformed POST /device/v1/requests -H "$MCPR" --data-binary "@$T/random.mcpr"
expect_error 400 malformed POST /device/v1/requests -H "$MCPR" --data-binary ''
big "$T/16k1.receipt" $((16 * 1024 + 1))
expect_error 413 too_large POST "/device/v1/requests/$NOID/receipt" \
    -H 'Content-Type: application/vnd.custos.receipt' --data-binary "@$T/16k1.receipt"
expect_code '400|404' POST "/device/v1/requests/$NOID/receipt" \
    -H 'Content-Type: application/vnd.custos.receipt' --data-binary "@$T/random.mcpr"

step "wrong Content-Type: 415"
expect_error 415 unsupported_media_type POST /device/v1/requests -H "$JSON" --data-binary "@$T/random.mcpr"
expect_error 415 unsupported_media_type POST /device/v1/requests -H 'Content-Type: text/plain' --data-binary 'x'
expect_error 415 unsupported_media_type POST /device/v1/requests -H 'Content-Type:' --data-binary "@$T/random.mcpr"
expect_error 415 unsupported_media_type POST /api/v1/session -H 'Content-Type: text/plain' \
    --data-binary "{\"username\":\"admin\",\"password\":\"x\"}"
TOKEN=$ADMIN_TOKEN
expect_error 415 unsupported_media_type POST /api/v1/requests -H "$JSON" --data-binary "@$T/random.mcpr"
expect_error 415 unsupported_media_type PUT "/api/v1/systems/$SYS/policy" -H 'Content-Type: application/x-www-form-urlencoded' \
    --data-binary 'mode=package'
TOKEN=

step "unknown paths 404, wrong methods 405, no credential 401"
expect_error 404 not_found GET /nope
expect_error 404 not_found GET /device/v1/nope
expect_error 404 not_found GET "/device/v1/requests/$NOID"
expect_code '400|404' GET /device/v1/requests/nonexistent
expect_code '400|404' GET /device/v1/requests/..%2f..%2fcustos.db
expect_code '400|404' GET /device/v1/requests/../../etc/passwd --path-as-is
TOKEN=$ADMIN_TOKEN
expect_error 404 not_found GET /api/v1/nope
expect_error 404 not_found GET "/api/v1/requests/$NOID"
expect_error 404 not_found GET /api/v1/systems/no-such-system
TOKEN=
expect_error 405 method_not_allowed DELETE /device/v1/requests
expect_error 405 method_not_allowed GET /device/v1/requests
expect_error 405 method_not_allowed PUT "/device/v1/requests/$NOID" -H "$MCPR" --data-binary 'x'
expect_error 405 method_not_allowed PUT /api/v1/session -H "$JSON" --data-binary '{}'
TOKEN=$ADMIN_TOKEN
expect_error 405 method_not_allowed PATCH /api/v1/systems -H "$JSON" --data-binary '{}'
expect_error 405 method_not_allowed DELETE /api/v1/audit
TOKEN=
expect_error 401 unauthenticated GET /api/v1/requests
expect_error 401 unauthenticated GET /api/v1/requests -H 'Authorization: Bearer cst_0000000000000000000000'
expect_error 401 unauthenticated GET /api/v1/requests -H 'Authorization: Basic YWRtaW46eA=='
expect_error 401 unauthenticated GET /api/v1/requests -H 'Cookie: custos_session=forged'

step "over the hard body cap (9 MiB): 413 or the connection closed; the server still serves"
big "$T/9m" $((9 * 1024 * 1024))
expect_code '413|000' POST /device/v1/requests -H "$MCPR" --data-binary "@$T/9m"
still_serves "a 9 MiB .mcpr"
TOKEN=$ADMIN_TOKEN
expect_code '413|000' PUT "/api/v1/systems/$SYS/policy" -H "$JSON" --data-binary "@$T/9m"
still_serves "a 9 MiB policy"
expect_code '411|413|000' POST /api/v1/requests -H "$MCPR" -H 'Transfer-Encoding: chunked' --data-binary "@$T/9m"
still_serves "a 9 MiB chunked upload"
TOKEN=
# A Content-Length that promises more than the cap, body never sent.
expect_code '413|000' POST /device/v1/requests -H "$MCPR" -H 'Content-Length: 104857600' \
    --data-binary 'x' --max-time 12
still_serves "a 100 MiB Content-Length"

step "a 20 KiB header is refused; so are 20 KiB of headers"
hdr=$(head -c 20480 /dev/zero | tr '\0' 'h')
expect_code '400|413|431|000' GET /api/v1/session -H "X-Big: $hdr"
many=()
for i in $(seq 1 40); do many+=(-H "X-H$i: $(head -c 500 /dev/zero | tr '\0' 'm')"); done
expect_code '400|413|431|000' GET /api/v1/session "${many[@]}"
still_serves "huge headers"

step "plaintext HTTP on the TLS port: no HTTP answer"
got=$(curl -s --max-time 5 -o "$T/plain.body" -w '%{http_code}' "http://127.0.0.1:$PORT/api/v1/session" || true)
[ "${got:-000}" = 000 ] || fail "plaintext HTTP on the TLS port got an HTTP answer $got: $(head -c 200 "$T/plain.body")"
still_serves "plaintext HTTP"

cat >"$T/slow.py" <<'PY'
# slow.py PORT CA MODE: a slow client; prints the seconds until the server
# closed the connection (or "open" after 25 s).
import socket, ssl, sys, time
port, ca, mode = int(sys.argv[1]), sys.argv[2], sys.argv[3]
ctx = ssl.create_default_context(cafile=ca)
ctx.check_hostname = False
s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=30))
s.settimeout(0.5)
t0 = time.monotonic()
line = b"GET /api/v1/session HTTP/1.1\r\n"
if mode == "silent":
    s.sendall(line[:12])
sent, i = 0, 0
while time.monotonic() - t0 < 25:
    try:
        if mode == "drip-line" and sent < len(line):
            s.sendall(line[sent:sent + 1]); sent += 1
        elif mode == "drip-headers":
            if i == 0:
                s.sendall(line)
            s.sendall(b"X-Slow-%d: 1\r\n" % i); i += 1
    except OSError:
        print("%.1f" % (time.monotonic() - t0)); sys.exit(0)
    end = time.monotonic() + (1.0 if mode == "drip-line" else 2.0)
    while time.monotonic() < end:
        try:
            if s.recv(4096) == b"":
                print("%.1f" % (time.monotonic() - t0)); sys.exit(0)
        except socket.timeout:
            pass
        except (OSError, ssl.SSLError):
            print("%.1f" % (time.monotonic() - t0)); sys.exit(0)
print("open")
PY

step "slowloris: slow clients are closed within the header timeout; others are served meanwhile"
for m in silent drip-line drip-headers; do
    bg_start "slow-$m" python3 "$T/slow.py" "$PORT" "$CA" "$m"
    eval "PID_$(echo "$m" | tr - _)=$BG_PID"
done
sleep 2
for i in 1 2 3; do
    still_serves "slow clients connected ($i)"
    TOKEN=$ADMIN_TOKEN expect_code 200 GET /api/v1/systems
    sleep 1
done
for m in silent drip-line drip-headers; do
    pid_var=PID_$(echo "$m" | tr - _)
    bg_wait "${!pid_var}" 40
    [ "$BG_RC" = 0 ] || fail "slow client $m: exit $BG_RC: $(cat "$T/slow-$m.err")"
    secs=$(cat "$T/slow-$m.out")
    echo "    slow client ($m) closed after: ${secs}s"
    [ "$secs" != open ] || fail "slowloris ($m): the server kept the connection open for 25 s"
    awk -v s="$secs" 'BEGIN { exit !(s <= 15) }' ||
        fail "slowloris ($m): closed only after ${secs}s (header timeout ~10 s)"
done

cat >"$T/conns.py" <<'PY'
# conns.py PORT CA N NTLS STOPFILE: hold N connections (NTLS of them
# TLS-handshaken, the rest raw TCP, idle) until STOPFILE exists; then print how
# many the server had closed.
import os, socket, ssl, sys, time
port, ca, n, ntls, stop = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
ctx = ssl.create_default_context(cafile=ca)
ctx.check_hostname = False
socks, errors = [], 0
t0 = time.monotonic()
for i in range(n):
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        if i % (n // ntls) == 0 and ntls > 0:
            s = ctx.wrap_socket(s)
        socks.append(s)
    except OSError as e:
        errors += 1
print("ready %d open, %d errors, %.1fs" % (len(socks), errors, time.monotonic() - t0), flush=True)
deadline = time.monotonic() + 60
while not os.path.exists(stop) and time.monotonic() < deadline:
    time.sleep(0.1)
closed = 0
for s in socks:
    try:
        s.setblocking(False)
        while True:  # drain what the server sent (a 408, an alert), then EOF?
            if s.recv(4096) == b"":
                closed += 1
                break
    except (BlockingIOError, ssl.SSLWantReadError):
        pass
    except OSError:
        closed += 1
    s.close()
print("closed by server: %d" % closed, flush=True)
PY

step "1,000 idle connections (250 TLS, 750 raw TCP): the server still answers"
bg_start conns python3 "$T/conns.py" "$PORT" "$CA" 1000 250 "$T/conns.stop"
CONNS=$BG_PID
for i in $(seq 1 600); do
    grep -q ready "$T/conns.out" 2>/dev/null && break
    kill -0 "$CONNS" 2>/dev/null || fail "conns.py ended: $(cat "$T/conns.err")"
    sleep 0.1
done
grep -q ready "$T/conns.out" || fail "could not open 1,000 connections within 60 s"
READY_AT=$SECONDS
echo "    $(head -n 1 "$T/conns.out")"
grep -q "ready 1000 open, 0 errors" "$T/conns.out" || fail "the server refused connections: $(head -n 1 "$T/conns.out")"
for i in 1 2 3; do
    t0=$(date +%s%N)
    got=$(TOKEN='' HCODE_MAX_TIME=5 hcode GET /api/v1/session)
    [ "$got" = 401 ] || fail "with 1,000 idle connections GET /api/v1/session got $got $(cat "$T/curl.err")"
    got=$(TOKEN='' HCODE_MAX_TIME=5 hcode GET "/device/v1/requests/$NOID")
    [ "$got" = 404 ] || fail "with 1,000 idle connections GET /device/v1/requests/{unknown} got $got $(cat "$T/curl.err")"
    echo "    answered in $(( ($(date +%s%N) - t0) / 1000000 )) ms for both"
done
# Idle connections (raw TCP that never handshakes included) must not be held
# for ever: after 15 s idle every one is closed by the server's timeouts.
sleep $((15 - (SECONDS - READY_AT) > 0 ? 15 - (SECONDS - READY_AT) : 0))
touch "$T/conns.stop"
bg_wait "$CONNS" 30
[ "$BG_RC" = 0 ] || fail "conns.py exit $BG_RC: $(cat "$T/conns.err")"
echo "    after 15 s idle, $(tail -n 1 "$T/conns.out")"
grep -q "closed by server: 1000" "$T/conns.out" ||
    fail "the server still holds idle connections after 15 s: $(tail -n 1 "$T/conns.out") of 1000 closed"
sleep 1
still_serves "1,000 connections closed"

step "a client certificate that does not chain to the Root of Trust ends the handshake"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=intruder" -days 2 \
    -keyout "$T/intruder.key" -out "$T/intruder.pem" 2>/dev/null || fail "openssl req -x509"
got=$(TOKEN='' HCODE_MAX_TIME=10 hcode GET "/device/v1/requests/$NOID" --cert "$T/intruder.pem" --key "$T/intruder.key")
[ "$got" = 000 ] || fail "a self-signed client certificate got an HTTP answer $got (want the handshake refused)"
still_serves "a foreign client certificate"

step "password guessing: 429 with Retry-After, and no password in the log"
codes=""
for i in $(seq 1 12); do
    got=$(TOKEN='' hcode POST /api/v1/session -H "$JSON" \
        --data-binary '{"username":"admin","password":"guess-Pw-7Q9x'"$i"'"}')
    codes="$codes $got"
done
echo "    12 wrong passwords:$codes"
echo "$codes" | grep -q 429 || fail "12 wrong passwords in a row were never rate limited:$codes"
echo "$codes" | grep -qv 200 || fail "a wrong password signed in"
TOKEN='' expect_error 429 rate_limited POST /api/v1/session -H "$JSON" \
    --data-binary '{"username":"admin","password":"guess-Pw-7Q9x99"}'
grep -qi '^retry-after: *[0-9]' "$T/headers" || fail "429 without Retry-After"
# The right password while limited is still refused (no oracle).
TOKEN='' expect_error 429 rate_limited POST /api/v1/session -H "$JSON" \
    --data-binary "{\"username\":\"admin\",\"password\":\"$ADMIN_PASSWORD\"}"
TOKEN=$ADMIN_TOKEN expect_code 200 GET /api/v1/session # the existing session is unaffected

step "nothing partial stored; audit verify; the log is JSON and holds no secret"
TOKEN=$ADMIN_TOKEN expect_code 200 GET /api/v1/audit/verify
stop_custosd
[ "$(db_count "$D" "select count(*) from requests")" = 0 ] || fail "bad input left requests in the store"
[ "$(db_count "$D" "select count(*) from receipts")" = 0 ] || fail "bad input left receipts in the store"
[ "$(db_count "$D" "select count(*) from users")" = "$users_before" ] || fail "bad input left users in the store"
"$CUSTOSD" audit verify --data "$D" >"$T/audit.txt" 2>&1 || { cat "$T/audit.txt" >&2; fail "custosd audit verify"; }
check_log_json "$T/custosd.log"
check_log_secrets "$T/custosd.log" "$ADMIN_PASSWORD" "$ADMIN_TOKEN" guess-Pw-7Q9x
echo "PASS: serve bad input"
