"""The ledger's join at scale, run small: the benchmark's synthesized ids classify as they must,
in memory and partitioned on disk alike, and as a plain in-memory join of the same files says.
(The time and memory of 10 million ids are measured by `python -m harness.ledger_benchmark`.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from harness import ledger, ledger_benchmark
from loadtests.outcome import read_outcomes
from targets.pushsink.deliveries import parse_dump

IDS = 50_000


def reference(folder: Path, dead: list[str]) -> dict[str, int]:
    """The ledger's definitions applied naively, every id in memory."""
    rank = {"failed": 1, "unknown": 2, "ack": 3}
    told: dict[str, str] = {}
    for r in read_outcomes(folder):
        prev = told.get(r.reaction_id)
        if prev is None or rank[str(r.outcome)] > rank[prev]:
            told[r.reaction_id] = str(r.outcome)
    with (folder / ledger_benchmark.DUMP_FILE).open("rb") as f:
        got = {row.reaction_id: row.raw_count for row in parse_dump(f)}
    return {
        "attempted": len(told),
        "acknowledged": sum(o == "ack" for o in told.values()),
        "failed": sum(o == "failed" for o in told.values()),
        "unknown": sum(o == "unknown" for o in told.values()),
        "delivered": sum(rid in got for rid in told),
        "redeliveries": sum(c - 1 for c in got.values()),
        "lost": sum(o == "ack" and rid not in got for rid, o in told.items()),
        "unexpected": sum(rid not in told for rid in got),
        "recovered": sum(o != "ack" and rid in got for rid, o in told.items()),
        "dead_lettered": len(set(dead)),
    }


@pytest.fixture(scope="module")
def synthesized(tmp_path_factory: pytest.TempPathFactory) -> ledger_benchmark.Synthesized:
    return ledger_benchmark.synthesize(tmp_path_factory.mktemp("ledger"), IDS)


@pytest.mark.parametrize("max_in_memory", [ledger.MAX_IN_MEMORY, 1_000], ids=["in-memory", "partitioned"])
def test_benchmark_ids_classify_as_synthesized(synthesized, max_in_memory):
    got = ledger_benchmark.classify(synthesized.folder, synthesized.dead, max_in_memory=max_in_memory)
    assert got == synthesized.expected
    assert got.model_dump(exclude={"samples"}) == reference(synthesized.folder, synthesized.dead)
    # every kind of id the synthesis makes is there
    assert got.lost and got.unexpected and got.recovered and got.redeliveries and got.dead_lettered
    assert set(got.samples) == {"lost", "unexpected", "recovered", "dead_lettered_undelivered"}
    assert all(len(v) == ledger.SAMPLE for k, v in got.samples.items() if k != "dead_lettered_undelivered")


def test_benchmark_command_prints_time_and_memory(tmp_path, capsys):
    assert ledger_benchmark.main(["--ids", "2000", "--dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "classified 2,000 ids in" in out and "peak RSS" in out and "matches: True" in out
