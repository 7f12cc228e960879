"""The HTML report as a browser renders it: headless Chromium lays out the page with no
network and the chart's bars get their drawn sizes. Chromium is required, never skipped.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from reconciliation import reports
from reconciliation.service import RunSummary

# Appended to a copy of the report only: after layout, each bar's drawn box is written
# back into the DOM, so `--dump-dom` shows what was rendered, not only the markup.
_PROBE = """<script>
window.addEventListener("load", () => {
  const bars = [...document.querySelectorAll("svg#chart rect.bar")].map(r => {
    const box = r.getBoundingClientRect();
    return {category: r.dataset.category, width: box.width, height: box.height};
  });
  const out = document.createElement("pre");
  out.id = "probe";
  out.textContent = JSON.stringify(bars);
  document.body.appendChild(out);
});
</script>"""


def chromium() -> str:
    """The Chromium binary; the test fails (not skips) without it, since CI installs it."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    pytest.fail("headless Chromium is needed to check the HTML report: apt-get install chromium")


def rendered_bars(html: Path) -> list[dict[str, object]]:
    """Each chart bar's category and drawn size in headless Chromium (offline)."""
    with tempfile.TemporaryDirectory(prefix="sika-chromium-") as tmp:
        page = Path(tmp) / html.name
        page.write_text(html.read_text(encoding="utf-8").replace("</body>", _PROBE + "</body>"))
        proc = subprocess.run(
            [
                chromium(),
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                f"--user-data-dir={tmp}/profile",
                "--virtual-time-budget=5000",
                "--dump-dom",
                page.as_uri(),
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert proc.returncode == 0, proc.stderr[-2000:]
    found = re.search(r'<pre id="probe">(.*?)</pre>', proc.stdout, re.S)
    assert found, f"the page did not finish loading in Chromium:\n{proc.stdout[:2000]}"
    return json.loads(found.group(1).replace("&quot;", '"'))


def test_chart_is_drawn_in_headless_chromium(tmp_path: Path) -> None:
    # Given a run with breaks in three categories
    counts = dict.fromkeys(reports.Category, 0)
    counts.update({"matched": 40, "amount_mismatch": 2, "reversed_after_success": 1})
    amounts = {c: n * 4000 for c, n in counts.items()}
    summary = RunSummary(7, "tmoney", dt.date(2026, 11, 23), counts, amounts, 0, 0, 1, 2)
    page = tmp_path / "report.html"
    page.write_bytes(reports.render_html(summary, [], []))
    # When Chromium renders it
    bars = {bar["category"]: bar for bar in rendered_bars(page)}
    # Then every category has its bar, drawn wider the more lines it holds, and none drawn
    # for an empty category
    assert set(bars) == {c.value for c in reports.Category}
    assert bars["matched"]["width"] > bars["amount_mismatch"]["width"] > 0
    assert bars["amount_mismatch"]["width"] >= bars["reversed_after_success"]["width"] > 0
    assert bars["missing_in_ledger"]["width"] == 0
    assert all(bar["height"] > 0 for bar in bars.values())
    assert "http" not in page.read_text().replace('xmlns="http://www.w3.org/2000/svg"', "")
