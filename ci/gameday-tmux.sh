#!/usr/bin/env bash
# The gameday's interactive prompt in a real terminal: tmux types into it, reads the screen
# back, and checks what a person would see: the pause at the first note, a one-line error for
# a mistake with the prompt back, history (Up recalls the last command), and the outputs.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v tmux >/dev/null || { timeout 180 apt-get install -y -qq tmux >/dev/null 2>&1 || true; }
command -v tmux >/dev/null || { echo "tmux is not installed and could not be: skipped" >&2; exit 0; }

cargo build --quiet -p stampede
exe="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/debug/stampede"
work=$(mktemp -d)
session="stampede-gameday-$$"
trap 'tmux kill-session -t "$session" 2>/dev/null || true; rm -rf "$work"' EXIT

tmux new-session -d -s "$session" -x 160 -y 60 -c "$work" \
  "$exe gameday $PWD/scenarios/incidents/metadata-overload-freeze/naive.yaml --out out; echo EXITED-\$?; sleep 60"

screen() { tmux capture-pane -t "$session" -p -S -200; }
wait_for() {
  for _ in $(seq 1 600); do
    # A substring test, not `screen | grep -q`: grep stopping early would fail the pipe.
    [[ "$(screen)" == *"$1"* ]] && return 0
    sleep 0.1
  done
  echo "never saw: $1" >&2
  screen >&2
  exit 1
}

wait_for "[main 0:00]>"
tmux send-keys -t "$session" "continue" Enter
wait_for "paused at 0:20 (main): note:"
tmux send-keys -t "$session" "frobnicate" Enter
wait_for "error: unknown command \`frobnicate\`"
# Up twice: past the mistake, to `continue`.
tmux send-keys -t "$session" Up Up Enter
wait_for "paused at 0:25 (main): note:"
tmux send-keys -t "$session" "branch paused" Enter
wait_for "the log up to the fork is the same"
tmux send-keys -t "$session" "do admission.pause for=5m" Enter
wait_for "admission.pause goes out at 0:25"
tmux send-keys -t "$session" "quit" Enter
wait_for "EXITED-0"
test -s "$work/out/timeline.md"
test -s "$work/out/gameday.json"
echo "gameday at the prompt: ok"
