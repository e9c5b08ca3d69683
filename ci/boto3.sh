#!/usr/bin/env bash
# Real-client check: serve the fakes on loopback and run ci/boto3_check.py against them.
set -euo pipefail
cd "$(dirname "$0")/.."

python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore "boto3>=1.34.90"

env_file=$(mktemp)
cargo run --quiet -p stampede -- fakes serve > "$env_file" &
server=$!
trap 'kill "$server" 2>/dev/null || true; rm -f "$env_file"' EXIT

for _ in $(seq 1 300); do
  grep -q STAMPEDE_LAKE_BUCKET "$env_file" && break
  kill -0 "$server" 2>/dev/null || { echo "stampede fakes serve exited early" >&2; exit 1; }
  sleep 0.1
done
grep -q STAMPEDE_LAKE_BUCKET "$env_file" || { echo "stampede fakes serve printed no environment" >&2; exit 1; }

set -a
# shellcheck disable=SC1090
source "$env_file"
set +a
python3 ci/boto3_check.py
