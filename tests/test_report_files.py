"""`bench report RUN_DIR`: report.md and report.html from a synthetic run (no browser: see test_report_browser)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from harness import cli, report, svgchart
from tests.test_report_synthetic import MACHINE, article_cells, result, write_run


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    root = write_run(tmp_path_factory.mktemp("r") / "run", article_cells(), run_id="20260101-120000")
    html_path, md_path = report.write(root)
    return html_path.read_text(), md_path.read_text()


def test_cli_writes_both_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = write_run(tmp_path / "run", [result("sync", "baseline"), result("async", "baseline")])
    assert cli.main(["report", str(root)]) == 0
    assert (root / "report.html").stat().st_size > 0 and (root / "report.md").stat().st_size > 0
    assert f"wrote {root / 'report.md'}" in capsys.readouterr().out


def test_cli_bad_run_dir_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["report", str(tmp_path / "nope")]) == 2
    assert "no such run folder" in capsys.readouterr().err


def test_run_without_run_json_still_reports(tmp_path: Path) -> None:
    root = write_run(tmp_path / "run", [result("async", "baseline")], machine=False)
    (root / "run.json").unlink()  # an interrupted run: only the cells' result.json
    _, md = report.write(root)
    assert "machine not recorded" in md.read_text()


def test_markdown_leads_with_machine_and_claims(written: tuple[str, str]) -> None:
    _, md = written
    assert md.startswith("# sync vs async: run 20260101-120000\n")
    machine = next(line for line in md.splitlines() if line.startswith("**Measured on**"))
    for part in (MACHINE["hostname"], "2 CPUs", "7.8 GiB", "Kafka 4.4.0", "Toxiproxy v2.12.0", "Java 17.0.15"):
        assert part in machine
    claims = md.split("## The article's claims, measured")[1].split("\n## ")[0]
    assert "| claim | scenario | metric and rule | sync | async | verdict |" in claims
    assert "Broker could become a SPoF" in claims
    assert claims.count(f"{report.VERDICT_MARK['confirmed']} **confirmed**") == 13
    assert claims.count(f"{report.VERDICT_MARK['not shown']} **not shown**") == 3
    assert "broker-down fault.error_ratio = 100 %" in claims  # the measured value, formatted


def test_markdown_ledger_and_hypotheses(written: tuple[str, str]) -> None:
    _, md = written
    assert (
        "| pipeline | scenario | attempted | acknowledged | failed | unknown | delivered | redeliveries | lost | "
        "unexpected | recovered | dead_lettered |" in md
    )
    assert "| sync | notification-down | 2000 | 1300 | 700 | 0 | 1300 | 0 | 0 | 0 | 0 | 0 |" in md
    assert "| async | baseline | PASS | ✓ `lost == 0`: 0 |" in md
    assert "| notification-down | 100 reactions/s | 20 s | notification down 5-12 s |" in md


def test_html_is_self_contained(written: tuple[str, str]) -> None:
    html, _ = written
    assert "Content-Security-Policy" in html and "default-src 'none'" in html
    refs = re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)""", html)
    assert refs and all(r.startswith("#") for r in refs), refs  # in-page links only
    assert "<link" not in html and "@import" not in html and "url(" not in html


def test_html_has_every_chart_with_shared_scales(written: tuple[str, str]) -> None:
    html, _ = written
    charts = re.findall(r"<svg class=\"chart\".*?</svg>", html, re.S)
    assert len(charts) == 8 * 3 * 4  # scenarios x pipelines x (throughput, api, e2e, backlog)
    assert all('<path class="line"' in c for c in charts)
    section = html.split('id="s-notification-down"')[1].split("</section>")[0]
    assert section.count('<rect class="fault"') == 3 * 4  # the fault window on every chart of the scenario
    backlog = [c for c in re.findall(r"<svg class=\"chart\".*?</svg>", section, re.S) if "backlog" in c]
    ticks = {tuple(re.findall(r'<text class="tick"[^>]*text-anchor="end">([^<]+)<', c)) for c in backlog}
    assert len(ticks) == 1  # sync's empty backlog is drawn on async's scale


def test_html_has_claims_ledger_and_machine(written: tuple[str, str]) -> None:
    html, _ = written
    assert "<h2>The article's claims, measured</h2>" in html
    assert html.count('class="badge confirmed"') == 13
    for col in ("attempted", "acknowledged", "failed", "unknown", "delivered", "redeliveries", "lost", "unexpected",
                "recovered", "dead_lettered"):  # fmt: skip
        assert f'<th class="num">{col}</th>' in html
    assert "Measured on</b> ci-runner-7: 2 CPUs" in html
    assert '<td class="">prometheus (doctor)</td><td class="">2.42.0</td>' in html


def test_chart_breaks_lines_at_gaps_and_shades_faults() -> None:
    svg = svgchart.chart(
        "t",
        [svgchart.Line("p99", [0.01, None, 0.02, 0.03], "#000")],
        4,
        svgchart.log_scale([0.01, 0.03]),
        str,
        bands=[svgchart.Band(1, 2, "a down"), svgchart.Band(1.01, 2.02, "b down"), svgchart.Band(2.5, 3, "c")],
    )
    d = re.search(r'<path class="line" d="([^"]+)"', svg)
    assert d and d.group(1).count("M") == 2  # a gap starts a new segment
    assert svg.count('<rect class="fault"') == 2 and "a down + b down: 1.0-2.0 s" in svg


def test_scales() -> None:
    assert svgchart.linear_scale([0, 730]).hi == 800
    assert svgchart.linear_scale([None]).hi == 1
    s = svgchart.log_scale([0.0012, 0.45])
    assert (s.lo, s.hi) == (0.001, 1.0)
    assert s.ticks()[:3] == [0.001, 0.01, 0.1]
    assert svgchart.log_scale([0.002, 0.008]).ticks() == [0.001, 0.002, 0.005, 0.01]
