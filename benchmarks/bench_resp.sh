#!/usr/bin/env bash
# RESP speed against a real redis-server, in the same run (issue 6).
#
# Starts redis-server (Debian; free port, --save '' --appendonly no) and
# semcached (--embedder hash, temporary data dir), stores one entry with the
# same value size in each (SET k / SEM.SET ns prompt), then runs
# redis-benchmark `GET k` against redis and `SEM.GET ns prompt` (exact hits)
# against semcached, without pipelining and with -P 16. The four runs are
# interleaved and repeated ROUNDS times; the CSV reports each
# configuration's median requests/s and the semcached/redis ratio (target
# >= 0.8). The machine is shared, so medians of interleaved runs are the
# fair comparison; single runs vary by +-30 %.
#
#   bash benchmarks/bench_resp.sh [BUILD_DIR] [--quick]
#   env: VALUE_BYTES (512), CLIENTS (50), ROUNDS (5; --quick: 1),
#        REQUESTS (100000 unpipelined; x10 pipelined)
set -u
[ -n "${BENCH_DEBUG:-}" ] && set -x
cd "$(dirname "$0")/.."
BUILD=build
QUICK=0
for a in "$@"; do
  case "$a" in
    --quick) QUICK=1 ;;
    -*) echo "bench_resp: unknown option $a" >&2; exit 2 ;;
    *) BUILD=$a ;;
  esac
done
VALUE_BYTES=${VALUE_BYTES:-512}
CLIENTS=${CLIENTS:-50}
ROUNDS=${ROUNDS:-$([ "$QUICK" = 1 ] && echo 1 || echo 5)}
REQUESTS=${REQUESTS:-100000}
SEMCACHED="$BUILD/semcached"
for t in redis-server redis-benchmark redis-cli; do
  command -v "$t" >/dev/null || { echo "bench_resp: $t not found (apt-get install redis-server redis-tools)" >&2; exit 1; }
done
[ -x "$SEMCACHED" ] || { echo "bench_resp: $SEMCACHED not built (make)" >&2; exit 1; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; wait 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT

rport=$(free_port); sport=$(free_port); hport=$(free_port)
redis-server --port "$rport" --bind 127.0.0.1 --save '' --appendonly no --daemonize no \
  --dir "$tmp" >"$tmp/redis.log" 2>&1 &
pids+=($!)
"$SEMCACHED" --port "$hport" --resp-port "$sport" --data-dir "$tmp/data" --embedder hash \
  --log-level warn >"$tmp/semcached.log" 2>&1 &
pids+=($!)
for i in $(seq 100); do
  redis-cli -p "$rport" PING >/dev/null 2>&1 && redis-cli -p "$sport" PING >/dev/null 2>&1 && break
  sleep 0.1
done

value=$(head -c "$VALUE_BYTES" /dev/zero | tr '\0' 'v')
prompt="How do I reset my password?"
redis-cli -p "$rport" SET k "$value" >/dev/null
redis-cli -p "$sport" SEM.SET bench "$prompt" "$value" >/dev/null
got=$(redis-cli -p "$sport" --raw SEM.GET bench "$prompt" | head -1)
[ "${#got}" = "$VALUE_BYTES" ] || { echo "bench_resp: SEM.GET did not return the stored value" >&2; exit 1; }

# run SERVER PIPELINE -> "rps p50_ms"
run() {
  local port=$1 pipe=$2 n=$REQUESTS
  [ "$pipe" -gt 1 ] && n=$((REQUESTS * 10))
  local cmd=(GET k)
  [ "$port" = "$sport" ] && cmd=(SEM.GET bench "$prompt")
  redis-benchmark -p "$port" -c "$CLIENTS" -n "$n" -P "$pipe" --csv "${cmd[@]}" 2>/dev/null |
    awk -F',' 'NR==2 { gsub(/"/, ""); print $2, $5 }'
}

declare -A rps p50
for r in $(seq "$ROUNDS"); do
  for pipe in 1 16; do
    for srv in redis semcached; do
      port=$rport; [ $srv = semcached ] && port=$sport
      read -r x y < <(run "$port" "$pipe")
      rps[$srv,$pipe]="${rps[$srv,$pipe]:-} $x"
      p50[$srv,$pipe]="${p50[$srv,$pipe]:-} $y"
    done
  done
done

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END { if (NR==0) print 0; else if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2 }'; }
echo "bench,server,command,pipeline,clients,value_bytes,rounds,rps_median,p50_ms_median,rps_runs,ratio_vs_redis"
for pipe in 1 16; do
  base=$(echo "${rps[redis,$pipe]}" | median)
  for srv in redis semcached; do
    m=$(echo "${rps[$srv,$pipe]}" | median)
    l=$(echo "${p50[$srv,$pipe]}" | median)
    cmd="GET k"; [ $srv = semcached ] && cmd="SEM.GET (exact hit)"
    ratio=$(awk -v a="$m" -v b="$base" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')
    runs=$(echo "${rps[$srv,$pipe]}" | sed 's/^ //; s/ /;/g')
    echo "resp,$srv,$cmd,$pipe,$CLIENTS,$VALUE_BYTES,$ROUNDS,$m,$l,$runs,$ratio"
  done
done
