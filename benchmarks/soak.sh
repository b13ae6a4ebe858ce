#!/usr/bin/env bash
# Soak: a long mixed load (proxied hits and misses, stores with short TTLs,
# deletes, RESP sets and gets, evictions under --max-entries) against one
# semcached, RSS, fds, p99 latency and hit rate sampled every 10 s
# (benchmarks/soak.js), then plotted with gnuplot.
#   benchmarks/soak.sh [BUILD] [--minutes N]     # default 30 minutes
# Writes benchmarks/results/soak.csv and soak.png; exits non-zero on FAIL
# (RSS drifts more than 5 % after warm-up, fds grow, or any error).
# Not part of `make bench` (it takes half an hour).
set -u
cd "$(dirname "$0")/.."
BUILD=build
MIN=30
while [ $# -gt 0 ]; do
  case $1 in
    --minutes) MIN=$2; shift 2 ;;
    *) BUILD=$1; shift ;;
  esac
done
mkdir -p benchmarks/results
csv=benchmarks/results/soak.csv
if [ -z "${SOAK_PLOT_ONLY:-}" ]; then
  SEMCACHED_BIN="$PWD/$BUILD/semcached" node benchmarks/soak.js $((MIN * 60)) "$csv"
  rc=$?
else
  rc=0   # SOAK_PLOT_ONLY=1: redraw soak.png from the existing CSV
fi
if command -v gnuplot >/dev/null && [ -s "$csv" ]; then
  gnuplot <<GP
set datafile separator ","
set terminal pngcairo size 1000,700 noenhanced
set output "benchmarks/results/soak.png"
set multiplot layout 3,1 title "semcached soak ($MIN min)"
set xlabel "seconds"
set ylabel "RSS (MiB)"
set y2label "open fds"
set y2tics
set y2range [0:*]
set ytics nomirror
plot "$csv" every ::1 using 1:(\$2/1024) with linespoints title "RSS", "" every ::1 using 1:3 axes x1y2 with lines title "open fds"
unset y2tics
unset y2label
set ylabel "p99 (ms)"
plot "$csv" every ::1 using 1:5 with linespoints title "chat p99 per interval"
set ylabel "hit rate"
set yrange [0:1]
plot "$csv" every ::1 using 1:6 with linespoints title "hit rate per interval"
unset multiplot
GP
fi
exit $rc
