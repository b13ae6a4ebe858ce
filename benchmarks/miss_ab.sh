#!/usr/bin/env bash
# Miss overhead of two builds, interleaved (issue 18): for each round and
# build, a fresh server on an empty data dir in front of the mock upstream
# (tests/integration/mock_upstream.js); the mock called directly (wrk -c1,
# 4 s), then new prompts through the server (wrk -c1, 6 s, every one a
# miss). Prints "round build direct_p50_us miss_p50_us overhead_us".
# This VM's speed changes from hour to hour: compare builds only within
# one run of this script.
#   bash benchmarks/miss_ab.sh BUILD_A BUILD_B [ROUNDS]   (BUILD: a dir with semcached)
set -u
cd "$(dirname "$0")/.."
A=${1:?usage: miss_ab.sh BUILD_A BUILD_B [ROUNDS]}
B=${2:?usage: miss_ab.sh BUILD_A BUILD_B [ROUNDS]}
ROUNDS=${3:-4}
P_SC=28185; P_MOCK=28186
. benchmarks/ports.sh
ports_free miss_ab $P_SC $P_MOCK
d=$(mktemp -d)
mp= sp=
trap '[ -n "$sp" ] && kill $sp 2>/dev/null; [ -n "$mp" ] && kill $mp 2>/dev/null; wait 2>/dev/null; rm -rf "$d"' EXIT
us() { awk '/ 50%/ { v = $2; if (v ~ /us$/) print v + 0; else if (v ~ /ms$/) print v * 1000; else print v * 1e6 }'; }
node tests/integration/mock_upstream.js --port $P_MOCK --name bench >/dev/null 2>&1 & mp=$!
for _ in $(seq 1 100); do curl -s -o /dev/null "localhost:$P_MOCK/_mock/calls" && break; sleep 0.1; done
# Node compiles the mock's hot paths after some thousands of requests:
# warm it up first. Even warm, the mock called directly answers in 23-93
# us p50 from one measurement to the next (bimodal), so each round's
# overhead carries that noise: compare the builds over several rounds.
wrk -t1 -c1 -d8s -s benchmarks/lua/chat_unique.lua "http://127.0.0.1:$P_MOCK/v1/chat/completions" >/dev/null 2>&1
echo "round build direct_p50_us miss_p50_us overhead_us"
for r in $(seq 1 "$ROUNDS"); do
    for b in "$A" "$B"; do
        rm -rf "$d/data"
        "$b/semcached" --port $P_SC --resp-port 0 --data-dir "$d/data" --upstream "http://127.0.0.1:$P_MOCK" \
            --log-level error --durability nosync >/dev/null 2>&1 & sp=$!
        for _ in $(seq 1 100); do curl -s -o /dev/null "localhost:$P_SC/healthz" && break; sleep 0.1; done
        direct=$(wrk -t1 -c1 -d4s --latency -s benchmarks/lua/chat_unique.lua "http://127.0.0.1:$P_MOCK/v1/chat/completions" | us)
        miss=$(wrk -t1 -c1 -d6s --latency -s benchmarks/lua/chat_unique.lua "http://127.0.0.1:$P_SC/v1/chat/completions" | us)
        echo "$r $b $direct $miss $(awk -v a="$direct" -v b="$miss" 'BEGIN { printf "%.0f", b - a }')"
        kill -TERM $sp; wait $sp 2>/dev/null; sp=
    done
done
