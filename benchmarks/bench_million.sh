#!/usr/bin/env bash
# A million entries in one partition (issue 18): start-up and semantic
# lookups on a data dir that benchmarks/bench_footprint.sh imported and
# kept (KEEP=DIR ... bench_footprint.sh build 1000000), semcache-embed,
# namespace "fp":
#   start-up   seconds from exec to /healthz answering (records walked,
#              index rebuilt; lookups use the exact scan), then to the ANN
#              lists built in the background (the server's log line), 3
#              starts
#   lookups    POST /cache/lookup of qqp_dev questions with a suffix (so
#              never an exact hit: embedding + search + answer vote), the
#              nearest entry served whatever its score (threshold 0), wrk
#              one connection; with the ANN path (the default) and with
#              --index-ann-min-rows 0 (the exact 4-bit scan) in the same run
#   SC_DATA_DIR=DIR bash benchmarks/bench_million.sh KEPT_DIR [BUILD]
# COLD=1: the page cache is dropped before each start (root only), so the
# walk reads the data file from disk, as after a reboot.
set -u
cd "$(dirname "$0")/.."
KEPT=${1:?usage: bench_million.sh KEPT_DIR [BUILD]}
BUILD=${2:-build}
: "${SC_DATA_DIR:?set SC_DATA_DIR to the data dir (qqp_dev.jsonl.gz)}"
DUR=${BENCH_SECONDS:-10}
P=28611
. benchmarks/ports.sh
ports_free bench_million $P
d=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && kill $pid 2>/dev/null; wait 2>/dev/null; rm -rf "$d"' EXIT
MODEL=${MODEL:-models/semcache-embed-v1}

# 2,000 lookup bodies: qqp_dev questions (stored in the dir) plus a suffix.
zcat "$SC_DATA_DIR/qqp_dev.jsonl.gz" | node -e '
const seen = new Set(), out = [], tails = [" please", " ?", " thanks", " - quick question"];
const rl = require("readline").createInterface({ input: process.stdin });
rl.on("line", (l) => { const o = JSON.parse(l); for (const t of [o.text_a, o.text_b]) if (t) seen.add(t); });
rl.on("close", () => {
  const base = [...seen];
  for (let i = 0; i < 2000; i++)
    out.push(JSON.stringify({ namespace: "fp", prompt: base[(i * 48611) % base.length] + tails[i % 4], threshold: 0 }));
  require("fs").writeFileSync(process.argv[1], out.join("\n") + "\n");
});' "$d/bodies.txt"

start() { # ARGS... -> pid, start-up seconds in $up ($t0: exec time)
    local t1
    if [ "${COLD:-0}" = 1 ]; then
        sync
        echo 3 2>/dev/null > /proc/sys/vm/drop_caches || { echo "bench_million: COLD=1 needs root (writes /proc/sys/vm/drop_caches)" >&2; exit 1; }
    fi
    t0=$(date +%s.%N)
    "$BUILD/semcached" --port $P --resp-port 0 --data-dir "$KEPT" --model-dir "$MODEL" --log-level info "$@" >"$d/log" 2>&1 &
    pid=$!
    for _ in $(seq 1 12000); do curl -s -o /dev/null "localhost:$P/healthz" && break; sleep 0.02; done
    t1=$(date +%s.%N)
    up=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
}
stop() { kill -TERM $pid; wait $pid 2>/dev/null; pid=; }
lookups() { # LABEL
    BODIES="$d/bodies.txt" wrk -t1 -c1 -d"${DUR}s" --latency -s benchmarks/lua/lookup_bodies.lua "http://localhost:$P" >"$d/wrk" 2>&1
    awk -v l="$1" '
      function ms(v) { if (v ~ /us$/) return v/1000; if (v ~ /ms$/) return v+0; if (v ~ /s$/) return v*1000; return v }
      /Requests\/sec/ { rps=$2 } /^ +50%/ { p50=ms($2) } /^ +99%/ { p99=ms($2) } /Non-2xx/ { bad=$NF }
      END { printf "  lookups, %s: p50 %.2f ms, p99 %.2f ms, %.0f/s, non-2xx %d\n", l, p50, p99, rps, bad }' "$d/wrk"
}

ann_ready() { # seconds from exec until the "ANN lists built" log line
    for _ in $(seq 1 3000); do grep -q "ANN lists built" "$d/log" && break; sleep 0.01; done
    awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }'
}
for i in 1 2 3; do
    start
    echo "start $i: $up s to /healthz, $(ann_ready) s to the ANN lists; $(grep -o "index rebuilt.*" "$d/log" | head -1)"
    [ $i = 3 ] || stop
done
curl -s "localhost:$P/stats" | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const c=JSON.parse(s).cache;console.log(`  entries ${c.entries}, index ${c.index_vectors} vectors, ${c.index_ann_partitions} partition(s) through an IVF`)})'
lookups "ANN path (default)"
stop
start --index-ann-min-rows 0
echo "start with the exact scan: $up s"
lookups "exact 4-bit scan"
stop
