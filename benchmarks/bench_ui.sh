#!/usr/bin/env bash
# bench_ui: what an open dashboard costs the proxy. Exact-hit throughput
# (wrk, 32 connections, like bench_proxy's exact_hit) with nobody watching,
# against the same load while a dashboard polls GET /ui/data at the page's
# own rate (every 2 s) and at 10x that rate (every 200 ms). Rounds are
# interleaved (none, 2 s, 200 ms, none, ...) on the same server and the
# medians compared: the machine is shared. Also the page's weight and the
# size and latency of one /ui/data answer with a full ring of decisions.
# Prints CSV. Usage: benchmarks/bench_ui.sh [BUILD]
set -u
cd "$(dirname "$0")/.."
BUILD=${1:-build}
DUR=${BENCH_SECONDS:-6}
ROUNDS=${BENCH_ROUNDS:-3}
P_SC=28190; P_MOCK=28191
. benchmarks/ports.sh
ports_free bench_ui $P_SC $P_MOCK
tmp=$(mktemp -d)
pids=()
poller=
cleanup() { [ -n "$poller" ] && kill "$poller" 2>/dev/null; for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; rm -rf "$tmp"; }
trap cleanup EXIT
wait_http() { for _ in $(seq 1 300); do curl -s -o /dev/null "$1" && return 0; sleep 0.1; done; echo "no answer from $1" >&2; exit 1; }

node tests/integration/mock_upstream.js --port $P_MOCK --name bench >/dev/null 2>&1 & pids+=($!)
wait_http "http://127.0.0.1:$P_MOCK/_mock/calls"
"$BUILD/semcached" --port $P_SC --resp-port 0 --data-dir "$tmp/data" --embedder hash \
  --upstream "http://127.0.0.1:$P_MOCK" --log-level error --durability nosync >/dev/null 2>"$tmp/sc.err" & pids+=($!)
wait_http "http://127.0.0.1:$P_SC/healthz"

# Some history: 600 distinct prompts (misses, then semantic lookups), so
# the ring of recent decisions is full and /ui/data is as big as it gets.
for i in $(seq 1 600); do
  printf '{"model":"bench-model","messages":[{"role":"user","content":"question number %d about topic %d"}]}\n' "$i" $((i % 17))
done > "$tmp/prompts"
while read -r body; do
  curl -s -o /dev/null -H 'content-type: application/json' -d "$body" "http://127.0.0.1:$P_SC/v1/chat/completions"
done < "$tmp/prompts"
curl -s -o /dev/null -H 'content-type: application/json' \
  -d '{"model":"bench-model","messages":[{"role":"user","content":"What is the capital of France?"}]}' \
  "http://127.0.0.1:$P_SC/v1/chat/completions"

page=0
for f in /ui /ui/app.js /ui/app.css; do
  page=$((page + $(curl -s "http://127.0.0.1:$P_SC$f" | wc -c)))
done
read -r dsize dtime < <(curl -s -o /dev/null -w '%{size_download} %{time_total}\n' "http://127.0.0.1:$P_SC/ui/data")
echo "# page weight $page bytes (html+js+css, uncompressed); /ui/data $dsize bytes in $(awk -v t="$dtime" 'BEGIN{printf "%.2f", t*1000}') ms" >&2

wrk_rps() {
  wrk -t1 -c32 -d"${DUR}s" --latency -s benchmarks/lua/chat_fixed.lua "http://127.0.0.1:$P_SC/v1/chat/completions" > "$tmp/wrk.out" 2>&1
  awk '
    function ms(v) { if (v ~ /us$/) return v/1000; if (v ~ /ms$/) return v+0; if (v ~ /s$/) return v*1000; return v }
    /Requests\/sec/ { rps=$2 } /^ +99%/ { p99=ms($2) }
    END { printf "%s %.3f\n", rps, p99 }' "$tmp/wrk.out"
}
poll() { # interval_s: fetch /ui/data like the page does, until killed
  local seq=0
  while :; do
    seq=$(curl -s "http://127.0.0.1:$P_SC/ui/data?after=$seq" | grep -o '"seq":[0-9]*' | head -1 | cut -d: -f2)
    seq=${seq:-0}
    sleep "$1"
  done
}

declare -A RPS P99
for r in $(seq 1 "$ROUNDS"); do
  for mode in none 2s 200ms; do
    case $mode in
      2s) poll 2 & poller=$! ;;
      200ms) poll 0.2 & poller=$! ;;
    esac
    read -r rps p99 < <(wrk_rps)
    [ -n "$poller" ] && { kill "$poller" 2>/dev/null; wait "$poller" 2>/dev/null; poller=; }
    RPS[$mode]="${RPS[$mode]:-} $rps"
    P99[$mode]="${P99[$mode]:-} $p99"
  done
done
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}'; }
echo "bench,dashboard_poll,rounds,conns,rps_median,p99_ms_median,ratio_rps_vs_no_dashboard,page_bytes,ui_data_bytes"
base=$(echo "${RPS[none]}" | median)
for mode in none 2s 200ms; do
  m=$(echo "${RPS[$mode]}" | median)
  p=$(echo "${P99[$mode]}" | median)
  echo "exact_hit,$mode,$ROUNDS,32,$m,$p,$(awk -v a="$m" -v b="$base" 'BEGIN{printf "%.3f", a/b}'),$page,$dsize"
done
