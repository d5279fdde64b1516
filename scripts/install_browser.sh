#!/usr/bin/env bash
# Installs Debian's Chromium for the browser check (scripts/browser_check.py) when no Chromium is on PATH.
# Idempotent. Needs root apt-get (or passwordless sudo); where neither exists it says so in one line and the browser
# check is skipped with its own one-line message.
set -euo pipefail
for browser in chromium chromium-browser google-chrome google-chrome-stable; do
  command -v "$browser" >/dev/null 2>&1 && exit 0
done
if ! command -v apt-get >/dev/null 2>&1; then
  echo "install_browser: no apt-get on this system; install Chromium yourself to run the browser check" >&2
  exit 0
fi
if [ "$(id -u)" = 0 ]; then sudo=""; elif sudo -n true 2>/dev/null; then sudo="sudo -n"; else
  echo "install_browser: not root and no passwordless sudo; the browser check will be skipped" >&2
  exit 0
fi
echo "installing chromium (apt-get) for the browser check ..." >&2
if ! { $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium >/dev/null; }; then
  echo "install_browser: apt-get could not install chromium; the browser check will be skipped" >&2
fi
exit 0
