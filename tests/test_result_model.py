"""result.json as one typed model: every metric answered from one field, other schemas refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from facts import measures
from harness import result as result_model
from harness.ledger import Ledger
from tests.synthetic_run import article_cells, fault, result, write_run


def test_every_name_of_the_vocabulary_is_answered() -> None:
    cell = result("async", "baseline")
    assert sorted(cell.metrics()) == sorted(measures.NAMES)


def test_ledger_counts_are_the_vocabulary_s() -> None:
    assert tuple(f for f in Ledger.model_fields if f != "samples") == measures.LEDGER_COUNTS


def test_round_trip_through_the_run_folder(tmp_path: Path) -> None:
    cells = article_cells()
    run = result_model.load(write_run(tmp_path / "run", cells))
    assert run.pipelines == ["sync", "sync-resilient", "async"]
    assert run.scenarios[0] == "baseline"
    back = run.cell("async", "notification-down")
    assert back is not None and back == next(c for c in cells if c.folder == "async--notification-down")
    env = run.env()
    assert env["sync.notification-down.fault.error_ratio"] == 1.0
    assert env["async.notification-down.fault.error_ratio"] == 0.0
    assert env["sync.baseline.fault.error_ratio"] is None  # no fault window: nothing to measure


def test_an_interrupted_run_without_index_still_loads(tmp_path: Path) -> None:
    run = result_model.load(write_run(tmp_path / "run", [result("sync", "baseline")], machine=False))
    assert run.machine is None and [c.folder for c in run.cells] == ["sync--baseline"]


def test_a_fault_never_applied_has_no_window() -> None:
    applied = fault("x down", 5, 12)
    never = applied.model_copy(update={"applied_offset": None})
    assert applied.actual() == (5.02, 12.03)
    assert never.actual() is None
    cell = result("sync", "notification-down", faults=(never,), fault_error=1.0)
    assert cell.metrics()["fault.error_ratio"] is None


def test_another_schema_is_refused_with_its_path(tmp_path: Path) -> None:
    root = write_run(tmp_path / "run", [result("sync", "baseline")])
    path = root / "sync--baseline" / "result.json"
    data = json.loads(path.read_text())
    data["schema_version"] = 1
    path.write_text(json.dumps(data))
    with pytest.raises(result_model.ResultsError, match=f"{path}: written by another version"):
        result_model.load(root)


def test_an_unknown_or_missing_field_names_the_file_and_field(tmp_path: Path) -> None:
    root = write_run(tmp_path / "run", [result("sync", "baseline")])
    path = root / "sync--baseline" / "result.json"
    data = json.loads(path.read_text())
    data["measured"] = {"lost": 0}  # the old duplicate table: refused, not read
    path.write_text(json.dumps(data))
    with pytest.raises(result_model.ResultsError, match=rf"{path}: measured: Extra inputs"):
        result_model.load(root)
    del data["measured"], data["ledger"]
    path.write_text(json.dumps(data))
    with pytest.raises(result_model.ResultsError, match=rf"{path}: ledger: Field required"):
        result_model.load(root)
