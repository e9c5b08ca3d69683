#!/usr/bin/env bash
# The nightly chaos run: every incident and mechanism twin and every swarm scenario, on seeds
# 1 to 20, in release. Run it whole, or as one shard of N (the CI workflows give SHARD=I/N,
# from 1/N to N/N) and merge the shards' directories with `stampede sweep merge`.
#
#   ci/nightly.sh                    # the whole sweep into runs/nightly
#   SHARD=2/4 OUT=runs/shard-2 ci/nightly.sh
#
# A shard exits 0 when it found failures (its records say so) and non-zero only when the
# harness itself broke, so that every shard uploads its results; the merge step owns the
# verdict (exit 1 on any failure). SEEDS, JOBS and SHRINK_BUDGET override the defaults.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

seeds="${SEEDS:-1..20}"
out="${OUT:-runs/nightly}"
args=(--seeds "$seeds" --out "$out" --shrink-budget "${SHRINK_BUDGET:-60}")
if [ -n "${JOBS:-}" ]; then args+=(--jobs "$JOBS"); fi
if [ -n "${SHARD:-}" ]; then args+=(--shard "$SHARD"); fi

cargo build --release -p stampede
scenarios=(scenarios/incidents/*/*.yaml scenarios/mechanisms/*/*.yaml scenarios/swarm/*.yaml)

set +e
./target/release/stampede sweep "${scenarios[@]}" "${args[@]}"
code=$?
set -e
# 1: some run failed, which the records hold. Anything else but 0 is the harness's failure.
if [ -n "${SHARD:-}" ] && [ "$code" -eq 1 ]; then
  exit 0
fi
exit "$code"
