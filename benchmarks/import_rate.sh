#!/usr/bin/env bash
# Import rate: N qqp_dev questions (200-byte answers) through POST
# /cache/import into a fresh semcached on its defaults (semcache-embed,
# sync durability). Needs the data dir (SC_DATA_DIR), hence not a
# bench_*.sh of `make bench`. Prints entries per second.
#   SC_DATA_DIR=DIR bash benchmarks/import_rate.sh [BUILD] [N]
set -u
cd "$(dirname "$0")/.."
BUILD=${1:-build}
N=${2:-5000}
: "${SC_DATA_DIR:?set SC_DATA_DIR to the data dir (qqp_dev.jsonl.gz)}"
P=28501
. benchmarks/ports.sh
ports_free import_rate $P
d=$(mktemp -d)
"$BUILD/semcached" --port $P --resp-port 0 --data-dir "$d/data" --log-level error >/dev/null 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$d"' EXIT
for _ in $(seq 1 300); do curl -s -o /dev/null "localhost:$P/healthz" && break; sleep 0.1; done
zcat "$SC_DATA_DIR/qqp_dev.jsonl.gz" | head -n "$N" | node -e '
const rl = require("readline").createInterface({ input: process.stdin });
rl.on("line", (l) => { const o = JSON.parse(l);
  console.log(JSON.stringify({ namespace: "imp", prompt: o.text_a, response: "x".repeat(200) })); });' > "$d/in.jsonl"
t0=$(date +%s.%N)
curl -s -o "$d/out.json" -H 'content-type: application/x-ndjson' --data-binary @"$d/in.jsonl" "localhost:$P/cache/import"
t1=$(date +%s.%N)
echo "$(cat "$d/out.json")"
awk -v n="$N" -v a="$t0" -v b="$t1" 'BEGIN { printf "import: %d entries in %.2f s = %.0f entries/s\n", n, b - a, n / (b - a) }'
