#!/bin/bash
# Reproduces, without the Jepsen checker, a lease revoked by a resumed stale leader
# (etcd-io/etcd#15247, #12528; fixed in etcd 3.4.31 and 3.5.13): in a 3-member cluster
# leases are granted and kept alive through a follower, the leader is paused (SIGSTOP)
# longer than the TTL and resumed (SIGCONT). It is a race (the resumed leader's lessor
# must propose its revokes after raft stepped down and before the lessor is demoted),
# so it takes many leases and rounds. A correct cluster keeps every lease (the
# keep-alives reached the new leader); an affected one deletes some of their keys.
#
#   conformance/scripts/stale-leader-lease.sh [rounds] [leases per round]
#
# Environment: ETCD [/usr/bin/etcd], ETCDCTL [/usr/bin/etcdctl], CONTROL=1 pauses a
# follower instead of the leader, with no gap in the keep-alives (the control: nothing may
# be lost), KEEP=1 keeps the
# member logs (printed path). Exit status: 0 when no lease was deleted before its TTL
# ran out from a successful keep-alive, 1 otherwise.
set -u
ROUNDS=${1:-5}
LEASES=${2:-8}
ETCD=${ETCD:-/usr/bin/etcd}
ETCDCTL=${ETCDCTL:-/usr/bin/etcdctl}
DIR=$(mktemp -d /tmp/stale-leader-lease.XXXXXX)
export ETCDCTL_API=3

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

declare -a CURL PURL PID
for i in 0 1 2; do PURL[$i]="http://127.0.0.1:$(free_port)"; CURL[$i]="http://127.0.0.1:$(free_port)"; done
CLUSTER="n0=${PURL[0]},n1=${PURL[1]},n2=${PURL[2]}"
for i in 0 1 2; do
    "$ETCD" --name "n$i" --data-dir "$DIR/n$i.etcd" --listen-client-urls "${CURL[$i]}" \
        --advertise-client-urls "${CURL[$i]}" --listen-peer-urls "${PURL[$i]}" \
        --initial-advertise-peer-urls "${PURL[$i]}" --initial-cluster "$CLUSTER" \
        --initial-cluster-token "stale-$$" --initial-cluster-state new > "$DIR/n$i.log" 2>&1 &
    PID[$i]=$!
done
helpers=()
cleanup() {
    touch "$DIR/stop"
    [ -f "$DIR/watch.pid" ] && kill "$(cat "$DIR/watch.pid")" 2>/dev/null
    [ "${#helpers[@]}" -gt 0 ] && kill "${helpers[@]}" 2>/dev/null
    for i in 0 1 2; do kill -CONT "${PID[$i]}" 2>/dev/null; kill "${PID[$i]}" 2>/dev/null; done
    wait "${PID[@]}" 2>/dev/null
    if [ "${KEEP:-0}" = 1 ]; then echo "logs: $DIR"; else rm -rf "$DIR"; fi
}
trap cleanup EXIT
trap "exit 1" INT TERM
ctl() { "$ETCDCTL" --dial-timeout=2s --command-timeout=3s "$@"; }
ALL="${CURL[0]},${CURL[1]},${CURL[2]}"
for _ in $(seq 1 60); do ctl --endpoints "$ALL" endpoint health > /dev/null 2>&1 && break; sleep 0.5; done

leader() {
    for i in 0 1 2; do
        ctl --endpoints "${CURL[$i]}" endpoint status -w json 2>/dev/null |
            python3 -c 'import json,sys
try:
    s = json.load(sys.stdin)[0]["Status"]; print(int(s["header"]["member_id"] == s["leader"]))
except Exception:
    print(0)' |
            grep -q 1 && { echo "$i"; return; }
    done
    echo -1
}

lost_total=0
early_total=0
kept_total=0
now() { date +%s.%N; }
for round in $(seq 1 "$ROUNDS"); do
    for _ in $(seq 1 40); do l=$(leader); [ "$l" -ge 0 ] && break; sleep 0.5; done
    f=$(((l + 1) % 3))
    # CONTROL=1 pauses the other follower instead: nothing may be lost then.
    if [ "${CONTROL:-0}" = 1 ]; then p=$(((l + 2) % 3)); else p=$l; fi
    rm -f "$DIR/stop"
    { ctl --endpoints "${CURL[$f]}" watch --prefix "/stale/$round/" 2>/dev/null &
      echo $! > "$DIR/watch.pid"; wait; } |
        while read -r line; do echo "$(now) $line"; done > "$DIR/watch-$round.log" &
    helpers=($!)
    ids=()
    for k in $(seq 1 "$LEASES"); do
        id=$(ctl --endpoints "${CURL[$f]}" lease grant 3 | awk '{print $2}')
        ctl --endpoints "${CURL[$f]}" put "/stale/$round/$k" v --lease="$id" > /dev/null
        ids+=("$id")
        # One keep-alive every 0.7 s through the follower, each logged as
        # "<call time> <return time> <answer>", until the lease is gone or the round ends.
        (
            while [ -d "$DIR" ] && [ ! -e "$DIR/stop" ]; do
                if [ -e "$DIR/hold" ]; then sleep 0.1; continue; fi
                t0=$(now)
                out=$(ctl --endpoints "${CURL[$f]}" lease keep-alive --once "$id" 2>&1 | tr '\n' ' ')
                echo "$t0 $(now) $out"
                case $out in *keepalived*) ;; *expired*|*"not found"*) break ;; esac
                sleep 0.7
            done
        ) > "$DIR/ka-$round-$k.log" &
        helpers+=($!)
    done
    sleep 1.5
    echo "round $round: n$p (leader: n$l) paused at $(date -u +%T.%N | cut -c1-12), keep-alives through n$f"
    # No keep-alive is sent in the first 2.5 s of the pause, so none is left waiting on
    # the paused leader (whose answer would renew the lease in its own lessor too): the
    # later ones reach the new leader only.
    [ "${CONTROL:-0}" = 1 ] || touch "$DIR/hold"
    kill -STOP "${PID[$p]}"
    sleep 2.5
    rm -f "$DIR/hold"
    sleep 2.5
    kill -CONT "${PID[$p]}"
    resumed=$(now)
    echo "round $round: n$p resumed at $(date -u +%T.%N | cut -c1-12)"
    sleep 4
    touch "$DIR/stop"
    sleep 1
    kill "${helpers[@]}" "$(cat "$DIR/watch.pid")" 2>/dev/null
    # A lease is lost early when its key's DELETE reached the watcher before the TTL
    # (3 s) had run from the call of a keep-alive that succeeded earlier.
    res=$(python3 - "$DIR" "$round" "$LEASES" "$resumed" <<'PY'
import sys
d, rnd, n, resumed = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
lines = [l.split(" ", 1) for l in open(f"{d}/watch-{rnd}.log").read().splitlines()]
deleted = {}
for i, (t, text) in enumerate(lines):
    if text == "DELETE" and i + 1 < len(lines):
        deleted.setdefault(lines[i + 1][1], float(t))
lost = early = 0
for k in range(1, n + 1):
    key = f"/stale/{rnd}/{k}"
    if key not in deleted:
        continue
    lost += 1
    gone = deleted[key]
    oks = [float(l.split()[0]) for l in open(f"{d}/ka-{rnd}-{k}.log") if "keepalived" in l]
    last = max([t for t in oks if t < gone], default=None)
    if last is not None and gone < last + 3.0:
        early += 1
        print(f"  {key}: deleted {gone - resumed:+.2f} s after the resume, {last + 3.0 - gone:.2f} s before its TTL ran out (last keep-alive ok, called {gone - last:.2f} s earlier)", file=sys.stderr)
print(lost, early)
PY
)
    set -- $res
    echo "round $round: $1 of $LEASES kept-alive leases lost, $2 of them before their TTL"
    lost_total=$((lost_total + $1))
    early_total=$((early_total + $2))
    kept_total=$((kept_total + LEASES))
    for id in "${ids[@]}"; do ctl --endpoints "${CURL[$f]}" lease revoke "$id" > /dev/null 2>&1; done
    sleep 1
done
echo "stale-leader-lease: $early_total of $kept_total kept-alive leases deleted before their TTL ($lost_total deleted in all) over $ROUNDS pauses"
[ "$early_total" -eq 0 ]
