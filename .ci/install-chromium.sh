#!/usr/bin/env bash
# Installs Debian's chromium for the console's browser tests
# (remote/console TestBrowser*) when it is missing. Needs root and apt-get;
# without them the browser tests say they skipped.
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then exit 0; fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "note: chromium not installed (not root or no apt-get); the console browser tests will skip" >&2
  exit 0
fi
start=$(date +%s)
install() { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null 2>&1; }
# A fresh container may have no package lists yet: update once and retry.
install || { apt-get update -qq >/dev/null 2>&1 && install; } ||
  { echo "note: apt-get install chromium failed; the console browser tests will skip" >&2; exit 0; }
echo "chromium installed in $(( $(date +%s) - start ))s" >&2
