#!/usr/bin/env bash
# `pip install .` as a user does it: a fresh virtualenv, the dependencies resolved from the package registry
# (not the dev venv's), then `crm-invoices run --demo` from an empty folder. It checks that the marts were built
# from the dbt project inside the wheel and that nothing was written beside the installed code.
# tests/test_install.py does the same offline in `make test`.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
work=$(mktemp -d /tmp/crm-invoices-install.XXXXXX)
trap 'rm -rf "$work"' EXIT
python3 -m venv "$work/venv"
"$work/venv/bin/pip" install --quiet --upgrade pip
"$work/venv/bin/pip" install --quiet "$repo"
site=$("$work/venv/bin/python" -c 'import crm_invoices.pipelines.settings as s; print(s.MODELS_DIR.parent)')
before=$(find "$site" -newer "$work/venv/bin/crm-invoices" -not -path '*/__pycache__*' | wc -l)
mkdir "$work/run" && cd "$work/run"
env -i PATH="$work/venv/bin:/usr/bin:/bin" HOME="$work" LANG=C.UTF-8 RUNTIME__DLTHUB_TELEMETRY=false DO_NOT_TRACK=1 \
    "$work/venv/bin/crm-invoices" run --demo --demo-invoices 20 --no-progress
after=$(find "$site" -newer "$work/venv/bin/crm-invoices" -not -path '*/__pycache__*' | wc -l)
[ "$before" = "$after" ] || { echo "install_check: the run wrote into $site"; exit 1; }
invoices=$("$work/venv/bin/python" -c "
import duckdb
print(duckdb.connect('data/crm_invoices.duckdb', read_only=True).execute(
    'select count(distinct source_system) from marts.fct_invoices').fetchone()[0])")
[ "$invoices" = "3" ] || { echo "install_check: marts.fct_invoices holds $invoices CRMs, not 3"; exit 1; }
echo "install_check: pip install . and crm-invoices run --demo from an empty folder: ok"
