#!/usr/bin/env bash
# The integration suite against a REAL SalesMan CRM (its own PHP source on PHP 8.2's built-in server over a
# private MariaDB 10.11, on loopback): installs the Debian packages when they are missing (needs root),
# sets the server up in a temp folder with shared/servers/salesman/setup.sh, runs tests/real_server, stops
# the server. Exits non-zero when anything fails. See docs/REAL_SERVER.md.
#
#   bash .ci/salesman_real.sh            # from anywhere inside the clone
#   CRM_INVOICES_SHARED=/path/to/shared  # where shared/ is (default: <clone>/../shared)
#   SM_KEEP=1                            # keep the server's folder (logs, database) after the run
#   SM_APT=1 / SM_APT=0                  # force / skip the apt-get step (default: only when something is missing)
set -euo pipefail
started=$(date +%s)
ROOT="$(git -C "$(dirname "$0")" rev-parse --show-toplevel 2>/dev/null || (cd "$(dirname "$0")/.." && pwd))"
SHARED="${CRM_INVOICES_SHARED:-$ROOT/../shared}"
SM_SCRIPTS="$SHARED/servers/salesman"
log() { printf '[salesman-real %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
[ -f "$SM_SCRIPTS/setup.sh" ] || { log "no $SM_SCRIPTS/setup.sh: set CRM_INVOICES_SHARED to the shared/ folder"; exit 1; }
cd "$ROOT"

# The packages: setup.sh installs them with SM_APT=1 (apt-get update + install, ~25 s); skip that when a
# previous run left them installed.
apt_needed=0
for cmd in php mariadb mariadb-install-db curl; do command -v "$cmd" >/dev/null 2>&1 || apt_needed=1; done
{ command -v mariadbd >/dev/null 2>&1 || [ -x /usr/sbin/mariadbd ]; } || apt_needed=1
if [ "$apt_needed" = 0 ]; then
  case "$(php -m)" in *$'\n'mysqli$'\n'*) ;; *) apt_needed=1;; esac
fi

apt_needed="${SM_APT:-$apt_needed}"

make -s .venv/.installed

SM_HOME="$(mktemp -d /tmp/salesman-real.XXXXXX)"
SM_PORT="$(.venv/bin/python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
export SM_HOME SM_PORT
cleanup() {
  # the shared scripts are read-only: they are run, never copied or changed; all state is under SM_HOME
  bash "$SM_SCRIPTS/stop.sh" >&2 || true
  if [ "${SM_KEEP:-0}" = 1 ]; then log "kept $SM_HOME"; else rm -rf "$SM_HOME"; fi
}
trap cleanup EXIT

t0=$(date +%s)
SM_APT="$apt_needed" bash "$SM_SCRIPTS/setup.sh" > "$SM_HOME.setup.log" 2>&1 || {
  grep -v 'API key' "$SM_HOME.setup.log" >&2; rm -f "$SM_HOME.setup.log"; log "setup.sh failed"; exit 1; }
rm -f "$SM_HOME.setup.log"
log "server up on 127.0.0.1:$SM_PORT in $(( $(date +%s) - t0 ))s (packages installed: $apt_needed)"

status=0
SALESMAN_REAL_HOME="$SM_HOME" RUNTIME__DLTHUB_TELEMETRY=false DO_NOT_TRACK=1 \
  .venv/bin/pytest -q -p no:cacheprovider tests/real_server || status=$?
if [ "$status" != 0 ]; then
  log "suite failed (exit $status); SM_KEEP=1 keeps the server's logs, request log and database for a look"
fi
log "total $(( $(date +%s) - started ))s"
exit "$status"
