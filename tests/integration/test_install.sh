#!/usr/bin/env bash
# libcustos installs like a real library: headers, static and shared library,
# pkg-config file and CMake package; a firmware project links it both ways and
# runs against the null port (which must fail cleanly, not crash).
source "$(dirname "$0")/lib.sh"

P=$T/prefix
step "cmake --install into a scratch prefix"
cmake --install "$CUSTOS_BIN" --prefix "$P" >/dev/null
L=$(dirname "$(find "$P" -name libcustos.a | head -n 1)")
[ -d "$L" ] && [ "$L" != . ] || fail "cmake --install did not install libcustos.a"
for f in "$P/include/custos/custos.h" "$P/include/custos/port.h" "$P/include/custos/device.h" \
         "$L/pkgconfig/custos.pc" "$L/cmake/custos/custosConfig.cmake" "$P/bin/custosd"; do
    [ -e "$f" ] || fail "cmake --install did not install ${f#$P/}"
done
ls "$L"/libcustos.so.* >/dev/null 2>&1 || fail "no versioned shared library installed"
if grep -rq "internal/" "$P/include/custos"; then fail "a public header includes an internal one"; fi

SAN=()
[ "${CUSTOS_SANITIZE:-OFF}" = ON ] && SAN=(-fsanitize=address,undefined)

cat >"$T/app.c" <<'C'
#include <stdio.h>
#include <string.h>
#include <custos/custos.h>

int main(void)
{
    custos_port port;
    custos_device *dev = NULL;
    custos_port_null(&port);
    custos_err r = custos_device_open(&dev, &port, NULL);
    if (r != CUSTOS_ERR_NOT_PROVIDED || dev != NULL) {
        printf("unexpected: %s\n", custos_err_code(r));
        return 1;
    }
    printf("%s %s: %s\n", CUSTOS_VERSION_STRING, custos_err_code(r), custos_error_last()->message);
    return strcmp(custos_alg_name(CUSTOS_ALG_ECDSA_P256), "ecdsa-p256") != 0;
}
C

step "pkg-config, shared library"
export PKG_CONFIG_PATH=$L/pkgconfig
cc -std=c11 -Wall -Wextra -Werror "${SAN[@]}" "$T/app.c" -o "$T/app-shared" \
    $(pkg-config --cflags --libs custos)
LD_LIBRARY_PATH=$L "$T/app-shared" | grep -q "not_provided" || fail "shared build does not run"
deps=$(LD_LIBRARY_PATH=$L ldd "$T/app-shared")
grep -q "libcustos.so" <<<"$deps" || fail "not linked to libcustos.so"

step "pkg-config --static, static library"
cc -std=c11 -Wall -Wextra -Werror "${SAN[@]}" "$T/app.c" -o "$T/app-static" \
    $(pkg-config --cflags custos) "$L/libcustos.a" $(pkg-config --static --libs-only-l custos | sed 's/-lcustos//')
"$T/app-static" | grep -q "not_provided" || fail "static build does not run"
deps=$(ldd "$T/app-static")
if grep -q libcustos <<<"$deps"; then fail "static build still needs libcustos.so"; fi

step "find_package(custos) from a CMake project"
mkdir -p "$T/cmk"
cp "$T/app.c" "$T/cmk/app.c"
cat >"$T/cmk/CMakeLists.txt" <<'CM'
cmake_minimum_required(VERSION 3.25)
project(app C)
find_package(custos 0.1 REQUIRED)
add_executable(app app.c)
target_link_libraries(app PRIVATE custos::custos)
CM
CFLAGS="${SAN[*]}" LDFLAGS="${SAN[*]}" cmake -S "$T/cmk" -B "$T/cmk/build" -DCMAKE_PREFIX_PATH="$P" >/dev/null ||
    fail "find_package(custos) failed"
cmake --build "$T/cmk/build" >/dev/null || fail "the CMake consumer does not build"
LD_LIBRARY_PATH=$L "$T/cmk/build/app" | grep -q "not_provided" || fail "the CMake consumer does not run"
echo "PASS: install"
