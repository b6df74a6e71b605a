"""`bench report RUN_DIR`: RUN_DIR/report.html (self-contained, charts) and RUN_DIR/report.md (CI summary).

Both lead with the machine the figures were measured on and "The article's claims, measured"; the
verdict rules are data (harness/claims.yaml), judged by harness/claims.py. The rows of every table
are computed once (model.py; the capacity section, from capacity.json, in capacity_section.py) and
laid out twice (markdown.py, html.py; charts.py and svgchart.py draw the page's charts). browser.py
renders the page in headless Chromium for a screenshot.
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

from harness import claims, result
from harness.capacity import report as capacity_report
from harness.report import html, markdown, model


def write(run_dir: Path, claims_file: Path | None = None) -> tuple[Path, Path]:
    """Write report.html and report.md into the run folder; returns their paths."""
    run = result.load(run_dir)
    judgements = claims.judge_all(run, claims.load(claims_file or claims.DEFAULT_FILE))
    rows = model.rows(run, judgements)
    pages = {run.root / "report.html": html.page(rows, run), run.root / "report.md": markdown.markdown(rows)}
    written: list[Path] = []
    try:
        for path, text in pages.items():
            written.append(path)  # before writing: a write that fails midway leaves a partial file
            path.write_text(text)
    except OSError:
        for path in written:  # both or neither: a lone report.html would pass for this run's report
            with contextlib.suppress(OSError):  # e.g. a folder in the page's place: not ours to remove
                path.unlink(missing_ok=True)
        raise
    return written[0], written[1]


def main(run_dir: str, claims_file: Path | None = None, screenshot: bool = False) -> int:
    try:
        html_path, md_path = write(Path(run_dir), claims_file)
    except (result.ResultsError, claims.ClaimsError, capacity_report.CapacityFileError) as e:
        print(f"bench report: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"bench report: cannot write the report into {run_dir}: {e}", file=sys.stderr)
        return 1
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
