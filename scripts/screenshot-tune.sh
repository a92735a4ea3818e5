#!/usr/bin/env bash
# The Tune tab mid-search for README.md: the app under Xvfb on a series, the Tune tab dragged to
# the top of the window, Search clicked, a screenshot after SHOT_AT_SECS. The positions are those
# of the default layout at 1400x900. Needs: xvfb xauth xdotool imagemagick, Mesa's GL
# (libgl1-mesa-dri), and a release build.
#   scripts/screenshot-tune.sh [CSV] [SHOT_AT_SECS] [OUT_PNG]
set -euo pipefail
cd "$(dirname "$0")/.."
csv=${1:-../shared/data/cpu4.csv}
shot_at=${2:-25}
png=${3:-assets/tune.png}
export XDG_RUNTIME_DIR=/tmp/xdg-runtime
mkdir -p -m 0700 "$XDG_RUNTIME_DIR"
unset WAYLAND_DISPLAY
xvfb-run -a -s "-screen 0 1400x900x24" bash -c "
  target/release/donut-explorer --open '$csv' --quit-after $((shot_at + 20)) &
  sleep 6
  xdotool mousemove ${TAB_X:-1238} ${TAB_Y:-430} mousedown 1 sleep 0.3 mousemove 900 300 sleep 0.3 mousemove 800 200 sleep 0.5 mouseup 1
  sleep 1.5
  xdotool mousemove 860 ${DIVIDER_Y:-236} mousedown 1 sleep 0.3 mousemove 860 500 sleep 0.3 mousemove 860 ${DIVIDER_TO:-720} sleep 0.5 mouseup 1
  sleep 1
  [ -n \"\${LAYOUT_PNG:-}\" ] && import -window root \"\$LAYOUT_PNG\"
  xdotool mousemove ${SEARCH_X:-391} ${SEARCH_Y:-133} click 1
  sleep $shot_at; import -window root $png; wait"
echo "screenshot: $png"
