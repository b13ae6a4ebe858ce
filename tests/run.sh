#!/usr/bin/env bash
# Runs every test: the unit-test runner, the training pipeline's checks
# (tests/train/: data loaders, PyTorch forward == C forward), the check of
# libsemcache's exported symbols (tests/check_exports.sh), then each integration/e2e test
# file (Node scripts that start the real semcached), then a short run of
# each fuzz target's corpus. Every suite prints TAP; this script counts the
# "ok" / "not ok" lines and ends with "N passed, N failed".
set -u
cd "$(dirname "$0")/.."
BUILD=${1:-build}
export SEMCACHED_BIN="$PWD/$BUILD/semcached"
export SEMCACHE_CLI="$PWD/$BUILD/semcache-cli"
export SC_BUILD="$PWD/$BUILD"
log=$(mktemp -d)
# Everything the suites write to the temp dir (data dirs, logs, fuzz
# scratch) goes under one directory of this run, removed however the run
# ends (a failing test, a timeout, Ctrl-C).
SC_TEST_TMP=$(mktemp -d "${TMPDIR:-/tmp}/sc_test_run.XXXXXX")
trap 'rm -rf "$log" "$SC_TEST_TMP"' EXIT
trap 'exit 130' INT TERM
export TMPDIR="$SC_TEST_TMP"
pass=0; fail=0

run_suite() { # name, command...
  local name=$1; shift
  local out="$log/$(echo "$name" | tr '/ ' '__').tap"
  echo "== $name"
  timeout 900 "$@" >"$out" 2>"$out.err"
  local rc=$?
  local p f
  p=$(grep -cE '^ok ' "$out")
  f=$(grep -cE '^not ok ' "$out")
  grep -E '^(not ok|#)' "$out" | head -50
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
    echo "not ok - $name exited with status $rc"; tail -20 "$out.err"; f=1
  elif [ "$f" -gt 0 ]; then
    tail -20 "$out.err"
  fi
  echo "   $p passed, $f failed"
  pass=$((pass + p)); fail=$((fail + f))
}

run_suite unit "$BUILD/unit_tests"
run_suite train/data bash tests/train/test_train_data.sh
run_suite train/forward /usr/bin/python3 tests/train/test_forward_match.py
run_suite exports bash tests/check_exports.sh "$BUILD"
for t in tests/integration/test_*.js; do
  [ -e "$t" ] || continue
  run_suite "$t" node "$t"
done
if [ -x tests/fuzz/run.sh ] && [ -z "${SC_SKIP_FUZZ:-}" ]; then
  run_suite fuzz bash tests/fuzz/run.sh --quick
fi
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
