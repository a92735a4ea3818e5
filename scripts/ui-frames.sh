#!/usr/bin/env bash
# Measures the app's frame times under Xvfb with no training, and while training on 1 and on 2
# threads (cpu4.csv, 512 epochs and patience off so that training lasts the whole run), dragging the 3-D panel for
# 2 s in each. Prints one JSON frame report per case. Needs: xvfb xauth xdotool, Mesa's GL
# (libgl1-mesa-dri), and a release build.
#   scripts/ui-frames.sh [CSV] [SECS]
set -euo pipefail
cd "$(dirname "$0")/.."
csv=${1:-../shared/data/cpu4.csv}
secs=${2:-25}
export XDG_RUNTIME_DIR=/tmp/xdg-runtime
mkdir -p -m 0700 "$XDG_RUNTIME_DIR"
unset WAYLAND_DISPLAY
for case in idle 1 0; do
  home=$(mktemp -d)  # a fresh HOME: no saved state from earlier runs
  report=$(mktemp)
  start=(--autostart --set threads="$case" --set epochs=512 --set patience=0)
  [ "$case" = idle ] && start=()
  HOME=$home xvfb-run -a -s "-screen 0 1400x900x24" bash -c "
    target/release/donut-explorer --open '$csv' ${start[*]} --quit-after $secs --frame-report $report &
    sleep 10; xdotool mousemove 600 690; sleep 0.3; xdotool mousedown 1
    for i in \$(seq 1 20); do xdotool mousemove_relative 6 2; sleep 0.1; done
    xdotool mouseup 1; wait"
  echo "$case: $(cat "$report")"
  rm -rf "$home" "$report"
done
