#!/usr/bin/env bash
# Browser tests of the web console: run.sh BUILD_DIR
# Installs playwright-core from package-lock.json when node_modules is missing
# or older than the lock file, then runs every *.test.mjs with Node's test
# runner against BUILD_DIR's custosd and custos-device, driving Debian's
# chromium (no browser is downloaded). Exit status: the tests' result.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
BUILD=${1:?usage: run.sh BUILD_DIR}
BUILD=$(cd "$BUILD" && pwd)

command -v node >/dev/null || { echo "FAIL: the browser tests need node (apt-get install nodejs npm)" >&2; exit 1; }
command -v npm >/dev/null || { echo "FAIL: the browser tests need npm (apt-get install npm)" >&2; exit 1; }
CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
[ -x "$CHROMIUM" ] || { echo "FAIL: $CHROMIUM is missing (apt-get install chromium)" >&2; exit 1; }
for b in custosd custos-device; do
    [ -x "$BUILD/$b" ] || { echo "FAIL: $BUILD/$b is missing (build first)" >&2; exit 1; }
done

cd "$HERE"
stamp=node_modules/.package-lock.json
if [ ! -d node_modules/playwright-core ] || [ ! -f "$stamp" ] || [ package-lock.json -nt "$stamp" ]; then
    PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error
fi

export CUSTOS_BIN=$BUILD CHROMIUM
# ASan reports in custosd fail the test (its exit status after SIGTERM is checked).
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
TMPDIR=$(mktemp -d "${TMPDIR:-/tmp}/custos-browser.XXXXXX")
export TMPDIR
trap 'rm -rf "$TMPDIR"' EXIT

# One file at a time: each starts its own custosd and chromium.
exec_rc=0
node --test --test-concurrency=1 --test-reporter=spec ./*.test.mjs || exec_rc=$?
exit "$exec_rc"
