#!/usr/bin/env bash
# The whole disconnected (offline) flow through the three tools, and openssl
# checking every file Custos writes: CA side with custosd on a data directory,
# device side with custos-device on device directories, the technician
# carrying the .mcpr and .mccp between them.
source "$(dirname "$0")/lib.sh"

D=$T/data
X=$T/exchange          # what the technician carries
PUMP=$T/pump HUB=$T/hub
mkdir -p "$X"
printf 'correct horse battery staple\n' >"$T/pass"

# --- CA side: data directory, system, package -----------------------------
step "custosd init, system create, package create"
run "$CUSTOSD" init --data "$D"
[ -f "$D/root.pem" ] || fail "custosd init wrote no $D/root.pem"
openssl x509 -in "$D/root.pem" -noout || fail "root.pem is not a certificate"
run "$CUSTOSD" system create --data "$D" --file "$VECTORS/system-infusion.json"
expect_fail already_exists "$CUSTOSD" system create --data "$D" --file "$VECTORS/system-infusion.json"
run "$CUSTOSD" package create --data "$D" --system infusion-x2 --passphrase-file "$T/pass" \
    --out "$X/infusion.mcpp"
[ "$(stat -c %a "$X/infusion.mcpp")" = 600 ] || fail "the package is not mode 0600"

step "openssl cms -verify of the package against the Root of Trust"
openssl cms -verify -inform DER -in "$X/infusion.mcpp" -CAfile "$D/root.pem" -purpose any \
    -out "$T/pkg.json" 2>"$T/ossl.err" || { cat "$T/ossl.err"; fail "openssl rejects the package"; }
[ "$(jq -r .system "$T/pkg.json")" = infusion-x2 ] || fail "package content names no system"
jq -e '[.components[].name] | sort == ["hub","pump"]' "$T/pkg.json" >/dev/null ||
    fail "package lacks the components"
run "$CUSTOS" inspect "$X/infusion.mcpp" >"$T/inspect.txt"
grep -q "system: infusion-x2" "$T/inspect.txt" || fail "custos inspect does not show the system"
grep -q "signature: yes" "$T/inspect.txt" || fail "custos inspect does not show the verification"
! grep -qi "PRIVATE KEY" "$T/inspect.txt" || fail "inspect shows key material"

# --- device side: identity generation -------------------------------------
step "custos-device request: pump (package shredded) and hub (package kept, root pinned)"
cp "$X/infusion.mcpp" "$T/pump-pkg.mcpp"
run "$DEVICE" request --package "$T/pump-pkg.mcpp" --passphrase-file "$T/pass" \
    --component pump --serial PX2-0001 --hardware-id hw-a1 --model X2 --firmware 1.0.0 \
    --meta site=plant-1 --manufacturer lot=L42 --device-dir "$PUMP" \
    --secret-file "$T/pump.secret" >"$T/out.txt"
cat "$T/out.txt"
[ ! -e "$T/pump-pkg.mcpp" ] || fail "the package was not removed from the pump"
grep -q shredded "$T/out.txt" || fail "request did not say the package was shredded"
[ -f "$PUMP/request.mcpr" ] || fail "no request.mcpr in the pump's device dir"
[ "$(stat -c %a "$PUMP/identity.mcpi")" = 600 ] || fail "identity.mcpi is not 0600"
[ "$(stat -c %a "$T/pump.secret")" = 600 ] || fail "the device secret is not 0600"

cp "$X/infusion.mcpp" "$T/hub-pkg.mcpp"
run "$DEVICE" request --package "$T/hub-pkg.mcpp" --passphrase-file "$T/pass" \
    --component hub --serial HUB-0001 --device-dir "$HUB" --secret-file "$T/hub.secret" \
    --root "$D/root.pem" --keep-package >/dev/null
[ -f "$T/hub-pkg.mcpp" ] || fail "--keep-package removed the package"
cp "$PUMP/request.mcpr" "$X/pump.mcpr"
cp "$HUB/request.mcpr" "$X/hub.mcpr"
[ "$("$DEVICE" status --device-dir "$PUMP" --secret-file "$T/pump.secret" --json | jq -r .state)" = pending ] ||
    fail "pump not pending after request"

step "openssl: cms -verify of each request, req -verify of each CSR"
for f in pump hub; do
    openssl cms -verify -inform DER -in "$X/$f.mcpr" -CAfile "$D/root.pem" -purpose any \
        -out "$T/$f.pr.json" 2>"$T/ossl.err" || { cat "$T/ossl.err"; fail "openssl rejects $f.mcpr"; }
    n=$(jq '.keys | length' "$T/$f.pr.json")
    [ "$n" -eq 2 ] || fail "$f.mcpr has $n keys, want 2"
    for i in $(seq 0 $((n - 1))); do
        jq -r ".keys[$i].csr" "$T/$f.pr.json" | base64 -d >"$T/$f.csr$i.der"
        openssl req -verify -inform DER -in "$T/$f.csr$i.der" -noout 2>&1 | grep -q "verify OK" ||
            fail "openssl req -verify fails on $f CSR $i"
    done
done
jq -e '.keys | map(.template) | sort == ["sign","tls"]' "$T/pump.pr.json" >/dev/null ||
    fail "the pump request does not carry its templates"

# --- CA side: import, approve, export ---------------------------------------
step "custosd request import / approve / profile export"
"$CUSTOSD" request import --data "$D" --json "$X/pump.mcpr" >"$T/imp.json"
PUMP_ID=$(jq -r .request_id "$T/imp.json")
[ "$(jq -r .state "$T/imp.json")" = pending ] || fail "imported pump request not pending"
[ "$(jq -r .kind "$T/imp.json")" = initial ] || fail "pump request kind is not initial"
HUB_ID=$("$CUSTOSD" request import --data "$D" --json "$X/hub.mcpr" | jq -r .request_id)
# The same file again: the existing record, no second request.
again=$("$CUSTOSD" request import --data "$D" --json "$X/pump.mcpr")
[ "$(echo "$again" | jq -r .request_id)" = "$PUMP_ID" ] || fail "a resubmission made a new request"
[ "$(echo "$again" | jq -r .created)" = false ] || fail "a resubmission claims to be new"
run "$CUSTOSD" request import --data "$D" "$X/hub.mcpr" | grep -q "$HUB_ID" ||
    fail "human import output lacks the request id"
"$CUSTOSD" device list --data "$D" --state pending | grep -q PX2-0001 || fail "pump not listed as pending"

step "a second device with the pump's serial: flagged duplicate, then rejected"
run "$DEVICE" request --package "$T/hub-pkg.mcpp" --passphrase-file "$T/pass" \
    --component pump --serial PX2-0001 --device-dir "$T/pump-clone" \
    --secret-file "$T/clone.secret" >/dev/null
run "$CUSTOSD" request import --data "$D" "$T/pump-clone/request.mcpr" >"$T/dup.txt"
cat "$T/dup.txt"
grep -q "duplicate serial" "$T/dup.txt" || fail "no duplicate serial warning"
DUP_ID=$("$CUSTOSD" request show --data "$D" --json "$(head -n 1 "$T/dup.txt" | awk '{print $NF}')" |
    jq -r 'select(.duplicate_serial == true) | .request_id')
[ -n "$DUP_ID" ] || fail "the duplicate is not flagged in JSON"
[ "$("$CUSTOSD" request reject --data "$D" --reason "cloned serial" --json "$DUP_ID" | jq -r .state)" = rejected ] ||
    fail "reject did not reject"
expect_fail invalid_state "$CUSTOSD" request approve --data "$D" "$DUP_ID"

expect_fail invalid_state "$CUSTOSD" profile export --data "$D" --out "$X/early.mccp" "$PUMP_ID"
expect_usage "$CUSTOSD" request reject --data "$D" "$PUMP_ID"
for id in "$PUMP_ID" "$HUB_ID"; do
    [ "$("$CUSTOSD" request approve --data "$D" --json "$id" | jq -r .state)" = certified ] ||
        fail "request $id not certified after approve"
done
run "$CUSTOSD" profile export --data "$D" --out "$X/pump.mccp" "$PUMP_ID" >/dev/null
run "$CUSTOSD" profile export --data "$D" --out "$X/hub.mccp" "$HUB_ID" >/dev/null

step "openssl: cms -verify of each profile, verify of each certificate"
for f in pump hub; do
    openssl cms -verify -inform DER -in "$X/$f.mccp" -CAfile "$D/root.pem" -purpose any \
        -out "$T/$f.cp.json" 2>"$T/ossl.err" || { cat "$T/ossl.err"; fail "openssl rejects $f.mccp"; }
    : >"$T/$f.chain.pem"
    for c in $(jq -r '.chain[]' "$T/$f.cp.json"); do
        echo "$c" | b64_cert_to_pem "$T/one.pem"
        cat "$T/one.pem" >>"$T/$f.chain.pem"
    done
    [ -s "$T/$f.chain.pem" ] || fail "$f.mccp carries no issuing CA chain"
    n=$(jq '.certificates | length' "$T/$f.cp.json")
    [ "$n" -eq 2 ] || fail "$f.mccp has $n certificates, want 2"
    for i in $(seq 0 $((n - 1))); do
        jq -r ".certificates[$i].certificate" "$T/$f.cp.json" | b64_cert_to_pem "$T/$f.cert$i.pem"
        openssl verify -CAfile "$D/root.pem" -untrusted "$T/$f.chain.pem" "$T/$f.cert$i.pem" \
            >/dev/null 2>"$T/ossl.err" || { cat "$T/ossl.err"; fail "openssl verify fails on $f cert $i"; }
    done
done
jq -e --arg id "$PUMP_ID" '.request_id == $id' "$T/pump.cp.json" >/dev/null ||
    fail "the pump profile does not answer its request"
[ "$(jq -r .request_sha256 "$T/pump.cp.json")" = "$(sha256sum <"$X/pump.mcpr" | cut -c1-64)" ] ||
    fail "the profile's request digest is not the SHA-256 of the .mcpr"

# --- device side: install ----------------------------------------------------
step "custos-device install, status provisioned; custosd device complete"
run "$DEVICE" install --device-dir "$PUMP" --profile "$X/pump.mccp" --secret-file "$T/pump.secret"
run "$DEVICE" install --device-dir "$HUB" --profile "$X/hub.mccp" --secret-file "$T/hub.secret" >/dev/null
for dev in pump hub; do
    dir=$T/$dev
    st=$("$DEVICE" status --device-dir "$dir" --secret-file "$T/$dev.secret" --json)
    [ "$(echo "$st" | jq -r .state)" = provisioned ] || fail "$dev not provisioned: $st"
    ! echo "$st" | grep -qi "private" || fail "status shows key material"
done
run "$DEVICE" status --device-dir "$PUMP" --secret-file "$T/pump.secret" | grep -q provisioned
run "$CUSTOSD" device complete --data "$D" "$PUMP_ID" >/dev/null
run "$CUSTOSD" device complete --data "$D" "$HUB_ID" >/dev/null
[ "$("$CUSTOSD" device list --data "$D" --state provisioned --json | jq length)" -eq 2 ] ||
    fail "custosd does not list two provisioned devices"
run "$CUSTOS" inspect "$PUMP" --secret-file "$T/pump.secret" >/dev/null
run "$CUSTOS" inspect "$X/pump.mccp" --json >"$T/inspect-cp.json"
jq -e '.kind == "profile" and .verified.signature == true' "$T/inspect-cp.json" >/dev/null ||
    fail "custos inspect does not verify a genuine profile: $(jq -c .verified "$T/inspect-cp.json")"
run "$CUSTOS" inspect "$PUMP/identity.mcpi" >"$T/inspect-id.txt"
! grep -qi "PRIVATE KEY" "$T/inspect-id.txt" || fail "inspect of the identity shows key material"

# --- the provisioned device at work -------------------------------------------
step "sign and verify with openssl (ECDSA P-256 tls, RSA-3072 server)"
head -c 4096 /dev/urandom >"$T/firmware.bin"
run "$DEVICE" sign --device-dir "$PUMP" --secret-file "$T/pump.secret" --key tls \
    --in "$T/firmware.bin" --out "$T/fw.sig" >/dev/null
run "$DEVICE" export-cert --device-dir "$PUMP" --secret-file "$T/pump.secret" --key tls \
    --out "$T/pump-tls.pem" >/dev/null
openssl x509 -in "$T/pump-tls.pem" -pubkey -noout >"$T/pump-tls.pub"
openssl dgst -sha256 -verify "$T/pump-tls.pub" -signature "$T/fw.sig" "$T/firmware.bin" |
    grep -q "Verified OK" || fail "openssl does not verify the pump's signature"
openssl verify -CAfile "$D/root.pem" -untrusted "$T/pump.chain.pem" "$T/pump-tls.pem" >/dev/null ||
    fail "exported certificate does not verify"
run "$DEVICE" sign --device-dir "$HUB" --secret-file "$T/hub.secret" --key server \
    --in "$T/firmware.bin" --out "$T/hub.sig" >/dev/null
run "$DEVICE" export-cert --device-dir "$HUB" --secret-file "$T/hub.secret" --key server \
    --out "$T/hub-server.pem" >/dev/null
openssl x509 -in "$T/hub-server.pem" -pubkey -noout >"$T/hub-server.pub"
openssl dgst -sha256 -verify "$T/hub-server.pub" -signature "$T/hub.sig" "$T/firmware.bin" |
    grep -q "Verified OK" || fail "openssl does not verify the hub's RSA signature"
# The pump's P-384 signing key and the hub's Ed25519 key: every algorithm.
run "$DEVICE" sign --device-dir "$PUMP" --secret-file "$T/pump.secret" --key sign \
    --in "$T/firmware.bin" --out "$T/p384.sig" >/dev/null
run "$DEVICE" export-cert --device-dir "$PUMP" --secret-file "$T/pump.secret" --key sign \
    --out "$T/pump-sign.pem" >/dev/null
openssl x509 -in "$T/pump-sign.pem" -pubkey -noout >"$T/pump-sign.pub"
openssl dgst -sha256 -verify "$T/pump-sign.pub" -signature "$T/p384.sig" "$T/firmware.bin" |
    grep -q "Verified OK" || fail "openssl does not verify the pump's P-384 signature"
run "$DEVICE" sign --device-dir "$HUB" --secret-file "$T/hub.secret" --key tls \
    --in "$T/firmware.bin" --out "$T/ed.sig" >/dev/null
run "$DEVICE" export-cert --device-dir "$HUB" --secret-file "$T/hub.secret" --key tls \
    --out "$T/hub-tls.pem" >/dev/null
openssl x509 -in "$T/hub-tls.pem" -pubkey -noout >"$T/hub-tls.pub"
openssl pkeyutl -verify -rawin -pubin -inkey "$T/hub-tls.pub" -sigfile "$T/ed.sig" \
    -in "$T/firmware.bin" | grep -q "Verified Successfully" ||
    fail "openssl does not verify the hub's Ed25519 signature"
# A tampered input no longer verifies.
printf 'x' >>"$T/firmware.bin"
! openssl dgst -sha256 -verify "$T/pump-tls.pub" -signature "$T/fw.sig" "$T/firmware.bin" \
    >/dev/null 2>&1 || fail "a signature verifies over other data"

# --- reprovisioning -------------------------------------------------------------
# rotate_round FLAG NAME: rotate the pump, carry the request to the CA, approve,
# carry the profile back, install; print the new profile's request id.
rotate_round() {
    local flag=$1 name=$2 id st
    run "$DEVICE" rotate --device-dir "$PUMP" --secret-file "$T/pump.secret" \
        --out "$X/$name.mcpr" $flag >/dev/null
    st=$("$DEVICE" status --device-dir "$PUMP" --secret-file "$T/pump.secret" --json | jq -r .state)
    [ "$st" = rotating ] || fail "pump is '$st' after rotate, want rotating"
    # The current identity still signs while the request is out.
    run "$DEVICE" sign --device-dir "$PUMP" --secret-file "$T/pump.secret" --key tls \
        --in "$T/pump-tls.pem" --out "$T/during.sig" >/dev/null
    openssl cms -verify -inform DER -in "$X/$name.mcpr" -CAfile "$D/root.pem" -certfile \
        "$T/pump.chain.pem" -purpose any -out "$T/$name.json" 2>"$T/ossl.err" ||
        { cat "$T/ossl.err" >&2; fail "openssl rejects the reprovisioning request"; }
    [ "$(jq -r .kind "$T/$name.json")" = reprovision ] || fail "rotation request kind is not reprovision"
    "$CUSTOSD" request import --data "$D" --json "$X/$name.mcpr" >"$T/imp.json"
    [ "$(jq -r .kind "$T/imp.json")" = reprovision ] || fail "custosd does not see a reprovision"
    id=$(jq -r .request_id "$T/imp.json")
    run "$CUSTOSD" request approve --data "$D" "$id" >/dev/null
    run "$CUSTOSD" profile export --data "$D" --out "$X/$name.mccp" "$id" >/dev/null
    run "$DEVICE" install --device-dir "$PUMP" --secret-file "$T/pump.secret" \
        --profile "$X/$name.mccp" >"$T/install.txt"
    grep -q "previous" "$T/install.txt" || fail "install after rotation kept no previous profile"
    [ -f "$PUMP/profile.previous.mccp" ] || fail "no profile.previous.mccp after rotation"
    run "$CUSTOSD" device complete --data "$D" "$id" >/dev/null
    echo "$id"
}

pubkey_of_pump_tls() {
    run "$DEVICE" export-cert --device-dir "$PUMP" --secret-file "$T/pump.secret" --key tls \
        --out "$T/cur.pem" >/dev/null
    openssl x509 -in "$T/cur.pem" -pubkey -noout
}

step "rotate with fresh keys -> import (reprovision) -> approve -> export -> install"
old_pub=$(pubkey_of_pump_tls)
old_serial=$(openssl x509 -in "$T/cur.pem" -serial -noout)
rot1=$(rotate_round "" rot1 | tail -n 1)
new_pub=$(pubkey_of_pump_tls)
[ "$old_pub" != "$new_pub" ] || fail "rotation kept the old key"
[ "$old_serial" != "$(openssl x509 -in "$T/cur.pem" -serial -noout)" ] || fail "rotation kept the certificate"
[ "$("$DEVICE" status --device-dir "$PUMP" --secret-file "$T/pump.secret" --json | jq -r .state)" = provisioned ] ||
    fail "pump not provisioned after the rotation"
cmp -s "$PUMP/profile.previous.mccp" "$X/pump.mccp" || fail "the previous profile is not the first one"

step "rotate with --same-keys (renewal)"
rot2=$(rotate_round --same-keys rot2 | tail -n 1)
[ "$rot1" != "$rot2" ] || fail "two rotations share a request id"
[ "$(pubkey_of_pump_tls)" = "$new_pub" ] || fail "--same-keys changed the key"
run "$DEVICE" sign --device-dir "$PUMP" --secret-file "$T/pump.secret" --key tls \
    --in "$T/firmware.bin" --out "$T/fw2.sig" >/dev/null
openssl dgst -sha256 -verify <(openssl x509 -in "$T/cur.pem" -pubkey -noout) \
    -signature "$T/fw2.sig" "$T/firmware.bin" | grep -q "Verified OK" ||
    fail "the renewed identity does not sign verifiably"

step "device list and audit verify"
"$CUSTOSD" device list --data "$D" >"$T/list.txt"
grep -q PX2-0001 "$T/list.txt" && grep -q HUB-0001 "$T/list.txt" || fail "device list misses devices"
"$CUSTOSD" audit verify --data "$D" | tee "$T/audit.txt"
grep -q "ok" "$T/audit.txt" || fail "audit verify does not say ok"
echo "PASS: offline flow"
