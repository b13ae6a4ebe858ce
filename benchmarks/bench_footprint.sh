#!/usr/bin/env bash
# Memory and disk per entry (issue 18): N prompts (qqp_dev questions, made
# unique, 200-byte answers) imported through POST /cache/import into a
# fresh semcached on its defaults (semcache-embed, 512-d), then a restart,
# then:
#   anon/entry   (RssAnon after the restart - RssAnon of an empty server) / N
#   disk/entry   LMDB pages in use (/stats disk_bytes) / N, and that less
#                the 200 answer bytes
#   start-up     seconds from exec to /healthz answering (index rebuilt)
# With OLD_BUILD (a build of an earlier commit), the same import runs there
# first, its figures are printed, and then BUILD opens that data dir:
# record-format migration time and the figures after it.
#   SC_DATA_DIR=DIR bash benchmarks/bench_footprint.sh [BUILD] [N] [OLD_BUILD]
# EMBEDDER and MODEL choose the embedder (default semcache-embed, its model).
# KEEP=DIR keeps the imported data dir there (a start-up benchmark can
# reopen it: benchmarks/bench_million.sh).
set -u
cd "$(dirname "$0")/.."
BUILD=${1:-build}
N=${2:-100000}
OLD=${3:-}
: "${SC_DATA_DIR:?set SC_DATA_DIR to the data dir (qqp_dev.jsonl.gz)}"
P=28601
. benchmarks/ports.sh
ports_free bench_footprint $P
d=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && kill $pid 2>/dev/null; wait 2>/dev/null; rm -rf "$d"' EXIT
MODEL=${MODEL:-models/semcache-embed-v1}
# EMBEDDER=use-lite MODEL=models/use-lite/dist: an OLD_BUILD from before
# model.bin format 2 (the folded semcache-embed) cannot read today's model.
EMBEDDER=${EMBEDDER:-semcache-embed}

zcat "$SC_DATA_DIR/qqp_dev.jsonl.gz" | node -e '
const n = +process.argv[1], seen = new Set(), out = [];
const rl = require("readline").createInterface({ input: process.stdin });
rl.on("line", (l) => { const o = JSON.parse(l);
  for (const t of [o.text_a, o.text_b]) if (t && !seen.has(t)) seen.add(t); });
rl.on("close", () => {
  const base = [...seen]; let k = 0;
  for (let i = 0; i < n; i++) {
    const t = base[i % base.length] + (i >= base.length ? " (" + Math.floor(i / base.length) + ")" : "");
    out.push(JSON.stringify({ namespace: "fp", prompt: t, response: "x".repeat(200) }));
    if (out.length === 10000) { require("fs").writeFileSync(process.argv[2] + "/in." + (k++) + ".jsonl", out.join("\n") + "\n"); out.length = 0; }
  }
  if (out.length) require("fs").writeFileSync(process.argv[2] + "/in." + (k++) + ".jsonl", out.join("\n") + "\n");
});' "$N" "$d"

start() { # BIN DIR -> pid, start-up seconds in $up
    local t0 t1
    t0=$(date +%s.%N)
    "$1" --port $P --resp-port 0 --data-dir "$2" --embedder "$EMBEDDER" --model-dir "$MODEL" --log-level warn >>"$d/log" 2>&1 &
    pid=$!
    for _ in $(seq 1 6000); do curl -s -o /dev/null "localhost:$P/healthz" && break; sleep 0.05; done
    t1=$(date +%s.%N)
    up=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
}
stop() { kill -TERM $pid; wait $pid 2>/dev/null; pid=; }
anon_kib() { awk '/RssAnon/ { print $2 }' "/proc/$pid/status"; }
disk_bytes() { curl -s "localhost:$P/stats" | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const j=JSON.parse(s);console.log(j.cache.disk_bytes + " " + j.cache.entries)})'; }
import_all() {
    local t0 t1
    t0=$(date +%s.%N)
    for f in "$d"/in.*.jsonl; do
        curl -s -o /dev/null -H 'content-type: application/x-ndjson' --data-binary @"$f" "localhost:$P/cache/import"
    done
    t1=$(date +%s.%N)
    awk -v n="$N" -v a="$t0" -v b="$t1" 'BEGIN { printf "  import: %d entries in %.1f s = %.0f entries/s\n", n, b - a, n / (b - a) }'
}
# The ANN lists are built in the background after start-up (the chunks'
# own codes are freed once they are): measure after that, 10 s at most.
ann_wait() {
    for _ in $(seq 1 100); do
        curl -s "localhost:$P/stats" | grep -q '"index_ann_partitions": *[1-9]' && return
        sleep 0.1
    done
}
report() { # LABEL EMPTY_KIB
    local a db
    ann_wait
    a=$(anon_kib)
    read -r db ent < <(disk_bytes)
    awk -v l="$1" -v a="$a" -v e="$2" -v db="$db" -v ent="$ent" -v n="$N" -v up="$up" 'BEGIN {
        printf "  %s: %d entries, start-up %.2f s, anon %.0f MiB (empty %.0f MiB) = %.2f KiB/entry, disk %.0f MiB = %.0f B/entry (%.0f B + the 200-byte answer)\n",
               l, ent, up, a / 1024, e / 1024, (a - e) / n, db / 1048576, db / n, db / n - 200 }'
}

measure() { # LABEL BIN DIR (imports into a fresh DIR, restarts, reports)
    start "$2" "$d/empty.$1"
    local empty
    empty=$(anon_kib)
    stop
    start "$2" "$3"
    echo "$1 ($2):"
    import_all
    stop
    start "$2" "$3"
    report "after restart" "$empty"
    stop
    eval "empty_$1=$empty"
}

if [ -n "$OLD" ]; then
    measure old "$OLD/semcached" "$d/data.old"
    start "$BUILD/semcached" "$d/data.old"
    echo "new ($BUILD) opening the old data dir:"
    grep -h "upgraded\|compacted" "$d/log" | tail -2 | sed 's/^/  /'
    report "after the migration" "$empty_old"
    echo "  data.mdb: $(stat -c %s "$d/data.old/data.mdb") bytes = $(( $(stat -c %s "$d/data.old/data.mdb") / N )) B/entry"
    stop
fi
measure new "$BUILD/semcached" "$d/data.new"
if [ -n "${KEEP:-}" ]; then rm -rf "$KEEP"; mv "$d/data.new" "$KEEP"; echo "  kept the data dir in $KEEP"; fi
