"""Line charts as inline SVG, drawn in Python: the report opens from disk with no network and no JS library.

A chart is one SVG element; the values are also kept in a `data-chart` attribute so the page's small
script can show a readout under the cursor (the chart is complete without it).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape

W, H = 400.0, 210.0
LEFT, RIGHT, TOP, BOTTOM = 46.0, 10.0, 38.0, 22.0


@dataclass(frozen=True)
class Line:
    label: str
    values: Sequence[float | None]
    color: str
    dashed: bool = False
    width: float = 1.6
    step: float = 1.0  # seconds each value stands for: values[i] covers [i * step, (i + 1) * step)


@dataclass(frozen=True)
class Band:
    """A shaded x interval (a fault window), labelled."""

    start: float
    end: float
    label: str


@dataclass(frozen=True)
class Scale:
    lo: float
    hi: float
    log: bool = False

    def to_unit(self, v: float) -> float:
        """0 at `lo`, 1 at `hi`."""
        if self.log:
            return (math.log10(v) - math.log10(self.lo)) / (math.log10(self.hi) - math.log10(self.lo))
        return (v - self.lo) / (self.hi - self.lo)

    def ticks(self) -> list[float]:
        if self.log:
            first, last = math.floor(math.log10(self.lo)), math.ceil(math.log10(self.hi))
            steps = (1, 2, 5) if last - first <= 2 else (1,)  # few decades: 1-2-5 keeps the axis readable
            ticks = [m * 10.0**e for e in range(first, last + 1) for m in steps]
            return [t for t in ticks if self.lo * (1 - 1e-9) <= t <= self.hi * (1 + 1e-9)]
        step = nice_step((self.hi - self.lo) / 4)
        return [self.lo + i * step for i in range(int((self.hi - self.lo) / step + 1e-9) + 1)]


def nice_step(raw: float) -> float:
    """1, 2 or 5 times a power of ten, at least `raw`."""
    if raw <= 0:
        return 1.0
    mag = 10 ** math.floor(math.log10(raw))
    return next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)


def linear_scale(values: Sequence[float | None]) -> Scale:
    """0 to a round number above the largest value (shared across charts that are compared)."""
    top = max((v for v in values if v is not None), default=0.0)
    if top <= 0:
        return Scale(0.0, 1.0)
    step = nice_step(top / 4)
    return Scale(0.0, step * math.ceil(top / step - 1e-9))


def log_scale(values: Sequence[float | None]) -> Scale:
    """Whole decades around the positive values: latencies from 1 ms to 1 s stay readable together."""
    pos = [v for v in values if v is not None and v > 0]
    if not pos:
        return Scale(1e-3, 1.0, log=True)
    lo, hi = 10 ** math.floor(math.log10(min(pos))), 10 ** math.ceil(math.log10(max(pos)))
    return Scale(lo, hi if hi > lo else lo * 10, log=True)


def _num(v: float) -> str:
    return f"{v:.1f}".rstrip("0").rstrip(".")


def _path(
    values: Sequence[float | None], x: Callable[[float], float], y: Callable[[float], float], log: bool, step: float
) -> str:
    """Polyline through each value's midpoint (of its `step` seconds); a missing value (or <= 0 on a
    log scale) breaks it."""
    parts, pen_down = [], False
    for i, v in enumerate(values):
        if v is None or (log and v <= 0):
            pen_down = False
            continue
        parts.append(f"{'L' if pen_down else 'M'}{_num(x((i + 0.5) * step))} {_num(y(v))}")
        pen_down = True
    return " ".join(parts)


def chart(
    title: str,
    lines: Sequence[Line],
    x_max: float,
    scale: Scale,
    y_fmt: Callable[[float], str],
    bands: Sequence[Band] = (),
    marker: tuple[float, str] | None = None,
    unit: str = "",
    css_class: str = "chart",
) -> str:
    """One SVG chart: x in seconds from the load's start, fault windows shaded, legend on top.
    `unit` ("seconds", "per_second", "MiB" or "") tells the cursor readout how to print values."""
    pw, ph = W - LEFT - RIGHT, H - TOP - BOTTOM
    span = max(x_max, 1.0)

    def x(v: float) -> float:
        return LEFT + pw * min(max(v, 0.0), span) / span

    def y(v: float) -> float:
        return TOP + ph * (1 - min(max(scale.to_unit(v), 0.0), 1.0))

    out = [
        f'<svg class="{css_class}" viewBox="0 0 {W:g} {H:g}" role="img" aria-label="{escape(title)}" '
        f"data-chart='{escape(_data(lines, x_max, unit), quote=True)}' "
        f'data-left="{LEFT:g}" data-right="{W - RIGHT:g}" data-top="{TOP:g}" data-bottom="{H - BOTTOM:g}">',
        f'<text class="title" x="{LEFT:g}" y="13">{escape(title)}</text>',
    ]
    lx = LEFT
    for line in lines:  # legend
        dash = ' stroke-dasharray="4 3"' if line.dashed else ""
        out.append(
            f'<line x1="{_num(lx)}" y1="25" x2="{_num(lx + 14)}" y2="25" stroke="{line.color}" stroke-width="2"{dash}/>'
            f'<text class="legend" x="{_num(lx + 17)}" y="28">{escape(line.label)}</text>'
        )
        lx += 24 + 5.2 * len(line.label)
    for i, band in enumerate(_merged(bands)):
        x0, x1 = x(band.start), x(band.end)
        label_y = TOP + 9 + 9 * (i % 3)  # staggered: windows that overlap keep readable labels
        out.append(
            f'<rect class="fault" x="{_num(x0)}" y="{TOP:g}" width="{_num(max(x1 - x0, 1.0))}" height="{ph:g}">'
            f"<title>{escape(band.label)}: {band.start:.1f}-{band.end:.1f} s</title></rect>"
            f'<text class="fault-label" x="{_num(x0 + 2)}" y="{label_y:g}">{escape(_short(band.label, x1 - x0))}</text>'
        )
    for t in scale.ticks():
        ty = y(t)
        out.append(
            f'<line class="grid" x1="{LEFT:g}" y1="{_num(ty)}" x2="{W - RIGHT:g}" y2="{_num(ty)}"/>'
            f'<text class="tick" x="{LEFT - 4:g}" y="{_num(ty + 3)}" text-anchor="end">{escape(y_fmt(t))}</text>'
        )
    step = nice_step(span / 6)
    for i in range(int(span / step) + 1):
        tx = x(i * step)
        out.append(f'<text class="tick" x="{_num(tx)}" y="{H - 8:g}" text-anchor="middle">{_num(i * step)}s</text>')
    if marker is not None and 0 < marker[0] < span:
        mx = x(marker[0])
        out.append(
            f'<line class="marker" x1="{_num(mx)}" y1="{TOP:g}" x2="{_num(mx)}" y2="{TOP + ph:g}">'
            f"<title>{escape(marker[1])}</title></line>"
        )
    out.append(f'<rect class="frame" x="{LEFT:g}" y="{TOP:g}" width="{pw:g}" height="{ph:g}"/>')
    drawn = 0
    for line in lines:
        d = _path(line.values, x, y, scale.log, line.step)
        if d:
            drawn += 1
            dash = ' stroke-dasharray="4 3"' if line.dashed else ""
            out.append(
                f'<path class="line" d="{d}" stroke="{line.color}" stroke-width="{line.width:g}"{dash}>'
                f"<title>{escape(line.label)}</title></path>"
            )
    if not drawn:
        out.append(
            f'<text class="empty" x="{LEFT + pw / 2:g}" y="{TOP + ph / 2:g}" text-anchor="middle">no data</text>'
        )
    out.append("</svg>")
    return "".join(out)


def _merged(bands: Sequence[Band]) -> list[Band]:
    """Faults of one planned window (e.g. both Kafka links cut together, applied a few ms apart) become
    one band with both labels: overlapping shades would read as a different, darker fault."""
    out: list[Band] = []
    for b in sorted(bands, key=lambda b: (b.start, b.end)):
        same = next((i for i, m in enumerate(out) if abs(m.start - b.start) < 1 and abs(m.end - b.end) < 1), None)
        if same is None:
            out.append(b)
        else:
            m = out[same]
            label = m.label if b.label in m.label.split(" + ") else f"{m.label} + {b.label}"
            out[same] = Band(min(m.start, b.start), max(m.end, b.end), label)
    return out


def _short(label: str, width: float) -> str:
    room = max(int(width / 5), 0)
    return label if len(label) <= room else (label[: max(room - 1, 0)] + "…" if room > 3 else "")


def _data(lines: Sequence[Line], x_max: float, unit: str) -> str:
    """What the cursor readout needs: the labels, colors and values (compact JSON)."""
    return json.dumps(
        {
            "x_max": max(x_max, 1.0),
            "unit": unit,
            "lines": [
                {
                    "label": ln.label,
                    "color": ln.color,
                    "values": [None if v is None else round(v, 6) for v in ln.values],
                    **({"step": ln.step} if ln.step != 1.0 else {}),
                }
                for ln in lines
            ],
        },
        separators=(",", ":"),
    )
