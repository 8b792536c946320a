"""The report's only style sheet and script, inlined into the file. The script draws nothing (the charts are
SVG already): it checks that every chart rendered and records script errors and blocked requests on <html>,
which the browser tests read back (data-charts-rendered, data-js-errors, data-csp-violations)."""

CSS = """
:root { --ink:#1d2733; --muted:#5b6775; --line:#d8dee5; --bg:#ffffff; --band:#f4f6f8; --err:#c4453c; --warn:#b7791f; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", "Liberation Sans", Arial, sans-serif;
       color: var(--ink); background: var(--bg); }
header { padding: 20px 32px 12px; border-bottom: 3px solid #1f5f99; }
header h1 { margin: 0 0 6px; font-size: 22px; }
header .meta { color: var(--muted); display: flex; flex-wrap: wrap; gap: 6px 22px; }
main { padding: 8px 32px 40px; max-width: 1600px; }
section { margin-top: 26px; }
h2 { font-size: 18px; border-bottom: 1px solid var(--line); padding-bottom: 4px; }
h3 { font-size: 15px; margin: 18px 0 6px; }
.cards { display: flex; flex-wrap: wrap; gap: 12px; margin: 10px 0 14px; }
.card { background: var(--band); border-radius: 6px; padding: 10px 14px; min-width: 210px; }
.card .k { color: var(--muted); font-size: 12px; text-transform: uppercase; letter-spacing: .03em; }
.card .v { font-size: 20px; font-weight: 600; font-variant-numeric: tabular-nums; white-space: nowrap; }
.banner { border-left: 4px solid var(--err); background: #fbeeed; padding: 8px 12px; margin: 10px 0; }
.note { color: var(--muted); font-size: 12.5px; max-width: 980px; }
table { border-collapse: collapse; margin: 6px 0 4px; font-variant-numeric: tabular-nums; }
th, td { border-bottom: 1px solid var(--line); padding: 4px 10px; text-align: left; vertical-align: top; }
th { background: var(--band); font-weight: 600; font-size: 12.5px; }
td[data-col=meaning], td[data-col=todo], td[data-col=message] { min-width: 240px; max-width: 380px; }
td.num, th.num { text-align: right; white-space: nowrap; }
tr.total td { font-weight: 600; border-top: 2px solid var(--ink); }
.csv { font-size: 12px; margin-left: 6px; }
.tablewrap { overflow-x: auto; }
figure.chart { margin: 8px 0 14px; max-width: 800px; }
.charts { display: grid; grid-template-columns: repeat(auto-fill, minmax(400px, 1fr)); gap: 4px 28px; max-width: 1500px; }
.charts.wide { grid-template-columns: repeat(auto-fill, minmax(620px, 1fr)); }
.charts figure.chart { max-width: none; }
figure.chart figcaption { font-weight: 600; margin-bottom: 2px; }
figure.chart svg { width: 100%; height: auto; display: block; }
.grid { stroke: #e6eaee; } .axis { stroke: #8895a3; }
.tick, .cat, .unit, .val { font-size: 11px; fill: var(--muted); } .nodata { font-size: 16px; fill: var(--muted); }
.marker { stroke: #9e1f2b; stroke-dasharray: 4 3; } .marker-label { font-size: 11px; fill: #9e1f2b; }
.legend { display: flex; flex-wrap: wrap; gap: 4px 14px; font-size: 12px; color: var(--muted); }
.legend i { display: inline-block; width: 10px; height: 10px; margin-right: 5px; border-radius: 2px; }
.sev-error { color: var(--err); font-weight: 600; } .sev-warning { color: var(--warn); font-weight: 600; }
.systematic { background: #fff6e0; border-left: 4px solid var(--warn); padding: 6px 10px; margin: 6px 0; }
details { margin: 6px 0; } summary { cursor: pointer; font-weight: 600; }
footer { color: var(--muted); font-size: 12px; padding: 0 32px 30px; }
@media print { details { display: block; } .csv { display: none; } }
"""

JS = """
(function () {
  var root = document.documentElement, errors = [], blocked = [];
  window.addEventListener('error', function (e) { errors.push(String(e.message)); root.dataset.jsErrors = errors.length; });
  document.addEventListener('securitypolicyviolation', function (e) {
    blocked.push(e.blockedURI); root.dataset.cspViolations = blocked.length; });
  function check() {
    var charts = document.querySelectorAll('figure.chart'), ok = 0;
    for (var i = 0; i < charts.length; i++) {
      var svg = charts[i].querySelector('svg');
      if (!svg) continue;
      var box = svg.getBoundingClientRect(), marks = svg.querySelectorAll('rect.bar, text.nodata');
      var drawn = marks.length > 0 && box.width > 0 && box.height > 0;
      if (drawn && marks[0].getBBox) { var b = marks[0].getBBox(); drawn = b.width > 0 && b.height > 0; }
      if (drawn) ok++;
      charts[i].dataset.rendered = drawn ? 'yes' : 'no';
    }
    root.dataset.chartsTotal = charts.length;
    root.dataset.chartsRendered = ok;
    root.dataset.jsErrors = errors.length;
    root.dataset.cspViolations = blocked.length;
  }
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', check); else check();
})();
"""

# Nothing may be fetched: only inline styles and scripts, images from data: URIs; links still work on click.
CSP = "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:; font-src data:"
