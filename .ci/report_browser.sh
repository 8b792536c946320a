#!/usr/bin/env bash
# The report's browser tests: Debian's headless Chromium opens the report offline, every chart renders with
# no script error, and screenshots are not blank. Installs the `chromium` package when it is missing (CI runs
# as root on a fresh Debian machine), then runs tests/test_report_browser.py (not part of `make test`).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x /usr/bin/chromium ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q chromium fonts-dejavu-core
fi
make .venv/.installed
.venv/bin/pytest -q tests/test_report_browser.py
