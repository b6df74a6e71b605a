"""`bench report RUN_DIR`: RUN_DIR/report.html (self-contained, charts) and RUN_DIR/report.md (CI summary).

Both lead with the machine the figures were measured on and "The article's claims, measured"; the
verdict rules are data (harness/claims.yaml), judged by harness/claims.py. The rows of every table
are computed once (model.py; the capacity section, from capacity.json, in capacity_section.py) and
laid out twice (markdown.py, html.py; charts.py and svgchart.py draw the page's charts). browser.py
renders the page in headless Chromium for a screenshot.
"""

from __future__ import annotations

import sys
from pathlib import Path

from harness import claims, result
from harness.report import html, markdown, model


def write(run_dir: Path, claims_file: Path | None = None) -> tuple[Path, Path]:
    """Write report.html and report.md into the run folder; returns their paths."""
    run = result.load(run_dir)
    judgements = claims.judge_all(run, claims.load(claims_file or claims.DEFAULT_FILE))
    rows = model.rows(run, judgements)
    html_path, md_path = run.root / "report.html", run.root / "report.md"
    html_path.write_text(html.page(rows, run))
    md_path.write_text(markdown.markdown(rows))
    return html_path, md_path


def main(run_dir: str, claims_file: Path | None = None, screenshot: bool = False) -> int:
    try:
        html_path, md_path = write(Path(run_dir), claims_file)
    except (result.ResultsError, claims.ClaimsError) as e:
        print(f"bench report: {e}", file=sys.stderr)
        return 2
    print(f"wrote {html_path}\nwrote {md_path}")
    if screenshot:
        from harness.report import browser

        try:
            shot = browser.screenshot(html_path, html_path.with_suffix(".png"))
        except browser.BrowserError as e:
            print(f"bench report: screenshot: {e}", file=sys.stderr)
            return 1
        print(f"wrote {shot}")
    return 0
