#!/usr/bin/env bash
# Builds and runs every libFuzzer target tests/fuzz/fuzz_*.c, printing TAP.
#
#   bash tests/fuzz/run.sh [--quick] [target-name...]
#
# Each target is built twice: with clang -fsanitize=fuzzer,address,undefined
# and run for FUZZ_TIME seconds (10 with --quick, else 60), and as a plain
# program (-DFUZZ_STANDALONE, gcc + ASan/UBSan) that runs a deterministic
# corpus: the target's own main() if it has a FUZZ_STANDALONE section, else
# tests/fuzz/standalone_main.c over its seeds and mutations of them. A target names the sources it needs in comment lines:
#   // fuzz-sources: storage/record.c common/alloc.c ...   (or " * fuzz-sources:")
#   // fuzz-libs: -lxxhash
# Seeds come from tests/fuzz/corpus/<name>/ when present; crashes are kept
# in build/fuzz/<name>-crash-*. `make fuzz` runs this without --quick.
set -u
cd "$(dirname "$0")/../.."
time_s=60
names=()
for a in "$@"; do
  case "$a" in
    --quick) time_s=10 ;;
    *) names+=("$a") ;;
  esac
done
time_s=${FUZZ_TIME:-$time_s}
out=${FUZZ_BUILD:-build/fuzz}
mkdir -p "$out"
CLANG=${CLANG:-clang}
CFLAGS_COMMON="-std=c11 -g -O1 -I. -Iinclude -D_GNU_SOURCE -pthread -fno-omit-frame-pointer"

targets=()
for f in tests/fuzz/fuzz_*.c; do
  [ -e "$f" ] || continue
  n=$(basename "$f" .c)
  if [ ${#names[@]} -gt 0 ]; then
    keep=0; for w in "${names[@]}"; do [ "$w" = "$n" ] && keep=1; done
    [ $keep = 1 ] || continue
  fi
  targets+=("$f")
done
echo "1..$(( ${#targets[@]} * 2 ))"
i=0
for f in "${targets[@]}"; do
  n=$(basename "$f" .c)
  srcs=$(grep -hoE 'fuzz-sources:.*' "$f" | sed 's/fuzz-sources://; s/\*\///' | tr '\n' ' ')
  libs=$(grep -hoE 'fuzz-libs:.*' "$f" | sed 's/fuzz-libs://; s/\*\///' | tr '\n' ' ')
  libs="$libs -lm -lpthread"

  # 1. libFuzzer build and timed run.
  i=$((i + 1))
  if ! $CLANG $CFLAGS_COMMON -fsanitize=fuzzer,address,undefined \
        -fno-sanitize-recover=undefined -o "$out/$n" "$f" $srcs $libs 2>"$out/$n.build.log"; then
    echo "not ok $i - $n (clang -fsanitize=fuzzer build failed)"
    sed 's/^/# /' "$out/$n.build.log" | head -20
  else
    corpus="$out/corpus-$n"
    mkdir -p "$corpus"
    seeds=()
    [ -d "tests/fuzz/corpus/$n" ] && seeds=("$PWD/tests/fuzz/corpus/$n")
    if (cd "$out" && ASAN_OPTIONS=detect_leaks=1 "./$n" -max_total_time="$time_s" \
          -timeout=10 -rss_limit_mb=2048 -artifact_prefix="./$n-" -print_final_stats=1 \
          "corpus-$n" "${seeds[@]}" >"$n.log" 2>&1); then
      runs=$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$out/$n.log" | grep -oE '[0-9]+$')
      echo "ok $i - $n (${time_s}s, ${runs:-?} runs)"
    else
      echo "not ok $i - $n (finding; see $out/$n.log)"
      grep -E 'ERROR|SUMMARY|Test unit written' "$out/$n.log" | head -10 | sed 's/^/# /'
    fi
  fi

  # 2. Standalone build with gcc sanitizers: the target's own main() when
  # it has a FUZZ_STANDALONE section, else the generic driver
  # (standalone_main.c) over the seed corpus and deterministic mutations.
  i=$((i + 1))
  driver=(); sargs=()
  if ! grep -q FUZZ_STANDALONE "$f"; then
    driver=(tests/fuzz/standalone_main.c)
    [ -d "tests/fuzz/corpus/$n" ] && sargs=("tests/fuzz/corpus/$n")
  fi
  if ! ${CC:-gcc} $CFLAGS_COMMON -DFUZZ_STANDALONE -fsanitize=address,undefined \
        -fno-sanitize-recover=undefined -o "$out/$n-standalone" "$f" "${driver[@]}" $srcs $libs \
        2>"$out/$n-standalone.build.log"; then
    echo "not ok $i - $n standalone (build failed)"
    sed 's/^/# /' "$out/$n-standalone.build.log" | head -20
  elif "$out/$n-standalone" "${sargs[@]}" >"$out/$n-standalone.log" 2>&1; then
    echo "ok $i - $n standalone ($(tail -1 "$out/$n-standalone.log"))"
  else
    echo "not ok $i - $n standalone (see $out/$n-standalone.log)"
    tail -5 "$out/$n-standalone.log" | sed 's/^/# /'
  fi
done
