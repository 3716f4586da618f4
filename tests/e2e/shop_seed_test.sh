#!/usr/bin/env bash
# samples/shop --seed makes its injected failures repeatable: two runs with
# one seed end every order the same way (the instance ids, and so the
# idempotency keys, differ between runs). Usage: shop_seed_test.sh SHOP
set -u
shop=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for run in 1 2; do
  if ! "$shop" --orders 30 --fail-rate 0.3 --slow 2 --seed 11 --db "$tmp/$run.db" >"$tmp/$run.log" 2>&1; then
    echo "FAIL: run $run of the shop failed:"
    cat "$tmp/$run.log"
    exit 1
  fi
  # "order-0007  compensated  ..." -> "order-0007 compensated", in order.
  grep -E '^order-[0-9]+ ' "$tmp/$run.log" | awk '{print $1, $2}' | sort >"$tmp/$run.outcomes"
done
if [ "$(wc -l <"$tmp/1.outcomes")" -ne 30 ]; then
  echo "FAIL: expected 30 order lines, got:"
  cat "$tmp/1.log"
  exit 1
fi
if ! grep -q compensated "$tmp/1.outcomes" || ! grep -q completed "$tmp/1.outcomes"; then
  echo "FAIL: a fail rate of 0.3 should compensate some orders and complete others:"
  cat "$tmp/1.outcomes"
  exit 1
fi
if ! diff -u "$tmp/1.outcomes" "$tmp/2.outcomes"; then
  echo "FAIL: the same --seed ended orders differently"
  exit 1
fi
echo "shop --seed: 30 orders ended the same way in two runs"
