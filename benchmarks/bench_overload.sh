#!/usr/bin/env bash
# bench_overload: 4x the embedding capacity offered. semcached with its
# default embedder and --max-queue-ms (2000 ms), a mock upstream, and
# benchmarks/overload.js: it first measures how many distinct-prompt
# /cache/lookup calls per second the embedder sustains (C), then offers
# FACTOR x C per second in an open loop for OVER_S seconds. While that
# runs, wrk measures exact hits through the proxy (32 connections, like
# bench_proxy's exact_hit); the same wrk run without the overload, just
# before, is the reference (same server, same machine: report the ratio).
# Shows: exact hits keep flowing, a semantic lookup waits at most about
# --max-queue-ms and then gets 503 + Retry-After, memory stays bounded.
# Prints CSV. Usage: benchmarks/bench_overload.sh [BUILD]
set -u
cd "$(dirname "$0")/.."
BUILD=${1:-build}
DUR=${BENCH_SECONDS:-6}
export CAP_S=${CAP_S:-5} OVER_S=${OVER_S:-15} FACTOR=${FACTOR:-4}
P_SC=28290; P_MOCK=28291
. benchmarks/ports.sh
ports_free bench_overload $P_SC $P_MOCK
tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; rm -rf "$tmp"; }
trap cleanup EXIT
wait_http() { for _ in $(seq 1 300); do curl -s -o /dev/null "$1" && return 0; sleep 0.1; done; echo "no answer from $1" >&2; exit 1; }

node tests/integration/mock_upstream.js --port $P_MOCK --name bench >/dev/null 2>&1 & pids+=($!)
wait_http "http://127.0.0.1:$P_MOCK/_mock/calls"
"$BUILD/semcached" --port $P_SC --resp-port 0 --data-dir "$tmp/data" \
  --upstream "http://127.0.0.1:$P_MOCK" --log-level error --durability nosync >/dev/null 2>"$tmp/sc.err" &
sc=$!; pids+=($sc)
wait_http "http://127.0.0.1:$P_SC/healthz"
curl -s -o /dev/null -H 'content-type: application/json' \
  -d '{"model":"bench-model","messages":[{"role":"user","content":"What is the capital of France?"}]}' \
  "http://127.0.0.1:$P_SC/v1/chat/completions"

wrk_exact() {
  wrk -t1 -c32 -d"${DUR}s" --latency -s benchmarks/lua/chat_fixed.lua "http://127.0.0.1:$P_SC/v1/chat/completions" > "$tmp/wrk.out" 2>&1
  awk '
    function ms(v) { if (v ~ /us$/) return v/1000; if (v ~ /ms$/) return v+0; if (v ~ /s$/) return v*1000; return v }
    /Requests\/sec/ { rps=$2 } /^ +50%/ { p50=ms($2) } /^ +99%/ { p99=ms($2) }
    END { printf "%s %.3f %.3f\n", rps, p50, p99 }' "$tmp/wrk.out"
}

read -r base_rps base_p50 base_p99 < <(wrk_exact)
node benchmarks/overload.js "http://127.0.0.1:$P_SC" "$sc" > "$tmp/over.json" &
gen=$!
sleep $((CAP_S + 3))
read -r rps p50 p99 < <(wrk_exact)
wait "$gen"
over=$(cat "$tmp/over.json")
echo "# overload.js: $over" >&2
j() { node -e "const o=JSON.parse(process.argv[1]); const v=process.argv[2].split('.').reduce((a,k)=>a==null?a:a[k],o); console.log(v==null?'':v)" "$over" "$1"; }
echo "bench,capacity_lookups_per_s,offered_per_s,offered,ok,ok_p99_ms,overloaded_503,overloaded_p50_ms,overloaded_max_ms,other,rss_mib_start,rss_mib_max,rss_mib_end,exact_rps_alone,exact_rps_during,ratio_exact_rps,exact_p99_ms_alone,exact_p99_ms_during"
echo "overload_x$FACTOR,$(j capacity_per_s),$(j offered_per_s),$(j offered),$(j ok.n),$(j ok.p99),$(j overloaded.n),$(j overloaded.p50),$(j overloaded.max),$(j other),$(j rss_mib_start),$(j rss_mib_max),$(j rss_mib_end),$base_rps,$rps,$(awk -v a="$rps" -v b="$base_rps" 'BEGIN{printf "%.3f", a/b}'),$base_p99,$p99"
