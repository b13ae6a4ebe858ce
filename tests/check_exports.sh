#!/usr/bin/env bash
# Checks that libsemcache exports its public API and nothing else, printing
# TAP (run by tests/run.sh).
#
#   bash tests/check_exports.sh [build-dir]
#
# The public API is every function declared in include/semcache.h (read
# from the preprocessed header, so names in comments do not count). The
# checks: every global symbol the built archive defines is one of them;
# every one of them is defined; and a program that defines its own sc_*
# functions (the names of the library's internal helpers) links against
# the archive without a clash and without the library calling them.
set -u
cd "$(dirname "$0")/.."
BUILD=${1:-${SC_BUILD:-build}}
LIB="$BUILD/libsemcache.a"
CC=${CC:-cc}
NM=${NM:-nm}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "1..3"
failed=0

if [ ! -f "$LIB" ]; then
  echo "not ok 1 - $LIB exists"; echo "not ok 2 - # skipped"; echo "not ok 3 - # skipped"
  exit 1
fi

"$CC" -E -P include/semcache.h | grep -oE '\bsemcache_[A-Za-z0-9_]+[[:space:]]*\(' |
  sed 's/[[:space:]]*($//' | sort -u >"$tmp/api"
"$NM" -g --defined-only --format=posix "$LIB" | awk 'NF >= 2 { print $1 }' | sort -u >"$tmp/exported"

# 1. Nothing beyond the API.
extra=$(comm -13 "$tmp/api" "$tmp/exported")
if [ -z "$extra" ] && [ -s "$tmp/api" ]; then
  echo "ok 1 - $LIB exports only the $(wc -l <"$tmp/api") functions of include/semcache.h"
else
  failed=1
  echo "not ok 1 - $LIB exports symbols that include/semcache.h does not declare:"
  echo "$extra" | sed 's/^/#   /'
fi

# 2. The whole API.
missing=$(comm -23 "$tmp/api" "$tmp/exported")
if [ -z "$missing" ] && [ -s "$tmp/api" ]; then
  echo "ok 2 - $LIB defines every function of include/semcache.h"
else
  failed=1
  echo "not ok 2 - $LIB lacks functions declared in include/semcache.h:"
  echo "$missing" | sed 's/^/#   /'
fi

# 3. An application with its own sc_* functions: the link must succeed and
# the library must keep using its own helpers.
cat >"$tmp/app.c" <<'EOF'
#include "semcache.h"
#include <stdio.h>
#include <string.h>
const char *sc_strerror(int code);
void *sc_malloc_at(size_t n, const char *file, int line);
int sc_buf_init(void);
const char *sc_strerror(int code) { (void)code; return "the application's sc_strerror"; }
void *sc_malloc_at(size_t n, const char *file, int line) { (void)n; (void)file; (void)line; return NULL; }
int sc_buf_init(void) { return 0; }
int main(void)
{
    const char *msg = semcache_strerror(SEMCACHE_ENOTFOUND);
    semcache_reply *r = NULL;
    size_t used = 0;
    int rc = semcache_reply_parse("$3\r\nabc\r\n", 9, &used, &r);
    if (strstr(msg, "application") || rc != SEMCACHE_OK || !r || r->len != 3) {
        printf("library called the application's helpers (\"%s\", rc %d)\n", msg, rc);
        return 1;
    }
    semcache_reply_free(r);
    return 0;
}
EOF
# A sanitizer build of the library (make asan) needs the same runtimes.
san=()
"$NM" -u "$LIB" | grep -q ' __asan_' && san+=(-fsanitize=address)
"$NM" -u "$LIB" | grep -q ' __ubsan_' && san+=(-fsanitize=undefined)
if ! "$CC" -std=c11 "${san[@]}" -Iinclude -o "$tmp/app" "$tmp/app.c" "$LIB" -lm >"$tmp/app.log" 2>&1; then
  failed=1
  echo "not ok 3 - a program defining its own sc_* functions links against $LIB"
  head -10 "$tmp/app.log" | sed 's/^/#   /'
elif ! "$tmp/app" >"$tmp/run.log" 2>&1; then
  failed=1
  echo "not ok 3 - $LIB uses its own helpers, not the program's sc_* functions"
  head -5 "$tmp/run.log" | sed 's/^/#   /'
else
  echo "ok 3 - a program defining its own sc_* functions links against $LIB and runs"
fi
exit $failed
