#!/usr/bin/env bash
# Re-creates book/_assets/vendor/ — the JavaScript the built book serves itself so it works with no network:
# RequireJS and the ipywidgets HTML manager (static widget views) and MathJax 3 (typeset maths).
# Versions are pinned here; run this only to upgrade them, then commit the result.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out="$root/book/_assets/vendor"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm init -y >/dev/null && npm install --silent --no-audit --no-fund \
  requirejs@2.3.7 @jupyter-widgets/html-manager@1.0.15 mathjax@3.2.2)
rm -rf "$out" && mkdir -p "$out/html-manager" "$out/mathjax/output/chtml/fonts"
nm="$tmp/node_modules"
cp "$nm/requirejs/require.js" "$out/require.js"
cp "$nm/@jupyter-widgets/html-manager/dist/embed-amd.js" "$out/html-manager/"
# The widget CSS asks for its icon fonts beside embed-amd.js; modern browsers only need woff2/woff.
cp "$nm"/@jupyter-widgets/html-manager/dist/*.woff2 "$nm"/@jupyter-widgets/html-manager/dist/*.woff "$out/html-manager/"
cp "$nm/mathjax/es5/tex-chtml-full.js" "$out/mathjax/"
cp -r "$nm/mathjax/es5/output/chtml/fonts/woff-v2" "$out/mathjax/output/chtml/fonts/"
for lic in requirejs/LICENSE @jupyter-widgets/html-manager/LICENSE mathjax/LICENSE; do
  [ -f "$nm/$lic" ] && cp "$nm/$lic" "$out/LICENSE.$(echo "$lic" | cut -d/ -f1 | tr -d @)"
done
du -sh "$out"
