#!/usr/bin/env bash
# Replay benchmark (benchmarks/replay.js): the banking77 and CLINC150 test
# queries replayed through semcached with an oracle upstream, hit rate and
# served error rate per config (fixed thresholds, error budgets), written to
# benchmarks/results/replay*.csv and replay.png.
#   SC_DATA_DIR=DIR bash benchmarks/replay.sh [BUILD] [--quick] [replay.js options]
# Needs the data sets: SC_DATA_DIR, or --data DIR. Not part of `make bench`
# (that must run without the data), hence not named bench_*.sh.
set -u
cd "$(dirname "$0")/.."
BUILD=build
if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then BUILD=$1; shift; fi
have_data=${SC_DATA_DIR:-}
for a in "$@"; do [ "$a" = "--data" ] && have_data=yes; done
if [ -z "$have_data" ]; then
  echo "replay.sh: set SC_DATA_DIR to the data dir (banking77_*.csv, clinc150_data_full.json.gz) or pass --data DIR" >&2
  exit 2
fi
if [ ! -x "$BUILD/semcached" ]; then
  echo "replay.sh: no $BUILD/semcached; build it first (make -j2)" >&2
  exit 2
fi
exec node benchmarks/replay.js --build "$BUILD" "$@"
