"""The report in a real browser: Debian's headless Chromium opens the file with the network cut off, every
chart renders, no script error, no request blocked or made, and a screenshot is not blank.

Not part of `make test` (a fresh machine has no Chromium): `make test-browser`, or `.ci/report_browser.sh`,
which installs Debian's `chromium` first."""

from __future__ import annotations

import http.server
import re
import threading

import pytest
from crm_invoices.pipelines.registry import NAMES
from crm_invoices.pipelines.report.browser import open_dom, png_stats, screenshot
from crm_invoices.sandbox.server import Sandbox
from crm_invoices.sandbox.world import World

from tests.conftest import Workdir, assert_ok


class _Counting(http.server.BaseHTTPRequestHandler):
    hits: list[str] = []

    def do_GET(self):  # noqa: N802 - the stdlib's name
        _Counting.hits.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def loopback_server():
    """A loopback HTTP server that counts the requests it gets (a page must send it none)."""
    _Counting.hits = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Counting)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", _Counting.hits
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    world = World.generate(seed=2026, invoices=dict.fromkeys(NAMES, 40),
                           anomalies=True)
    sandbox = Sandbox(world).start()
    workdir = Workdir(tmp_path_factory.mktemp("browser"))
    empty = Workdir(tmp_path_factory.mktemp("browser-empty"))
    empty_sandbox = Sandbox(World.generate(seed=1, invoices={"salesman": 0, "bitrix24": 0, "onlyoffice": 0})).start()
    try:
        assert_ok(workdir.cli("run", "--no-progress", sandbox=sandbox))
        out = {}
        for lang in ("ru", "en"):
            out[lang] = workdir.path / f"report_{lang}.html"
            assert_ok(workdir.cli("report", "--lang", lang, "--out", str(out[lang]), sandbox=sandbox))
        assert_ok(empty.cli("run", "--no-progress", "--sources", "salesman", sandbox=empty_sandbox))
        out["empty"] = empty.data / "report.html"
        yield out
    finally:
        sandbox.stop()
        empty_sandbox.stop()


def _root(dom: str) -> dict[str, str]:
    tag = re.search(r"<html[^>]*>", dom).group(0)
    return dict(re.findall(r'([\w-]+)="([^"]*)"', tag))


@pytest.mark.parametrize("which", ["ru", "en", "empty"])
def test_every_chart_renders_without_errors(reports, which):
    path = reports[which]
    charts = len(re.findall(r'<figure class="chart"', path.read_text(encoding="utf-8")))
    assert charts >= (5 if which == "empty" else 10)
    opened = open_dom(path)
    root = _root(opened.dom)
    assert root["data-charts-total"] == str(charts)
    assert root["data-charts-rendered"] == str(charts)
    assert root["data-js-errors"] == "0"
    assert root["data-csp-violations"] == "0"
    assert len(re.findall(r'data-rendered="yes"', opened.dom)) == charts
    assert [line for line in opened.console if re.search(r"error|uncaught|refused", line, re.I)] == []


def test_a_request_from_the_page_would_be_blocked_and_seen(reports, loopback_server, tmp_path):
    """The check above can fail: the same report with one image from a (loopback) host is refused by the
    file's own Content-Security-Policy, the server gets no request, and the page records the violation."""
    url, hits = loopback_server
    text = reports["en"].read_text(encoding="utf-8")
    tampered = tmp_path / "tampered.html"
    tampered.write_text(text.replace("</main>", f'<img src="{url}/pixel.png" alt=""></main>'), encoding="utf-8")
    root = _root(open_dom(tampered).dom)
    assert root["data-csp-violations"] == "1"
    assert hits == []


def test_screenshot_is_not_blank(reports, tmp_path):
    shot = screenshot(reports["ru"], tmp_path / "report.png", width=1280, height=1600)
    stats = png_stats(shot)
    assert (stats.width, stats.height) == (1280, 1600)
    assert stats.colors > 50 and stats.ink_fraction > 0.03, stats
    # and the measure tells a blank page from a drawn one
    blank = tmp_path / "blank.html"
    blank.write_text("<!DOCTYPE html><html><body></body></html>", encoding="utf-8")
    blank_stats = png_stats(screenshot(blank, tmp_path / "blank.png", width=400, height=300))
    assert blank_stats.colors == 1 and blank_stats.ink_fraction == 0.0


def test_screenshot_script_regenerates_a_picture(tmp_path):
    from crm_invoices.pipelines.report.screenshot import main

    target = tmp_path / "docs" / "report.png"
    assert main([str(target)]) == 0
    stats = png_stats(target)
    assert stats.colors > 50 and stats.ink_fraction > 0.03

