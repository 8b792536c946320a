"""Regenerate the README's screenshot: ``python -m crm_invoices.pipelines.report.screenshot [docs/report.png]``.

Loads the demo sandbox (all three CRMs, one planted case of every reconciliation rule) into a temporary
warehouse with the real CLI, which ends by writing the report (in English), then photographs it with
headless Chromium (network cut off) and checks that the picture is not blank."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from ..settings import PROJECT_DIR
from .browser import BrowserError, png_stats, screenshot


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    target = Path(argv[0] if argv else PROJECT_DIR / "docs" / "report.png").resolve()
    with tempfile.TemporaryDirectory(prefix="crm-invoices-shot-") as tmp:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SOURCES__", "DESTINATION__"))}
        env.update({"CRM_INVOICES_DATA_DIR": str(Path(tmp) / "data"), "LANG": "en_US.UTF-8", "LC_ALL": "en_US.UTF-8"})
        proc = subprocess.run([sys.executable, "-m", "crm_invoices.pipelines.cli", "run", "--demo", "--no-progress"], cwd=tmp,
                              env=env, capture_output=True, text=True)
        report = Path(tmp) / "data" / "report.html"
        if proc.returncode != 0 or not report.exists():
            print(proc.stdout[-3000:], proc.stderr[-3000:], sep="\n", file=sys.stderr)
            print("crm-invoices: screenshot: the demo run did not write the report (above).", file=sys.stderr)
            return 1
        try:
            screenshot(report, target, width=1360, height=2350)
            stats = png_stats(target)
        except BrowserError as exc:
            print(exc, file=sys.stderr)
            return 1
    if stats.colors < 50 or stats.ink_fraction < 0.03:
        print(f"crm-invoices: screenshot: {target} looks blank ({stats}).", file=sys.stderr)
        return 1
    print(f"screenshot: {target} ({stats.width}x{stats.height}, {stats.colors} colours)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
