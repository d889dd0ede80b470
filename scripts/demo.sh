#!/usr/bin/env bash
# make demo: the offline (disconnected) provisioning flow end to end, with
# commentary. Usage: scripts/demo.sh BUILD_DIR. Everything goes under
# ./demo-out/ (removed first, so the demo can be run again).
set -euo pipefail

build=${1:?usage: scripts/demo.sh BUILD_DIR}
build=$(cd "$build" && pwd)
src=$(cd "$(dirname "$0")/.." && pwd)
for b in custosd custos-device custos; do
    [ -x "$build/$b" ] || { echo "demo: $build/$b is missing; build first (make build)" >&2; exit 1; }
done
export PATH="$build:$PATH"
unset CUSTOS_FAKE_NOW

out=$PWD/demo-out
rm -rf "$out"
mkdir -p "$out/exchange" "$out/factory"
DATA=$out/data           # the CA's data directory (custosd)
DEV=$out/device          # the pump's device files (custos-device)
EX=$out/exchange         # the technician's USB stick
SECRET=$out/device-secret  # the pump's device secret (a TPM on real hardware)
cd "$out"

n=0
step() {
    n=$((n + 1))
    printf '\n==> step %d: %s (%s)\n' "$n" "$1" "$2"
}
# show CMD...: print the command (paths relative to demo-out), then run it.
show() {
    local line="$*"
    printf '    $ %s\n' "${line//$out\//}"
    "$@" 2>&1 | sed 's/^/      /'
    return "${PIPESTATUS[0]}"
}
where() {
    printf '    -> %s\n' "$*"
}

echo "Custos demo: an infusion pump gets its identity in disconnected mode."
echo "Output: $out"

printf 'demo passphrase: change me\n' >"$out/passphrase.txt"
chmod 600 "$out/passphrase.txt"

step "create the CA's data directory" "security admin, on the CA host"
show custosd init --data "$DATA"
where "data/: store, Root of Trust (data/root.pem), CA keys encrypted at rest"

step "define the system: components and key templates" "security admin"
show custosd system create --data "$DATA" --file "$src/tests/vectors/system-infusion.json"
where "system infusion-x2: pump (tls ECDSA P-256, sign ECDSA P-384), hub (tls Ed25519, server RSA-3072)"

step "make the provisioning package" "security admin"
show custosd package create --data "$DATA" --system infusion-x2 \
    --passphrase-file "$out/passphrase.txt" --out "$EX/infusion-x2.mcpp" --valid-days 30
show custos inspect "$EX/infusion-x2.mcpp"
where "exchange/infusion-x2.mcpp (mode 0600: the bootstrap key inside is passphrase-encrypted)"

step "put the package on the pump and generate its identity" "manufacturing line"
cp "$EX/infusion-x2.mcpp" "$out/factory/package.mcpp"
show custos-device request --package "$out/factory/package.mcpp" \
    --passphrase-file "$out/passphrase.txt" --component pump --serial PX2-000123 \
    --model "X2" --firmware 2.4.1 --hardware-id "mac:02:00:5e:10:00:01" --meta line=3 \
    --device-dir "$DEV" --secret-file "$SECRET"
where "device/identity.mcpi (private keys, device-locked, never leaves), device/request.mcpr; factory/package.mcpp shredded"

step "copy the provisioning request off the pump" "field technician, laptop"
show cp "$DEV/request.mcpr" "$EX/pump-PX2-000123.mcpr"
show openssl cms -verify -inform DER -in "$EX/pump-PX2-000123.mcpr" -CAfile "$DATA/root.pem" \
    -purpose any -out /dev/null
where "exchange/pump-PX2-000123.mcpr: CMS signed by the bootstrap key; openssl checks it"

step "import the request into the CA (the console's Provisioning page, later)" "field technician"
show custosd request import --data "$DATA" "$EX/pump-PX2-000123.mcpr"
ID=$(custosd device list --data "$DATA" --state pending --json | jq -r '.[0].request_id')
where "request $ID is pending on the Devices page"

step "approve the request: certificates are issued" "approver"
show custosd request approve --data "$DATA" "$ID"

step "download the certified profile" "field technician"
show custosd profile export --data "$DATA" --out "$EX/pump-PX2-000123.mccp" "$ID"
where "exchange/pump-PX2-000123.mccp: certificates, chain, Root of Trust, configuration; no secret"

step "install the certified profile on the pump" "field technician, on the device"
show custos-device install --device-dir "$DEV" --secret-file "$SECRET" \
    --profile "$EX/pump-PX2-000123.mccp"

step "mark the device provisioned (the console's Complete provisioning, later)" "field technician"
show custosd device complete --data "$DATA" "$ID"

step "the pump at work: sign a log and let openssl verify it" "device firmware, any verifier"
printf 'pump PX2-000123 therapy log\n' >"$out/log.txt"
show custos-device sign --device-dir "$DEV" --secret-file "$SECRET" --key tls \
    --in "$out/log.txt" --out "$out/log.sig"
show custos-device export-cert --device-dir "$DEV" --secret-file "$SECRET" --key tls \
    --out "$out/pump-tls.pem"
openssl x509 -in "$out/pump-tls.pem" -pubkey -noout >"$out/pump-tls.pub"
show openssl dgst -sha256 -verify "$out/pump-tls.pub" -signature "$out/log.sig" "$out/log.txt"

step "check the audit trail" "auditor"
show custosd audit verify --data "$DATA"
show custosd device list --data "$DATA"

printf '\n==> summary\n\n'
printf '    %-40s %8s  %s\n' FILE BYTES WHAT
row() {
    [ -e "$out/$1" ] && printf '    %-40s %8s  %s\n' "$1" "$(stat -c %s "$out/$1")" "$2"
    return 0
}
row data/root.pem "Root of Trust certificate (CA)"
row exchange/infusion-x2.mcpp "provisioning package (.mcpp)"
row exchange/pump-PX2-000123.mcpr "provisioning request (.mcpr)"
row exchange/pump-PX2-000123.mccp "certified profile (.mccp)"
row device/identity.mcpi "private identity (device-locked, 0600)"
row device/profile.mccp "installed certified profile"
row device-secret "device secret (hardware on a real device)"
row log.sig "signature by the pump's tls key"
printf '\n    device status:\n'
custos-device status --device-dir "$DEV" --secret-file "$SECRET" | sed 's/^/      /'
printf '\ndemo complete: everything is under %s\n' "$out"
