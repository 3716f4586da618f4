#!/usr/bin/env bash
# The order saga on the PostgreSQL store (bench/pg_bench) beside DBOS
# Transact (../shared/peers/dbos) on the same PostgreSQL 15 cluster, in one
# sitting: the peers' cluster (../shared/peers/pg.sh: 127.0.0.1:55432,
# fsync = on, synchronous_commit = on), pg_bench with 1, 2 and 3 workers at
# concurrency 1, 64 and 256, then DBOS at 1, 64 and 256, then the ratios.
# Results go to OUT (default /tmp/saga-pg-side-by-side).
#
#   bench/pg_side_by_side.sh [OUT] [N]
#
# Needs a build (./dev.sh build), the peers' one-time setup (npm install in
# ../shared/peers/dbos, ./pg.sh init). Every server listens on 127.0.0.1 only.
set -euo pipefail

if [[ "${1:-}" == "--help" || "${1:-}" == "-h" ]]; then
  echo "usage: pg_side_by_side.sh [OUT] [N]: pg_bench (1-3 workers) and DBOS on one PostgreSQL,"
  echo "  concurrency 1, 64, 256, N sagas per case (1000); results in OUT (/tmp/saga-pg-side-by-side)"
  exit 0
fi

here="$(cd "$(dirname "$0")/.." && pwd)"
peers="$here/../shared/peers"
out="${1:-/tmp/saga-pg-side-by-side}"
n="${2:-1000}"
bench="$here/build/bench/pg_bench"
mkdir -p "$out"
for need in "$bench" "$peers/dbos/node_modules" /tmp/peers-pgdata; do
  if [[ ! -e "$need" ]]; then
    echo "pg_side_by_side: missing $need (build first; set up the peers as ../shared/peers/README.md says)" >&2
    exit 2
  fi
done

(cd "$peers" && ./pg.sh start > "$out/pg.log" 2>&1) || true
url=postgresql://postgres:bench@127.0.0.1:55432/postgres
"$bench" --url "$url" --n "$n" --runs 1 --conc 1,64,256 --workers 1,2,3 > "$out/saga.txt" 2>&1
(cd "$peers/dbos" &&
  node bench.js --n "$n" --conc 1,64,256 --fail 0 --runs 1 --json "$out/dbos.json" \
    > "$out/dbos.log" 2>&1)
(cd "$peers" && ./pg.sh stop >> "$out/pg.log" 2>&1) || true

grep SUMMARY "$out/saga.txt" "$out/dbos.log"
# The ratios, per concurrency, for every worker count.
python3 - "$out/saga.txt" "$out/dbos.log" <<'PY'
import json, sys
saga = [json.loads(l.split("SUMMARY ", 1)[1]) for l in open(sys.argv[1]) if l.startswith("SUMMARY")]
dbos = {d["conc"]: d for d in (json.loads(l.split("SUMMARY ", 1)[1])
                               for l in open(sys.argv[2]) if l.startswith("SUMMARY"))}
for s in saga:
    d = dbos.get(s["conc"])
    if not d:
        continue
    cpu_d = d["median_pg_cpu_s"] * 1000 / d["n"]
    print(f"workers {s['workers']} conc {s['conc']:>3}: {s['median_sagas_per_s']:.0f} sagas/s = "
          f"{s['median_sagas_per_s'] / d['median_sagas_per_s']:.1f}x DBOS's {d['median_sagas_per_s']:.0f}; "
          f"p50 {s['median_p50_ms']:.1f} ms = {s['median_p50_ms'] / d['median_p50_ms']:.2f} of DBOS's "
          f"{d['median_p50_ms']:.1f}; postgres CPU {s['median_pg_cpu_ms_per_saga']:.3f} ms/saga = "
          f"1/{cpu_d / s['median_pg_cpu_ms_per_saga']:.1f} of DBOS's {cpu_d:.3f}; "
          f"{s['median_pg_xacts_per_saga']:.2f} transactions/saga")
PY
