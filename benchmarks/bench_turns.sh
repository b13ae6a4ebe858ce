#!/usr/bin/env bash
# bench_turns: a chat platform's traffic, where every request is a
# conversation's later turn and so has a context (partition) of its own
# with nothing stored yet (issue 18). New-context misses through the proxy
# to the mock upstream (benchmarks/lua/chat_unique.lua with CONTEXT=1,
# wrk -c64 for 10 s), then: entries stored (one partition each), anonymous
# memory per entry (RssAnon after, less RssAnon of the idle server before),
# write-backs dropped under overload (--max-queue-ms) and the misses' p50. Prints CSV.
#   bash benchmarks/bench_turns.sh [BUILD]
set -u
cd "$(dirname "$0")/.."
BUILD=${1:-build}
DUR=${BENCH_SECONDS:-10}
P_SC=28620; P_MOCK=28621
. benchmarks/ports.sh
ports_free bench_turns $P_SC $P_MOCK
d=$(mktemp -d)
mp= sp=
trap '[ -n "$sp" ] && kill $sp 2>/dev/null; [ -n "$mp" ] && kill $mp 2>/dev/null; wait 2>/dev/null; rm -rf "$d"' EXIT
node tests/integration/mock_upstream.js --port $P_MOCK --name bench >/dev/null 2>&1 & mp=$!
"$BUILD/semcached" --port $P_SC --resp-port 0 --data-dir "$d/data" --upstream "http://127.0.0.1:$P_MOCK" \
    --log-level error --durability nosync >/dev/null 2>&1 & sp=$!
for _ in $(seq 1 100); do curl -s -o /dev/null "localhost:$P_SC/healthz" && curl -s -o /dev/null "localhost:$P_MOCK/_mock/calls" && break; sleep 0.1; done
anon() { awk '/^RssAnon/ { print $2 }' "/proc/$sp/status"; }
a0=$(anon)
p50=$(CONTEXT=1 wrk -t1 -c64 -d"${DUR}s" --latency -s benchmarks/lua/chat_unique.lua \
      "http://127.0.0.1:$P_SC/v1/chat/completions" | awk '/ 50%/ { v = $2; if (v ~ /us$/) print v / 1000; else if (v ~ /ms$/) print v + 0; else print v * 1000 }')
# The last write-backs: until the entry count stops moving (at most ~10 s).
entries() { curl -s "localhost:$P_SC/stats" | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const o=JSON.parse(s);console.log(o.cache.entries, o.writebacks_dropped)})'; }
prev=
for _ in $(seq 1 20); do
    sleep 0.5
    cur=$(entries)
    [ "$cur" = "$prev" ] && break
    prev=$cur
done
a1=$(anon)
read -r entries dropped <<< "$cur"
echo "bench,entries,writebacks_dropped,rss_anon_before_kB,rss_anon_after_kB,anon_per_entry_B,miss_p50_ms"
echo "turns,$entries,$dropped,$a0,$a1,$(( (a1 - a0) * 1024 / (entries > 0 ? entries : 1) )),$p50"
