#!/usr/bin/env bash
# The web console is compiled into custosd and served at / with a strict
# Content-Security-Policy, nosniff, no framing and ETag revalidation; paths
# outside web/ (traversal, hidden files, methods other than GET/HEAD) are
# refused; the API prefixes are untouched; --web-dir serves a folder instead.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/serve_lib.sh"

D=$T/data

# header NAME: the value of response header NAME in $T/headers.
header() {
    grep -i "^$1:" "$T/headers" | head -n 1 | cut -d: -f2- | sed 's/^ *//; s/\r$//'
}

step "custosd serves the console it was built with"
init_data "$D"
start_custosd "$D"
expect_code 200 GET /
header Content-Type | grep -q '^text/html' || fail "/ is not text/html: $(header Content-Type)"
cmp -s "$T/body" "$CUSTOS_SRC/web/index.html" || fail "/ is not web/index.html"
csp=$(header Content-Security-Policy)
for want in "default-src 'self'" "frame-ancestors 'none'" "object-src 'none'" "base-uri 'none'"; do
    case "$csp" in *"$want"*) ;; *) fail "CSP lacks $want: $csp" ;; esac
done
case "$csp" in *unsafe-inline* | *unsafe-eval*) fail "CSP allows inline or eval: $csp" ;; esac
[ "$(header X-Content-Type-Options)" = nosniff ] || fail "no nosniff"
[ "$(header X-Frame-Options)" = DENY ] || fail "no X-Frame-Options DENY"
[ "$(header Cache-Control)" = no-cache ] || fail "Cache-Control: $(header Cache-Control)"
etag=$(header ETag)
[ -n "$etag" ] || fail "no ETag"
expect_code 304 GET / -H "If-None-Match: $etag"
[ ! -s "$T/body" ] || fail "a 304 carried a body"
expect_code 200 GET / -H 'If-None-Match: "stale"'

step "every file of web/ is served byte for byte with its type"
n=0
while IFS= read -r f; do
    rel=${f#"$CUSTOS_SRC/web"}
    expect_code 200 GET "$rel"
    cmp -s "$T/body" "$f" || fail "$rel differs from web$rel"
    case "$rel" in
    *.js) header Content-Type | grep -q '^text/javascript' || fail "$rel: $(header Content-Type)" ;;
    *.css) header Content-Type | grep -q '^text/css' || fail "$rel: $(header Content-Type)" ;;
    *.html) header Content-Type | grep -q '^text/html' || fail "$rel: $(header Content-Type)" ;;
    esac
    n=$((n + 1))
done < <(find "$CUSTOS_SRC/web" -type f ! -name '.*' | sort)
[ "$n" -gt 2 ] || fail "web/ has only $n files"
expect_code 200 HEAD /index.html
[ "$(header Content-Length)" = "$(stat -c %s "$CUSTOS_SRC/web/index.html")" ] || fail "HEAD length"

step "no inline script or style in the pages (the CSP would block it)"
while IFS= read -r f; do
    if grep -Eiq '<script[^>]*>[^<[:space:]]|<style|style="|[[:space:]]on[a-z]+="' "$f"; then
        fail "inline script, style or handler in web${f#"$CUSTOS_SRC/web"}"
    fi
done < <(find "$CUSTOS_SRC/web" -name '*.html')

step "what is not a console file is refused"
for p in /nope.html /js/ /../root.pem /%2e%2e/root.pem /.hidden /js/../../custos.db '/a//b.js'; do
    expect_code '404|400' GET "$p" --path-as-is
done
expect_error 405 method_not_allowed POST /index.html -H 'Content-Type: text/plain' --data-binary x
expect_error 404 not_found GET /api/v1/nope
expect_error 401 unauthenticated GET /api/v1/requests
stop_custosd

step "--web-dir serves a folder (for people working on the console)"
mkdir -p "$T/web/js"
printf '<!doctype html><title>dev</title>\n' >"$T/web/index.html"
printf 'export const x = 1;\n' >"$T/web/js/a.js"
ln -s "$D/root.pem" "$T/web/link.js"
start_custosd "$D" --web-dir "$T/web"
expect_code 200 GET /
grep -q '<title>dev</title>' "$T/body" || fail "--web-dir not used"
expect_code 200 GET /js/a.js
header Content-Type | grep -q '^text/javascript' || fail "a.js type"
header Content-Security-Policy | grep -q "default-src 'self'" || fail "no CSP with --web-dir"
expect_code 404 GET /link.js
expect_code 404 GET /missing.js
stop_custosd
echo "ok: console served from the binary and from --web-dir"
