"""Charts as inline SVG drawn here: no charting library, no JavaScript needed to draw them, nothing to fetch.
Floats are used for geometry only; every figure a reader sees is the exact Decimal, formatted."""

from __future__ import annotations

from decimal import Decimal
from html import escape

from . import formatting as fmt

PALETTE = ["#1f5f99", "#e3872d", "#3a9a5b", "#c4453c", "#7b5ea7", "#8c6d46", "#d16ba5", "#6b7b8c"]
BUCKET_COLORS = {"current": "#3a9a5b", "1-30": "#c9b037", "31-60": "#e3872d", "61-90": "#d0583a", "90+": "#9e1f2b"}
SEVERITY_COLORS = {"error": "#c4453c", "warning": "#e3a52d"}
W, H = 760, 300
LEFT, RIGHT, TOP, BOTTOM = 92, 16, 34, 64


def _nice_max(value: Decimal) -> Decimal:
    """The axis top: 1, 2, 2.5 or 5 times a power of ten, at or above ``value`` (exact: no float in between)."""
    if value <= 0:
        return Decimal(1)
    exp = Decimal(10) ** value.adjusted()
    for step in (Decimal(1), Decimal(2), Decimal("2.5"), Decimal(5), Decimal(10)):
        if value <= step * exp:
            return step * exp
    return 10 * exp


def _short(value: Decimal, lang: str) -> str:
    """Axis labels: 1.5M / 1,5 млн; never used for the figures themselves."""
    units = [(Decimal("1e9"), "B", "млрд"), (Decimal("1e6"), "M", "млн"), (Decimal("1e3"), "k", "тыс")]
    for size, en, ru in units:
        if abs(value) >= size:
            text = f"{value / size:.1f}".rstrip("0").rstrip(".")
            return f"{text.replace('.', ',')} {ru}" if lang == "ru" else f"{text}{en}"
    return f"{value:.0f}"


def _frame(chart_id: str, title: str, body: str, legend: list[tuple[str, str]], w: int = W, h: int = H) -> str:
    items = "".join(
        f'<span class="key"><i style="background:{color}"></i>{escape(label)}</span>' for label, color in legend)
    return (f'<figure class="chart" data-chart="{escape(chart_id)}"><figcaption>{escape(title)}</figcaption>'
            f'<svg viewBox="0 0 {w} {h}" role="img" aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">'
            f'{body}</svg><div class="legend">{items}</div></figure>')


def _empty(chart_id: str, title: str, lang: str, w: int = W, h: int = H) -> str:
    from .labels import t

    body = (f'<text class="nodata" x="{w / 2}" y="{h / 2}" text-anchor="middle">{escape(t(lang, "no_data"))}</text>')
    return _frame(chart_id, title, body, [], w, h)


def bars(chart_id: str, title: str, categories: list[str], series: list[tuple[str, str, list[Decimal]]],
         lang: str, unit: str, stacked: bool = True, marker: tuple[int, str] | None = None,
         size: tuple[int, int] = (W, H)) -> str:
    """Vertical bars per category; series stacked or side by side. ``marker`` = (category index, label): a
    dashed line before that category (e.g. the VAT rate change)."""
    w, h = size
    if not categories or not any(v for _n, _c, values in series for v in values):
        return _empty(chart_id, title, lang, w, h)
    n = len(categories)
    if stacked:
        top = max(sum((Decimal(max(s[2][i], 0)) for s in series), Decimal(0)) for i in range(n))
    else:
        top = max(Decimal(v) for s in series for v in s[2])
    top = _nice_max(top)
    plot_w, plot_h = w - LEFT - RIGHT, h - TOP - BOTTOM
    slot = plot_w / n
    parts = []
    for k in range(5):
        y = TOP + plot_h - plot_h * k / 4
        parts.append(f'<line class="grid" x1="{LEFT}" x2="{w - RIGHT}" y1="{y:.1f}" y2="{y:.1f}"/>')
        parts.append(f'<text class="tick" x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">'
                     f'{escape(_short(top * k / 4, lang))}</text>')
    parts.append(f'<text class="unit" x="{LEFT - 6}" y="{TOP - 14}" text-anchor="end">{escape(unit)}</text>')
    rotate = n > 8
    for i, category in enumerate(categories):
        x0 = LEFT + slot * i
        base = TOP + plot_h
        width = slot * 0.72 if stacked else slot * 0.8 / max(len(series), 1)
        for j, (name, color, values) in enumerate(series):
            value = values[i]
            if value <= 0:
                continue
            height = plot_h * Decimal(value) / top
            if stacked:
                x, y = x0 + slot * 0.14, base - height
                base = y
            else:
                x, y = x0 + slot * 0.1 + width * j, TOP + plot_h - height
            tip = f"{category} · {name}: {fmt.money(value, lang)} {unit}"
            parts.append(f'<rect class="bar" x="{x:.1f}" y="{y:.1f}" width="{max(width, 1):.1f}" '
                         f'height="{max(height, 0.5):.1f}" fill="{color}"><title>{escape(tip)}</title></rect>')
        lx, ly = x0 + slot / 2, TOP + plot_h + 14
        if rotate:
            parts.append(f'<text class="cat" transform="translate({lx:.1f},{ly:.1f}) rotate(-40)" '
                         f'text-anchor="end">{escape(category)}</text>')
        else:
            parts.append(f'<text class="cat" x="{lx:.1f}" y="{ly + 2:.1f}" text-anchor="middle">'
                         f'{escape(category)}</text>')
    if marker is not None and 0 < marker[0] < n:
        mx = LEFT + slot * marker[0]
        parts.append(f'<line class="marker" x1="{mx:.1f}" x2="{mx:.1f}" y1="{TOP - 6}" y2="{TOP + plot_h}"/>')
        parts.append(f'<text class="marker-label" x="{mx + 4:.1f}" y="{TOP - 8}">{escape(marker[1])}</text>')
    parts.append(f'<line class="axis" x1="{LEFT}" x2="{w - RIGHT}" y1="{TOP + plot_h}" y2="{TOP + plot_h}"/>')
    return _frame(chart_id, title, "".join(parts), [(name, color) for name, color, _v in series], w, h)


def hbars(chart_id: str, title: str, rows: list[tuple[str, int, str]], lang: str) -> str:
    """Horizontal bars: (label, count, color) per row."""
    if not rows:
        return _empty(chart_id, title, lang)
    top = max(r[1] for r in rows) or 1
    row_h = min(26.0, (H - 20) / len(rows))
    left = 250
    parts = []
    for i, (label, count, color) in enumerate(rows):
        y = 10 + i * row_h
        width = (W - left - 70) * count / top
        parts.append(f'<text class="cat" x="{left - 8}" y="{y + row_h * 0.62:.1f}" text-anchor="end">'
                     f'{escape(label)}</text>')
        parts.append(f'<rect class="bar" x="{left}" y="{y + 3:.1f}" width="{max(width, 1):.1f}" '
                     f'height="{row_h - 6:.1f}" fill="{color}"><title>{escape(label)}: {count}</title></rect>')
        parts.append(f'<text class="val" x="{left + width + 6:.1f}" y="{y + row_h * 0.62:.1f}">'
                     f'{escape(fmt.integer(count, lang))}</text>')
    return _frame(chart_id, title, "".join(parts), [])
