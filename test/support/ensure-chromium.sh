#!/usr/bin/env bash
# The browser tests (test/browser) drive Debian's Chromium. `npm test` runs
# this first, so the README's test command works on a fresh Debian machine:
# it finds Chromium (CHROMIUM_PATH, or `chromium` on the PATH), or installs it
# with apt (as root, or with passwordless sudo), or says what to do.
set -euo pipefail
if [ -n "${CHROMIUM_PATH:-}" ]; then
  [ -x "$CHROMIUM_PATH" ] && exit 0
  echo "CHROMIUM_PATH=$CHROMIUM_PATH is not an executable" >&2
  exit 1
fi
command -v chromium >/dev/null 2>&1 && exit 0
if [ "$(id -u)" = 0 ]; then as_root=(); elif sudo -n true 2>/dev/null; then as_root=(sudo -n); else
  echo "The browser tests need Chromium: run 'sudo apt-get install -y chromium', or set CHROMIUM_PATH" >&2
  exit 1
fi
echo "Installing Debian's chromium for the browser tests (apt-get)..." >&2
export DEBIAN_FRONTEND=noninteractive
"${as_root[@]}" apt-get update -qq
"${as_root[@]}" apt-get install -y -qq chromium >/dev/null
