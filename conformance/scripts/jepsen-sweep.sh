#!/bin/sh
# Jepsen sweep: many seeded `etcd-conformance jepsen` runs against a launched cluster,
# one after another under `nice`, with a per-run summary table (CSV and markdown).
#
#   conformance/scripts/jepsen-sweep.sh            # run the sweep
#   conformance/scripts/jepsen-sweep.sh summarize  # rebuild the tables from OUT's logs
#
# Environment (defaults in brackets):
#   JEPSEN_BIN  etcd-conformance binary [$CARGO_TARGET_DIR/debug/etcd-conformance]
#   LAUNCH      cluster binary [/usr/bin/etcd]    NODES     members [3]
#   OUT         results directory [jepsen-sweep]  RUNS      runs per nemesis [20]
#   DURATION    seconds per run [30]              CLIENTS   clients [4]
#   SEED_BASE   first seed [1000]                 START     first run index to do [0]
#   ONLY        run only these indices (e.g. "17 103": runs to do again)
#   NEMESES     [kill pause partition restart leader-kill mixed]
#   WORKLOADS   rotated over each nemesis's runs [register kv-txn watch lease]
#   LAST        a workload whose runs are done last [lease] ("" keeps the plain order)
#
# Run i (0-based) of nemesis number n uses seed SEED_BASE + n*RUNS + i and workload
# WORKLOADS[i mod |WORKLOADS|]; every run's report goes to OUT/runs/<id>.log and its
# history to OUT/runs/<id>/. Exit status: 0 when every run passed.
set -u

BIN=${JEPSEN_BIN:-${CARGO_TARGET_DIR:-target}/debug/etcd-conformance}
LAUNCH=${LAUNCH:-/usr/bin/etcd}
NODES=${NODES:-3}
OUT=${OUT:-jepsen-sweep}
RUNS=${RUNS:-20}
DURATION=${DURATION:-30}
CLIENTS=${CLIENTS:-4}
SEED_BASE=${SEED_BASE:-1000}
START=${START:-0}
NEMESES=${NEMESES:-kill pause partition restart leader-kill mixed}
WORKLOADS=${WORKLOADS:-register kv-txn watch lease}
LAST=${LAST-lease}

mkdir -p "$OUT/runs"

# The plan: one line "index nemesis workload seed" per run, LAST's runs at the end.
plan() {
    n=0
    for nem in $NEMESES; do
        i=0
        while [ "$i" -lt "$RUNS" ]; do
            set -- $WORKLOADS
            k=$((i % $#))
            shift "$k"
            echo "$nem $1 $((SEED_BASE + n * RUNS + i))"
            i=$((i + 1))
        done
        n=$((n + 1))
    done | awk -v last="$LAST" '$2 != last { print } $2 == last { tail[++t] = $0 }
        END { for (j = 1; j <= t; j++) print tail[j] }' | awk '{ print NR - 1, $0 }'
}

# One CSV row from a run's log (fields empty when the run did not report them).
row() {
    log=$1 nem=$2 wl=$3 seed=$4 rc=$5 secs=$6
    awk -v nem="$nem" -v wl="$wl" -v seed="$seed" -v rc="$rc" -v secs="$secs" '
        /^operations:/ { ops = $2; gsub(/[(,]/, "", $4); ok = $4; gsub(/,/, "", $6); failed = $6
                         gsub(/\)/, "", $8); unknown = $8 }
        /^faults injected:/ { faults = $3 }
        /^acknowledged writes lost:/ { lost = $4 }
        /^linearizable:/ { lin = $2; for (i = 1; i <= NF; i++) if ($i == "in" && $(i+2) == "s)") t = $(i+1) }
        /^known etcd deviations:/ { dev = $4 }
        /^serializable reads:/ { gsub(/,/, "", $3); sr = $3; sra = $5 }
        /^watch anomalies:/ { wa = $3 }
        /^verdict:/ { verdict = $2 }
        END {
            if (verdict == "") verdict = "ERROR"
            if (dev == "") dev = 0
            printf "%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s\n", nem, wl, seed, ops, ok,
                failed, unknown, faults, lost, lin, dev, sra, wa, t, secs, rc, verdict
        }' "$log"
}

HEADER="nemesis,workload,seed,ops,ok,failed,unknown,faults,lost_writes,linearizable,known_deviations,serializable_anomalies,watch_anomalies,checker_s,run_s,exit,verdict"

summarize() {
    csv="$OUT/summary.csv"
    echo "$HEADER" > "$csv"
    plan | while read -r idx nem wl seed; do
        id=$(printf '%03d-%s-%s-%s' "$idx" "$nem" "$wl" "$seed")
        [ -f "$OUT/runs/$id.log" ] || continue
        meta=$(cat "$OUT/runs/$id.meta" 2>/dev/null || echo "? ?")
        set -- $meta
        row "$OUT/runs/$id.log" "$nem" "$wl" "$seed" "$1" "$2" >> "$csv"
    done
    {
        echo "| nemesis | workload | seed | ops | ok | failed | unknown | faults | lost | linearizable | known dev. | ser. anomalies | watch anomalies | checker s | verdict |"
        echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
        tail -n +2 "$csv" | awk -F, '{ printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n",
            $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $17 }'
        echo
        echo "| nemesis | runs | ops min/mean/max | unknown ops | faults | lost writes | not linearizable | checker timeouts | runs with known dev. (deviations) | ser./watch anomalies | checker s median/max | failed runs |"
        echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
        for nem in $NEMESES all; do
            tail -n +2 "$csv" | awk -F, -v nem="$nem" '
                nem == "all" || $1 == nem {
                    n++; o = $4 + 0; s += o; if (n == 1 || o < mn) mn = o; if (o > mx) mx = o
                    un += $7; fa += $8; lo += $9; if ($10 == "NO") nl++; if ($10 == "unknown") to++
                    if ($11 > 0) dr++; dv += $11; wa += $12 + $13
                    c[n] = $14 + 0; if ($17 != "PASS") bad++
                }
                END {
                    if (n == 0) exit
                    for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (c[j] < c[i]) { x = c[i]; c[i] = c[j]; c[j] = x }
                    med = (n % 2) ? c[(n + 1) / 2] : (c[n / 2] + c[n / 2 + 1]) / 2
                    printf "| %s | %d | %d/%.0f/%d | %d | %d | %d | %d | %d | %d (%d) | %d | %.2f/%.2f | %d |\n",
                        nem, n, mn, s / n, mx, un, fa, lo, nl, to, dr, dv, wa, med, c[n], bad
                }'
        done
    } > "$OUT/summary.md"
}

if [ "${1:-}" = summarize ]; then
    summarize
    cat "$OUT/summary.md"
    exit 0
fi

[ -x "$BIN" ] || { echo "jepsen-sweep: no binary at $BIN (set JEPSEN_BIN)" >&2; exit 2; }
total=$(plan | wc -l)
echo "jepsen-sweep: $total runs of $DURATION s against $NODES x $LAUNCH, results in $OUT"
failures=0
plan | while read -r idx nem wl seed; do
    [ "$idx" -lt "$START" ] && continue
    if [ -n "${ONLY:-}" ]; then
        case " $ONLY " in *" $idx "*) ;; *) continue ;; esac
    fi
    id=$(printf '%03d-%s-%s-%s' "$idx" "$nem" "$wl" "$seed")
    t0=$(date +%s)
    # The binary is opened afresh by every run: replacing it (mv) takes effect from the next run.
    timeout -k 10 $((DURATION + 600)) nice -n 10 "$BIN" jepsen --launch "$LAUNCH" --nodes "$NODES" \
        --workload "$wl" --nemesis "$nem" --clients "$CLIENTS" --duration "$DURATION" \
        --seed "$seed" --out "$OUT/runs/$id" > "$OUT/runs/$id.log" 2>&1 < /dev/null
    rc=$?
    t1=$(date +%s)
    echo "$rc $((t1 - t0))" > "$OUT/runs/$id.meta"
    line=$(row "$OUT/runs/$id.log" "$nem" "$wl" "$seed" "$rc" "$((t1 - t0))")
    echo "[$((idx + 1))/$total] $(date -u +%H:%M:%S) $line"
    summarize
done
summarize
echo "jepsen-sweep: done; $OUT/summary.md"
cat "$OUT/summary.md" | tail -n 10
! tail -n +2 "$OUT/summary.csv" | cut -d, -f17 | grep -qv PASS
