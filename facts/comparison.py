"""The comparison operators of hypotheses, claims and thresholds: one table, one meaning.

`==` and `!=` compare within an explicit tolerance, because the values compared are measured
floats (a ratio 0.1 computed as 1/10 or as 3/30 must be equal): relative 1e-9, absolute 1e-12.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal

REL_TOL = 1e-9
ABS_TOL = 1e-12

Op = Literal["<", "<=", ">", ">=", "==", "!="]


def equal(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=REL_TOL, abs_tol=ABS_TOL)


OPS: dict[str, Callable[[float, float], bool]] = {
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
    "==": equal,
    "!=": lambda a, b: not equal(a, b),
}
