"""The claims rules file (harness/claims.yaml) and the verdicts it gives on synthetic runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from harness import claims
from harness import result as result_model
from harness.result import CellResult
from tests.synthetic_balancer import balancer_cells
from tests.synthetic_run import article_cells, result, trace_summary, write_run

# Every bullet of the article's advantages/disadvantages lists (its "retires" read as "retries").
ARTICLE_CLAIMS = (
    "It is simple and intuitive", "Communication happens in realtime",
    "Caller is blocked until the response is received", "Servers need to be pro-actively provisioned for peaks",
    "There is a risk of cascading failures", "The participating services are strongly coupled",
    "Services do not need to wait for the response and can move on", "Services can handle surges and spikes better",
    "Servers do not need to be proactively provisioned", "No extra network hop due to Load Balancer",
    "No request drop due to target service being overwhelmed", "Better control over failures and retries is possible",
    "Services are truly decoupled", "Eventual consistency", "Broker could become a SPoF",
    "It is harder to track the flow of the message between services",
)  # fmt: skip
HEAD = "claims:\n  - id: a\n    side: sync\n    kind: advantage\n    text: t\n"  # a claim missing only its rule


def article_run(changes: dict[tuple[str, str], dict[str, Any]] | None = None) -> list[CellResult]:
    """The article-shaped matrix and the replicated topology's cells (tests/synthetic_balancer.py)."""
    return article_cells(changes) + balancer_cells(changes)


def verdicts(tmp_path: Path, cells: list[CellResult]) -> dict[str, claims.Judgement]:
    run = result_model.load(write_run(tmp_path / "run", cells))
    return {j.claim.id: j for j in claims.judge_all(run)}


def test_shipped_rules_load_and_cover_the_article() -> None:
    loaded = claims.load()
    ids = [c.id for c in loaded]
    assert len(ids) == len(set(ids))
    for expected in (
        "sync-realtime", "sync-caller-blocked", "sync-provision-for-peaks", "sync-cascading-failures",
        "async-handles-surges", "async-no-request-drop", "async-failure-control", "async-broker-spof",
        "async-eventual-consistency",
    ):  # fmt: skip
        assert expected in ids
    written = {c.text.lower() for c in loaded}
    for bullet in ARTICLE_CLAIMS:
        assert bullet.lower() in written, f"no rule for the article's claim {bullet!r}"


def test_article_shaped_run_confirms_every_measurable_claim(tmp_path: Path) -> None:
    got = verdicts(tmp_path, article_run())
    for claim_id, j in got.items():
        if j.claim.holds is None:
            assert j.verdict == "not shown", claim_id
        else:
            assert j.verdict == "confirmed", (claim_id, j.reason, j.values)


# One input that refutes each measurable claim: the article-shaped run with one cell changed.
REFUTING: dict[str, dict[tuple[str, str], dict[str, Any]]] = {
    "sync-realtime": {("sync", "baseline"): {"e2e": 0.2}},
    "sync-caller-blocked": {("sync", "push-slow"): {"fault_api": 0.01}},
    "sync-provision-for-peaks": {("sync", "surge-over-capacity"): {"surge_error": 0.0, "surge_api": 0.004}},
    "sync-cascading-failures": {("sync", "notification-down"): {"fault_error": 0.0}},
    "sync-strongly-coupled": {("sync", "consumer-crash"): {"fault_error": 0.0}},
    "async-no-wait": {("async", "push-slow"): {"fault_api": 0.45}},
    "async-handles-surges": {("async", "surge-over-capacity"): {"surge_api": 0.9}},
    "async-no-provisioning": {("async", "surge-over-capacity"): {"surge_error": 0.2}},
    "async-no-request-drop": {("async", "notification-down"): {"fault_error": 0.1}},
    "async-failure-control": {("async", "flaky-network"): {"fault_error": 0.1}},
    "async-decoupled": {("async", "notification-down"): {"fault_error": 0.5}},
    "async-eventual-consistency": {("async", "notification-down"): {"fault_e2e": None}},
    "async-broker-spof": {("async", "broker-down"): {"fault_error": 0.0}},
    # The balancer adds nothing measurable: HAProxy as fast as the client-side control.
    "async-no-lb-hop": {("sync", "balancer-hop"): {"e2e": 0.002, "api": 0.004}},
    "async-hard-to-trace": {
        ("async", "baseline"): {"traces": trace_summary("async", 6.0)},
        ("async", "consumer-crash"): {"traces": trace_summary("async", 6.0)},
    },
}


def test_every_measurable_claim_has_a_refuting_input() -> None:
    assert sorted(REFUTING) == sorted(c.id for c in claims.load() if c.holds is not None)


@pytest.mark.parametrize("claim_id", sorted(REFUTING))
def test_each_rule_can_come_out_either_way(tmp_path: Path, claim_id: str) -> None:
    assert verdicts(tmp_path / "yes", article_run())[claim_id].verdict == "confirmed"
    j = verdicts(tmp_path / "no", article_run(REFUTING[claim_id]))[claim_id]
    assert j.verdict == "refuted", (claim_id, j.reason, j.values)


@pytest.mark.parametrize("claim_id", sorted(REFUTING))
def test_each_rule_comes_out_either_way_on_its_intervals_too(tmp_path: Path, claim_id: str) -> None:
    # Every cell with its time-block intervals, as a run of one repetition has them: a rule whose
    # input a draw of blocks could hide (a whole-cell p99 of a fault's seconds) would be inconclusive.
    (claim,) = [c for c in claims.load() if c.id == claim_id]
    read = {tuple(n.split(".")[:2]) for n in claim.inputs()}  # the cells it reads: only those are bootstrapped

    def run(changes: dict[tuple[str, str], dict[str, Any]]) -> list[CellResult]:
        keys = {(c.pipeline, c.scenario) for c in article_cells()} & read
        return article_cells({**changes, **{k: {**changes.get(k, {}), "intervals": True} for k in keys}}) + (
            balancer_cells(changes)
        )

    assert verdicts(tmp_path / "yes", run({}))[claim_id].verdict == "confirmed"
    j = verdicts(tmp_path / "no", run(REFUTING[claim_id]))[claim_id]
    assert j.verdict == "refuted", (claim_id, j.reason, j.values)


def test_surge_claims_are_not_confirmed_without_the_surge_even_with_the_faults_kept(tmp_path: Path) -> None:
    # The push link stays slow and sync stays saturated-looking, but the load is flat: nothing to
    # compare the surge with, so nothing about surges can be confirmed.
    flat = {(p, "surge-over-capacity"): {"surge": None, "api": 0.9 if p != "async" else 0.004, "backlog_peak": 2000}
            for p in ("sync", "sync-resilient", "async")}  # fmt: skip
    got = verdicts(tmp_path, article_cells(flat))
    for claim_id in ("sync-provision-for-peaks", "async-handles-surges", "async-no-provisioning"):
        assert got[claim_id].verdict != "confirmed", (claim_id, got[claim_id].reason)


def test_by_design_claims_say_why() -> None:
    by_design = {c.id: c.by_design for c in claims.load() if c.by_design}
    assert set(by_design) >= {"sync-caller-blocked", "async-no-wait", "async-eventual-consistency", "async-broker-spof"}
    assert all(len(reason.split()) >= 5 for reason in by_design.values())


def test_missing_cell_is_not_shown_and_says_which(tmp_path: Path) -> None:
    got = verdicts(tmp_path, [result("sync", "baseline"), result("async", "baseline")])
    j = got["async-broker-spof"]
    assert j.verdict == "not shown"
    assert "no async x broker-down cell in this run" in j.reason
    assert got["sync-realtime"].verdict == "confirmed"  # baseline is all it needs


def test_null_metric_is_not_shown(tmp_path: Path) -> None:
    cells = [result("sync", "baseline", measured={"e2e.p99": None}), result("async", "baseline")]
    j = verdicts(tmp_path, cells)["sync-realtime"]
    assert j.verdict == "not shown"
    assert "sync.baseline.e2e.p99 was not measured" in j.reason


def test_precondition_false_is_not_shown(tmp_path: Path) -> None:
    # Sync took the surge in its stride: "async handles surges better" has nothing to show.
    calm = {(p, "surge-over-capacity"): {"surge_error": 0.0, "surge_api": 0.004} for p in ("sync", "sync-resilient")}
    j = verdicts(tmp_path, article_cells(calm))["async-handles-surges"]
    assert j.verdict == "not shown"
    assert j.reason.startswith("precondition false:")


def test_division_by_zero_is_not_shown(tmp_path: Path) -> None:
    rules = tmp_path / "c.yaml"
    rules.write_text(
        "claims:\n  - {id: x, side: sync, kind: advantage, text: t,\n"
        "     holds: 'sync.baseline.lost / sync.baseline.lost > 1'}\n"
    )
    run = result_model.load(write_run(tmp_path / "run", [result("sync", "baseline")]))
    (j,) = claims.judge_all(run, claims.load(rules))
    assert (j.verdict, j.reason) == ("not shown", "a value it divides by is zero")


def test_default_scenario_fills_two_part_names() -> None:
    (c,) = [c for c in claims.load() if c.id == "async-handles-surges"]
    assert c.holds is not None and c.holds.names["async.peak.api.p99"] == "async.surge-over-capacity.peak.api.p99"
    assert c.scenarios == ["surge-over-capacity"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("claims: 3\n", r"c\.yaml:1: expected a mapping with a `claims:` list"),
        ("claims:\n  - id: a\n    side: sync\n", r"c\.yaml:2: claim 'a': missing field 'kind'"),
        ("claims:\n  - id: 5\n    side: sync\n", r"c\.yaml:2: claim 5: id must be a non-empty string, got 5"),
        (
            HEAD + "    holds: sync.baseline.api.p99 <\n",
            r"c\.yaml:6: holds: column 24: unexpected 'end of expression'",
        ),
        (
            HEAD + "    holds: sync.baseline.api.p98 < 1\n",
            r"c\.yaml:6: holds: column 1: 'sync.baseline.api.p98': unknown metric 'api.p98'",
        ),
        (
            HEAD + "\n    holds: grpc.baseline.lost == 0\n",
            r"c\.yaml:7: holds: column 1: 'grpc.baseline.lost': unknown pipeline 'grpc'",
        ),
        (
            "claims:\n  - id: a\n    side: sync\n    kind: advantage\n    text: t\n    verdict: yes\n",
            r"c\.yaml:6: unknown field 'verdict'",
        ),
        ("claims:\n  - id: a\n    side: sync\n    kind: advantage\n    text: t\n", r"needs a `note`"),
        ("claims:\n  - {id: a, side: both, kind: advantage, text: t}\n", r"c\.yaml:2: claim 'a': side must be"),
        ("claims:\n  - [a]\n", r"c\.yaml:2: each claim must be a mapping"),
        ("claims:\n  - {id: a\n", r"c\.yaml:3: not valid YAML"),
        (
            "claims:\n  - {id: a, side: sync, kind: advantage, text: t, holds: null, note: n}\n"
            "  - {id: a, side: sync, kind: advantage, text: t, holds: null, note: n}\n",
            r"c\.yaml:3: claim 'a': duplicate id",
        ),
    ],
)
def test_bad_rules_name_file_and_line(tmp_path: Path, body: str, message: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(body)
    with pytest.raises(claims.ClaimsError, match=message):
        claims.load(path)


def test_a_cell_whose_generator_fell_behind_is_never_used(tmp_path: Path) -> None:
    from harness.result import CheckResult

    bound = result("sync", "baseline")
    assert bound.hypothesis is not None
    bound.hypothesis.checks.insert(
        0,
        CheckResult(
            check="load generator bound == no", metric="loadgen.bound", measured=1.0, passed=False, precondition=True
        ),
    )
    j = verdicts(tmp_path, [bound, result("async", "baseline")])["sync-realtime"]
    assert j.verdict == "not shown"
    assert j.reason == "sync--baseline: load generator bound == no failed"


def test_balancer_hop_is_not_shown_without_the_replicated_cells_or_with_unequal_replicas(tmp_path: Path) -> None:
    assert verdicts(tmp_path / "none", article_cells())["async-no-lb-hop"].verdict == "not shown"
    uneven = article_cells() + balancer_cells()
    for cell in uneven:
        if cell.scenario == "balancer-hop-client" and cell.topology is not None:
            cell.topology.replicas = 3
    j = verdicts(tmp_path / "uneven", uneven)["async-no-lb-hop"]
    assert j.verdict == "not shown"
    assert j.reason.startswith("precondition false:")
