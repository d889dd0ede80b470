#!/usr/bin/env bash
# custos, the operator CLI, without a custosd: help of every command, usage
# errors (exit 2), configuration errors, a closed port, input refused before
# any network use, and the token file 'custos login' writes (against a canned
# HTTPS answer from 'openssl s_server').
source "$(dirname "$0")/lib.sh"

# Nothing from the caller's environment.
unset CUSTOS_SERVER CUSTOS_CA_FILE CUSTOS_TOKEN
export XDG_CONFIG_HOME=$T/config HOME=$T/home
mkdir -p "$HOME"

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=127.0.0.1 \
    -addext subjectAltName=IP:127.0.0.1 -keyout "$T/server.key" -out "$T/server.pem" 2>/dev/null
CLOSED=https://127.0.0.1:1 # nothing listens on port 1

# expect_usage_msg REGEX CMD...: exit 2 and REGEX on stderr.
expect_usage_msg() {
    local re=$1
    shift
    expect_usage "$@"
    grep -Eq -- "$re" "$T/ef.err" || fail "expected '$re' from: $*; stderr: $(cat "$T/ef.err")"
}

# canned FILE: an HTTPS server on a free loopback port answering one
# connection with the bytes of FILE; sets PORT. What the client sent is then
# in $T/canned.out.
canned() {
    rm -f "$T/canned.out"
    ({ cat "$1"; sleep 3; } | timeout 20 openssl s_server -accept 127.0.0.1:0 \
        -cert "$T/server.pem" -key "$T/server.key" -naccept 1 >"$T/canned.out" 2>&1) \
        >/dev/null 2>&1 &
    PORT=
    for _ in $(seq 100); do
        PORT=$(sed -n 's/^ACCEPT .*:\([0-9][0-9]*\)$/\1/p' "$T/canned.out" 2>/dev/null)
        [ -n "$PORT" ] && return 0
        sleep 0.1
    done
    fail "openssl s_server did not start: $(cat "$T/canned.out")"
}

# http_answer STATUS JSON OUT: an HTTP/1.1 answer with a JSON body.
http_answer() {
    printf 'HTTP/1.1 %s\r\nContent-Type: application/json\r\nX-Request-Id: r-1\r\nContent-Length: %d\r\n\r\n%s' \
        "$1" "${#2}" "$2" >"$3"
}

step "custos --help names every command; --version"
run "$CUSTOS" --help >"$T/help.txt"
for c in "login" "logout" "whoami" "systems create" "systems list" "systems show" \
    "packages create" "packages list" "packages download" "requests upload" "devices list" \
    "devices show" "devices approve" "devices reject" "devices complete" "profiles download" \
    "mock create" "policies set" "policies show" "users create" "users list" "tokens create" \
    "tokens list" "tokens revoke" "audit list" "audit verify" "inspect"; do
    grep -q "custos $c" "$T/help.txt" || fail "custos --help does not list '$c'"
done
run "$CUSTOS" --version >"$T/v.txt"
grep -q '^custos [0-9]' "$T/v.txt" || fail "custos --version: $(cat "$T/v.txt")"

step "every command's --help (and 'custos help ...'), exit 0"
COMMANDS=("login" "logout" "whoami" "systems create" "systems list" "systems show"
    "packages create" "packages list" "packages download" "requests upload" "devices list"
    "devices show" "devices approve" "devices reject" "devices complete" "profiles download"
    "mock create" "policies set" "policies show" "users create" "users list" "tokens create"
    "tokens list" "tokens revoke" "audit list" "audit verify")
for c in "${COMMANDS[@]}"; do
    # shellcheck disable=SC2086 # the words of the command
    run "$CUSTOS" $c --help >"$T/h.txt"
    grep -q "^usage: custos $c" "$T/h.txt" || fail "no usage line from 'custos $c --help'"
    grep -q -- "--server URL" "$T/h.txt" || fail "'custos $c --help' does not name --server"
    # shellcheck disable=SC2086
    run "$CUSTOS" help $c >"$T/h.txt"
    grep -q "^usage: custos $c" "$T/h.txt" || fail "custos help $c"
done
for g in systems packages requests devices profiles mock policies users tokens audit; do
    run "$CUSTOS" "$g" --help >"$T/h.txt"
    grep -q "custos $g" "$T/h.txt" || fail "custos $g --help"
done
run "$CUSTOS" inspect --help >"$T/h.txt"
grep -q "usage: custos inspect" "$T/h.txt" || fail "custos inspect --help"

step "usage errors exit 2"
expect_usage_msg "no command" "$CUSTOS"
expect_usage_msg "unknown command 'frobnicate'" "$CUSTOS" frobnicate
expect_usage_msg "unknown command 'custos devices explode'" "$CUSTOS" devices explode
expect_usage_msg "needs a command" "$CUSTOS" devices
expect_usage_msg "unknown option '--colour'" "$CUSTOS" devices list --colour
expect_usage_msg "unknown option '-x'" "$CUSTOS" devices list -x
expect_usage_msg "option '--user' is required" "$CUSTOS" login
expect_usage_msg "option '--user' needs a value" "$CUSTOS" login --user
expect_usage_msg "option '--out' is required" "$CUSTOS" profiles download abc
expect_usage_msg "missing argument" "$CUSTOS" devices show
expect_usage_msg "unexpected argument 'b'" "$CUSTOS" devices show a b
expect_usage_msg "option '--reason' is required" "$CUSTOS" devices reject abc
expect_usage_msg "given twice" "$CUSTOS" devices list --state pending --state certified
expect_usage_msg "--limit must be a whole number from 1 to 500" "$CUSTOS" devices list --limit 0
expect_usage_msg "--limit must be" "$CUSTOS" devices list --limit 12x
expect_usage_msg "--days must be" "$CUSTOS" packages create --system s --days -3
expect_usage_msg "--mode must be manual, package or allow_list" \
    "$CUSTOS" policies set --system s --mode sometimes
expect_usage_msg "--role must be admin, approver, technician or auditor" \
    "$CUSTOS" users create bob --role root
expect_usage_msg "request ids to approve, or --all-pending" "$CUSTOS" devices approve
expect_usage_msg "not both" "$CUSTOS" devices approve abc --all-pending
expect_usage_msg "--system goes with --all-pending" "$CUSTOS" devices approve abc --system s
expect_usage_msg "takes no value" "$CUSTOS" devices list --all=yes
expect_usage_msg "inspect needs a FILE" "$CUSTOS" inspect
# Usage errors are found before anything is looked up: no server needed.
[ ! -e "$XDG_CONFIG_HOME" ] || fail "a usage error created $XDG_CONFIG_HOME"

step "configuration: no server, not https, no trust anchor (exit 2)"
expect_usage_msg "no server: pass --server" "$CUSTOS" devices list
expect_usage_msg "must be an https:// URL" "$CUSTOS" --server http://127.0.0.1:8443 devices list
expect_usage_msg "no trust anchor" "$CUSTOS" --server "$CLOSED" devices list
expect_usage_msg "no trust anchor" env CUSTOS_SERVER="$CLOSED" "$CUSTOS" devices list
expect_fail "not_found" "$CUSTOS" --server "$CLOSED" --ca-file "$T/missing.pem" devices list
grep -q "cannot read the CA file" "$T/ef.err" || fail "no clear message for a missing CA file"
export CUSTOS_CA_FILE=$T/server.pem

step "not signed in: exit 1, unauthenticated, says how to sign in"
expect_fail "unauthenticated" "$CUSTOS" --server "$CLOSED" devices list
grep -q "custos login" "$T/ef.err" || fail "the error does not say how to sign in"
expect_fail "unauthenticated" "$CUSTOS" --server "$CLOSED" --token-file "$T/none" whoami
printf 'two words\n' >"$T/bad-token"
expect_fail "unauthenticated" "$CUSTOS" --server "$CLOSED" --token-file "$T/bad-token" whoami
expect_fail "unauthenticated" env CUSTOS_TOKEN="a b" "$CUSTOS" --server "$CLOSED" whoami

step "a closed port: exit 1 with a clear connection error"
export CUSTOS_TOKEN=cst_test_token_never_printed
expect_fail "io_error" "$CUSTOS" --server "$CLOSED" devices list
grep -q "cannot reach the server: .*$CLOSED" "$T/ef.err" || fail "unclear: $(cat "$T/ef.err")"
grep -q "$CUSTOS_TOKEN" "$T/ef.out" "$T/ef.err" && fail "the token was printed"
expect_fail "io_error" env CUSTOS_SERVER="$CLOSED" "$CUSTOS" audit verify --json

step "input refused before any network use"
head -c $((64 * 1024 + 1)) /dev/zero >"$T/big.mcpr"
expect_fail "too_large" "$CUSTOS" --server "$CLOSED" requests upload "$T/big.mcpr"
grep -q "cannot reach" "$T/ef.err" && fail "the CLI went to the network for a file over 64 KiB"
grep -q "65536" "$T/ef.err" || fail "the limit is not named: $(cat "$T/ef.err")"
head -c $((64 * 1024)) /dev/zero >"$T/limit.mcpr"
expect_fail "io_error" "$CUSTOS" --server "$CLOSED" requests upload "$T/limit.mcpr"
mkdir "$T/empty"
expect_fail "not_found" "$CUSTOS" --server "$CLOSED" requests upload "$T/empty"
head -c $((64 * 1024 + 1)) /dev/zero >"$T/big.json"
expect_fail "too_large" "$CUSTOS" --server "$CLOSED" systems create "$T/big.json"
printf '{"name": "a", "name": "b"}' >"$T/dup.json"
expect_fail "malformed" "$CUSTOS" --server "$CLOSED" systems create "$T/dup.json"
expect_fail "not_found" "$CUSTOS" --server "$CLOSED" policies set --system s --mode allow_list \
    --allow-file "$T/missing.txt"
: >"$T/empty-pass"
expect_fail "invalid_argument" "$CUSTOS" --server "$CLOSED" packages create --system s \
    --passphrase-file "$T/empty-pass"
expect_fail "invalid_argument" "$CUSTOS" --server "$CLOSED" devices show ..
unset CUSTOS_TOKEN

step "login: token file 0600 in a 0700 directory, token never printed"
printf 'pw-alice\n' >"$T/pw"
http_answer "200 OK" '{"token":"ses_0123456789abcdef","username":"alice","role":"admin","expires":"2026-11-30T03:00:00Z"}' \
    "$T/login.http"
canned "$T/login.http"
(umask 000 && "$CUSTOS" --server "https://127.0.0.1:$PORT" login --user alice \
    --password-file "$T/pw" >"$T/login.out" 2>"$T/login.err") ||
    fail "login failed: $(cat "$T/login.err")"
grep -q "signed in as alice (admin)" "$T/login.out" || fail "login said: $(cat "$T/login.out")"
grep -q "ses_0123456789abcdef" "$T/login.out" "$T/login.err" && fail "login printed the token"
TOKEN_FILE=$XDG_CONFIG_HOME/custos/token
[ "$(stat -c %a "$TOKEN_FILE")" = 600 ] || fail "token file mode $(stat -c %a "$TOKEN_FILE")"
[ "$(stat -c %a "$XDG_CONFIG_HOME/custos")" = 700 ] || fail "token directory not 0700"
[ "$(cat "$TOKEN_FILE")" = ses_0123456789abcdef ] || fail "token file holds $(cat "$TOKEN_FILE")"
[ "$(find "$XDG_CONFIG_HOME/custos" -type f | wc -l)" = 1 ] || fail "a temporary file was left behind"
sleep 0.2
grep -q "^POST /api/v1/session HTTP/1.1" "$T/canned.out" || fail "login did not POST /api/v1/session"
grep -q '"kind":"bearer"' "$T/canned.out" || fail "login did not ask for a bearer token"

step "the server's error body: custos: error: CODE: MESSAGE [field: F], exit 1"
http_answer "422 Unprocessable Entity" \
    '{"error":{"code":"bad_signature","message":"the request signature does not verify","field":"signature"}}' \
    "$T/422.http"
head -c 100 /dev/urandom >"$T/r.mcpr"
canned "$T/422.http"
expect_fail "bad_signature" "$CUSTOS" --server "https://127.0.0.1:$PORT" requests upload "$T/r.mcpr"
grep -q "the request signature does not verify \[field: signature\]" "$T/ef.err" ||
    fail "the server's message is not shown: $(cat "$T/ef.err")"
sleep 0.2
grep -q "^POST /api/v1/requests HTTP/1.1" "$T/canned.out" || fail "upload did not POST /api/v1/requests"
grep -qi "^Content-Type: application/vnd.custos.mcpr" "$T/canned.out" || fail "wrong content type"
grep -q "^Authorization: Bearer ses_0123456789abcdef" "$T/canned.out" ||
    fail "the token from the token file was not sent"

echo "PASS: test_cli_usage"
