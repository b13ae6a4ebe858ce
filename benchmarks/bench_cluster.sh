#!/usr/bin/env bash
# Multi-node mode (issue 15) on one machine: a Redis Cluster (3 masters, 3
# replicas; tests/cluster/cluster.sh), semcached nodes with --redis-cluster
# (hash embedder unless BENCH_EMBEDDER is set), same-run references:
#   feed lag     a store acknowledged on node A until a paraphrase of it is
#                a semantic hit on node B (the entry reached B's own index
#                through the feed), 200 stores, p50 / p99
#   catch-up     node C stopped, N entries imported through A, C restarted:
#                seconds until C holds them all (from its saved positions);
#                and a node with an empty data dir (a full copy by SCAN)
#   one node     /cache/store and exact-hit /cache/lookup rates (wrk, 8
#                connections) with --redis-cluster against the same node on
#                its own LMDB
#   HAProxy      semantic lookups through HAProxy over 1, 2 and 3 nodes
#                (wrk, 16 connections)
# Prints CSV-ish lines. Usage: benchmarks/bench_cluster.sh [BUILD] [N]
set -u
cd "$(dirname "$0")/.."
BUILD=${1:-build}
N=${2:-2000}
EMB=${BENCH_EMBEDDER:-hash}
DUR=${BENCH_SECONDS:-5}
RB=21600; SB=21800; HP=21900
. benchmarks/ports.sh
ports_free bench_cluster $(seq $RB $((RB + 5))) $(seq $((RB + 100)) $((RB + 105))) $(seq $SB $((SB + 7)))
d=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; wait 2>/dev/null; bash tests/cluster/cluster.sh stop "$d/redis"; rm -rf "$d"; }
trap cleanup EXIT
now() { date +%s.%N; }
bash tests/cluster/cluster.sh start "$d/redis" $RB || exit 1
seeds="127.0.0.1:$RB,127.0.0.1:$((RB + 1))"

declare -A pid_of
start_node() { # I [extra args...]
    local i=$1; shift
    "$BUILD/semcached" --port $((SB + i)) --resp-port 0 --data-dir "$d/n$i" --embedder "$EMB" --verify off \
        --log-level warn "$@" 2>>"$d/n$i.log" &
    pid_of[$i]=$!
    pids+=($!)
    for _ in $(seq 1 600); do curl -s -o /dev/null "http://127.0.0.1:$((SB + i))/healthz" && return; sleep 0.02; done
}
stop_node() { kill -TERM "${pid_of[$1]}"; wait "${pid_of[$1]}" 2>/dev/null; }
entries() { curl -s "http://127.0.0.1:$((SB + $1))/stats" | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).cache.entries))'; }
C="--redis-cluster $seeds"

# --- feed lag -------------------------------------------------------------
start_node 0 $C; start_node 1 $C; start_node 2 $C
node -e '
const [a, b, n] = [process.argv[1], process.argv[2], +process.argv[3]];
const post = (u, o) => fetch(u, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(o) }).then((r) => r.json());
(async () => {
  const lags = [];
  for (let i = 0; i < n; i++) {
    const p = `lag probe ${i} on topic ${i * 7919 % 1000} from node a`;
    const s = await post(`${a}/cache/store`, { namespace: "lag", prompt: p, response: `r${i}` });
    if (!s.id) throw new Error(JSON.stringify(s));
    const t0 = process.hrtime.bigint();
    for (;;) {
      const l = await post(`${b}/cache/lookup`, { namespace: "lag", prompt: p + " please", threshold: 0.5 });
      if (l.hit && l.kind === "semantic" && l.response === `r${i}`) break;
    }
    lags.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  lags.sort((x, y) => x - y);
  console.log(`feed_lag,stores,${n},p50_ms,${lags[n >> 1].toFixed(1)},p99_ms,${lags[Math.floor(n * 0.99)].toFixed(1)},max_ms,${lags[n - 1].toFixed(1)}`);
})().catch((e) => { console.error(e); process.exit(1); });' "http://127.0.0.1:$SB" "http://127.0.0.1:$((SB + 1))" 200

# --- catch-up and full copy ------------------------------------------------
node -e '
const n = +process.argv[1]; const out = [];
for (let i = 0; i < n; i++) out.push(JSON.stringify({ namespace: "bulk", prompt: `bulk question ${i} about subject ${i % 313}`, response: `bulk answer ${i}` }));
require("fs").writeFileSync(process.argv[2], out.join("\n") + "\n");' "$N" "$d/bulk.jsonl"
stop_node 2
curl -s -o /dev/null -H 'content-type: application/x-ndjson' --data-binary @"$d/bulk.jsonl" "http://127.0.0.1:$SB/cache/import"
want=$(entries 0)
t0=$(now); start_node 2 $C
while [ "$(entries 2)" != "$want" ]; do sleep 0.01; done
echo "catch_up,entries_behind,$N,total,$want,seconds,$(awk -v a="$t0" -v b="$(now)" 'BEGIN{printf "%.2f", b-a}')"
t0=$(now); start_node 3 $C
while [ "$(entries 3)" != "$want" ]; do sleep 0.01; done
echo "full_copy,entries,$want,seconds,$(awk -v a="$t0" -v b="$(now)" 'BEGIN{printf "%.2f", b-a}')"
for i in 0 1 2 3; do stop_node $i; done

# --- one node: cluster mode vs its own LMDB --------------------------------
wrk_rate() { # URL SCRIPT -> requests/s
    wrk -t1 -c8 -d"${DUR}s" -s "$2" "$1" 2>&1 | awk '/Requests\/sec/ { print $2 }'
}
for mode in lmdb cluster; do
    rm -rf "$d/n4"
    if [ $mode = cluster ]; then start_node 4 $C; else start_node 4; fi
    curl -s -o /dev/null -X POST "http://127.0.0.1:$((SB + 4))/cache/store" -H 'content-type: application/json' \
        -d '{"namespace":"b","prompt":"How do I reset my password?","response":"Use the reset link."}'
    st=$(wrk_rate "http://127.0.0.1:$((SB + 4))" benchmarks/lua/store_unique.lua)
    hit=$(wrk_rate "http://127.0.0.1:$((SB + 4))/cache/lookup" benchmarks/lua/lookup_fixed.lua)
    echo "one_node,$mode,stores_per_s,$st,exact_hits_per_s,$hit"
    stop_node 4
done

# --- HAProxy over 1, 2, 3 nodes ---------------------------------------------
for i in 5 6 7; do start_node $i $C; done
curl -s -o /dev/null -X POST "http://127.0.0.1:$((SB + 5))/cache/store" -H 'content-type: application/json' \
    -d '{"namespace":"b","prompt":"How do I reset my password?","response":"Use the reset link."}'
sleep 0.5
for k in 1 2 3; do
    {
        printf 'global\n    maxconn 4096\ndefaults\n    mode http\n    timeout connect 2s\n    timeout client 30s\n    timeout server 30s\n'
        printf 'frontend f\n    bind 127.0.0.1:%d\n    default_backend b\nbackend b\n    balance roundrobin\n' $HP
        for j in $(seq 1 $k); do printf '    server s%d 127.0.0.1:%d\n' $j $((SB + 4 + j)); done
    } > "$d/hap$k.cfg"
    haproxy -f "$d/hap$k.cfg" -db >"$d/hap$k.log" 2>&1 &
    hp=$!
    for _ in $(seq 1 100); do curl -s -o /dev/null "http://127.0.0.1:$HP/healthz" && break; sleep 0.05; done
    r=$(SEMANTIC=1 wrk -t1 -c16 -d"${DUR}s" -s benchmarks/lua/lookup_fixed.lua "http://127.0.0.1:$HP/cache/lookup" 2>&1 | awk '/Requests\/sec/ { print $2 }')
    echo "haproxy,nodes,$k,semantic_lookups_per_s,$r"
    kill $hp; wait $hp 2>/dev/null
done
