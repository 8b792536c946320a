#!/usr/bin/env bash
# The PostgreSQL suite (tests/postgres/): installs PostgreSQL from Debian's packages, starts a throwaway cluster
# as the `postgres` user in a temp dir on a free loopback port (password auth, so wrong credentials are refused
# as on a real server), runs the suite against it, then stops and removes the cluster. Exits non-zero on any
# failure. Needs root (apt-get, su). Usage: bash .ci/postgres.sh [pytest args, e.g. -k errors]
set -euo pipefail
cd "$(dirname "$0")/.."
started=$(date +%s)
make -s .venv/.installed  # the venv with dlt[postgres] and dbt-postgres (pyproject.toml)
.venv/bin/python -c "import psycopg2, dbt.adapters.postgres" || {
    echo "postgres.sh: the venv lacks psycopg2 or dbt-postgres: add them to pyproject.toml (see docs/WAREHOUSES.md)"; exit 1; }

if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >/dev/null
    apt-get install -y -q --no-install-recommends postgresql >/dev/null
fi
PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
echo "postgres.sh: $("$PGBIN/postgres" --version) from $PGBIN"

PGTMP=$(mktemp -d /tmp/crm-invoices-pg.XXXXXX)
chmod 755 "$PGTMP"
chown postgres "$PGTMP"
PORT=$(.venv/bin/python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
PASSWORD=$(.venv/bin/python -c 'import secrets; print(secrets.token_hex(16))')

as_postgres() { su postgres -s /bin/bash -c "$*"; }
cleanup() {
    as_postgres "'$PGBIN/pg_ctl' -D '$PGTMP/data' -m immediate -w stop" >/dev/null 2>&1 || true
    rm -rf "$PGTMP"
}
trap cleanup EXIT

printf '%s\n' "$PASSWORD" > "$PGTMP/pwfile"
chown postgres "$PGTMP/pwfile"
as_postgres "'$PGBIN/initdb' -D '$PGTMP/data' -U postgres --auth=scram-sha-256 --pwfile='$PGTMP/pwfile' \
    -E UTF8 --no-locale" >"$PGTMP/initdb.log" 2>&1 || { cat "$PGTMP/initdb.log"; exit 1; }
rm -f "$PGTMP/pwfile"
# loopback only, its socket in the temp dir; fsync off: a throwaway cluster needs no durability
as_postgres "'$PGBIN/pg_ctl' -D '$PGTMP/data' -l '$PGTMP/server.log' -w -t 60 start \
    -o \"-c listen_addresses=127.0.0.1 -c port=$PORT -c unix_socket_directories='$PGTMP' -c fsync=off \
    -c synchronous_commit=off -c full_page_writes=off\"" >/dev/null || { cat "$PGTMP/server.log"; exit 1; }
echo "postgres.sh: cluster up on 127.0.0.1:$PORT ($(( $(date +%s) - started ))s)"

export CRM_INVOICES_TEST_POSTGRES_DSN="postgresql://postgres:$PASSWORD@127.0.0.1:$PORT/postgres"
set +e
.venv/bin/pytest -q -p no:cacheprovider tests/postgres "$@"
rc=$?
set -e
echo "postgres.sh: PostgreSQL suite exit $rc in $(( $(date +%s) - started ))s"
exit $rc
