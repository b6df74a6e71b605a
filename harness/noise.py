"""The noise floor of every metric, from an A/A comparison: the same matrix measured more than once.

`bench noise RUN` reads a run made with `--repeat N` (N >= 2); `bench noise RUN_A RUN_B` two runs of
the same code (N = 2). Per metric, the floor is what the difference between two single runs of
unchanged code stays within 95 % of the time: t(N-1) * s * sqrt(2), s the standard deviation of the
N values (a prediction bound; Student's t because s itself comes from so few). With N = 2 that is
12.7 times their difference: the largest difference seen, as a floor, is crossed by unchanged code
half the time. More repetitions narrow it (t = 2.8 at five). `bench compare --noise FILE` then fails
on a change beyond it: as two thresholds per metric, `<= base + floor` and `>= base - floor`.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from harness.intervals import t975
from harness.result import ResultsError, Run


class NoiseFloor(BaseModel):
    model_config = ConfigDict(extra="forbid")

    runs: list[str]
    method: str
    # <pipeline>.<scenario>.<metric> -> the 95 % bound on the difference of two runs of the same code (>= 0)
    floors: dict[str, Annotated[float, Field(ge=0)]]

    def write(self, path: Path) -> Path:
        path.write_text(self.model_dump_json(indent=2) + "\n")
        return path


def floor_of(values: Sequence[float]) -> float:
    """The 95 % bound on |a - b| for two new single runs, from `values` of the same metric measured
    on the same code (at least two)."""
    return t975(len(values) - 1) * statistics.stdev(values) * math.sqrt(2)


def measure(runs: list[Run]) -> NoiseFloor:
    """From one run with repetitions, or from two runs of the same matrix. ResultsError when neither."""
    floors: dict[str, float] = {}
    if len(runs) > 2:
        raise ResultsError(f"give one run with repetitions or two runs of the same matrix, not {len(runs)}")
    if len(runs) == 1:
        (run,) = runs
        for (pipeline, scenario), cells in run.groups.items():
            if len(cells) < 2:
                continue
            per_rep = [c.metrics() for c in cells]
            for m in per_rep[0]:
                values = [v for r in per_rep if (v := r[m]) is not None]
                if len(values) >= 2:
                    floors[f"{pipeline}.{scenario}.{m}"] = floor_of(values)
        if not floors:
            raise ResultsError(
                f"{run.root}: no cell was repeated: run the matrix with --repeat 2 or more, or give two runs"
            )
        method = "95 % bound on the difference of two runs, Student's t over the repetitions of each cell"
    else:
        a, b = runs[0].env(), runs[1].env()
        floors = {n: floor_of([va, vb]) for n, va in a.items() if va is not None and (vb := b.get(n)) is not None}
        if not floors:
            raise ResultsError(f"{runs[0].root} and {runs[1].root}: no metric of a cell measured in both runs")
        method = "95 % bound on the difference of two runs, Student's t over two runs of the same matrix"
    return NoiseFloor(runs=[r.run_id for r in runs], method=method, floors=floors)


def load(path: Path) -> NoiseFloor:
    try:
        return NoiseFloor.model_validate_json(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as e:
        raise ResultsError(f"{path}: cannot read: {e}") from None
    except ValidationError as e:
        first = e.errors()[0]
        raise ResultsError(f"{path}: {'.'.join(map(str, first['loc']))}: {first['msg']}") from None


def threshold_lines(floor: NoiseFloor) -> list[str]:
    """Two k6-style thresholds per metric (harness/compare.py's syntax)."""
    return [line for name, f in floor.floors.items() for line in (f"{name} <= base + {f!r}", f"{name} >= base - {f!r}")]
