#!/usr/bin/env bash
# Runs the app under Xvfb on a series (default: the bundled sample), trains at once, takes a
# screenshot mid-training and writes frame-time statistics. Needs: xvfb xauth imagemagick and
# Mesa's GL (libgl1-mesa-dri), and a release build.
#   scripts/screenshot.sh [CSV] [SHOT_AT_SECS] [QUIT_AFTER_SECS] [OUT_PNG] [FRAMES_JSON]
set -euo pipefail
cd "$(dirname "$0")/.."
csv=${1:-}
shot_at=${2:-20}
quit_after=${3:-30}
png=${4:-assets/screenshot.png}
frames=${5:-/tmp/donut-frames.json}
export XDG_RUNTIME_DIR=/tmp/xdg-runtime
mkdir -p -m 0700 "$XDG_RUNTIME_DIR"
unset WAYLAND_DISPLAY
open=()
[ -n "$csv" ] && open=(--open "$csv")
xvfb-run -a -s "-screen 0 1400x900x24" bash -c "
  target/release/donut-explorer ${open[*]} --autostart --quit-after $quit_after --frame-report $frames &
  sleep $shot_at; import -window root $png; wait"
echo "screenshot: $png; frame report: $frames"
