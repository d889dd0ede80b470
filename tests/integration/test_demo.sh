#!/usr/bin/env bash
# `make demo` is the README's first command: run it (scripts/demo.sh, DEMO_EXIT=1) on a
# free loopback port in a scratch directory and check that every device ended
# provisioned, the audit trail verified, and the service stopped cleanly.
source "$(dirname "$0")/lib.sh"

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
step "scripts/demo.sh on port $port"
cd "$T"
DEMO_EXIT=1 DEMO_PORT=$port bash "$CUSTOS_SRC/scripts/demo.sh" "$CUSTOS_BIN" >"$T/demo.out" 2>&1 ||
    { tail -n 40 "$T/demo.out" >&2; fail "make demo failed"; }
grep -q '^demo complete' "$T/demo.out" || { tail -n 20 "$T/demo.out" >&2; fail "the demo did not complete"; }
grep -q 'audit trail verified' "$T/demo.out" || fail "the demo's audit trail did not verify"
grep -q 'provisioned 5, rejected 0, expired 0' "$T/demo.out" ||
    { grep 'requests shown' "$T/demo.out" >&2; fail "the demo's Devices list does not show its 5 devices provisioned"; }
n=$(grep ' provisioned  infusion-x2 ' "$T/demo.out" | grep -o 'PX2-000[0-9]' | sort -u | wc -l)
[ "$n" -eq 5 ] || fail "expected devices PX2-0001..5 provisioned, saw $n"
echo "ok: make demo provisions its five devices"
