#!/usr/bin/env bash
# Bad input gets a clear error naming the problem and changes nothing: every
# refusal below must leave the data directory and the device directory
# byte-identical (snapshot: sha256 of every file, SQL dump of the store).
source "$(dirname "$0")/lib.sh"

D=$T/data
NOW=$(date +%s)
LATER=$((NOW + 2 * 86400))
printf 'correct horse battery staple\n' >"$T/pass"
printf 'not the passphrase\n' >"$T/wrong-pass"
head -c 32 /dev/urandom >"$T/other.secret"
chmod 600 "$T/other.secret"

# request DEVICE_DIR SECRET PACKAGE COMPONENT SERIAL: identity generation, package kept.
request() {
    run "$DEVICE" request --package "$3" --passphrase-file "$T/pass" --component "$4" \
        --serial "$5" --device-dir "$1" --secret-file "$2" --keep-package >/dev/null
}

# offsets FILE: byte offsets to flip: the DER header, inside the signed JSON
# content (start and middle), and the last byte (the signature value).
offsets() {
    local f=$1 size json
    size=$(stat -c %s "$f")
    json=$(grep -obUa '"format"' "$f" | head -n 1 | cut -d: -f1)
    [ -n "$json" ] || fail "no JSON content found in $f"
    echo 0 $((json + 3)) $((json + 120)) $((size - 1))
}

step "setup: data dir, system, packages, two pumps requested, approved, exported"
run "$CUSTOSD" init --data "$D" >/dev/null
# A clone of the data directory before any system exists: same root and
# bootstrap CA, so packages of $D are trusted there (see template mismatch).
cp -a "$D" "$T/data-clone"
cp -a "$D" "$T/data-lint"
run "$CUSTOSD" system create --data "$D" --file "$VECTORS/system-infusion.json" >/dev/null
run "$CUSTOSD" package create --data "$D" --system infusion-x2 --passphrase-file "$T/pass" \
    --out "$T/pkg.mcpp" >/dev/null
run "$CUSTOSD" package create --data "$D" --system infusion-x2 --passphrase-file "$T/pass" \
    --out "$T/short.mcpp" --valid-days 1 >/dev/null
request "$T/devA" "$T/a.secret" "$T/pkg.mcpp" pump SN-A
request "$T/devB" "$T/b.secret" "$T/pkg.mcpp" pump SN-B
A_ID=$("$CUSTOSD" request import --data "$D" --json "$T/devA/request.mcpr" | jq -r .request_id)
B_ID=$("$CUSTOSD" request import --data "$D" --json "$T/devB/request.mcpr" | jq -r .request_id)
run "$CUSTOSD" request approve --data "$D" "$A_ID" >/dev/null
run "$CUSTOSD" request approve --data "$D" "$B_ID" >/dev/null
run "$CUSTOSD" profile export --data "$D" --out "$T/a.mccp" "$A_ID" >/dev/null
run "$CUSTOSD" profile export --data "$D" --out "$T/b.mccp" "$B_ID" >/dev/null
# Refused requests target $T/fresh, which does not exist: nothing may appear.
head -c $((10 * 1024 * 1024)) /dev/zero >"$T/zeros.bin"
head -c 3000 /dev/urandom >"$T/random.bin"

data0=$(snapshot "$D")
fresh0=$(snapshot "$T/fresh")
devA0=$(snapshot "$T/devA")

step "tampered package: one byte flipped at several offsets"
for off in $(offsets "$T/pkg.mcpp"); do
    flip_byte "$T/pkg.mcpp" "$off" "$T/bad.mcpp"
    expect_fail "bad_signature|malformed|untrusted" "$DEVICE" request --package "$T/bad.mcpp" \
        --passphrase-file "$T/pass" --component pump --serial SN-X --device-dir "$T/fresh" \
        --secret-file "$T/fresh.secret"
    [ -f "$T/bad.mcpp" ] || fail "a refused package was removed"
done
[ ! -e "$T/fresh" ] && [ ! -e "$T/fresh.secret" ] || fail "a refused package left device files"
# A package that does not chain to the root pinned in the firmware.
expect_fail "untrusted|mismatch" "$DEVICE" request --package "$T/pkg.mcpp" \
    --passphrase-file "$T/pass" --component pump --serial SN-X --device-dir "$T/fresh" \
    --secret-file "$T/fresh.secret" --root "$D/mock-root.pem"
[ -f "$T/pkg.mcpp" ] || fail "a package refused for its root was removed"
assert_unchanged "a tampered package" "$T/fresh" "$fresh0"

step "tampered provisioning request"
for off in $(offsets "$T/devB/request.mcpr"); do
    flip_byte "$T/devB/request.mcpr" "$off" "$T/bad.mcpr"
    expect_fail "bad_signature|malformed|untrusted|proof_of_possession" \
        "$CUSTOSD" request import --data "$D" "$T/bad.mcpr"
done
assert_unchanged "a tampered request" "$D" "$data0"

step "tampered certified profile"
for off in $(offsets "$T/a.mccp"); do
    flip_byte "$T/a.mccp" "$off" "$T/bad.mccp"
    expect_fail "bad_signature|malformed|untrusted|mismatch" "$DEVICE" install \
        --device-dir "$T/devA" --secret-file "$T/a.secret" --profile "$T/bad.mccp"
done
assert_unchanged "a tampered profile" "$T/devA" "$devA0"

custosd_help=$("$CUSTOSD" --help 2>&1 || true)
if grep -q CUSTOS_FAKE_NOW <<<"$custosd_help"; then
    step "expired bootstrap certificate (package valid 1 day, clocks 2 days later)"
    expect_fail expired env CUSTOS_FAKE_NOW=$LATER "$DEVICE" request --package "$T/short.mcpp" \
        --passphrase-file "$T/pass" --component pump --serial SN-X --device-dir "$T/fresh" \
        --secret-file "$T/fresh.secret" --keep-package
    grep -q "202" "$T/ef.err" || fail "the expiry error does not say when"
    assert_unchanged "an expired package" "$T/fresh" "$fresh0"
    # A request made in time with the short package, imported after it expired.
    request "$T/devE" "$T/e.secret" "$T/short.mcpp" pump SN-E
    expect_fail expired env CUSTOS_FAKE_NOW=$LATER "$CUSTOSD" request import --data "$D" \
        "$T/devE/request.mcpr"
    assert_unchanged "an expired request" "$D" "$data0"

else
    echo "--- SKIP expiry cases: this is not a test build (configure with -DCUSTOS_TEST_HOOKS=ON)"
fi

step "wrong passphrase"
expect_fail wrong_passphrase "$DEVICE" request --package "$T/pkg.mcpp" \
    --passphrase-file "$T/wrong-pass" --component pump --serial SN-X --device-dir "$T/fresh" \
    --secret-file "$T/fresh.secret"
[ -f "$T/pkg.mcpp" ] || fail "a package refused for its passphrase was removed"
: >"$T/empty-pass"
expect_fail invalid_argument "$DEVICE" request --package "$T/pkg.mcpp" \
    --passphrase-file "$T/empty-pass" --component pump --serial SN-X --device-dir "$T/fresh" \
    --secret-file "$T/fresh.secret"
expect_fail invalid_argument "$CUSTOSD" package create --data "$D" --system infusion-x2 \
    --passphrase-file "$T/empty-pass" --out "$T/never.mcpp"
[ ! -e "$T/never.mcpp" ] || fail "a package was written with an empty passphrase"
assert_unchanged "a wrong passphrase" "$T/fresh" "$fresh0"

step "a component the package lacks"
expect_fail unknown_component "$DEVICE" request --package "$T/pkg.mcpp" \
    --passphrase-file "$T/pass" --component ventilator --serial SN-X --device-dir "$T/fresh" \
    --secret-file "$T/fresh.secret"
assert_unchanged "an unknown component" "$T/fresh" "$fresh0"
expect_fail "not_found|unknown_component" "$CUSTOSD" package create --data "$D" \
    --system no-such-system --passphrase-file "$T/pass" --out "$T/never.mcpp"

# Template mismatch. A package carries its system's templates, and systems
# cannot be redefined, so a real device never produces a non-conforming
# request against the data directory that made its package. What does happen
# is a request reaching a CA whose definition of the system differs: here a
# copy of the data directory taken before the system existed (a restored
# backup, a second installation sharing the CA keys) where "infusion-x2"
# defines the pump's "tls" key as ECDSA P-384. The request from a package of
# $D passes every signature check there (same root and bootstrap CA) and
# must fail on the templates alone.
step "template mismatch (the CA's system defines other templates)"
jq '(.components[] | select(.name == "pump") | .templates[] | select(.name == "tls") | .algorithm) = "ecdsa-p384"' \
    "$VECTORS/system-infusion.json" >"$T/system-p384.json"
run "$CUSTOSD" system create --data "$T/data-clone" --file "$T/system-p384.json" >/dev/null
clone0=$(snapshot "$T/data-clone")
expect_fail template_mismatch "$CUSTOSD" request import --data "$T/data-clone" "$T/devB/request.mcpr"
grep -q "tls" "$T/ef.err" || fail "the template error does not name the template"
assert_unchanged "a template mismatch" "$T/data-clone" "$clone0"

step "oversized and malformed files"
expect_fail too_large "$CUSTOSD" request import --data "$D" "$T/zeros.bin"
expect_fail too_large "$DEVICE" install --device-dir "$T/devA" --secret-file "$T/a.secret" \
    --profile "$T/zeros.bin"
expect_fail too_large "$DEVICE" request --package "$T/zeros.bin" --passphrase-file "$T/pass" \
    --component pump --serial SN-X --device-dir "$T/fresh" --secret-file "$T/fresh.secret"
expect_fail too_large "$CUSTOS" inspect "$T/zeros.bin"
expect_fail malformed "$CUSTOSD" request import --data "$D" "$T/random.bin"
expect_fail malformed "$DEVICE" install --device-dir "$T/devA" --secret-file "$T/a.secret" \
    --profile "$T/random.bin"
expect_fail malformed "$CUSTOS" inspect "$T/random.bin"
expect_fail "malformed|invalid_argument" "$CUSTOSD" system create --data "$D" --file "$T/random.bin"
expect_fail not_found "$CUSTOSD" request import --data "$D" "$T/no-such.mcpr"
assert_unchanged "oversized or malformed input" "$D" "$data0"
assert_unchanged "oversized or malformed input" "$T/devA" "$devA0"
assert_unchanged "oversized or malformed input" "$T/fresh" "$fresh0"

step "a certified profile for another device"
expect_fail mismatch "$DEVICE" install --device-dir "$T/devA" --secret-file "$T/a.secret" \
    --profile "$T/b.mccp"
assert_unchanged "another device's profile" "$T/devA" "$devA0"

step "state checks on the CA"
expect_fail invalid_state "$CUSTOSD" request approve --data "$D" "$A_ID"
expect_fail invalid_state "$CUSTOSD" request reject --data "$D" --reason "too late" "$A_ID"
expect_fail not_found "$CUSTOSD" request approve --data "$D" aaaaaaaaaaaaaaaaaaaaaaaaaa
expect_usage "$CUSTOSD" request reject --data "$D" "$A_ID"
expect_usage "$CUSTOSD" device list --data "$D" --state nonsense
expect_usage "$CUSTOSD" package create --data "$D" --system infusion-x2 \
    --passphrase-file "$T/pass" --out "$T/never.mcpp" --valid-days 0
expect_usage "$DEVICE" request --device-dir "$T/fresh"
expect_usage "$DEVICE" nonsense
assert_unchanged "refused state changes" "$D" "$data0"

step "device files opened with another device's secret"
run "$DEVICE" install --device-dir "$T/devA" --secret-file "$T/a.secret" --profile "$T/a.mccp" >/dev/null
devA1=$(snapshot "$T/devA")
expect_fail locked_to_another_device "$DEVICE" status --device-dir "$T/devA" \
    --secret-file "$T/other.secret"
echo data >"$T/data.txt"
expect_fail locked_to_another_device "$DEVICE" sign --device-dir "$T/devA" \
    --secret-file "$T/other.secret" --key tls --in "$T/data.txt" --out "$T/never.sig"
[ ! -e "$T/never.sig" ] || fail "a signature was written by a locked device"
# Copied to another device (its own secret), the files do not open either.
cp -a "$T/devA" "$T/copied"
expect_fail locked_to_another_device "$DEVICE" sign --device-dir "$T/copied" \
    --secret-file "$T/b.secret" --key tls --in "$T/data.txt" --out "$T/never.sig"
expect_fail not_found "$DEVICE" status --device-dir "$T/devA" --secret-file "$T/missing.secret"
[ ! -e "$T/missing.secret" ] || fail "status created a device secret"
expect_fail not_found "$DEVICE" status --device-dir "$T/no-such-dir" --secret-file "$T/a.secret"
[ ! -e "$T/no-such-dir" ] || fail "status created a device directory"
assert_unchanged "a foreign device secret" "$T/devA" "$devA1"
run "$DEVICE" sign --device-dir "$T/devA" --secret-file "$T/a.secret" --key tls \
    --in "$T/data.txt" --out "$T/ok.sig" >/dev/null
expect_fail "not_found|invalid_argument" "$DEVICE" sign --device-dir "$T/devA" \
    --secret-file "$T/a.secret" --key no-such-template --in "$T/data.txt" --out "$T/never.sig"
expect_fail invalid_state "$DEVICE" request --package "$T/pkg.mcpp" --passphrase-file "$T/pass" \
    --component pump --serial SN-A --device-dir "$T/devA" --secret-file "$T/a.secret" --keep-package
assert_unchanged "a second request on a provisioned device" "$T/devA" "$devA1"

step "mock device files are refused where a real identity is required"
run "$CUSTOSD" mock create --data "$D" --system infusion-x2 --component pump --serial MOCK-1 \
    --out "$T/mock" >/dev/null
mock0=$(snapshot "$T/mock")
expect_fail mock_identity "$DEVICE" sign --device-dir "$T/mock" --key tls --in "$T/data.txt" \
    --out "$T/never.sig"
expect_fail mock_identity "$DEVICE" status --device-dir "$T/mock"
run "$DEVICE" sign --device-dir "$T/mock" --key tls --in "$T/data.txt" --out "$T/mock.sig" \
    --allow-mock >/dev/null
run "$DEVICE" status --device-dir "$T/mock" --allow-mock --json | jq -e . >/dev/null
assert_unchanged "using mock files" "$T/mock" "$mock0"

step "an issued certificate that would fail the lint (valid longer than its CA)"
# The issuing CA lives 10 years; a template asking for 5000 days would make
# a certificate that outlives its issuer. The lint must stop it: nothing is
# stored, the request stays pending, no profile exists.
cat >"$T/longlived.json" <<'JSON'
{"name":"longlived","components":[{"name":"pump","templates":[
 {"name":"tls","algorithm":"ecdsa-p256","usage":["tls-client"],"valid_days":5000}]}]}
JSON
run "$CUSTOSD" system create --data "$T/data-lint" --file "$T/longlived.json" >/dev/null
run "$CUSTOSD" package create --data "$T/data-lint" --system longlived --passphrase-file "$T/pass" \
    --out "$T/long.mcpp" >/dev/null
request "$T/devL" "$T/l.secret" "$T/long.mcpp" pump SN-L
L_ID=$("$CUSTOSD" request import --data "$T/data-lint" --json "$T/devL/request.mcpr" | jq -r .request_id)
lint0=$(snapshot "$T/data-lint")
expect_fail lint_failed "$CUSTOSD" request approve --data "$T/data-lint" "$L_ID"
grep -q "validity" "$T/ef.err" || fail "the lint error does not name the validity rule: $(cat "$T/ef.err")"
assert_unchanged "a lint failure" "$T/data-lint" "$lint0"
"$CUSTOSD" request show --data "$T/data-lint" --json "$L_ID" | jq -e '.state == "pending"' >/dev/null ||
    fail "the request is no longer pending after a lint failure"
expect_fail invalid_state "$CUSTOSD" profile export --data "$T/data-lint" --out "$T/never.mccp" "$L_ID"
[ ! -e "$T/never.mccp" ] || fail "a profile was written after a lint failure"

step "four concurrent creates of one system: one wins, the data directory stays usable"
printf '{"name":"race","components":[{"name":"c","templates":[{"name":"t","usage":["tls-client"]}]}]}' \
    >"$T/race.json"
for i in 1 2 3 4; do
    "$CUSTOSD" system create --data "$D" --file "$T/race.json" >"$T/race$i.out" 2>&1 &
done
wait || true
[ "$(grep -l "system created" "$T"/race?.out | wc -l)" -eq 1 ] || fail "not exactly one create won"
[ "$(grep -l "already_exists" "$T"/race?.out | wc -l)" -eq 3 ] || fail "the losers did not say already_exists"
run "$CUSTOSD" package create --data "$D" --system race --passphrase-file "$T/pass" \
    --out "$T/race.mcpp" >/dev/null

step "audit trail still verifies"
"$CUSTOSD" audit verify --data "$D" | grep -q ok || fail "audit verify failed"
echo "PASS: negative"
