#!/usr/bin/env bash
# bench_proxy: the caching proxy over loopback with wrk, against same-run
# references (issue 5):
#   exact_hit   semcached serving a cached chat answer vs nginx serving a
#               static file of the same size (wrk, same connections).
#   semantic    paraphrases of N pre-loaded prompts: embedding + search +
#               answer vote per request (N = 10k; BENCH_FULL=1 or --full: 100k).
#   miss        unique prompts through semcached to the mock upstream, vs
#               the same requests sent to the mock directly; also "bypass"
#               (no-cache, no-store: proxying only), and "miss_new_context"
#               (each prompt after a new earlier turn: an empty partition).
# Prints CSV. Usage: benchmarks/bench_proxy.sh [BUILD] [--full]
set -u
cd "$(dirname "$0")/.."
BUILD=${1:-build}
FULL=${BENCH_FULL:-0}
for a in "$@"; do [ "$a" = "--full" ] && FULL=1; done
DUR=${BENCH_SECONDS:-8}
SEM_N=$([ "$FULL" = 1 ] && echo 100000 || echo 10000)
EMB=semcache-embed   # the default embedder, with the answer vote
[ -f models/semcache-embed-v1/model.bin ] || EMB=hash
EMB=${BENCH_EMBEDDER:-$EMB}
P_SC=28180; P_MOCK=28181; P_NGX=28182
. benchmarks/ports.sh
ports_free bench_proxy $P_SC $P_MOCK $P_NGX
tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; [ -f "$tmp/nginx.pid" ] && kill "$(cat "$tmp/nginx.pid")" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT

wait_http() { for _ in $(seq 1 300); do curl -s -o /dev/null "$1" && return 0; sleep 0.1; done; echo "no answer from $1" >&2; exit 1; }

node tests/integration/mock_upstream.js --port $P_MOCK --name bench >/dev/null 2>&1 & pids+=($!)
wait_http "http://127.0.0.1:$P_MOCK/_mock/calls"
"$BUILD/semcached" --port $P_SC --resp-port 0 --data-dir "$tmp/data" --embedder "$EMB" \
  --upstream "http://127.0.0.1:$P_MOCK" --log-level error --durability nosync >/dev/null 2>"$tmp/sc.err" & pids+=($!)
wait_http "http://127.0.0.1:$P_SC/healthz"

# wrk_run NAME URL CONNS [SCRIPT] -> "rps p50_ms p99_ms"
wrk_run() {
  local url=$1 conns=$2 script=${3:-}
  local args=(-t1 -c"$conns" -d"${DUR}s" --latency)
  [ -n "$script" ] && args+=(-s "$script")
  wrk "${args[@]}" "$url" > "$tmp/wrk.out" 2>&1
  awk '
    function ms(v) { if (v ~ /us$/) return v/1000; if (v ~ /ms$/) return v+0; if (v ~ /s$/) return v*1000; return v }
    /Requests\/sec/ { rps=$2 }
    /^ +50%/ { p50=ms($2) }
    /^ +99%/ { p99=ms($2) }
    /Non-2xx/ { bad=$NF }
    END { printf "%s %.3f %.3f %s\n", rps, p50, p99, (bad==""?0:bad) }' "$tmp/wrk.out"
}

echo "bench,embedder,entries,conns,rps,p50_ms,p99_ms,non2xx,ref,ref_rps,ref_p50_ms,ref_p99_ms,ratio_rps_vs_ref"

# --- exact hits vs nginx --------------------------------------------------
curl -s -o "$tmp/body.json" -H 'content-type: application/json' \
  -d '{"model":"bench-model","messages":[{"role":"user","content":"What is the capital of France?"}]}' \
  "http://127.0.0.1:$P_SC/v1/chat/completions"
mkdir -p "$tmp/www"
curl -s -o "$tmp/www/body.json" -H 'content-type: application/json' \
  -d '{"model":"bench-model","messages":[{"role":"user","content":"What is the capital of France?"}]}' \
  "http://127.0.0.1:$P_SC/v1/chat/completions"
cat > "$tmp/nginx.conf" <<NGX
worker_processes 1;
pid $tmp/nginx.pid;
error_log $tmp/nginx.err;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $tmp/ngx_body;
  proxy_temp_path $tmp/ngx_proxy;
  fastcgi_temp_path $tmp/ngx_fcgi;
  uwsgi_temp_path $tmp/ngx_uwsgi;
  scgi_temp_path $tmp/ngx_scgi;
  keepalive_requests 1000000;
  server { listen 127.0.0.1:$P_NGX; root $tmp/www; default_type application/json; }
}
NGX
/usr/sbin/nginx -c "$tmp/nginx.conf" 2>/dev/null || echo "nginx failed to start" >&2
wait_http "http://127.0.0.1:$P_NGX/body.json"
for c in 1 32; do
  read -r rps p50 p99 bad < <(wrk_run "http://127.0.0.1:$P_SC/v1/chat/completions" $c benchmarks/lua/chat_fixed.lua)
  read -r rrps rp50 rp99 _ < <(wrk_run "http://127.0.0.1:$P_NGX/body.json" $c)
  echo "exact_hit,$EMB,1,$c,$rps,$p50,$p99,$bad,nginx_static_$(stat -c %s "$tmp/www/body.json")B,$rrps,$rp50,$rp99,$(awk -v a="$rps" -v b="$rrps" 'BEGIN{printf "%.2f", a/b}')"
done

# --- misses and bypass vs the mock directly -------------------------------
read -r drps dp50 dp99 _ < <(wrk_run "http://127.0.0.1:$P_MOCK/v1/chat/completions" 1 benchmarks/lua/chat_unique.lua)
read -r rps p50 p99 bad < <(BYPASS=1 wrk_run "http://127.0.0.1:$P_SC/v1/chat/completions" 1 benchmarks/lua/chat_unique.lua)
echo "bypass,$EMB,-,1,$rps,$p50,$p99,$bad,mock_direct,$drps,$dp50,$dp99,$(awk -v a="$rps" -v b="$drps" 'BEGIN{printf "%.2f", a/b}')"
read -r rps p50 p99 bad < <(wrk_run "http://127.0.0.1:$P_SC/v1/chat/completions" 1 benchmarks/lua/chat_unique.lua)
echo "miss,$EMB,-,1,$rps,$p50,$p99,$bad,mock_direct,$drps,$dp50,$dp99,$(awk -v a="$rps" -v b="$drps" 'BEGIN{printf "%.2f", a/b}')"
# A conversation's later turn: a context of its own, nothing stored there
# yet, so the lookup skips the embedding (the write-back embeds later).
read -r rps p50 p99 bad < <(CONTEXT=1 wrk_run "http://127.0.0.1:$P_SC/v1/chat/completions" 1 benchmarks/lua/chat_unique.lua)
echo "miss_new_context,$EMB,-,1,$rps,$p50,$p99,$bad,mock_direct,$drps,$dp50,$dp99,$(awk -v a="$rps" -v b="$drps" 'BEGIN{printf "%.2f", a/b}')"

# --- semantic hits with SEM_N entries in the partition --------------------
node -e '
const n = +process.argv[1];
let out = [];
for (let k = 0; k < n; k++) out.push(JSON.stringify({namespace: "default", model: "bench-model",
  prompt: `how do I configure feature ${k} of product ${k % 113}`, response: `Open settings, feature ${k}.`}));
require("fs").writeFileSync(process.argv[2], out.join("\n") + "\n");' "$SEM_N" "$tmp/seed.jsonl"
split -l 20000 "$tmp/seed.jsonl" "$tmp/seed_part_"
t0=$(date +%s.%N)
for f in "$tmp"/seed_part_*; do
  curl -s -o /dev/null -H 'content-type: application/x-ndjson' --data-binary "@$f" "http://127.0.0.1:$P_SC/cache/import"
done
t1=$(date +%s.%N)
echo "# imported $SEM_N entries in $(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.1f", b-a}') s" >&2
hdr=$(curl -s -D - -o /dev/null -H 'content-type: application/json' -H 'X-Semcache-Threshold: 0' \
  -d '{"model":"bench-model","messages":[{"role":"user","content":"how do I configure feature 42 of product 42 please"}]}' \
  "http://127.0.0.1:$P_SC/v1/chat/completions" | tr -d '\r' | grep -i '^x-semcache:' | awk '{print $2}')
echo "# a paraphrase is answered as: $hdr" >&2
for c in 1 2; do
  read -r rps p50 p99 bad < <(SEM_N=$SEM_N wrk_run "http://127.0.0.1:$P_SC/v1/chat/completions" $c benchmarks/lua/chat_semantic.lua)
  echo "semantic,$EMB,$SEM_N,$c,$rps,$p50,$p99,$bad,-,-,-,-,-"
done
stats=$(curl -s "http://127.0.0.1:$P_SC/stats")
echo "# outcomes: $(echo "$stats" | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const o=JSON.parse(s);console.log(JSON.stringify(o.outcomes))})')" >&2
