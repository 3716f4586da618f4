#!/usr/bin/env bash
# Measures Saga beside the peers in ../shared/peers (Restate, and DBOS on
# PostgreSQL) on this machine, in one sitting: engine_bench, then the peers,
# then engine_bench again, so that the ratios compare figures taken minutes
# apart rather than on different days. The peers' results go to OUT (default
# /tmp/saga-side-by-side), never to ../shared/peers/results; both engine_bench
# runs read them from there and print the ratios.
#
#   bench/side_by_side.sh [OUT]
#
# Needs the peers' one-time setup (../shared/peers/README.md: npm install in
# dbos/ and restate/, ./pg.sh init) and a build (./dev.sh build). Takes about
# six minutes. Every server listens on 127.0.0.1 only.
set -euo pipefail

if [[ "${1:-}" == "--help" || "${1:-}" == "-h" ]]; then
  echo "usage: side_by_side.sh [OUT]: engine_bench, Restate, DBOS on PostgreSQL, engine_bench"
  echo "  again, on this machine in one sitting; results in OUT (/tmp/saga-side-by-side)"
  exit 0
fi

here="$(cd "$(dirname "$0")/.." && pwd)"
peers="$here/../shared/peers"
out="${1:-/tmp/saga-side-by-side}"
bench="$here/build/bench/engine_bench"
mkdir -p "$out"

for need in "$bench" "$peers/restate/node_modules" "$peers/dbos/node_modules" /tmp/peers-pgdata; do
  if [[ ! -e "$need" ]]; then
    echo "side_by_side: missing $need (build first; set up the peers as ../shared/peers/README.md says)" >&2
    exit 2
  fi
done

stamp() { echo "$(date -u +%H:%M:%S) $*" | tee -a "$out/times.txt"; }
: > "$out/times.txt"
rm -f "$out/restate-throughput.json" "$out/dbos-throughput.json"  # The first run prints no ratios.

stamp "saga (before)"
"$bench" --n 5000 --runs 3 --waiting 100000 --peers "$out" > "$out/saga-before.txt" 2>&1 || true

stamp "restate"
(cd "$peers/restate" &&
  ./run.sh --n 2000 --conc 1,64 --fail 0 --runs 3 --json "$out/restate-throughput.json" \
    > "$out/restate-throughput.log" 2>&1)

stamp "dbos"
(cd "$peers" && ./pg.sh start > "$out/pg.log" 2>&1)
(cd "$peers/dbos" &&
  node bench.js --n 2000 --conc 1,64 --fail 0 --runs 3 --json "$out/dbos-throughput.json" \
    > "$out/dbos-throughput.log" 2>&1) || true
(cd "$peers" && ./pg.sh stop >> "$out/pg.log" 2>&1)

stamp "saga (after)"
"$bench" --n 5000 --runs 3 --waiting 0 --peers "$out" > "$out/saga-after.txt" 2>&1
stamp "done"

grep -h SUMMARY "$out/restate-throughput.log" "$out/dbos-throughput.log" || true
echo "--- saga, before the peers"
cat "$out/saga-before.txt"
echo "--- saga, after the peers"
cat "$out/saga-after.txt"
