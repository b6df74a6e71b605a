"""report.html in real headless Chromium (Debian's `chromium`): renders, no console errors, charts drawn,
the cursor readout works, and a screenshot is saved next to the report."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from harness import report
from harness.report import browser
from tests.synthetic_run import article_cells, write_run

CHARTS = 8 * 3 * 4  # scenarios x pipelines x chart kinds in article_cells()

# Appended to a copy of the page: moves the mouse over the first chart and records the readout.
HOVER = """<script>
(function () {
  var svg = document.querySelector("svg.chart"), r = svg.getBoundingClientRect();
  svg.dispatchEvent(new MouseEvent("mousemove", {clientX: r.left + r.width * 0.6, clientY: r.top + r.height / 2}));
  var lines = Array.prototype.map.call(svg.querySelectorAll(".readout text"), function (t) { return t.textContent; });
  document.body.setAttribute("data-readout", lines.join(" | "));
})();
</script></body>"""


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not Path(browser.CHROMIUM).exists():
        pytest.fail(
            f"{browser.CHROMIUM} is missing: `make setup` installs it "
            "(provisioning must run `apt-get install -y --no-install-recommends chromium`)"
        )
    root = write_run(tmp_path_factory.mktemp("browser") / "run", article_cells())
    html, _ = report.write(root)
    return html


def test_renders_without_console_errors_and_draws_every_chart(page: Path) -> None:
    shown = browser.render(page)
    assert shown.console == []
    assert f'data-charts-ready="{CHARTS}"' in shown.dom  # the page's script ran to its end
    assert shown.dom.count('<svg class="chart"') == CHARTS
    assert shown.dom.count('<path class="line"') >= CHARTS


def test_cursor_readout(page: Path) -> None:
    probe = page.with_name("hover.html")
    probe.write_text(page.read_text().replace("</body>", HOVER))
    shown = browser.render(probe)
    assert shown.console == []
    assert 'data-readout="t = 12-13 s | target: 100/s | delivered: 100/s | ack: 100/s' in shown.dom


def test_console_errors_are_caught(tmp_path: Path, page: Path) -> None:
    # The check above must not pass vacuously: a network fetch (blocked by the page's CSP) and an
    # exception both reach the console log this harness reads.
    bad = tmp_path / "bad.html"
    bad.write_text(
        page.read_text().replace("</body>", '<img src="https://example.com/x.png"><script>nope();</script></body>')
    )
    console = browser.render(bad).console
    assert any("Content Security Policy" in line for line in console)
    assert any("Uncaught ReferenceError" in line for line in console)


def test_screenshot_next_to_the_report(page: Path) -> None:
    shot = browser.screenshot(page, page.with_suffix(".png"))
    assert shot == page.parent / "report.png"
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == (1400, 3200)
    assert len(data) > 100_000  # a blank page compresses to a few KB
