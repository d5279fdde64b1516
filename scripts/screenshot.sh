#!/usr/bin/env bash
# Screenshot built pages with headless Chromium and the network switched off (unshare -n), to see what a reader sees.
# usage: scripts/screenshot.sh OUT_DIR page.html [page.html ...]   (pages relative to _build/html)
set -euo pipefail
cd "$(dirname "$0")/.."
out=$1; shift
mkdir -p "$out"
for page in "$@"; do
  name=$(echo "$page" | tr '/' '_' | sed 's/\.html$//')
  unshare -n chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --user-data-dir="$(mktemp -d)" --hide-scrollbars --window-size=1280,${HEIGHT:-2400} \
    --virtual-time-budget=15000 --screenshot="$out/$name.png" "file://$(pwd)/_build/html/$page" 2>/dev/null
  echo "$out/$name.png"
done
