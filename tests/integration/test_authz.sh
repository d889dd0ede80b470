#!/usr/bin/env bash
# Authorization of the operator API against docs/api.md: every endpoint of
# tests/integration/authz_matrix.tsv (the contract's Endpoints table) called with
# every role (admin, approver, technician, auditor) through a bearer session, an
# API token and a cookie session with its CSRF header, each with inputs that make
# an allowed call succeed; then every endpoint with no credential, bad tokens, a
# bad cookie, a revoked API token, signed-out sessions, an expired session
# (CUSTOS_FAKE_NOW) and a cookie session without / with a wrong CSRF header.
# Also: Set-Cookie attributes, a wrong password and an unknown user answered
# alike, sign-out of every role, device endpoints free of operator credentials.
# Prints the matrix (status per endpoint and credential; "!" marks a mismatch)
# and fails listing every mismatch.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/serve_lib.sh"

MATRIX=$CUSTOS_SRC/tests/integration/authz_matrix.tsv
D=$T/data
SYS=infusion-x2
SECONDS=0
MISMATCH=()
RATE_WAITS=0
W=$T/main # the work files (body, headers) of this process; one per parallel column
mkdir -p "$W"
JOBS=${AUTHZ_JOBS:-4}

step() { # with the elapsed time
    echo "--- [${SECONDS}s] $*"
}

mismatch() {
    MISMATCH+=("$*")
}

rnd() {
    openssl rand -hex "$1"
}

# --- credentials --------------------------------------------------------------
# A credential has a name; CKIND[name] is none|bearer|cookie, CVAL the token or
# the cookie value, CCSRF the X-Custos-CSRF value sent (empty: none), CROLE the
# role (role columns only), CUSER its user.
declare -A CKIND CVAL CCSRF CROLE CUSER

setcred() { # NAME KIND VALUE CSRF [ROLE USER]
    CKIND[$1]=$2 CVAL[$1]=$3 CCSRF[$1]=$4 CROLE[$1]=${5:-} CUSER[$1]=${6:-}
}

# call CRED METHOD PATH [CURL ARGS...]: status on stdout, body in $W/body,
# response headers in $W/hdr.
call() {
    local cred=$1 method=$2 path=$3
    shift 3
    local a=()
    case ${CKIND[$cred]} in
    bearer) a=(-H "Authorization: Bearer ${CVAL[$cred]}") ;;
    cookie)
        a=(-H "Cookie: custos_session=${CVAL[$cred]}")
        [ -n "${CCSRF[$cred]}" ] && a+=(-H "X-Custos-CSRF: ${CCSRF[$cred]}")
        ;;
    esac
    echo >>"$T/ncalls"
    curl -sS --cacert "$CA" --max-time 30 -o "$W/body" -D "$W/hdr" -w '%{http_code}' \
        -X "$method" "${a[@]}" "$@" "$URL$path" 2>"$W/curl.err" || true
}

err_code() { # the error code in $W/body (no jq: it runs for most calls)
    local re='"code"[[:space:]]*:[[:space:]]*"([^"]*)"'
    if [[ $(head -c 2000 "$W/body" 2>/dev/null) =~ $re ]]; then echo "${BASH_REMATCH[1]}"; else echo "(no code)"; fi
}

header() { # NAME: the value of a response header in $W/hdr
    grep -i "^$1:" "$W/hdr" | head -n 1 | sed 's/^[^:]*: *//' | tr -d '\r'
}

json_body() { # FILE-OR-STRING: curl args for a JSON body
    RARGS=(-H 'Content-Type: application/json' --data-binary "$1")
}

# expect LABEL WANT WANTCODE GOT: record a mismatch unless GOT is WANT (and, for
# an error, the body's code is WANTCODE).
expect() {
    local label=$1 want=$2 wcode=$3 got=$4 code=
    [ "$got" = "$want" ] || {
        mismatch "$label: expected $want${wcode:+ $wcode}, got $got $(err_code): $(head -c 200 "$W/body" | tr '\n' ' ')"
        return 1
    }
    if [ -n "$wcode" ]; then
        code=$(err_code)
        [ "$code" = "$wcode" ] || {
            mismatch "$label: expected $want $wcode, got $got $code: $(head -c 200 "$W/body" | tr '\n' ' ')"
            return 1
        }
    fi
    return 0
}

# must WANT CRED METHOD PATH [CURL ARGS]: a setup call that has to succeed.
must() {
    local want=$1 got
    shift
    got=$(call "$@")
    [ "$got" = "$want" ] || fail "setup: $2 $3 as $1: expected $want, got $got: $(head -c 400 "$W/body")"
}

# signin USER PASSWORD bearer|cookie: sets SI_TOKEN, or SI_COOKIE and SI_CSRF;
# the answer in $W/signin.json, its headers in $W/signin.hdr. Waits out 429s.
signin() {
    local user=$1 pw=$2 kind=$3 body st tries=0 ra
    if [ "$kind" = bearer ]; then
        body=$(jq -nc --arg u "$user" --arg p "$pw" '{username: $u, password: $p, kind: "bearer"}')
    else
        body=$(jq -nc --arg u "$user" --arg p "$pw" '{username: $u, password: $p}')
    fi
    while :; do
        echo >>"$T/ncalls"
        st=$(curl -sS --cacert "$CA" --max-time 30 -o "$W/signin.json" -D "$W/signin.hdr" \
            -w '%{http_code}' -H 'Content-Type: application/json' --data-binary "$body" \
            "$URL/api/v1/session" 2>"$W/curl.err" || true)
        if [ "$st" = 429 ] && [ "$tries" -lt 30 ]; then
            ra=$(grep -i '^retry-after:' "$W/signin.hdr" | tr -dc '0-9' || true)
            RATE_WAITS=$((RATE_WAITS + 1)) tries=$((tries + 1))
            sleep "${ra:-1}"
            continue
        fi
        break
    done
    case $st in 200 | 201) ;; *) fail "sign-in of $user ($kind): $st $(head -c 300 "$W/signin.json") $(cat "$W/curl.err")" ;; esac
    if [ "$kind" = bearer ]; then
        SI_TOKEN=$(jq -r '.token // empty' "$W/signin.json")
        [ -n "$SI_TOKEN" ] || fail "bearer sign-in of $user answered no token: $(head -c 300 "$W/signin.json")"
    else
        SI_COOKIE=$(grep -i '^set-cookie: *custos_session=' "$W/signin.hdr" | head -n 1 |
            sed 's/^[^=]*=\([^;]*\).*/\1/' | tr -d '\r' || true)
        SI_CSRF=$(jq -r '.csrf // empty' "$W/signin.json")
        [ -n "$SI_COOKIE" ] && [ -n "$SI_CSRF" ] ||
            fail "cookie sign-in of $user: no custos_session cookie or no csrf: $(cat "$W/signin.hdr" "$W/signin.json")"
    fi
}

# --- object pools: assigned before the columns run in parallel -------------------
take() { # POOL: the next unused object of the array POOL into TAKEN
    local -n arr=$1 idx=${1}_I
    [ "$idx" -lt "${#arr[@]}" ] || fail "pool $1 exhausted (the matrix allows more calls than planned)"
    TAKEN=${arr[$idx]}
    idx=$((idx + 1))
}

# --- the contract -----------------------------------------------------------------
ROW_M=() ROW_P=() ROW_R=() ROW_S=()
while IFS=$'\t' read -r m p r s; do
    case $m in '#'* | '') continue ;; esac
    ROW_M+=("$m") ROW_P+=("$p") ROW_R+=("$r") ROW_S+=("$s")
done <"$MATRIX"
NROWS=${#ROW_M[@]}
[ "$NROWS" -gt 20 ] || fail "read only $NROWS endpoints from $MATRIX"

role_allowed() { # ROWINDEX ROLE
    [ "${ROW_R[$1]}" = any ] || [[ ",${ROW_R[$1]}," == *",$2,"* ]]
}

allowed_calls() { # "METHOD PATH": how many calls of the role columns are allowed on that row
    local i n=0 r
    for i in $(seq 0 $((NROWS - 1))); do
        [ "${ROW_M[$i]} ${ROW_P[$i]}" = "$1" ] || continue
        for r in admin approver technician auditor; do
            role_allowed "$i" "$r" && n=$((n + 3))
        done
    done
    echo "$n"
}

# --- server, system, users, package -------------------------------------------------
step "custosd init, serve"
init_data "$D"
start_custosd "$D"
setcred setup none "" ""
signin admin "$ADMIN_PASSWORD" bearer
setcred root bearer "$SI_TOKEN" ""

step "system, users, package (as admin)"
json_body "@$VECTORS/system-infusion.json"
must 201 root POST /api/v1/systems "${RARGS[@]}"
declare -A PW=([admin2]=authz-admin2-secret [approver1]=authz-approver1-secret
    [technician1]=authz-technician1-secret [auditor1]=authz-auditor1-secret)
declare -A UROLE=([admin2]=admin [approver1]=approver [technician1]=technician [auditor1]=auditor)
for u in admin2 approver1 technician1 auditor1; do
    json_body "$(jq -nc --arg u "$u" --arg r "${UROLE[$u]}" --arg p "${PW[$u]}" '{username: $u, role: $r, password: $p}')"
    must 201 root POST /api/v1/users "${RARGS[@]}"
done
printf 'authz package passphrase\n' >"$T/pass"
json_body '{"valid_days": 30, "passphrase": "authz package passphrase"}'
must 201 root POST "/api/v1/systems/$SYS/packages" "${RARGS[@]}"
PKG_ID=$(jq -r .package_id "$W/body")
must 200 root GET "/api/v1/packages/$PKG_ID/file"
cp "$W/body" "$T/pkg.mcpp"

# --- pending and certified requests ---------------------------------------------------
N_APPROVE=$(allowed_calls 'POST /api/v1/requests/{to-approve}/approve')
N_REJECT=$(allowed_calls 'POST /api/v1/requests/{to-reject}/reject')
N_COMPLETE=$(allowed_calls 'POST /api/v1/requests/{to-complete}/complete')
N_REVOKE=$(allowed_calls 'DELETE /api/v1/tokens/{to-revoke}')
N_UPLOAD=$(allowed_calls 'POST /api/v1/requests')
# + a victim pending (V_P), a victim certified (V_C), a spare never uploaded, one for the device protocol
NMCPR=$((N_APPROVE + N_REJECT + N_COMPLETE + N_UPLOAD + 4))
step "$NMCPR requests made offline with custos-device"
mkdir -p "$T/mcpr"
mk_mcpr() {
    "$DEVICE" request --package "$T/pkg.mcpp" --passphrase-file "$T/pass" --component pump \
        --serial "$1" --device-dir "$T/dev/$1" --secret-file "$T/dev/$1.secret" --keep-package \
        >"$T/dev/$1.out" 2>&1 && cp "$T/dev/$1/request.mcpr" "$T/mcpr/$1.mcpr"
}
mkdir -p "$T/dev"
pids=()
for n in $(seq 1 "$NMCPR"); do
    mk_mcpr "AZ-$n" &
    pids+=($!)
    if [ "${#pids[@]}" -ge 2 ]; then
        wait "${pids[@]}" || fail "custos-device request: $(cat "$T"/dev/*.out | tail -n 5)"
        pids=()
    fi
done
[ "${#pids[@]}" -eq 0 ] || wait "${pids[@]}" || fail "custos-device request: $(cat "$T"/dev/*.out | tail -n 5)"
for n in $(seq 1 "$NMCPR"); do
    [ -s "$T/mcpr/AZ-$n.mcpr" ] || fail "custos-device request AZ-$n: $(cat "$T/dev/AZ-$n.out")"
done

upload() { # SERIAL: upload as admin, request id into UP_ID
    must 201 root POST /api/v1/requests -H 'Content-Type: application/vnd.custos.mcpr' \
        --data-binary "@$T/mcpr/$1.mcpr"
    UP_ID=$(jq -r .request_id "$W/body")
}
n=0
next_serial() { n=$((n + 1)); SERIAL=AZ-$n; }
APPROVE=() REJECT=() COMPLETE=() UPLOAD=()
# shellcheck disable=SC2034 # read and advanced by take() through a nameref
APPROVE_I=0 REJECT_I=0 COMPLETE_I=0 UPLOAD_I=0 REVOKE_I=0
for _ in $(seq 1 "$N_APPROVE"); do next_serial; upload "$SERIAL"; APPROVE+=("$UP_ID"); done
for _ in $(seq 1 "$N_REJECT"); do next_serial; upload "$SERIAL"; REJECT+=("$UP_ID"); done
for _ in $(seq 0 "$N_COMPLETE"); do # one more: the victim V_C
    next_serial
    upload "$SERIAL"
    must 200 root POST "/api/v1/requests/$UP_ID/approve" -H 'Content-Type:' --data-binary ''
    [ "$(jq -r .state "$W/body")" = certified ] || fail "approve answered: $(head -c 300 "$W/body")"
    COMPLETE+=("$UP_ID")
done
V_C=${COMPLETE[-1]}
unset 'COMPLETE[-1]'
next_serial
upload "$SERIAL"
V_P=$UP_ID
for _ in $(seq 1 "$N_UPLOAD"); do next_serial; UPLOAD+=("$T/mcpr/$SERIAL.mcpr"); done
next_serial
SPARE=$T/mcpr/$SERIAL.mcpr
next_serial
DEVREQ=$T/mcpr/$SERIAL.mcpr

# --- API tokens and sessions of every role ----------------------------------------------
step "API tokens (as admin) and sessions of every role"
mktoken() { # NAME USER DAYS: TOK_ID, TOK
    json_body "$(jq -nc --arg n "$1" --arg u "$2" --argjson d "$3" '{name: $n, username: $u, valid_days: $d}')"
    must 201 root POST /api/v1/tokens "${RARGS[@]}"
    TOK_ID=$(jq -r .token_id "$W/body") TOK=$(jq -r .token "$W/body")
    [[ $TOK == cst_* ]] || mismatch "POST /api/v1/tokens: token does not start with cst_: $TOK"
}
ROLECOLS=()
for u in admin2 approver1 technician1 auditor1; do
    r=${UROLE[$u]}
    c=${r:0:3}
    signin "$u" "${PW[$u]}" bearer
    setcred "$c-s" bearer "$SI_TOKEN" "" "$r" "$u"
    mktoken "authz-$u" "$u" 30
    setcred "$c-t" bearer "$TOK" "" "$r" "$u"
    signin "$u" "${PW[$u]}" cookie
    setcred "$c-c" cookie "$SI_COOKIE" "$SI_CSRF" "$r" "$u"
    ROLECOLS+=("$c-s" "$c-t" "$c-c")
    if [ "$u" = admin2 ]; then # the cookie sign-in's answer and Set-Cookie
        sc=$(grep -i '^set-cookie: *custos_session=' "$W/signin.hdr" | tr -d '\r' || true)
        for attr in HttpOnly Secure SameSite=Strict 'Path=/'; do
            grep -Eqi "; *$attr *(;|\$)" <<<"$sc" || mismatch "POST /api/v1/session (cookie): Set-Cookie lacks $attr: $sc"
        done
        jq -e '.username == "admin2" and .role == "admin" and (.csrf | length > 0) and (.expires | type == "string")' \
            "$W/signin.json" >/dev/null || mismatch "POST /api/v1/session (cookie): answer is not {username, role, csrf, expires}: $(head -c 300 "$W/signin.json")"
        exp=$(jq -r .expires "$W/signin.json")
        life=$(($(date -d "$exp" +%s 2>/dev/null || echo 0) - $(date +%s)))
        [ "$life" -gt $((12 * 3600 - 300)) ] && [ "$life" -le $((12 * 3600 + 60)) ] ||
            mismatch "POST /api/v1/session: expires $exp is not 12 h from now"
    fi
done
V_T_NAME=authz-victim
mktoken "$V_T_NAME" auditor1 30
V_T=$TOK_ID
setcred victim bearer "$TOK" ""
REVOKE=()
for _ in $(seq 1 "$N_REVOKE"); do mktoken "authz-revoke-$((${#REVOKE[@]} + 1))" auditor1 1; REVOKE+=("$TOK_ID"); done

# --- one matrix cell ----------------------------------------------------------------------
declare -A RES
# resolve ROW CRED POOL(0|1): fill RPATH and RARGS; POOL=1 takes fresh objects
# (an allowed call), 0 the victims.
resolve() {
    local i=$1 cred=$2 pool=$3 p=${ROW_P[$1]} key="${ROW_M[$1]} ${ROW_P[$1]}" tag
    tag=${cred//-/}$i
    [ "$pool" = 1 ] || tag=deny$tag
    RARGS=()
    p=${p//\{system\}/$SYS}
    p=${p//\{package\}/$PKG_ID}
    p=${p//\{request\}/$V_P}
    p=${p//\{certified\}/$V_C}
    if [[ $p == *'{to-approve}'* ]]; then
        if [ "$pool" = 1 ]; then TAKEN=${ASSIGN[$i|$cred]}; else TAKEN=$V_P; fi
        p=${p//\{to-approve\}/$TAKEN}
    fi
    if [[ $p == *'{to-reject}'* ]]; then
        if [ "$pool" = 1 ]; then TAKEN=${ASSIGN[$i|$cred]}; else TAKEN=$V_P; fi
        p=${p//\{to-reject\}/$TAKEN}
    fi
    if [[ $p == *'{to-complete}'* ]]; then
        if [ "$pool" = 1 ]; then TAKEN=${ASSIGN[$i|$cred]}; else TAKEN=$V_C; fi
        p=${p//\{to-complete\}/$TAKEN}
    fi
    if [[ $p == *'{to-revoke}'* ]]; then
        if [ "$pool" = 1 ]; then TAKEN=${ASSIGN[$i|$cred]}; else TAKEN=$V_T; fi
        p=${p//\{to-revoke\}/$TAKEN}
    fi
    [[ $p != *'{'* ]] || fail "$MATRIX: unknown placeholder in $p"
    RPATH=$p
    case $key in
    "POST /api/v1/systems")
        jq --arg n "az$tag" '.name = $n' "$VECTORS/system-infusion.json" >"$W/sys.json"
        json_body "@$W/sys.json"
        ;;
    "PUT /api/v1/systems/{system}")
        # an allowed edit renames the system for people; a refused one must change nothing
        if [ "$pool" = 1 ]; then dn="Authz edit $tag"; else dn="LEAKEDIT-$tag"; fi
        jq --arg d "$dn" '.display_name = $d' "$VECTORS/system-infusion.json" >"$W/sys-edit.json"
        json_body "@$W/sys-edit.json"
        ;;
    "PUT /api/v1/systems/{system}/policy")
        if [ "$pool" = 1 ]; then json_body '{"mode": "manual"}'; else json_body "{\"mode\": \"manual\", \"deny\": [\"LEAK-$tag\"]}"; fi
        ;;
    "POST /api/v1/systems/{system}/packages") json_body '{"valid_days": 30, "passphrase": "authz package passphrase"}' ;;
    "POST /api/v1/systems/{system}/components/pump/mock") json_body "{\"serial\": \"MOCK-$tag\"}" ;;
    "POST /api/v1/requests")
        if [ "$pool" = 1 ]; then TAKEN=${ASSIGN[$i|$cred]}; else TAKEN=$SPARE; fi
        RARGS=(-H 'Content-Type: application/vnd.custos.mcpr' --data-binary "@$TAKEN")
        ;;
    "POST /api/v1/requests/{to-reject}/reject") json_body '{"reason": "authz test"}' ;;
    "POST /api/v1/users")
        json_body "{\"username\": \"azu$tag\", \"role\": \"auditor\", \"password\": \"authz-user-password-$tag\"}"
        ;;
    "POST /api/v1/tokens") json_body "{\"name\": \"az-$tag\", \"username\": \"auditor1\", \"valid_days\": 1}" ;;
    POST* | PUT*) RARGS=(-H 'Content-Type:' --data-binary '') ;; # no body
    esac
}

# answer_checks ROW CRED: what an allowed call answers, beyond its status
answer_checks() {
    local key="${ROW_M[$1]} ${ROW_P[$1]}" label="${ROW_M[$1]} ${ROW_P[$1]} [$2]"
    case $key in
    "GET /api/v1/session")
        jq -e --arg u "${CUSER[$2]}" --arg r "${CROLE[$2]}" '.username == $u and .role == $r' "$W/body" >/dev/null ||
            mismatch "$label: who-am-I is not ${CUSER[$2]}/${CROLE[$2]}: $(head -c 200 "$W/body")"
        ;;
    *"/approve") [ "$(jq -r .state "$W/body" 2>/dev/null)" = certified ] || mismatch "$label: state is not certified: $(head -c 200 "$W/body")" ;;
    *"/reject") [ "$(jq -r .state "$W/body" 2>/dev/null)" = rejected ] || mismatch "$label: state is not rejected: $(head -c 200 "$W/body")" ;;
    *"/complete") [ "$(jq -r .state "$W/body" 2>/dev/null)" = provisioned ] || mismatch "$label: state is not provisioned: $(head -c 200 "$W/body")" ;;
    *"/mock") [[ $(header content-type) == application/x-tar* ]] || mismatch "$label: Content-Type $(header content-type)" ;;
    *"/profile") [[ $(header content-type) == application/vnd.custos.mccp* ]] || mismatch "$label: Content-Type $(header content-type)" ;;
    *"/file") [[ $(header content-type) == application/vnd.custos.mcpp* ]] || mismatch "$label: Content-Type $(header content-type)" ;;
    esac
}

# cell ROW CRED MODE: one call; MODE role (the credential's role decides),
# unauth (401), nocsrf (state-changing: 403 csrf, GET: the normal status),
# badcsrf (state-changing only: 403 csrf).
cell() {
    local i=$1 cred=$2 mode=$3 m=${ROW_M[$1]} want wcode="" pool=0 got label
    label="$m ${ROW_P[$i]} [$cred]"
    case $mode in
    role)
        if role_allowed "$i" "${CROLE[$cred]}"; then want=${ROW_S[$i]} pool=1; else want=403 wcode=forbidden; fi
        ;;
    unauth) want=401 wcode=unauthenticated ;;
    nocsrf | badcsrf)
        if [ "$m" = GET ]; then
            [ "$mode" = nocsrf ] || { RES["$i|$cred"]=-; return 0; }
            want=${ROW_S[$i]}
        else
            want=403 wcode=csrf
        fi
        ;;
    esac
    # Sign-out: a fresh session of the column's user and kind; an API token is
    # no session: 400, and the token stays valid.
    if [ "$m ${ROW_P[$i]}" = "DELETE /api/v1/session" ] && [ "$mode" = role ]; then
        case $cred in
        *-t)
            got=$(call "$cred" DELETE /api/v1/session)
            RES["$i|$cred"]=$got
            expect "$label (an API token)" 400 malformed "$got" || RES["$i|$cred"]="$got!"
            got=$(call "$cred" GET /api/v1/session)
            expect "GET /api/v1/session [$cred] after DELETE /api/v1/session" 200 "" "$got" || RES["$i|$cred"]="${RES["$i|$cred"]%!}!"
            return 0
            ;;
        *-s) signin "${CUSER[$cred]}" "${PW[${CUSER[$cred]}]}" bearer; setcred out1 bearer "$SI_TOKEN" "" ;;
        *-c) signin "${CUSER[$cred]}" "${PW[${CUSER[$cred]}]}" cookie; setcred out1 cookie "$SI_COOKIE" "$SI_CSRF" ;;
        esac
        got=$(call out1 DELETE /api/v1/session)
        RES["$i|$cred"]=$got
        expect "$label" 204 "" "$got" || RES["$i|$cred"]="$got!"
        got=$(call out1 GET /api/v1/session)
        expect "GET /api/v1/session after sign-out [$cred]" 401 unauthenticated "$got" || RES["$i|$cred"]="${RES["$i|$cred"]%!}!"
        return 0
    fi
    resolve "$i" "$cred" "$pool"
    got=$(call "$cred" "$m" "$RPATH" "${RARGS[@]}")
    RES["$i|$cred"]=$got
    if expect "$label" "$want" "$wcode" "$got"; then
        [ "$pool" = 1 ] && answer_checks "$i" "$cred"
    else
        RES["$i|$cred"]="$got!"
    fi
    return 0
}

column() { # CRED MODE
    local i
    for i in $(seq 0 $((NROWS - 1))); do cell "$i" "$1" "$2"; done
}

# columns CRED:MODE...: the columns, $JOBS at a time, each in a subshell with
# its own work files; their results and mismatches are collected here.
columns() {
    local spec cred i line pids=()
    for spec in "$@"; do
        cred=${spec%%:*}
        (
            W=$T/w-$cred
            mkdir -p "$W"
            MISMATCH=()
            column "$cred" "${spec#*:}"
            for i in $(seq 0 $((NROWS - 1))); do echo "$i ${RES["$i|$cred"]}"; done >"$W/res"
            [ "${#MISMATCH[@]}" -eq 0 ] || printf '%s\n' "${MISMATCH[@]}" >"$W/mismatch"
            : >"$W/done"
        ) &
        pids+=($!)
        # at most $JOBS at once (a plain wait would wait for custosd too)
        while [ "$(jobs -rp | grep -cvx "$CUSTOSD_PID" || true)" -ge "$JOBS" ]; do
            wait -n 2>/dev/null || true
        done
    done
    for i in "${pids[@]}"; do wait "$i" 2>/dev/null || true; done
    for spec in "$@"; do
        cred=${spec%%:*}
        [ -f "$T/w-$cred/done" ] || fail "column $cred did not finish"
        while read -r i line; do RES["$i|$cred"]=$line; done <"$T/w-$cred/res"
        [ -f "$T/w-$cred/mismatch" ] || continue
        while IFS= read -r line; do MISMATCH+=("$line"); done <"$T/w-$cred/mismatch"
    done
}

# Fresh objects for the allowed calls of the role columns.
declare -A ASSIGN
for c in "${ROLECOLS[@]}"; do
    for i in $(seq 0 $((NROWS - 1))); do
        role_allowed "$i" "${CROLE[$c]}" || continue
        case "${ROW_M[$i]} ${ROW_P[$i]}" in
        *'{to-approve}'*) take APPROVE ;;
        *'{to-reject}'*) take REJECT ;;
        *'{to-complete}'*) take COMPLETE ;;
        *'{to-revoke}'*) take REVOKE ;;
        "POST /api/v1/requests") take UPLOAD ;;
        *) continue ;;
        esac
        ASSIGN["$i|$c"]=$TAKEN
    done
done

# --- the role matrix ------------------------------------------------------------------------
step "role matrix: $NROWS endpoints x ${#ROLECOLS[@]} credentials"
specs=()
for c in "${ROLECOLS[@]}"; do specs+=("$c:role"); done
columns "${specs[@]}"

# --- bad credentials ------------------------------------------------------------------------
step "bad credentials: none, random tokens and cookie, revoked token, signed-out sessions, no/wrong CSRF"
setcred none none "" ""
setcred badtk bearer "cst_$(rnd 24)" ""
setcred badss bearer "$(rnd 32)" ""
setcred badck cookie "$(rnd 32)" "$(rnd 16)"
setcred nocsr cookie "${CVAL[adm-c]}" ""
setcred badcs cookie "${CVAL[adm-c]}" "$(rnd 16)"

mktoken authz-revoked admin 30
setcred revok bearer "$TOK" ""
expect "GET /api/v1/session [revok] before revocation" 200 "" "$(call revok GET /api/v1/session)" || true
must 204 root DELETE "/api/v1/tokens/$TOK_ID"
must 200 root GET /api/v1/tokens
# "revoked": the contract names the field, not its type (true or a time both say so)
jq -e --arg id "$TOK_ID" '.items[] | select(.token_id == $id) | .revoked | . != null and . != false and . != ""' \
    "$W/body" >/dev/null ||
    mismatch "GET /api/v1/tokens: the revoked token is not listed as revoked: $(jq -c --arg id "$TOK_ID" '.items[] | select(.token_id == $id)' "$W/body")"

signin admin "$ADMIN_PASSWORD" bearer
setcred sgout bearer "$SI_TOKEN" ""
expect "GET /api/v1/session [sgout] before sign-out" 200 "" "$(call sgout GET /api/v1/session)" || true
expect "DELETE /api/v1/session [sgout]" 204 "" "$(call sgout DELETE /api/v1/session)" || true
signin admin "$ADMIN_PASSWORD" cookie
setcred ckout cookie "$SI_COOKIE" "$SI_CSRF"
expect "GET /api/v1/session [ckout] before sign-out" 200 "" "$(call ckout GET /api/v1/session)" || true
setcred ckoutn cookie "$SI_COOKIE" ""
expect "DELETE /api/v1/session [ckout] without X-Custos-CSRF" 403 csrf "$(call ckoutn DELETE /api/v1/session)" || true
expect "DELETE /api/v1/session [ckout]" 204 "" "$(call ckout DELETE /api/v1/session)" || true

columns none:unauth badtk:unauth badss:unauth badck:unauth revok:unauth sgout:unauth ckout:unauth \
    nocsr:nocsrf badcs:badcsrf
expect "GET /api/v1/session [adm-c] after the calls without CSRF header" 200 "" "$(call adm-c GET /api/v1/session)" || true

# --- wrong password, device endpoints ----------------------------------------------------------
step "wrong password and unknown user answered alike"
pw_fail() { # USER: status, body in $T/pwfail.$1
    curl -sS --cacert "$CA" --max-time 30 -o "$T/pwfail.$1" -w '%{http_code}' -H 'Content-Type: application/json' \
        --data-binary "{\"username\": \"$1\", \"password\": \"wrong-password-$RANDOM$RANDOM\"}" "$URL/api/v1/session" || true
}
st1=$(pw_fail admin)
st2=$(pw_fail nosuchuser)
[ "$st1" = 401 ] || mismatch "POST /api/v1/session wrong password: expected 401, got $st1: $(head -c 200 "$T/pwfail.admin")"
[ "$st2" = 401 ] || mismatch "POST /api/v1/session unknown user: expected 401, got $st2: $(head -c 200 "$T/pwfail.nosuchuser")"
cmp -s "$T/pwfail.admin" "$T/pwfail.nosuchuser" ||
    mismatch "POST /api/v1/session: wrong password and unknown user answer different bodies: $(head -c 200 "$T/pwfail.admin") | $(head -c 200 "$T/pwfail.nosuchuser")"
jq -e '.error.code == "unauthenticated"' "$T/pwfail.admin" >/dev/null 2>&1 ||
    mismatch "POST /api/v1/session wrong password: code is not unauthenticated: $(head -c 200 "$T/pwfail.admin")"

step "device endpoints need no operator credential"
expect "GET /device/v1/requests/{unknown} [none]" 404 not_found "$(call none GET "/device/v1/requests/$(rnd 13 | tr 0-9 a-j | head -c 26)")" || true
got=$(call none POST /device/v1/requests -H 'Content-Type: application/vnd.custos.mcpr' --data-binary "@$DEVREQ")
if expect "POST /device/v1/requests [none]" 202 "" "$got"; then
    dev_id=$(jq -r .request_id "$W/body")
    expect "GET /device/v1/requests/{pending} [none]" 202 "" "$(call none GET "/device/v1/requests/$dev_id")" || true
fi
got=$(call none POST "/device/v1/requests/$V_P/receipt" -H 'Content-Type: application/vnd.custos.receipt' --data-binary 'not a receipt')
case $got in 401 | 403 | 000) mismatch "POST /device/v1/requests/{id}/receipt [none]: got $got $(err_code), an operator credential check" ;; esac

# --- nothing refused was done ----------------------------------------------------------------
step "refused calls left no trace"
must 200 root GET "/api/v1/requests/$V_P"
[ "$(jq -r .state "$W/body")" = pending ] || mismatch "victim request $V_P is $(jq -r .state "$W/body"), not pending"
must 200 root GET "/api/v1/requests/$V_C"
[ "$(jq -r .state "$W/body")" = certified ] || mismatch "victim request $V_C is $(jq -r .state "$W/body"), not certified"
expect "GET /api/v1/session [victim token]" 200 "" "$(call victim GET /api/v1/session)" || true
got=$(call root POST /api/v1/requests -H 'Content-Type: application/vnd.custos.mcpr' --data-binary "@$SPARE")
expect "POST /api/v1/requests [root] of the request refused to everyone else" 201 "" "$got" || true
must 200 root GET '/api/v1/systems'
jq -e '[.items[].name | select(startswith("azdeny"))] | length == 0' "$W/body" >/dev/null ||
    mismatch "refused POST /api/v1/systems created: $(jq -c '[.items[].name | select(startswith("azdeny"))]' "$W/body")"
must 200 root GET /api/v1/users
jq -e '[.items[].username | select(startswith("azudeny"))] | length == 0' "$W/body" >/dev/null ||
    mismatch "refused POST /api/v1/users created: $(jq -c '[.items[].username | select(startswith("azudeny"))]' "$W/body")"
must 200 root GET /api/v1/tokens
jq -e '[.items[].name | select(startswith("az-deny"))] | length == 0' "$W/body" >/dev/null ||
    mismatch "refused POST /api/v1/tokens created: $(jq -c '[.items[].name | select(startswith("az-deny"))]' "$W/body")"
must 200 root GET "/api/v1/systems/$SYS"
jq -e '.display_name | startswith("LEAKEDIT-") | not' "$W/body" >/dev/null ||
    mismatch "refused PUT /api/v1/systems/$SYS changed it: $(jq -c .display_name "$W/body")"
must 200 root GET "/api/v1/systems/$SYS/policy"
jq -e '[.deny[]? | select(startswith("LEAK-"))] | length == 0' "$W/body" >/dev/null ||
    mismatch "refused PUT policy changed the deny list: $(jq -c .deny "$W/body")"
must 200 root GET "/api/v1/packages?system=$SYS&limit=500"
npkg=$(jq '.items | length' "$W/body")
want_pkg=$((1 + $(allowed_calls 'POST /api/v1/systems/{system}/packages')))
[ "$npkg" = "$want_pkg" ] ||
    mismatch "GET /api/v1/packages?system=: $npkg packages, expected $want_pkg (setup + allowed calls)"
must 200 root GET /api/v1/audit/verify
jq -e '.ok == true' "$W/body" >/dev/null || mismatch "GET /api/v1/audit/verify: $(head -c 200 "$W/body")"

# --- expired sessions (CUSTOS_FAKE_NOW) -----------------------------------------------------
step "sessions expire after 12 hours (restart with CUSTOS_FAKE_NOW)"
signin admin "$ADMIN_PASSWORD" bearer
setcred expir bearer "$SI_TOKEN" ""
signin admin "$ADMIN_PASSWORD" cookie
setcred expck cookie "$SI_COOKIE" "$SI_CSRF"
signin admin "$ADMIN_PASSWORD" bearer
setcred expok bearer "$SI_TOKEN" ""
cp "$T/custosd.log" "$T/custosd.1.log"
stop_custosd
export CUSTOS_FAKE_NOW=$(($(date +%s) + 11 * 3600 + 50 * 60))
start_custosd "$D"
expect "GET /api/v1/session [expok] at +11h50" 200 "" "$(call expok GET /api/v1/session)" || true
cp "$T/custosd.log" "$T/custosd.2.log"
stop_custosd
export CUSTOS_FAKE_NOW=$(($(date +%s) + 13 * 3600))
start_custosd "$D"
unset CUSTOS_FAKE_NOW
expect "GET /api/v1/session [adm-t] at +13h (API token still valid)" 200 "" "$(call adm-t GET /api/v1/session)" || true
columns expir:unauth expck:unauth
stop_custosd

# --- the table --------------------------------------------------------------------------------
NEGCOLS=(none badtk badss badck revok sgout ckout expir expck nocsr badcs)
print_table() { # COLUMNS...
    local i c line
    line=$(printf '%-52s' endpoint)
    for c in "$@"; do line+=$(printf ' %-5s' "$c"); done
    echo "$line"
    for i in $(seq 0 $((NROWS - 1))); do
        line=$(printf '%-52s' "${ROW_M[$i]} ${ROW_P[$i]}")
        for c in "$@"; do line+=$(printf ' %-5s' "${RES["$i|$c"]:-?}"); done
        echo "$line"
    done
}
echo
echo "roles: adm=admin2 apr=approver1 tec=technician1 aud=auditor1; -s bearer session, -t API token, -c cookie session + CSRF"
print_table "${ROLECOLS[@]}"
echo
echo "none: no credential; badtk/badss: random API/session token; badck: random cookie; revok: revoked API token;"
echo "sgout/ckout: signed-out bearer/cookie session; expir/expck: expired bearer/cookie session;"
echo "nocsr/badcs: admin cookie session without / with a wrong X-Custos-CSRF (\"!\" = mismatch, \"-\" = not applicable)"
print_table "${NEGCOLS[@]}"
cells=0
for k in "${!RES[@]}"; do [ "${RES[$k]}" = - ] || cells=$((cells + 1)); done
echo
echo "$cells matrix cells, $(wc -l <"$T/ncalls") HTTP calls, $RATE_WAITS sign-in rate-limit waits, ${SECONDS}s"
if [ "${#MISMATCH[@]}" -gt 0 ]; then
    echo >&2
    echo "${#MISMATCH[@]} mismatches with docs/api.md:" >&2
    printf '  %s\n' "${MISMATCH[@]}" >&2
    fail "${#MISMATCH[@]} mismatches"
fi
echo "PASS: test_authz"
