#!/bin/sh
# `make cluster`: a local 3-member oxetcd cluster, like etcd's Procfile: infra1..3 on
# 127.0.0.1 (clients on 2379, 22379, 32379; peers on 12380, 22380, 32380), data in
# ./cluster/infra1..3. Runs in the foreground; Ctrl-C stops all three. Logs go to
# ./cluster/infraN.log. A restart keeps the data dirs (remove ./cluster to start over).
set -eu
BIN=${OXETCD:-${CARGO_TARGET_DIR:-target}/release/oxetcd}
DIR=${CLUSTER_DIR:-cluster}
TOKEN=${CLUSTER_TOKEN:-etcd-cluster-1}
CLUSTER="infra1=http://127.0.0.1:12380,infra2=http://127.0.0.1:22380,infra3=http://127.0.0.1:32380"
mkdir -p "$DIR"
PIDS=""
stop() {
    for pid in $PIDS; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap 'stop; exit 0' INT TERM
trap stop EXIT
start() {
    name=$1 client=$2 peer=$3
    "$BIN" --name "$name" --data-dir "$DIR/$name" \
        --listen-client-urls "http://127.0.0.1:$client" \
        --advertise-client-urls "http://127.0.0.1:$client" \
        --listen-peer-urls "http://127.0.0.1:$peer" \
        --initial-advertise-peer-urls "http://127.0.0.1:$peer" \
        --initial-cluster-token "$TOKEN" --initial-cluster "$CLUSTER" \
        --initial-cluster-state new >"$DIR/$name.log" 2>&1 &
    PIDS="$PIDS $!"
    echo "$name: clients http://127.0.0.1:$client, peers http://127.0.0.1:$peer, log $DIR/$name.log"
}
start infra1 2379 12380
start infra2 22379 22380
start infra3 32379 32380
echo "try: etcdctl --endpoints=127.0.0.1:2379,127.0.0.1:22379,127.0.0.1:32379 endpoint status -w table"
wait
