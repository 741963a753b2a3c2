#!/bin/sh
# tests/fuzz/build.sh - builds the libFuzzer targets with clang, apart from
# the autotools build (which uses gcc and never sees these files).
#
#   tests/fuzz/build.sh [--out DIR] [TARGET...]
#
# The sources of libcrosstalk.a (as src/common/local.mk lists them) go into
# DIR/libcommon.a, instrumented for coverage, ASan and UBSan; each
# tests/fuzz/fuzz_*.c is linked against it into DIR/fuzz_*. DIR is $FUZZ_OUT, else tests/fuzz/out. Objects are rebuilt when
# a source or a header is newer. CC (default clang) must be clang >= 14.
set -eu

# All of it in one block, which the shell reads whole before running it: an
# edit to this file during a long run does not garble the rest of the run.
{

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
out=${FUZZ_OUT:-$here/out}
cc=${CC:-clang}

while [ $# -gt 0 ]; do
    case $1 in
    --out) out=$2; shift 2 ;;
    --out=*) out=${1#--out=}; shift ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    --) shift; break ;;
    -*) echo "build.sh: unknown option $1" >&2; exit 2 ;;
    *) break ;;
    esac
done

if ! command -v "$cc" >/dev/null 2>&1; then
    echo "build.sh: $cc not found (apt-get install clang libclang-rt-14-dev)" >&2
    exit 1
fi

# wslay has no .pc file on Debian 12; json-c, hiredis, libcrypto and
# libevent do.
pcs="json-c hiredis libcrypto libevent"
if ! pc_cflags=$(pkg-config --cflags $pcs) || ! pc_libs=$(pkg-config --libs $pcs); then
    echo "build.sh: pkg-config cannot find one of: $pcs" >&2
    exit 1
fi
wslay_cflags=$(pkg-config --cflags libwslay 2>/dev/null || true)
wslay_libs=$(pkg-config --libs libwslay 2>/dev/null || echo -lwslay)

san="-fsanitize=address,undefined -fno-sanitize-recover=undefined"
cflags="-g -O1 -fno-omit-frame-pointer $san -std=gnu11 -Wall -Wextra
    -Wno-unused-parameter -D_GNU_SOURCE -I$top/src/common -I$out
    -I$top/src/transport $pc_cflags
    $wslay_cflags"
# -Werror for the targets only: the library's warnings are gcc's business
# (its own build has -Werror), and clang's set differs.
target_cflags=-Werror

# what the autotools build puts in libcrosstalk.a, not whatever *.c is there
# plus what libwscore.a holds (src/daemon/local.mk): the daemon's WebSocket
# protocol core, which fuzz_ws drives
sources="$(grep -o 'src/common/[A-Za-z0-9_]*\.c' "$top/src/common/local.mk" |
    sort -u) $(sed -n '/^libwscore_a_SOURCES/,/[^\\]$/p' \
    "$top/src/daemon/local.mk" | grep -o 'src/transport/[A-Za-z0-9_]*\.c')"
if [ -z "$sources" ]; then
    echo "build.sh: no sources found in src/common/local.mk" >&2
    exit 1
fi

mkdir -p "$out/obj"

# the paths.h make writes from configure's directories (config.c includes
# it); an in-tree build's own, beside config.c, is found first
if [ ! -e "$out/paths.h" ]; then
    printf '%s\n' '#define SYSCONFDIR "/etc"' \
        '#define WWWDIR "/usr/share/crosstalk/www"' >"$out/paths.h"
fi

# newest header: any change to one rebuilds everything (there are few)
newest_h=$(ls -t "$top"/src/common/*.h "$top"/src/transport/wsframe.h \
    "$top"/src/transport/wscore.h \
    "$here"/*.h | head -n 1)

# stale OBJ SRC: true when OBJ must be rebuilt
stale() {
    [ ! -e "$1" ] || [ "$2" -nt "$1" ] || [ "$newest_h" -nt "$1" ] ||
        [ "$0" -nt "$1" ]
}

# Compiles run in the background, as many at once as there are CPUs.
max_jobs=$(nproc 2>/dev/null || echo 2)
pids=
n_jobs=0
failed=0
reap() {
    for p in $pids; do
        wait "$p" || failed=1
    done
    pids=
    n_jobs=0
    [ "$failed" = 0 ] || exit 1
}
spawn() {
    "$@" &
    pids="$pids $!"
    n_jobs=$((n_jobs + 1))
    [ "$n_jobs" -lt "$max_jobs" ] || reap
}

objs=
for rel in $sources; do
    src=$top/$rel
    obj=$out/obj/$(basename "$src" .c).o
    objs="$objs $obj"
    if stale "$obj" "$src"; then
        # shellcheck disable=SC2086
        spawn "$cc" $cflags -fsanitize=fuzzer-no-link -c "$src" -o "$obj"
        rebuilt_lib=1
    fi
done
reap
if [ -n "${rebuilt_lib:-}" ] || [ ! -e "$out/libcommon.a" ]; then
    rm -f "$out/libcommon.a"
    # shellcheck disable=SC2086
    ar rcs "$out/libcommon.a" $objs
fi

if [ $# -eq 0 ]; then
    set -- $(cd "$here" && ls fuzz_*.c | sed 's/\.c$//')
fi
for t in "$@"; do
    src=$here/$t.c
    if [ ! -e "$src" ]; then
        echo "build.sh: no target $t ($src)" >&2
        exit 2
    fi
    if stale "$out/$t" "$src" || [ "$out/libcommon.a" -nt "$out/$t" ]; then
        # linked aside and renamed: a fuzzer may be running the old one
        # shellcheck disable=SC2086
        spawn sh -c '"$@" && mv -f "$0.new" "$0"' "$out/$t" \
            "$cc" $cflags $target_cflags -fsanitize=fuzzer "$src" \
            "$out/libcommon.a" $pc_libs $wslay_libs -lm -o "$out/$t.new"
    fi
done
reap
}
