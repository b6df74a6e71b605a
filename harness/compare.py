"""`bench compare BASE NEW`: what changed between two runs, and whether a threshold was crossed.

Thresholds are data (harness/thresholds/default.yaml), k6-style, one string each:

    <pipeline>.<scenario>.<metric> <op> <limit>

- the selector may use wildcards (`*`, `?`) in every part: `*.*.lost`, `async.*.api.p*`;
- `<op>` is one of < <= > >= == !=, applied to the NEW value;
- `<limit>` is a signed percentage, relative to BASE (`< +10%`: grew by less than 10 %;
  `> -5%`: fell by less than 5 %), or an expression (harness/expr.py) that may use `base`,
  the same metric in BASE: `== 0`, `< 1%`, `>= base`, `< max(base * 1.5, base + 5ms)`.

A threshold on a cell that cannot vouch for its numbers, in either run (its load generator failed
or fell behind, it sent nothing, or something outside the stack took the machine: the cells'
`doubts`), is undecided, crossed or not: such numbers are the generator's or the machine's, and
neither a regression nor its absence. Run it again.

Exit status: 0 every threshold held, 1 one was crossed (on cells that vouch for their numbers),
2 bad thresholds file or unreadable run, 3 none crossed but some undecided.
"""

from __future__ import annotations

import math
import re
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path

from facts import comparison, measures, topology
from harness import expr, noise, result, yamlpos
from harness.result import Run
from harness.text_table import text_table

DEFAULT_FILE = Path(__file__).resolve().parent / "thresholds" / "default.yaml"
EXIT_OK, EXIT_CROSSED, EXIT_USAGE, EXIT_UNDECIDED = 0, 1, 2, 3
# Shown for every cell even without a threshold: the numbers a reviewer looks at first.
KEY_METRICS = (
    "achieved_rate", "error_ratio", "lost", "redeliveries", "api.p50", "api.p99", "e2e.p50", "e2e.p99",
    "peak_backlog", "drain_seconds",
)  # fmt: skip
_THRESHOLD = re.compile(r"^\s*(?P<sel>[^\s<>=!]+)\s*(?P<op><=|>=|==|!=|<|>)\s*(?P<limit>.*?)\s*$")
_RELATIVE = re.compile(r"^(?P<sign>[+-])\s*(?P<pct>\d+(?:\.\d*)?)\s*%$")


class ThresholdError(ValueError):
    """A malformed thresholds file; the message is `file:line: ...`."""


@dataclass(frozen=True)
class Threshold:
    text: str
    line: int
    pipeline: str  # glob patterns
    scenario: str
    metric: str
    op: str
    relative: float | None  # +10% -> 0.10
    limit: expr.Node | None  # otherwise: an expression over `base`

    def matches(self, pipeline: str, scenario: str, metric: str) -> bool:
        return (
            fnmatchcase(pipeline, self.pipeline)
            and fnmatchcase(scenario, self.scenario)
            and fnmatchcase(metric, self.metric)
        )


@dataclass
class ThresholdCheck:
    """One threshold applied to one (pipeline, scenario, metric)."""

    threshold: Threshold
    limit: float | None
    passed: bool | None  # None: could not be evaluated (no value on either side)
    note: str = ""


@dataclass
class Row:
    pipeline: str
    scenario: str
    metric: str
    base: float | None
    new: float | None
    checks: list[ThresholdCheck] = field(default_factory=list)
    base_span: tuple[float, float] | None = None  # 95 % intervals, where the runs have them
    new_span: tuple[float, float] | None = None
    doubts: list[str] = field(default_factory=list)  # why its cells cannot vouch for it: its checks are undecided

    @property
    def difference(self) -> tuple[float, float] | None:
        """The 95 % interval of new - base (a point where a side has no interval), None without values."""
        if self.base is None or self.new is None or (self.base_span is None and self.new_span is None):
            return None
        b_lo, b_hi = self.base_span or (self.base, self.base)
        n_lo, n_hi = self.new_span or (self.new, self.new)
        return n_lo - b_hi, n_hi - b_lo

    @property
    def failed(self) -> bool:
        return not self.doubts and any(o.passed is False for o in self.checks)

    @property
    def undecided(self) -> bool:
        return bool(self.doubts) and any(o.passed is not None for o in self.checks)

    @property
    def change(self) -> float | None:
        """Relative change, new vs base (inf when base is 0 and new is not)."""
        if self.base is None or self.new is None:
            return None
        return _relative_change(self.base, self.new)


def _relative_change(base: float, new: float) -> float:
    if base == 0:
        return 0.0 if new == 0 else math.copysign(math.inf, new)
    return (new - base) / abs(base)


def _parse(text: str, line: int, where: str) -> Threshold:
    m = _THRESHOLD.match(text)
    if not m or not m.group("limit"):
        raise ThresholdError(f"{where}: expected `<pipeline>.<scenario>.<metric> <op> <limit>`, got {text!r}")
    parts = m.group("sel").split(".")
    if len(parts) < 3:
        raise ThresholdError(f"{where}: {m.group('sel')!r}: expected <pipeline>.<scenario>.<metric> in {text!r}")
    pipeline, scenario, metric = parts[0], parts[1], ".".join(parts[2:])
    if not any(fnmatchcase(p, pipeline) for p in topology.PIPELINES):
        raise ThresholdError(f"{where}: {pipeline!r} matches no pipeline ({', '.join(topology.PIPELINES)})")
    if not any(fnmatchcase(x, metric) for x in measures.NAMES):
        if f"{scenario}.{metric}" in measures.NAMES:
            raise ThresholdError(f"{where}: no scenario in {m.group('sel')!r}: write {pipeline}.*.{scenario}.{metric}")
        raise ThresholdError(f"{where}: {metric!r} matches no metric ({', '.join(measures.NAMES)})")
    limit_text, op = m.group("limit"), m.group("op")
    if rel := _RELATIVE.match(limit_text):
        pct = float(rel.group("pct")) / 100
        return Threshold(text, line, pipeline, scenario, metric, op, pct if rel.group("sign") == "+" else -pct, None)
    try:
        node = expr.parse(limit_text)
    except expr.ExprError as e:
        raise ThresholdError(f"{where}: limit {limit_text!r}: {e}") from None
    if expr.is_boolean(node):
        raise ThresholdError(f"{where}: limit {limit_text!r} must be a number, not a comparison")
    for n in expr.names(node):
        if n.name != "base":
            raise ThresholdError(f"{where}: limit {limit_text!r}: unknown name {n.name!r} (only `base` is known)")
    return Threshold(text, line, pipeline, scenario, metric, op, None, node)


def load(path: Path = DEFAULT_FILE) -> list[Threshold]:
    """Parse and validate a thresholds file: `thresholds:` followed by a list of strings."""
    try:
        raw = yamlpos.load(path)
    except ValueError as e:
        raise ThresholdError(str(e)) from None
    items = raw.get("thresholds") if isinstance(raw, dict) else None
    if not isinstance(items, list):
        raise ThresholdError(f"{path}:1: expected a mapping with a `thresholds:` list of strings")
    out = []
    for item in items:
        line = yamlpos.line_of(item, yamlpos.line_of(items))
        if not isinstance(item, str):
            raise ThresholdError(f"{path}:{line}: each threshold must be a string, e.g. '*.*.lost == 0'")
        out.append(_parse(str(item), line, f"{path}:{line}"))
    return out


def _apply(t: Threshold, base: float | None, new: float | None, in_base: bool) -> ThresholdCheck:
    compare: Callable[[float, float], bool] = comparison.OPS[t.op]
    if new is None:
        if base is None:
            return ThresholdCheck(t, None, None, "no value in either run")
        return ThresholdCheck(t, None, False, "no value in the new run")
    if t.relative is not None:
        if not in_base or base is None:
            return ThresholdCheck(t, None, None, "not in the base run")
        limit = base + abs(base) * t.relative
        return ThresholdCheck(t, limit, compare(_relative_change(base, new), t.relative))
    assert t.limit is not None
    uses_base = any(n.name == "base" for n in expr.names(t.limit))
    if uses_base and base is None:
        return ThresholdCheck(t, None, None, "not in the base run")
    try:
        limit = float(expr.evaluate(t.limit, {"base": base}))
    except ZeroDivisionError:
        return ThresholdCheck(t, None, None, "limit divides by zero")
    return ThresholdCheck(t, limit, compare(new, limit))


def compare(base: Run, new: Run, thresholds: Iterable[Threshold], all_metrics: bool = False) -> list[Row]:
    """One row per (pipeline, scenario, metric) that has a threshold or is a key metric, in NEW's order."""
    thresholds = list(thresholds)
    cells = list(new.groups)
    cells += [key for key in base.groups if key not in cells]
    b_env, n_env, b_spans, n_spans = base.env(), new.env(), base.intervals(), new.intervals()
    rows = []
    for pipeline, scenario in cells:
        in_base = (pipeline, scenario) in base.groups
        doubts = [
            f"{side} {c.folder}: {d}"
            for side, run in (("base", base), ("new", new))
            for c in run.repetitions(pipeline, scenario)
            for d in c.doubts()
        ]
        for metric in measures.NAMES:
            name = f"{pipeline}.{scenario}.{metric}"
            row = Row(
                pipeline, scenario, metric, b_env.get(name), n_env.get(name), [], b_spans.get(name), n_spans.get(name),
                doubts,
            )  # fmt: skip
            for t in thresholds:
                if t.matches(pipeline, scenario, metric):
                    row.checks.append(_apply(t, row.base, row.new, in_base))
            if row.checks or all_metrics or metric in KEY_METRICS:
                rows.append(row)
    return rows


def unmatched(rows: list[Row], thresholds: Iterable[Threshold]) -> list[Threshold]:
    """Thresholds that applied to nothing: a typo in a scenario name would otherwise pass silently."""
    used = {id(o.threshold) for r in rows for o in r.checks}
    return [t for t in thresholds if id(t) not in used]


def _fmt_change(row: Row) -> str:
    c = row.change
    if c is None:
        return ""
    if math.isinf(c):
        return "new" if c > 0 else "-inf"
    return f"{c * 100:+.1f} %" if c else "="


def _status(row: Row) -> str:
    if row.failed:
        return "FAIL"
    if row.undecided:
        return "UNDECIDED"
    return "ok" if any(o.passed for o in row.checks) else ""


def _threshold_text(row: Row) -> str:
    parts = []
    for o in row.checks:
        rule = o.threshold.text.split(None, 1)[1] if " " in o.threshold.text else o.threshold.text
        limit = "" if o.limit is None else f" (limit {measures.fmt(row.metric, o.limit)})"
        parts.append(f"{rule}{limit}{f' ({o.note})' if o.note else ''}")
    return "; ".join(parts)


def _fmt_difference(row: Row) -> str:
    d = row.difference
    if d is None:
        return ""
    sign = [("+" if v > 0 else "") + measures.fmt(row.metric, v) for v in d]
    return f"[{sign[0]}, {sign[1]}]"


def table(rows: list[Row]) -> list[list[str]]:
    head = ["pipeline", "scenario", "metric", "base", "new", "change", "new - base (95 %)", "threshold", "status"]
    body = [
        [r.pipeline, r.scenario, r.metric, measures.fmt(r.metric, r.base), measures.fmt(r.metric, r.new),
         _fmt_change(r), _fmt_difference(r), _threshold_text(r), _status(r)]
        for r in rows
    ]  # fmt: skip
    return [head, *body]


def render_text(rows: list[Row]) -> str:
    return text_table(table(rows), rule=True)


def render_markdown(rows: list[Row]) -> str:
    t = table(rows)
    esc = [[c.replace("|", "\\|") or " " for c in line] for line in t]
    out = ["| " + " | ".join(esc[0]) + " |", "|" + "---|" * len(esc[0])]
    for line in esc[1:]:
        if line[-1] == "FAIL":
            line = [f"**{c}**" if c.strip() else c for c in line]
        out.append("| " + " | ".join(line) + " |")
    return "\n".join(out)


def summary(rows: list[Row], thresholds: list[Threshold]) -> str:
    checked = [o for r in rows if not r.doubts for o in r.checks if o.passed is not None]
    crossed = [(r, o) for r in rows if not r.doubts for o in r.checks if o.passed is False]
    undecided = [r for r in rows if r.undecided]
    lines = [f"{len(checked)} threshold check(s), {len(crossed)} crossed"]
    if undecided:
        lines[0] += f", {sum(len(r.checks) for r in undecided)} undecided"
    for r, o in crossed:
        lines.append(
            f"  crossed: {r.pipeline}.{r.scenario}.{r.metric} {o.threshold.op} "
            f"{'?' if o.limit is None else measures.fmt(r.metric, o.limit)}: "
            f"new {measures.fmt(r.metric, r.new)} (base {measures.fmt(r.metric, r.base)})  "
            f"[line {o.threshold.line}: {o.threshold.text}]{f' {o.note}' if o.note else ''}"
        )
    for cell, doubts in dict.fromkeys(((r.pipeline, r.scenario), tuple(r.doubts)) for r in undecided):
        lines.append(f"  undecided: {'.'.join(cell)}: {'; '.join(doubts)}: run it again")
    for t in unmatched(rows, thresholds):
        lines.append(f"  note: line {t.line}: {t.text!r} matched nothing in either run")
    return "\n".join(lines)


def markdown_report(title: str, rows: list[Row], thresholds: list[Threshold]) -> str:
    """For a CI job summary or a PR comment: the verdict and what crossed first, every value folded away."""
    crossed = [r for r in rows if r.failed]
    out = ["## bench compare", "", title, "", "```", summary(rows, thresholds), "```", ""]
    if crossed:
        out += ["### Crossed", "", render_markdown(crossed), ""]
    if undecided := [r for r in rows if r.undecided]:
        head = "### Undecided (cells that cannot vouch for their numbers: run again)"
        out += [head, "", render_markdown(undecided), ""]
    out += [
        f"<details><summary>Every compared value ({len(rows)} rows)</summary>",
        "",
        render_markdown(rows),
        "",
        "</details>",
    ]
    return "\n".join(out)


def noise_thresholds(path: Path) -> list[Threshold]:
    """`bench noise`'s floors as thresholds: a change beyond the noise floor, either way, is crossed."""
    floor = noise.load(path)
    return [_parse(line, 0, f"{path}: {line.split()[0]}") for line in noise.threshold_lines(floor)]


def main(
    base: str, new: str, thresholds_file: Path | None, fmt: str, all_metrics: bool, noise_file: Path | None = None
) -> int:
    path = thresholds_file or DEFAULT_FILE
    try:
        thresholds = load(path) + (noise_thresholds(noise_file) if noise_file else [])
        base_run, new_run = result.load(base), result.load(new)
    except (ThresholdError, result.ResultsError) as e:
        print(f"bench compare: {e}", file=sys.stderr)
        return EXIT_USAGE
    rows = compare(base_run, new_run, thresholds, all_metrics)
    title = f"base {base_run.run_id} -> new {new_run.run_id}, thresholds {path}"
    if noise_file:
        title += f" and the noise floor {noise_file}"
    if fmt == "markdown":
        print(markdown_report(title, rows, thresholds))
    else:
        print(f"{title}\n\n{render_text(rows)}\n\n{summary(rows, thresholds)}")
    if any(r.failed for r in rows):
        return EXIT_CROSSED
    return EXIT_UNDECIDED if any(r.undecided for r in rows) else EXIT_OK
