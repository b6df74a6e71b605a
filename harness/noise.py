"""The noise floor of every metric, from an A/A comparison: the same matrix measured twice.

`bench noise RUN` reads a run made with `--repeat N` (N >= 2) and takes, per metric, the largest
difference between two repetitions of a cell; `bench noise RUN_A RUN_B` takes the difference between
two runs of the same code. `bench compare --noise FILE` then fails on a change larger than the noise
floor allows: as two thresholds per metric, `<= base + floor` and `>= base - floor`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from harness.result import ResultsError, Run


class NoiseFloor(BaseModel):
    model_config = ConfigDict(extra="forbid")

    runs: list[str]
    method: str
    # <pipeline>.<scenario>.<metric> -> the largest difference seen between identical runs (never negative)
    floors: dict[str, Annotated[float, Field(ge=0)]]

    def write(self, path: Path) -> Path:
        path.write_text(self.model_dump_json(indent=2) + "\n")
        return path


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
                    floors[f"{pipeline}.{scenario}.{m}"] = max(values) - min(values)
        if not floors:
            raise ResultsError(
                f"{run.root}: no cell was repeated: run the matrix with --repeat 2 or more, or give two runs"
            )
        method = "largest difference between repetitions of a cell"
    else:
        a, b = runs[0].env(), runs[1].env()
        floors = {n: abs(va - vb) for n, va in a.items() if va is not None and (vb := b.get(n)) is not None}
        if not floors:
            raise ResultsError(f"{runs[0].root} and {runs[1].root}: no metric of a cell measured in both runs")
        method = "difference between two runs of the same matrix"
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
