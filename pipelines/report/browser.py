"""Headless Chromium for the report: open the file with the network cut off, read back the DOM (and the
markers the report's script sets) or take a screenshot; and a tiny PNG reader to tell a blank shot from a
drawn one. Used by the browser tests and by ``python -m crm_invoices.pipelines.report.screenshot``."""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path

CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser")


class BrowserError(Exception):
    pass


def chromium() -> str:
    configured = os.environ.get("CRM_INVOICES_CHROMIUM")
    for candidate in ((configured,) if configured else ()) + CHROMIUM_CANDIDATES:
        if candidate and Path(candidate).exists():
            return candidate
    raise BrowserError("crm-invoices: no Chromium at /usr/bin/chromium. Fix: `apt-get install -y chromium` "
                       "(Debian's package), or set CRM_INVOICES_CHROMIUM to its path.")


def _flags(profile: Path) -> list[str]:
    return [
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        f"--user-data-dir={profile}", "--no-first-run", "--no-default-browser-check",
        # no traffic of its own: updates, sync, metrics, safe browsing, field trials
        "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-extensions",
        "--disable-default-apps", "--disable-domain-reliability", "--disable-client-side-phishing-detection",
        "--metrics-recording-only", "--disable-features=OptimizationHints,MediaRouter,Translate",
        # and nowhere to send any: every name resolves to nothing, every proxied request to a closed port
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost", "--proxy-server=127.0.0.1:9",
        "--proxy-bypass-list=<-loopback>",
        "--hide-scrollbars", "--force-device-scale-factor=1", "--lang=en-US",
        "--enable-logging=stderr", "--v=0",
        "--virtual-time-budget=5000",  # let the page's script run to the end before the dump or the shot
    ]


@dataclass
class Opened:
    dom: str
    console: list[str]  # console messages Chromium logged (errors show as "CONSOLE" lines)
    stderr: str


def _run(args: list[str], timeout: float) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory(prefix="crm-invoices-chromium-") as profile:
        cmd = [chromium(), *_flags(Path(profile)), *args]
        try:
            return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                                  stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired as exc:
            raise BrowserError(f"Chromium did not finish in {timeout:.0f}s: {' '.join(args)}") from exc


def open_dom(html: Path, timeout: float = 120) -> Opened:
    proc = _run(["--dump-dom", html.resolve().as_uri()], timeout)
    if proc.returncode != 0 or "<html" not in proc.stdout:
        raise BrowserError(f"Chromium failed (exit {proc.returncode}): {proc.stderr[-3000:]}")
    console = [line for line in proc.stderr.splitlines() if "CONSOLE" in line]
    return Opened(proc.stdout, console, proc.stderr)


def screenshot(html: Path, png: Path, width: int = 1280, height: int = 2200, timeout: float = 120) -> Path:
    png.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="crm-invoices-shot-") as tmp:
        shot = Path(tmp) / "shot.png"
        proc = _run([f"--screenshot={shot}", f"--window-size={width},{height}", html.resolve().as_uri()], timeout)
        if not shot.exists():
            raise BrowserError(f"Chromium wrote no screenshot (exit {proc.returncode}): {proc.stderr[-3000:]}")
        shutil.copyfile(shot, png)
    return png


@dataclass
class PngStats:
    width: int
    height: int
    colors: int           # distinct RGB values
    ink_fraction: float   # share of pixels that differ from the most common (background) colour


def png_stats(path: Path) -> PngStats:
    """Decode an 8-bit RGB/RGBA PNG (what Chromium writes) with zlib alone and measure it."""
    data = path.read_bytes()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise BrowserError(f"{path} is not a PNG")
    pos, idat, header = 8, b"", None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        chunk = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", chunk)
        elif kind == b"IDAT":
            idat += chunk
        pos += 12 + length
    width, height, depth, color_type, _c, _f, interlace = header
    if depth != 8 or color_type not in (2, 6) or interlace:
        raise BrowserError(f"unsupported PNG (depth {depth}, colour type {color_type}, interlace {interlace})")
    bpp = 3 if color_type == 2 else 4
    raw = zlib.decompress(idat)
    stride = width * bpp
    prev = bytearray(stride)
    counts: dict[bytes, int] = {}
    i = 0
    for _y in range(height):
        kind = raw[i]
        line = bytearray(raw[i + 1:i + 1 + stride])
        i += 1 + stride
        for x in range(stride):
            a = line[x - bpp] if x >= bpp else 0
            b = prev[x]
            c = prev[x - bpp] if x >= bpp else 0
            if kind == 1:
                line[x] = (line[x] + a) & 255
            elif kind == 2:
                line[x] = (line[x] + b) & 255
            elif kind == 3:
                line[x] = (line[x] + (a + b) // 2) & 255
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[x] = (line[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        for x in range(0, stride, bpp * 4):  # every 4th pixel is plenty to measure
            px = bytes(line[x:x + 3])
            counts[px] = counts.get(px, 0) + 1
        prev = line
    total = sum(counts.values())
    background = max(counts.values())
    return PngStats(width, height, len(counts), (total - background) / total if total else 0.0)
