#!/usr/bin/env bash
# A Redis Cluster on loopback for tests: 3 masters and 3 replicas
# (Debian's redis-server 7), ports BASE..BASE+5 and their cluster bus ports
# BASE+100..BASE+105 (below the kernel's ephemeral range when BASE is, so
# no outgoing connection holds them), data and logs under DIR, node
# timeout 1 s so a failover
# takes ~2-3 s. start returns once the cluster is ok and every replica
# has synced with its master.
#   tests/cluster/cluster.sh start DIR BASE   # returns once cluster_state:ok
#   tests/cluster/cluster.sh stop DIR         # kills every node (SIGKILL)
#   tests/cluster/cluster.sh kill DIR PORT    # kill -9 one node
set -u
cmd=${1:?start|stop|kill}
dir=${2:?DIR}
case "$cmd" in
start)
    base=${3:?BASE}
    mkdir -p "$dir"
    addrs=()
    for i in 0 1 2 3 4 5; do
        p=$((base + i))
        mkdir -p "$dir/$p"
        redis-server --port "$p" --cluster-port $((p + 100)) --bind 127.0.0.1 --protected-mode no --cluster-enabled yes \
            --cluster-config-file "$dir/$p/nodes.conf" --cluster-node-timeout 1000 \
            --appendonly no --save "" --dir "$dir/$p" --daemonize yes \
            --pidfile "$dir/$p/pid" --logfile "$dir/$p/log" || exit 1
        addrs+=("127.0.0.1:$p")
    done
    for i in 0 1 2 3 4 5; do
        for _ in $(seq 1 100); do redis-cli -p $((base + i)) ping >/dev/null 2>&1 && break; sleep 0.05; done
    done
    redis-cli --cluster create "${addrs[@]}" --cluster-replicas 1 --cluster-yes >"$dir/create.log" 2>&1 || {
        cat "$dir/create.log" >&2; exit 1; }
    for _ in $(seq 1 200); do
        ok=0
        for i in 0 1 2 3 4 5; do
            redis-cli -p $((base + i)) cluster info 2>/dev/null | grep -q "cluster_state:ok" && ok=$((ok + 1))
        done
        [ $ok = 6 ] && break
        sleep 0.05
    done
    [ $ok = 6 ] || { echo "cluster on $base did not reach cluster_state:ok" >&2; exit 1; }
    # And every master's replica synced (WAIT 1 needs it).
    for _ in $(seq 1 200); do
        ok=0
        for i in 0 1 2 3 4 5; do
            info=$(redis-cli -p $((base + i)) info replication 2>/dev/null)
            echo "$info" | grep -q "role:master" || continue
            echo "$info" | grep -q "slave0:.*state=online" && ok=$((ok + 1))
        done
        [ $ok = 3 ] && exit 0
        sleep 0.05
    done
    echo "the replicas of the cluster on $base did not sync" >&2
    exit 1
    ;;
stop)
    for f in "$dir"/*/pid; do [ -f "$f" ] && kill -9 "$(cat "$f")" 2>/dev/null; done
    exit 0
    ;;
kill)
    p=${3:?PORT}
    kill -9 "$(cat "$dir/$p/pid")"
    ;;
esac
