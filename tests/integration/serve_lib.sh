# Helpers for tests that run the real `custosd serve` on a loopback port.
# Source after lib.sh.

# init_data DIR: custosd init; sets ADMIN_PASSWORD from its one-time output.
init_data() {
    local dir=$1
    "$CUSTOSD" init --data "$dir" >"$T/init.out" 2>&1 || { cat "$T/init.out" >&2; fail "custosd init"; }
    ADMIN_PASSWORD=$(sed -n 's/.*password: \([A-Za-z0-9_-]*\).*/\1/p' "$T/init.out" | head -n 1)
    [ -n "$ADMIN_PASSWORD" ] || fail "custosd init printed no admin password"
}

# start_custosd DIR [ARGS...]: serve DIR on 127.0.0.1 (a free port); sets
# CUSTOSD_PID, PORT, URL, CA (the Root of Trust PEM). Logs go to $T/custosd.log.
start_custosd() {
    local dir=$1
    shift
    start_custosd_on "$dir" 127.0.0.1:0 "$@"
}

# start_custosd_on DIR ADDR:PORT [ARGS...]: start_custosd on a given address
# (a restart on the port devices already use).
start_custosd_on() {
    local dir=$1 listen=$2 i
    shift 2
    : >"$T/custosd.log"
    "$CUSTOSD" serve --data "$dir" --listen "$listen" "$@" 2>>"$T/custosd.log" &
    CUSTOSD_PID=$!
    PORT=
    for i in $(seq 1 200); do
        PORT=$(grep '"event":"listening"' "$T/custosd.log" 2>/dev/null | tail -n 1 | jq -r .port 2>/dev/null || true)
        [ -n "$PORT" ] && [ "$PORT" != null ] && break
        kill -0 "$CUSTOSD_PID" 2>/dev/null || { cat "$T/custosd.log" >&2; fail "custosd serve exited"; }
        sleep 0.05
    done
    [ -n "$PORT" ] && [ "$PORT" != null ] || { cat "$T/custosd.log" >&2; fail "custosd serve did not start"; }
    URL=https://127.0.0.1:$PORT
    CA=$dir/root.pem
}

# stop_custosd [SIGNAL]: stop it and wait (default TERM: graceful, must exit 0).
stop_custosd() {
    local sig=${1:-TERM} rc=0
    [ -n "${CUSTOSD_PID:-}" ] || return 0
    kill -"$sig" "$CUSTOSD_PID" 2>/dev/null || true
    wait "$CUSTOSD_PID" || rc=$?
    CUSTOSD_PID=
    if [ "$sig" = TERM ] && [ "$rc" -ne 0 ]; then
        tail -n 20 "$T/custosd.log" >&2
        fail "custosd exited $rc after SIGTERM"
    fi
}

# Stop the daemon (and the background processes bg_start started) whatever
# happens, then clean up.
BG_PIDS=()
serve_cleanup() {
    local p
    for p in "${BG_PIDS[@]}"; do
        kill -KILL "$p" 2>/dev/null || true
    done
    stop_custosd KILL >/dev/null 2>&1 || true
    [ "${CUSTOS_KEEP_TMP:-0}" = 1 ] && echo "kept: $T" >&2 || rm -rf "$T"
}
trap serve_cleanup EXIT

# login USER PASSWORD: a bearer session token on stdout.
login() {
    curl -sS --cacert "$CA" -H 'Content-Type: application/json' \
        -d "{\"username\":\"$1\",\"password\":\"$2\",\"kind\":\"bearer\"}" \
        "$URL/api/v1/session" | jq -r .token
}

# http METHOD PATH [CURL ARGS...]: status code on stdout, body in $T/body.
# Uses $TOKEN as a bearer token when set.
http() {
    local method=$1 path=$2
    shift 2
    local auth=()
    [ -n "${TOKEN:-}" ] && auth=(-H "Authorization: Bearer $TOKEN")
    curl -sS --cacert "$CA" -o "$T/body" -w '%{http_code}' -X "$method" "${auth[@]}" "$@" "$URL$path"
}

# expect_status WANT METHOD PATH [CURL ARGS...]
expect_status() {
    local want=$1 got
    shift
    got=$(http "$@")
    [ "$got" = "$want" ] || fail "expected $want from $1 $2, got $got: $(head -c 400 "$T/body")"
}

# ---- additions for the service tests (test_serve_*.sh) ----------------------

# login_as USER PASSWORD: like login, but fails the test when no token comes back.
login_as() {
    local tok
    tok=$(login "$1" "$2" 2>/dev/null || true)
    [ -n "$tok" ] && [ "$tok" != null ] || fail "POST /api/v1/session as '$1' returned no bearer token"
    echo "$tok"
}

# hcode METHOD PATH [CURL ARGS...]: like http, but a transport failure prints
# 000 instead of ending the test (body in $T/body, headers in $T/headers).
hcode() {
    local method=$1 path=$2 code
    shift 2
    local auth=()
    [ -n "${TOKEN:-}" ] && auth=(-H "Authorization: Bearer $TOKEN")
    : >"$T/body"
    code=$(curl -sS --max-time "${HCODE_MAX_TIME:-30}" --cacert "$CA" -D "$T/headers" -o "$T/body" \
        -w '%{http_code}' -X "$method" "${auth[@]}" "$@" "$URL$path" 2>"$T/curl.err") || true
    echo "${code:-000}"
}

# expect_code WANT METHOD PATH [CURL ARGS...]: WANT is an extended regex
# ("413|000"); the body must carry the error shape when the status is >= 400.
expect_code() {
    local want=$1 got
    shift
    got=$(hcode "$@")
    echo "$got" | grep -Eqx "$want" ||
        fail "expected $want from $1 $2, got $got: $(head -c 400 "$T/body") $(cat "$T/curl.err")"
    if [ "$got" != 000 ]; then
        grep -qi '^x-request-id: *[a-z2-7]\{26\}' "$T/headers" ||
            fail "$1 $2 answered $got without an X-Request-Id header"
    fi
    if [ "$got" -ge 400 ] 2>/dev/null; then
        jq -e '.error.code | type == "string" and length > 0' "$T/body" >/dev/null 2>&1 ||
            fail "$1 $2 answered $got without the error shape {\"error\":{\"code\",...}}: $(head -c 300 "$T/body")"
        jq -e '.error.message | type == "string" and length > 0' "$T/body" >/dev/null 2>&1 ||
            fail "$1 $2 answered $got without an error message: $(head -c 300 "$T/body")"
    fi
}

# expect_error STATUS CODE METHOD PATH [CURL ARGS...]: status and error code.
expect_error() {
    local status=$1 code=$2
    shift 2
    expect_code "$status" "$@"
    jq -e --arg c "$code" '.error.code | test("^(" + $c + ")$")' "$T/body" >/dev/null ||
        fail "$1 $2: expected error code '$code', got: $(head -c 300 "$T/body")"
}

# api_json METHOD PATH JSON: a JSON call with $TOKEN; status on stdout.
api_json() {
    local method=$1 path=$2 body=$3
    hcode "$method" "$path" -H 'Content-Type: application/json' --data-binary "$body"
}

# create_system_api FILE: POST /api/v1/systems (needs an admin $TOKEN).
create_system_api() {
    local got
    got=$(hcode POST /api/v1/systems -H 'Content-Type: application/json' --data-binary "@$1")
    [ "$got" = 201 ] || fail "POST /api/v1/systems: expected 201, got $got: $(head -c 300 "$T/body")"
}

# create_package_api SYSTEM DAYS PASSFILE OUT: make a package through the API
# and download it to OUT; sets PACKAGE_ID (needs an admin $TOKEN).
create_package_api() {
    local system=$1 days=$2 passfile=$3 out=$4 got body
    body=$(jq -cn --argjson d "$days" --arg p "$(cat "$passfile")" '{valid_days: $d, passphrase: $p}')
    got=$(api_json POST "/api/v1/systems/$system/packages" "$body")
    [ "$got" = 201 ] || fail "POST /api/v1/systems/$system/packages: expected 201, got $got: $(head -c 300 "$T/body")"
    PACKAGE_ID=$(jq -r .package_id "$T/body")
    [ -n "$PACKAGE_ID" ] && [ "$PACKAGE_ID" != null ] || fail "package answer has no package_id: $(cat "$T/body")"
    got=$(hcode GET "/api/v1/packages/$PACKAGE_ID/file")
    [ "$got" = 200 ] || fail "GET /api/v1/packages/$PACKAGE_ID/file: expected 200, got $got"
    cp "$T/body" "$out"
}

# set_policy_api SYSTEM MODE: PUT the auto-approval policy (admin $TOKEN).
set_policy_api() {
    local got
    got=$(api_json PUT "/api/v1/systems/$1/policy" "{\"mode\":\"$2\"}")
    [ "$got" = 200 ] || fail "PUT /api/v1/systems/$1/policy mode $2: expected 200, got $got: $(head -c 300 "$T/body")"
    [ "$(jq -r .mode "$T/body")" = "$2" ] || fail "the policy answer does not say mode $2: $(cat "$T/body")"
}

# device_request NAME SERIAL PKG PASSFILE [ARGS...]: offline identity
# generation for a pump into $T/dev-NAME with secret $T/NAME.secret (the
# package is kept). The .mcpr is $T/dev-NAME/request.mcpr.
device_request() {
    local name=$1 serial=$2 pkg=$3 pass=$4
    shift 4
    "$DEVICE" request --package "$pkg" --passphrase-file "$pass" --component pump \
        --serial "$serial" --device-dir "$T/dev-$name" --secret-file "$T/$name.secret" \
        --keep-package "$@" >"$T/dev-$name.out" 2>&1 ||
        { cat "$T/dev-$name.out" >&2; fail "custos-device request for $name ($serial)"; }
}

# device_state NAME: the device's own view (custos-device status --json .state).
device_state() {
    "$DEVICE" status --device-dir "$T/dev-$1" --secret-file "$T/$1.secret" --json 2>/dev/null |
        jq -r .state
}

# request_field ID FIELD: a field of GET /api/v1/requests/ID ($TOKEN), or "".
request_field() {
    local got
    got=$(hcode GET "/api/v1/requests/$1")
    [ "$got" = 200 ] || { echo ""; return 0; }
    jq -r ".$2 // empty" "$T/body"
}

# expect_request ID STATE [VIA]: GET /api/v1/requests/ID shows STATE (and VIA).
expect_request() {
    local id=$1 want=$2 via=${3:-} got
    got=$(hcode GET "/api/v1/requests/$id")
    [ "$got" = 200 ] || fail "GET /api/v1/requests/$id: expected 200, got $got: $(head -c 300 "$T/body")"
    [ "$(jq -r .state "$T/body")" = "$want" ] ||
        fail "request $id is '$(jq -r .state "$T/body")', want '$want'"
    [ -z "$via" ] || [ "$(jq -r .via "$T/body")" = "$via" ] ||
        fail "request $id arrived via '$(jq -r .via "$T/body")', want '$via'"
}

# wait_request_by_serial SERIAL STATE SECS: poll GET /api/v1/requests?q=SERIAL
# until one of its requests is in STATE; prints its request id.
wait_request_by_serial() {
    local serial=$1 state=$2 secs=$3 end id
    end=$((SECONDS + secs))
    while [ "$SECONDS" -lt "$end" ]; do
        if [ "$(hcode GET "/api/v1/requests?q=$serial&state=$state")" = 200 ]; then
            id=$(jq -r --arg s "$serial" '[.items[] | select(.serial == $s)][0].request_id // empty' "$T/body")
            [ -n "$id" ] && { echo "$id"; return 0; }
        fi
        sleep 0.2
    done
    fail "no $state request for serial $serial within ${secs}s"
}

# custos_cli TOKEN ARGS...: the operator CLI against $URL with CUSTOS_TOKEN.
custos_cli() {
    local tok=$1
    shift
    CUSTOS_TOKEN=$tok "$CUSTOS" --server "$URL" --ca-file "$CA" "$@"
}

# bg_start NAME CMD...: run CMD in the background, stdout/stderr to
# $T/NAME.out and $T/NAME.err; sets BG_PID (killed at exit if still running).
bg_start() {
    local name=$1
    shift
    "$@" >"$T/$name.out" 2>"$T/$name.err" &
    BG_PID=$!
    BG_PIDS+=("$BG_PID")
}

# bg_wait PID SECS: wait for a bg_start process at most SECS; sets BG_RC to
# its exit status (124 when it had to be killed). Not in $(...): a subshell
# cannot wait for the test's children.
bg_wait() {
    local pid=$1 secs=$2 end
    end=$((SECONDS + secs))
    BG_RC=0
    while kill -0 "$pid" 2>/dev/null && [ "$SECONDS" -lt "$end" ]; do
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
        BG_RC=124
        return 0
    fi
    wait "$pid" || BG_RC=$?
}

# db_count DIR SQL: one number from the data directory's store (read only).
db_count() {
    sqlite3 -readonly "$1/custos.db" "$2"
}

# check_log_json FILE: every line is one JSON object.
check_log_json() {
    local bad
    [ -s "$1" ] || fail "the log $1 is empty"
    bad=$(jq -R -r '. as $l | try (fromjson | if type == "object" then empty else $l end) catch $l' "$1" |
        head -n 1)
    [ -z "$bad" ] || fail "a line of $(basename "$1") is not a JSON object: $bad"
}

# check_log_secrets FILE SECRET...: no line of FILE contains any SECRET.
check_log_secrets() {
    local f=$1 s
    shift
    for s in "$@"; do
        [ -n "$s" ] || continue
        ! grep -qF -- "$s" "$f" || fail "the log $(basename "$f") contains a secret (${s:0:6}…): $(grep -F -- "$s" "$f" | head -n 1)"
    done
}

# keep_log: append $T/custosd.log (start_custosd empties it) to
# $T/custosd.all.log; call before a restart and before checking the logs.
keep_log() {
    cat "$T/custosd.log" >>"$T/custosd.all.log" 2>/dev/null || true
    : >"$T/custosd.log"
}
