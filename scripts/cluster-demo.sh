#!/usr/bin/env bash
# Several semcached nodes sharing one cache, on one machine (issue 15):
# a Redis Cluster of 6 redis-server processes (3 masters, 3 replicas), 3
# semcached nodes started with --redis-cluster, and HAProxy in front of
# them (round robin), everything on loopback addresses. It stores an
# answer through one node, reads it back through the others and through
# HAProxy, prints the addresses, and stops everything by itself after
# DEMO_SECONDS (default 60; 0 = right after the checks) or on Ctrl-C.
#   bash scripts/cluster-demo.sh [BUILD]
# Ports: Redis 21100-21105 (bus 21200-21205), semcached 21300-21302 (RESP off),
# HAProxy 21400. Data under a temporary directory, removed at the end.
set -u
cd "$(dirname "$0")/.."
BUILD=${1:-build}
SECS=${DEMO_SECONDS:-60}
RB=21100; SB=21300; HP=21400
for p in redis-server redis-cli haproxy curl; do
    command -v $p >/dev/null 2>&1 || { echo "cluster-demo: $p is missing (apt-get install redis-server redis-tools haproxy curl)" >&2; exit 1; }
done
[ -x "$BUILD/semcached" ] || { echo "cluster-demo: build semcached first (make)" >&2; exit 1; }
d=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
    wait 2>/dev/null
    bash tests/cluster/cluster.sh stop "$d/redis"
    [ -n "${DEMO_KEEP:-}" ] && cp -r "$d" "$DEMO_KEEP"
    rm -rf "$d"
    echo "cluster-demo: stopped"
}
trap cleanup EXIT INT TERM

echo "cluster-demo: Redis Cluster on 127.0.0.1:$RB-$((RB + 5))"
bash tests/cluster/cluster.sh start "$d/redis" $RB || exit 1
seeds="127.0.0.1:$RB,127.0.0.1:$((RB + 1)),127.0.0.1:$((RB + 2))"
for i in 0 1 2; do
    "$BUILD/semcached" --port $((SB + i)) --resp-port 0 --data-dir "$d/node$i" --redis-cluster "$seeds" \
        --upstream http://127.0.0.1:9 --log-level info 2>"$d/node$i.log" &
    pids+=($!)
done
for i in 0 1 2; do
    for _ in $(seq 1 300); do curl -s -o /dev/null "http://127.0.0.1:$((SB + i))/healthz" && break; sleep 0.05; done
done
cat > "$d/haproxy.cfg" <<EOF
global
    maxconn 4096
defaults
    mode http
    timeout connect 2s
    timeout client 60s
    timeout server 60s
frontend semcache
    bind 127.0.0.1:$HP
    default_backend nodes
backend nodes
    balance roundrobin
    option httpchk GET /healthz
    server n0 127.0.0.1:$SB check
    server n1 127.0.0.1:$((SB + 1)) check
    server n2 127.0.0.1:$((SB + 2)) check
EOF
haproxy -f "$d/haproxy.cfg" -db >"$d/haproxy.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do curl -s -o /dev/null "http://127.0.0.1:$HP/healthz" && break; sleep 0.05; done
echo "cluster-demo: semcached on 127.0.0.1:$SB-$((SB + 2)), HAProxy on 127.0.0.1:$HP"

fail=0
curl -s -X POST "http://127.0.0.1:$SB/cache/store" -H 'content-type: application/json' \
    -d '{"namespace":"demo","prompt":"How do I reset my password?","response":"Use the reset link on the sign-in page."}' >/dev/null
for i in 1 2; do
    got=$(curl -s -X POST "http://127.0.0.1:$((SB + i))/cache/lookup" -H 'content-type: application/json' \
        -d '{"namespace":"demo","prompt":"how do i reset my password?"}')
    echo "  node $i: $got"
    echo "$got" | grep -q '"hit":true' || fail=1
done
sleep 0.2
for i in 1 2 3; do
    got=$(curl -s -X POST "http://127.0.0.1:$HP/cache/lookup" -H 'content-type: application/json' \
        -d '{"namespace":"demo","prompt":"how can I reset my password","threshold":0.5}')
    echo "  through HAProxy: $got"
    echo "$got" | grep -q '"hit":true' || fail=1
done
[ $fail = 0 ] && echo "cluster-demo: stored through node 0, served by every node" || echo "cluster-demo: a check failed" >&2
if [ "$SECS" -gt 0 ]; then
    echo "cluster-demo: running for $SECS s (Ctrl-C stops it): try curl http://127.0.0.1:$HP/stats"
    sleep "$SECS"
fi
exit $fail
