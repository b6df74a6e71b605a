"""The article's claims as data (claims.yaml) and their verdicts against one run.

Each claim has a `holds` condition over `<pipeline>.<scenario>.<metric>` names (harness/expr.py),
evaluated on the values' 95 % intervals: true across them -> confirmed, false -> refuted, either ->
inconclusive (also when a cell it reads was disturbed, harness/disturbance.py). It is *not shown*
when the claim cannot be measured here (`holds: null`), when a value it reads is missing from the
run (cell not run, or nothing measured), when a cell it reads failed a precondition (no load, a load
generator that fell behind, no drain), or when its optional `shown_if` precondition is false (e.g.
"async handles surges better" says nothing if the surge did not stress sync at all).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from harness import expr, yamlpos
from harness.result import Run, split_name

DEFAULT_FILE = Path(__file__).resolve().parent / "claims.yaml"
FIELDS = ("id", "side", "kind", "text", "scenario", "metric", "holds", "shown_if", "show", "by_design", "note")
REQUIRED = ("id", "side", "kind", "text")
SIDES = ("sync", "async")
KINDS = ("advantage", "disadvantage")

Verdict = Literal["confirmed", "refuted", "inconclusive", "not shown"]


class ClaimsError(ValueError):
    """A malformed claims file; the message is `file:line: ...`."""


@dataclass(frozen=True)
class Rule:
    """One condition: its text, its parsed form and the full name behind each name written in it."""

    text: str
    node: expr.Node
    names: dict[str, str]  # as written -> pipeline.scenario.metric


@dataclass(frozen=True)
class Claim:
    id: str
    side: str  # whose section of the article the claim is in
    kind: str
    text: str
    scenario: str | None  # the default scenario for two-part names (pipeline.metric)
    metric: str  # what is measured, for people
    holds: Rule | None
    shown_if: Rule | None = None
    show: tuple[str, ...] = ()  # extra values shown beside the verdict
    by_design: str = ""  # why the claim holds by construction of the pipeline (counted apart)
    note: str = ""
    line: int = 0

    def inputs(self) -> list[str]:
        """Every full name the verdict or its table row reads, in order."""
        out: list[str] = []
        for rule in (self.holds, self.shown_if):
            if rule is not None:
                out += rule.names.values()
        return list(dict.fromkeys([*out, *self.show]))

    @property
    def scenarios(self) -> list[str]:
        """The scenarios the verdict depends on (not those of the context values in `show`)."""
        rules = [r for r in (self.holds, self.shown_if) if r is not None]
        found = [split_name(n)[1] for r in rules for n in r.names.values()]
        return list(dict.fromkeys(found or ([self.scenario] if self.scenario else [])))


@dataclass(frozen=True)
class Judgement:
    claim: Claim
    verdict: Verdict
    reason: str
    values: dict[str, float | None] = field(default_factory=dict)
    intervals: dict[str, tuple[float, float] | None] = field(default_factory=dict)  # 95 %, where the run has one


def _rule(text: Any, where: str, scenario: str | None) -> Rule:
    if not isinstance(text, str):
        raise ClaimsError(f"{where}: must be a string expression")
    try:
        node = expr.parse_condition(text)
    except expr.ExprError as e:
        raise ClaimsError(f"{where}: {e} in {text!r}") from None
    full = {}
    for n in expr.names(node):
        try:
            full[n.name] = ".".join(split_name(n.name, scenario))
        except ValueError as e:
            raise ClaimsError(f"{where}: column {n.column}: {e}") from None
    return Rule(text, node, full)


def _claim(raw: Any, path: Path, seen: set[str], list_line: int) -> Claim:
    line = yamlpos.line_of(raw, list_line)
    if not isinstance(raw, dict):
        raise ClaimsError(f"{path}:{line}: each claim must be a mapping")
    claim_id = raw.get("id")
    where = f"{path}:{line}: claim {claim_id!r}" if claim_id else f"{path}:{line}: claim"
    for key in raw:
        if key not in FIELDS:
            raise ClaimsError(
                f"{path}:{yamlpos.line_of(key, line)}: unknown field {key!r} (fields: {', '.join(FIELDS)})"
            )
    for key in REQUIRED:
        if raw.get(key) is None:
            raise ClaimsError(f"{where}: missing field {key!r}")
        if not isinstance(raw[key], str) or not raw[key].strip():
            raise ClaimsError(f"{where}: {key} must be a non-empty string, got {raw[key]!r}")
    if claim_id in seen:
        raise ClaimsError(f"{where}: duplicate id")
    seen.add(str(claim_id))
    if raw["side"] not in SIDES:
        raise ClaimsError(f"{where}: side must be one of {', '.join(SIDES)}")
    if raw["kind"] not in KINDS:
        raise ClaimsError(f"{where}: kind must be one of {', '.join(KINDS)}")
    scenario = raw.get("scenario")
    if scenario is not None and not isinstance(scenario, str):
        raise ClaimsError(f"{where}: scenario must be a scenario name")

    def rule(key: str) -> Rule | None:
        value = raw.get(key)
        return None if value is None else _rule(value, f"{path}:{yamlpos.line_of(value, line)}: {key}", scenario)

    holds, shown_if = rule("holds"), rule("shown_if")
    if holds is None and not raw.get("note"):
        raise ClaimsError(f"{where}: a claim without `holds` needs a `note` saying why it is not measured")
    show = raw.get("show") or []
    if not isinstance(show, list):
        raise ClaimsError(f"{where}: show must be a list of names")
    shown: list[str] = []
    for n in show:
        try:
            shown.append(".".join(split_name(str(n), scenario)))
        except ValueError as e:
            raise ClaimsError(f"{path}:{yamlpos.line_of(n, line)}: show: {e}") from None
    return Claim(
        id=str(claim_id),
        side=str(raw["side"]),
        kind=str(raw["kind"]),
        text=" ".join(str(raw["text"]).split()),
        scenario=scenario,
        metric=" ".join(str(raw.get("metric") or "").split()),
        holds=holds,
        shown_if=shown_if,
        show=tuple(shown),
        by_design=" ".join(str(raw.get("by_design") or "").split()),
        note=" ".join(str(raw.get("note") or "").split()),
        line=line,
    )


def load(path: Path = DEFAULT_FILE) -> list[Claim]:
    """Parse and validate the whole file (syntax, names, metrics) before any verdict is given."""
    try:
        raw = yamlpos.load(path)
    except ValueError as e:
        raise ClaimsError(str(e)) from None
    if not isinstance(raw, dict) or not isinstance(raw.get("claims"), list):
        raise ClaimsError(f"{path}:1: expected a mapping with a `claims:` list")
    seen: set[str] = set()
    return [_claim(c, path, seen, yamlpos.line_of(raw["claims"])) for c in raw["claims"]]


def _absent(name: str, run: Run) -> str:
    pipeline, scenario, _ = split_name(name)
    if run.cell(pipeline, scenario) is None:
        return f"no {pipeline} x {scenario} cell in this run"
    return f"{name} was not measured"


def judge(
    claim: Claim,
    run: Run,
    env: Mapping[str, float | None] | None = None,
    intervals: Mapping[str, tuple[float, float]] | None = None,
) -> Judgement:
    """The claim's verdict on `run`. Every value it reads counts with its 95 % interval where the run
    has one: the verdict is confirmed or refuted only when the whole interval lies on one side of the
    rule, inconclusive otherwise."""
    env = run.env() if env is None else env
    intervals = run.intervals() if intervals is None else intervals
    values = {n: env.get(n) for n in claim.inputs()}
    spans = {n: intervals.get(n) for n in claim.inputs()}
    if claim.holds is None:
        return Judgement(claim, "not shown", claim.note, values, spans)
    needed = [n for rule in (claim.holds, claim.shown_if) if rule for n in rule.names.values()]
    missing = list(dict.fromkeys(_absent(n, run) for n in needed if env.get(n) is None))
    if missing:
        return Judgement(claim, "not shown", "; ".join(missing), values, spans)
    # A verdict never rests on a cell that proves nothing (no load, a generator that fell behind, no drain).
    cells = [c for p, s in dict.fromkeys(split_name(n)[:2] for n in needed) for c in run.repetitions(p, s)]
    unusable = [f"{c.folder}: {', '.join(unmet)} failed" for c in cells if (unmet := c.unmet_preconditions())]
    if unusable:
        return Judgement(claim, "not shown", "; ".join(unusable), values, spans)
    # Nor is it decided on a cell during which something outside the stack took the machine.
    disturbed = [
        f"{c.folder} was disturbed: {'; '.join(c.disturbance.flagged)}" for c in cells if c.disturbance.flagged
    ]
    if disturbed:
        return Judgement(claim, "inconclusive", "; ".join(disturbed), values, spans)

    def check(rule: Rule) -> bool | None:
        point = {w: env[full] for w, full in rule.names.items()}
        known = {w: intervals.get(full) or (point[w], point[w]) for w, full in rule.names.items()}
        try:
            decided = expr.evaluate_interval(rule.node, known)  # type: ignore[arg-type]
        except ZeroDivisionError:
            # A divisor whose interval holds zero, though the value is not: it could be either way.
            expr.evaluate(rule.node, point)  # a value of zero itself: ZeroDivisionError, "not shown"
            return None
        assert decided is None or isinstance(decided, bool)
        return decided

    try:
        if claim.shown_if is not None:
            shown = check(claim.shown_if)
            if shown is False:
                return Judgement(claim, "not shown", f"precondition false: {claim.shown_if.text}", values, spans)
            if shown is None:
                reason = f"precondition undecided within the intervals: {claim.shown_if.text}"
                return Judgement(claim, "inconclusive", reason, values, spans)
        held = check(claim.holds)
    except ZeroDivisionError:
        return Judgement(claim, "not shown", "a value it divides by is zero", values, spans)
    if held is None:
        return Judgement(claim, "inconclusive", f"the intervals straddle the rule: {claim.holds.text}", values, spans)
    # Said, not hidden: a value the run has no interval for (a trace figure, a backlog peak) decides as measured.
    points = list(dict.fromkeys(n for n in needed if intervals.get(n) is None))
    basis = f" (no interval for {', '.join(points)}: decided on the value as measured)" if points else ""
    return Judgement(claim, "confirmed" if held else "refuted", claim.holds.text + basis, values, spans)


def judge_all(run: Run, claims: list[Claim] | None = None) -> list[Judgement]:
    env, intervals = run.env(), run.intervals()
    return [judge(c, run, env, intervals) for c in (load() if claims is None else claims)]
