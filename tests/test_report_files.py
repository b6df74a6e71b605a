"""`bench report RUN_DIR`: report.md and report.html from a synthetic run (no browser: see test_report_browser)."""

from __future__ import annotations

import re
from html import unescape
from pathlib import Path
from typing import Any

import pytest

from facts.measures import NO_VALUE
from harness import cli, report
from harness.claims import load as load_claims
from harness.report import markdown, model, svgchart
from harness.result import FaultWindow
from tests.synthetic_run import MACHINE, article_cells, result, write_run


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


def test_a_bad_capacity_file_in_the_run_exits_2_naming_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = write_run(tmp_path / "run", [result("async", "baseline")])
    (root / "capacity.json").write_text("")
    assert cli.main(["report", str(root)]) == 2
    assert f"bench report: {root / 'capacity.json'}: cannot read a capacity result" in capsys.readouterr().err
    assert not (root / "report.html").exists() and not (root / "report.md").exists()


def test_an_unwritable_report_leaves_neither_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = write_run(tmp_path / "run", [result("async", "baseline")])
    (root / "report.md").mkdir()  # report.html is written first, then report.md fails
    assert cli.main(["report", str(root)]) == 1
    assert f"bench report: cannot write the report into {root}" in capsys.readouterr().err
    assert not (root / "report.html").exists()  # no lone page passing for this run's report


def test_a_page_cut_short_by_a_full_disk_is_removed_with_the_other(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root = write_run(tmp_path / "run", [result("async", "baseline")])
    real = Path.write_text

    def full_disk(self: Path, text: str, *args: Any, **kwargs: Any) -> int:
        if self.name == "report.md":
            real(self, text[:10])  # created and partly written, then the disk is full
            raise OSError(28, "No space left on device")
        return real(self, text, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", full_disk)
    assert cli.main(["report", str(root)]) == 1
    assert "No space left on device" in capsys.readouterr().err
    assert not (root / "report.html").exists() and not (root / "report.md").exists()


def test_run_without_run_json_still_reports(tmp_path: Path) -> None:
    root = write_run(tmp_path / "run", [result("async", "baseline")], machine=False)
    assert not (root / "run.json").exists()  # an interrupted run: only the cells' result.json
    _, md = report.write(root)
    assert "machine not recorded" in md.read_text()


def test_markdown_leads_with_machine_and_claims(written: tuple[str, str]) -> None:
    _, md = written
    assert md.startswith("# sync vs async: run 20260101-120000\n")
    machine = next(line for line in md.splitlines() if line.startswith("**Measured on**"))
    for part in (MACHINE.hostname, "2 CPUs", "7.8 GiB", "Kafka 4.4.0", "Toxiproxy v2.12.0", "Java 17.0.15"):
        assert part in machine
    claims = md.split("## The article's claims, measured")[1].split("\n## ")[0]
    assert "| claim | scenario | metric and rule | sync | async | verdict |" in claims
    assert "Broker could become a SPoF" in claims
    assert claims.count(f"{markdown.VERDICT_MARK['confirmed']} **confirmed**") == 14
    assert claims.count(f"{markdown.VERDICT_MARK['not shown']} **not shown**") == 2
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


def test_faults_say_per_cell_what_failed_or_never_applied() -> None:
    planned = FaultWindow(index=0, kind="kill", target="process:kafka", label="kill kafka", start=5.0, end=10.0)
    fine = planned.model_copy(update={"applied_offset": 5.0, "undone_offset": 10.0, "recovered_offset": 12.0})
    failed = planned.model_copy(update={"error": "ConnectionError: refused"})
    skipped = planned  # never applied: the load ended first
    cells = [result(p, "s", faults=(f,)) for p, f in (("sync", fine), ("async", failed), ("sync-resilient", skipped))]
    assert [f.text for f in model.fault_rows(cells)] == [
        "kill kafka 5-10 s (FAILED in async: ConnectionError: refused; not applied in sync-resilient)"
    ]
    assert [f.text for f in model.fault_rows(cells[:1])] == ["kill kafka 5-10 s"]
    assert model.fault_rows([]) == ()
    assert model.ScenarioRow("s", "", "", 20.0, ()).fault_text == "none"


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
    assert html.count('class="badge confirmed"') == 14
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


def _md_claims(md: str) -> list[tuple[str, str, list[str], list[str], str]]:
    """(claim, verdict, sync values, async values, notes) of each row of report.md's claims table."""
    section = md.split("## The article's claims, measured")[1].split("\n## ")[0]
    out = []
    for line in [ln for ln in section.splitlines() if ln.startswith("| ")][1:]:
        cells = [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line)[1:-1]]
        verdict, _, notes = cells[5].partition(": ")
        values = [[] if c == NO_VALUE else c.split("<br>") for c in cells[3:5]]
        out.append((cells[0].rsplit(" _(", 1)[0], verdict.split("**")[1], values[0], values[1], notes))
    return out


def _html_claims(page: str) -> list[tuple[str, str, list[str], list[str], str]]:
    """The same, read from report.html's claims table."""
    section = page.split('<section id="claims">')[1].split("</section>")[0]
    out = []
    for row in re.findall(r"<tr>(.*?)</tr>", section.split("<tbody>")[1]):
        cells = re.findall(r'<td class="[^"]*">(.*?)</td>', row)
        values = [
            [unescape(v) for v in re.sub(r"</?div[^>]*>", "", c).split("<br>") if v != NO_VALUE] for c in cells[3:5]
        ]
        verdict = re.search(r'<span class="badge [^"]+">([^<]+)</span>', cells[5])
        assert verdict
        notes = "; ".join(unescape(n) for n in re.findall(r'<div class="reason">([^<]*)</div>', cells[5]))
        out.append((unescape(cells[0].split("<div")[0]), verdict.group(1), values[0], values[1], notes))
    return out


def test_markdown_and_html_show_the_same_claim_rows(written: tuple[str, str]) -> None:
    page, md = written
    md_rows, html_rows = _md_claims(md), _html_claims(page)
    assert len(md_rows) == len(load_claims()) and md_rows == html_rows
    assert {r[1] for r in md_rows} >= {"confirmed", "not shown"}  # not vacuous: both kinds of verdict
    assert any(r[2] and r[3] for r in md_rows)  # and values on both sides


def test_a_claims_note_is_shown_whatever_the_verdict(written: tuple[str, str]) -> None:
    _, md = written
    noted = {c.text: c.note for c in load_claims() if c.note}
    confirmed = [r for r in _md_claims(md) if r[1] == "confirmed" and r[0] in noted]
    assert confirmed and all(noted[r[0]] in r[4] for r in confirmed)
    not_shown = [r for r in _md_claims(md) if r[1] == "not shown"]
    assert not_shown and all(r[4] for r in not_shown)  # the reason, first


def test_claims_that_hold_by_design_say_so_and_are_counted_apart(written: tuple[str, str]) -> None:
    _, md = written
    by_design = {c.text: c.by_design for c in load_claims() if c.by_design}
    rows = {r[0]: r for r in _md_claims(md)}
    assert by_design and all(f"by design: {reason}" in rows[text][4] for text, reason in by_design.items())
    # A claim reading a scenario the article-shaped run lacks (the replicated topology's) is not shown.
    played = {c.scenario for c in article_cells()}
    decided = sum(1 for c in load_claims() if c.holds is not None and not c.by_design and set(c.scenarios) <= played)
    not_shown = len(load_claims()) - decided - len(by_design)
    counts = f"{decided} confirmed, 0 refuted, 0 inconclusive, {not_shown} not shown"
    assert f"{counts}; by design of the pipeline: {len(by_design)} confirmed" in md


def test_the_capacity_the_run_used_is_shown_beside_it(tmp_path: Path) -> None:
    from harness.capacity.ceilings import Ceiling
    from harness.capacity.config import load_config
    from harness.capacity.report import (
        CPU_BOUNDS,
        CapacityReport,
        CpuBound,
        GeneratorFigures,
        GeneratorOnHealthz,
        PipelineCapacity,
        TracingCost,
    )
    from harness.capacity.search import SearchResult

    config = load_config()
    found = SearchResult(limits=["api.p99"], rate=300.0, broke_at=350.0, bound="pipeline", reasons=["API p99 165 ms"])
    cpu = {"reaction": 1.4}
    bound = SearchResult(limits=["api.p99"], rate=400.0, broke_at=450.0, bound="generator", reasons=["lag"])
    cap = CapacityReport(
        run_id="20260101-000000-capacity", hostname="vm", cpus=2, quick=True, started_unix=0.0,
        service_level=config.service_level, search=config.search.quick,
        pipelines={
            "sync": PipelineCapacity(pipeline="sync", capacity=found, cpu_rate=200, cpu_seconds_per_1000=cpu,
                                     tracing_costs=[TracingCost(setting="0.01", cpu_seconds_per_1000=cpu),
                                                    TracingCost(setting="off", cpu_seconds_per_1000={"reaction": 1.0,
                                                                                                     "loadgen": 9.0}),
                                                    TracingCost(setting="1", cpu_seconds_per_1000={"reaction": 2.5},
                                                                held=False)]),
            "async": PipelineCapacity(pipeline="async", capacity=bound, cpu_rate=200),
        },
        generator=GeneratorFigures(
            kept_up_max_rate=800, fell_behind_min_rate=None, cpu_seconds_per_1000=0.33, wrk_cpu_seconds_per_1000=0.014,
            healthz=GeneratorOnHealthz(rate=200, cpu_seconds_per_1000=0.2, lag_p99_seconds=0.0012,
                                       wrk_cpu_seconds_per_1000=0.01, wakeups_per_request=1.5,
                                       wakeup_cpu_seconds=0.00004, wrk_wakeups_per_request=0.02),
            at_top=GeneratorOnHealthz(rate=1900, cpu_seconds_per_1000=0.04, lag_p99_seconds=0.0035,
                                      wrk_cpu_seconds_per_1000=0.01, wakeups_per_request=0.2,
                                      wakeup_cpu_seconds=0.00004, wrk_wakeups_per_request=0.02),
            at_max=GeneratorOnHealthz(rate=19500, cpu_seconds_per_1000=0.029, lag_p99_seconds=0.0038,
                                      wrk_cpu_seconds_per_1000=0.013, achieved_per_second=14855, in_flight_cap=64,
                                      wrk_per_second=15015),
        ),
    )  # fmt: skip
    cap.cpu_bounds = [CpuBound(name="sync", rate=300, components=["pushsink", "reaction"], cpu_seconds_per_1000=2.5,
                               cpus=2, per_second=800)]  # fmt: skip
    root = write_run(tmp_path / "run", article_cells())
    cap.write(root / "capacity.json")
    html_path, md_path = report.write(root)
    md = md_path.read_text()
    assert "## Capacity and ceilings" in md
    bound_text = "sync: pushsink, reaction took 2.50 CPU-s per 1,000 reactions at 300/s: 2 cores carry at most 800/s"
    assert f"{CPU_BOUNDS}\n\n- {bound_text}" in md
    assert f"<li>{bound_text}</li>" in html_path.read_text()
    assert "| sync | 300/s |" in md and "broke at 350/s: API p99 165 ms" in md
    assert "| **async** | 400/s |" in md and "GENERATOR-BOUND at 450/s" in md  # never the pipeline's: in bold/red
    assert "reaction 1.40" in md
    assert "vs wrk 0.014; kept up to 800/s; on GET /healthz at 200/s: 0.200 vs wrk 0.010 (20x), lag p99 1.2 ms" in md
    # of its 0.20 ms a request, the 1.48 wakeups beyond wrk's at 40 us explain 0.0592: 0.141 left, 14.1x wrk's 0.010
    assert "1.50 wakeups per request (wrk 0.02) at 40 us each: 0.141 with wrk's wakeups (14x)" in md
    # and again at the highest capacity of the run, where its fixed per-second work weighs least
    assert (
        "; at the run's top capacity, on GET /healthz at 1900/s: 0.040 vs wrk 0.010 (4.0x), lag p99 3.5 ms; "
        "0.20 wakeups per request (wrk 0.02) at 40 us each: 0.033 with wrk's wakeups (3.3x)"
    ) in md
    # and at its max beside wrk at its max, both saturating the server: the rate it achieved, not the one offered
    assert (
        "; on GET /healthz at its max (14855/s, wrk 15015/s; at most 64 in flight as wrk's connections): 0.029 vs wrk "
        "0.013 (2.2x)"
    ) in md
    assert "lag p99 3.8 ms" not in md  # of the requests it started, the rest missed: no schedule kept
    # what tracing costs: the services' CPU per setting over tracing off (the generator left out)
    assert "| sync | 1% of reactions | 1.40 | x1.40 | reaction 1.40 |" in md
    assert "| sync | off | 1.00 | x1.00 | reaction 1.00 |" in md
    assert "| sync | every reaction (broke its service level) | 2.50 | x2.50 |" in md
    # a report from a generator with a wake interval says how often it woke at most
    healthz = cap.generator.healthz if cap.generator is not None else None
    assert isinstance(healthz, GeneratorOnHealthz)
    healthz.wake_interval_seconds = 0.003
    cap.write(root / "capacity.json")
    assert "on GET /healthz at 200/s, waking at most every 3 ms: 0.200 vs wrk" in report.write(root)[1].read_text()
    # wrk paced to the generator's rate is the control at that rate, unless it could not achieve it
    healthz.achieved_per_second = 199.0
    healthz.paced_wrk = Ceiling(name="http.wrk.healthz.paced", tool="wrk", what="w", per_second=205.0,
                                cpu_seconds_per_1000=0.08)  # fmt: skip
    cap.write(root / "capacity.json")
    assert "vs wrk 0.010 (20x), wrk paced to the rate 0.080 (2.5x), lag p99" in report.write(root)[1].read_text()
    healthz.paced_wrk.detail = "played twice: paced with answers of 2.0 ms it achieved 240/s;\nwrk's own ..."
    cap.write(root / "capacity.json")
    assert "(2.5x) (played twice: paced with answers of 2.0 ms it achieved 240/s; wrk's own ...), lag p99" in (
        report.write(root)[1].read_text()
    )
    healthz.paced_wrk.detail = ""
    healthz.paced_wrk.per_second = 120.0  # a server too slow for the closed loop: no control
    cap.write(root / "capacity.json")
    md = report.write(root)[1].read_text()
    assert "wrk paced to the rate 0.080 (no control: it achieved 120/s, the generator 199/s)" in md
    healthz.paced_wrk = Ceiling(name="http.wrk.healthz.paced", tool="wrk", what="w", per_second=None, error="boom")
    cap.write(root / "capacity.json")
    assert "vs wrk 0.010 (20x), wrk paced to the rate failed (boom), lag p99" in report.write(root)[1].read_text()
