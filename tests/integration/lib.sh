# Shared helpers of the integration tests; source it from a test_*.sh script.
# Binaries come from $CUSTOS_BIN (the build directory), sources from $CUSTOS_SRC.
set -euo pipefail

: "${CUSTOS_BIN:?set CUSTOS_BIN to the build directory holding custosd, custos-device, custos}"
CUSTOS_SRC=${CUSTOS_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
CUSTOSD=$CUSTOS_BIN/custosd
DEVICE=$CUSTOS_BIN/custos-device
CUSTOS=$CUSTOS_BIN/custos
VECTORS=$CUSTOS_SRC/tests/vectors

for b in "$CUSTOSD" "$DEVICE" "$CUSTOS"; do
    [ -x "$b" ] || { echo "FAIL: $b is missing (build first)" >&2; exit 1; }
done
for t in openssl jq sqlite3 sha256sum; do
    command -v "$t" >/dev/null || { echo "FAIL: the tests need '$t'" >&2; exit 1; }
done

T=$(mktemp -d "${TMPDIR:-/tmp}/custos-it.XXXXXX")
# CUSTOS_KEEP_TMP=1 keeps the files for a post-mortem.
if [ "${CUSTOS_KEEP_TMP:-0}" = 1 ]; then
    trap 'echo "kept: $T" >&2' EXIT
else
    trap 'rm -rf "$T"' EXIT
fi
# Never touch a real device secret; never inherit the test clock.
export CUSTOS_SECRET_FILE=$T/default-device-secret
unset CUSTOS_FAKE_NOW

fail() {
    echo "FAIL: $*" >&2
    exit 1
}

step() {
    echo "--- $*"
}

# run CMD...: run, show stderr and fail when it does not exit 0; stdout passes through.
run() {
    local rc=0
    "$@" 2>"$T/run.err" || rc=$?
    if [ "$rc" -ne 0 ]; then
        cat "$T/run.err" >&2
        fail "exit $rc from: $*"
    fi
    cat "$T/run.err" >&2
}

# expect_fail CODE CMD...: the command must exit 1 and print "error: CODE:" on
# stderr. CODE is an extended regex ("bad_signature|malformed").
expect_fail() {
    local code=$1
    shift
    local rc=0
    "$@" >"$T/ef.out" 2>"$T/ef.err" || rc=$?
    [ "$rc" -eq 1 ] || fail "expected exit 1 ($code) from: $*; got $rc; stderr: $(cat "$T/ef.err")"
    grep -Eq "error: ($code):" "$T/ef.err" ||
        fail "expected error code '$code' from: $*; stderr: $(cat "$T/ef.err")"
    echo "    refused: $(head -n 1 "$T/ef.err")"
}

# expect_usage CMD...: exit 2.
expect_usage() {
    local rc=0
    "$@" >"$T/ef.out" 2>"$T/ef.err" || rc=$?
    [ "$rc" -eq 2 ] || fail "expected usage error (exit 2) from: $*; got $rc"
}

is_sqlite() {
    [ "$(head -c 15 "$1" 2>/dev/null | tr -d '\000')" = "SQLite format 3" ]
}

# snapshot DIR: one line per file: sha256, mode and path; SQLite databases by
# the sha256 of their SQL dump (their pages, -wal and -shm may move without a
# logical change).
snapshot() {
    local dir=$1 f rel
    [ -d "$dir" ] || { echo "(no directory $dir)"; return 0; }
    (cd "$dir" && find . -type f ! -name '*-wal' ! -name '*-shm' ! -name '*-journal' | LC_ALL=C sort) |
        while IFS= read -r rel; do
            f=$dir/${rel#./}
            if is_sqlite "$f"; then
                echo "$(sqlite3 -readonly "$f" .dump | sha256sum | cut -c1-64) sql $rel"
            else
                echo "$(sha256sum <"$f" | cut -c1-64) $(stat -c %a "$f") $rel"
            fi
        done
}

# assert_unchanged WHAT DIR BEFORE: DIR must match the snapshot BEFORE.
assert_unchanged() {
    local what=$1 dir=$2 before=$3 now
    now=$(snapshot "$dir")
    if [ "$before" != "$now" ]; then
        diff <(echo "$before") <(echo "$now") >&2 || true
        fail "$what changed $dir"
    fi
}

# flip_byte FILE OFFSET OUT: copy FILE to OUT with the byte at OFFSET inverted.
flip_byte() {
    local in=$1 off=$2 out=$3 b
    cp "$in" "$out"
    b=$(od -An -tu1 -j "$off" -N1 "$in" | tr -d ' ')
    printf "$(printf '\\%03o' $((b ^ 0xff)))" | dd of="$out" bs=1 seek="$off" conv=notrunc status=none
}

# cms_content FILE: the JSON inside a CMS file, without verifying.
cms_content() {
    openssl cms -verify -noverify -inform DER -in "$1" 2>/dev/null
}

# b64_cert_to_pem OUT: base64 DER certificate on stdin -> PEM file OUT.
b64_cert_to_pem() {
    base64 -d | openssl x509 -inform DER -out "$1"
}
