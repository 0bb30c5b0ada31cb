#!/usr/bin/env bash
# The programs the tests drive that npm does not install: Debian's Chromium
# (test/browser), Prometheus (promtool and the server, for the metrics
# tests), redis-server (test/cache, the Redis cache store) and PostgreSQL
# (test/support/postgres.ts, for the replicas). `npm test` and
# .ci/run run this first, so the README's test command works on a fresh
# Debian machine. Each program is found (its *_PATH variable,
# else the PATH); whatever is missing is installed with one `apt-get update`
# and one `apt-get install` (as root, or with passwordless sudo). Otherwise it
# says what to do and fails: no suite is ever skipped for want of a program.
set -euo pipefail

# The variable that overrides the lookup, the command, the Debian package that has it.
TOOLS=(
  "CHROMIUM_PATH chromium chromium"
  "PROMETHEUS_PATH prometheus prometheus"
  "PROMTOOL_PATH promtool prometheus"
  "REDIS_SERVER_PATH redis-server redis-server"
  "OPENSSL_PATH openssl openssl"
)

# Prints "command package" for each program that is missing; fails on an override that is not executable.
missing() {
  local entry var cmd pkg path
  for entry in "${TOOLS[@]}"; do
    read -r var cmd pkg <<<"$entry"
    path="${!var:-}"
    if [ -n "$path" ]; then
      [ -x "$path" ] && continue
      echo "$var=$path is not an executable" >&2
      return 1
    fi
    command -v "$cmd" >/dev/null 2>&1 || echo "$cmd $pkg"
  done
  # PostgreSQL's initdb and pg_ctl are not on Debian's PATH: PG_BIN_DIR, else /usr/lib/postgresql/<version>/bin.
  if [ -n "${PG_BIN_DIR:-}" ]; then
    [ -x "$PG_BIN_DIR/initdb" ] && [ -x "$PG_BIN_DIR/pg_ctl" ] && return 0
    echo "PG_BIN_DIR=$PG_BIN_DIR holds no initdb and pg_ctl" >&2
    return 1
  fi
  compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || echo "initdb postgresql"
}

report="$(missing)"
[ -z "$report" ] && exit 0
commands=() packages=()
while read -r cmd pkg; do
  commands+=("$cmd")
  [[ " ${packages[*]} " == *" $pkg "* ]] || packages+=("$pkg")
done <<<"$report"

if [ "$(id -u)" = 0 ]; then as_root=(); elif sudo -n true 2>/dev/null; then as_root=(sudo -n); else
  echo "The tests need ${commands[*]}: run 'sudo apt-get update && sudo apt-get install -y --no-install-recommends ${packages[*]}'," \
    "or set CHROMIUM_PATH, PROMETHEUS_PATH, PROMTOOL_PATH, REDIS_SERVER_PATH or PG_BIN_DIR to the programs" >&2
  exit 1
fi
# --no-install-recommends: the tests need the programs only (prometheus would
# recommend prometheus-node-exporter, one more daemon). Where an init system
# runs, installing redis-server also starts a system Redis on 6379; the tests
# never use it (each starts its own on a free port, persistence off).
echo "Installing Debian's ${packages[*]} for the tests (apt-get), for ${commands[*]}..." >&2
export DEBIAN_FRONTEND=noninteractive
"${as_root[@]}" apt-get update -qq
"${as_root[@]}" apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null

still=()
while read -r cmd _; do [ -n "$cmd" ] && still+=("$cmd"); done <<<"$(missing)"
if [ ${#still[@]} -gt 0 ]; then
  echo "apt-get installed ${packages[*]}, but ${still[*]} still cannot be found on the PATH" >&2
  exit 1
fi
