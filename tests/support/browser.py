"""Headless Chromium (Debian's, installed by scripts/ensure-chromium.sh when absent).

:func:`charts_drawn` loads an HTML file with a small probe script appended and reads back,
from the DOM Chromium dumps after the page has run, how many ``.chart`` elements have a
rendered picture (a loaded image of non-zero size, or an SVG with at least one visible data
mark: an element whose id starts with ``data-``, as analytics/report_html.py tags them).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
<script>
window.addEventListener('load', () => {
  const charts = Array.from(document.querySelectorAll('.chart'));
  const drawn = charts.filter((el) => {
    const img = el.tagName === 'IMG' ? el : el.querySelector('img');
    if (img) return img.complete && img.naturalWidth > 50 && img.naturalHeight > 50;
    const svg = el.tagName.toLowerCase() === 'svg' ? el : el.querySelector('svg');
    if (svg) {
      // Axes and grid lines are not a chart: it needs a data mark (id "data-...", set by
      // analytics/report_html.py) that the browser lays out with a visible size.
      const box = svg.getBoundingClientRect();
      const marks = Array.from(svg.querySelectorAll('[id^="data-"]')).filter((g) => {
        const r = g.getBoundingClientRect();
        return r.width > 1 || r.height > 1;
      });
      return box.width > 50 && box.height > 50 && marks.length > 0;
    }
    return false;
  });
  document.body.setAttribute('data-charts-total', String(charts.length));
  document.body.setAttribute('data-charts-drawn', String(drawn.length));
});
</script>
"""

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
]


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    done = subprocess.run(
        [str(ROOT / "scripts" / "ensure-chromium.sh")], capture_output=True, text=True, check=True
    )
    return done.stdout.strip().splitlines()[-1]


def _run(args: list[str], wait_s: float = 90.0) -> str:
    with tempfile.TemporaryDirectory() as profile:
        done = subprocess.run(
            [chromium(), *FLAGS, f"--user-data-dir={profile}", *args],
            capture_output=True,
            text=True,
            timeout=wait_s,
            check=False,
        )
    if done.returncode != 0:
        raise RuntimeError(f"chromium failed ({done.returncode}): {done.stderr[-2000:]}")
    return done.stdout


def charts_drawn(html: Path) -> tuple[int, int]:
    """(charts on the page, charts actually drawn) once the page has loaded."""
    with tempfile.TemporaryDirectory() as tmp:
        probed = Path(tmp) / "probed.html"
        text = html.read_text()
        probed.write_text(
            text.replace("</body>", PROBE + "</body>") if "</body>" in text else text + PROBE
        )
        dom = _run(["--virtual-time-budget=10000", "--dump-dom", probed.as_uri()])
    total = re.search(r'data-charts-total="(\d+)"', dom)
    drawn = re.search(r'data-charts-drawn="(\d+)"', dom)
    if not total or not drawn:
        raise AssertionError("the probe did not run: the page did not load in Chromium")
    return int(total.group(1)), int(drawn.group(1))


def screenshot(html: Path, png: Path, width: int = 1280, height: int = 1600) -> None:
    png.parent.mkdir(parents=True, exist_ok=True)
    _run([f"--window-size={width},{height}", f"--screenshot={png}", html.as_uri()])
