#!/usr/bin/env bash
# `make bench`: runs every benchmark program (build/bench_*) and every
# benchmark script (benchmarks/bench_*.sh), each printing CSV, and keeps
# the outputs in benchmarks/results/. BENCH_ARGS is passed to each program
# (e.g. BENCH_ARGS=--quick). BENCH_ONLY=name runs only that one.
set -u
cd "$(dirname "$0")/.."
BUILD=${1:-build}
mkdir -p benchmarks/results
for b in "$BUILD"/bench_* benchmarks/bench_*.sh; do
  [ -e "$b" ] || continue
  name=$(basename "$b" .sh)
  [ -n "${BENCH_ONLY:-}" ] && [ "$name" != "$BENCH_ONLY" ] && continue
  echo "== $name"
  case "$b" in
    *.sh) bash "$b" "$BUILD" ${BENCH_ARGS:-} | tee "benchmarks/results/$name.csv" ;;
    *) "$b" ${BENCH_ARGS:-} | tee "benchmarks/results/$name.csv" ;;
  esac
done
