"""The benchmark's outputs: figures with their floors and targets, a table, JSON, SVG and Markdown.

The plot is hand-written SVG (polylines on axes) rather than matplotlib: it keeps the
benchmark free of a plotting dependency and its output diffable, and a convergence curve
needs nothing more.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

SCHEMA = "spot-controller-bench/1"


@dataclass(frozen=True)
class Target:
    """What a figure should be: ``ratio<=`` (to its floor), ``<``, ``<=``, ``>=`` or ``==``."""

    op: str
    value: float

    def text(self, unit: str = "") -> str:
        if self.op == "ratio<=":
            return f"<= {self.value:g}x floor"
        if unit == "x":
            return f"{self.op} {self.value:g}x"
        return f"{self.op} {self.value:g} {unit}".rstrip()

    def met(self, measured: float | None, ratio: float | None) -> bool | None:
        if self.op == "ratio<=":
            return None if ratio is None else ratio <= self.value
        if measured is None:
            return None
        if self.op == "<":
            return measured < self.value
        if self.op == "<=":
            return measured <= self.value
        if self.op == "==":
            return measured == self.value
        if self.op == ">=":
            return measured >= self.value
        raise ValueError(f"unknown target operator {self.op!r}")


@dataclass(frozen=True)
class Figure:
    """One row of the table."""

    scenario: str
    name: str
    unit: str
    measured: float | None
    floor: float | None = None
    target: Target | None = None
    note: str = ""

    @property
    def ratio(self) -> float | None:
        if self.measured is None or self.floor is None or self.floor <= 0:
            return None
        return self.measured / self.floor

    @property
    def met(self) -> bool | None:
        return None if self.target is None else self.target.met(self.measured, self.ratio)

    def to_json(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "name": self.name,
            "unit": self.unit,
            "measured": self.measured,
            "floor": self.floor,
            "ratio": self.ratio,
            "target": None
            if self.target is None
            else {
                "op": self.target.op,
                "value": self.target.value,
                "text": self.target.text(self.unit),
            },
            "met": self.met,
            "note": self.note,
        }


def figure_from_json(data: dict[str, Any]) -> Figure:
    target = data.get("target")
    return Figure(
        data["scenario"],
        data["name"],
        data["unit"],
        data["measured"],
        floor=data.get("floor"),
        target=None if target is None else Target(target["op"], target["value"]),
        note=data.get("note", ""),
    )


# ---- the table -----------------------------------------------------------------------------


def _num(value: float | None, unit: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, int) or (float(value).is_integer() and abs(value) >= 100):
        text = f"{int(value):,}"
    elif abs(value) >= 100:
        text = f"{value:,.0f}"
    elif abs(value) >= 10:
        text = f"{value:.1f}"
    elif abs(value) >= 1:
        text = f"{value:.2f}"
    else:
        text = f"{value:.3f}"
    if unit == "x":
        return text + "x"
    return f"{text} {unit}" if unit else text


def _met(met: bool | None) -> str:
    return {True: "yes", False: "NO", None: "-"}[met]


COLUMNS = ("scenario", "figure", "measured", "floor", "ratio", "target", "met")


def rows(figures: Sequence[Figure]) -> list[tuple[str, ...]]:
    out = []
    for f in figures:
        out.append(
            (
                f.scenario,
                f.name,
                _num(f.measured, f.unit),
                _num(f.floor, f.unit),
                "-" if f.ratio is None else f"{f.ratio:.2f}x",
                "-" if f.target is None else f.target.text(f.unit),
                _met(f.met),
            )
        )
    return out


def table(figures: Sequence[Figure]) -> str:
    """Plain-text table for stdout."""
    body = rows(figures)
    widths = [max([len(c), *(len(r[i]) for r in body)]) for i, c in enumerate(COLUMNS)]
    line = "  ".join(c.ljust(w) for c, w in zip(COLUMNS, widths, strict=True))
    sep = "  ".join("-" * w for w in widths)
    out = [line, sep]
    out += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in body]
    return "\n".join(out)


def markdown(figures: Sequence[Figure]) -> str:
    head = "| " + " | ".join(COLUMNS) + " |"
    sep = "|" + "|".join("---" for _ in COLUMNS) + "|"
    body = ["| " + " | ".join(v.replace("|", "\\|") for v in r) + " |" for r in rows(figures)]
    return "\n".join([head, sep, *body])


def notes_markdown(figures: Sequence[Figure]) -> str:
    return "\n".join(f"- **{f.scenario}, {f.name}**: {f.note}" for f in figures if f.note)


# ---- the plot ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Panel:
    title: str
    timeline: dict[str, list[float]]
    floor_s: float | None = None
    measured_s: float | None = None


_SERIES = (
    ("desired", "desired", "#555555", "6,4"),
    ("running", "running (cloud)", "#1f77b4", ""),
    ("controller_running", "running (controller's records)", "#ff7f0e", "2,3"),
    ("pending", "pending (cloud)", "#2ca02c", ""),
)


_FLOOR_COLOR = "#d62728"
_MEASURED_COLOR = "#9467bd"


def _nice_step(span: float, ticks: int = 5) -> float:
    raw = span / max(1, ticks)
    magnitude = 10 ** math.floor(math.log10(raw)) if raw > 0 else 1
    for m in (1, 2, 2.5, 5, 10):
        if m * magnitude >= raw:
            return m * magnitude
    return 10 * magnitude


def svg(panels: Sequence[Panel], *, title: str) -> str:
    """Desired vs running over time, one panel per scenario, as a standalone SVG document."""
    pw, ph = 420, 280  # panel size
    ml, mr, mt, mb = 58, 14, 44, 44  # margins inside a panel
    width = pw * max(1, len(panels))
    height = ph + 70
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="10" y="18" font-size="14" font-weight="bold">{html.escape(title)}</text>',
    ]
    for index, panel in enumerate(panels):
        x0 = index * pw + ml
        y0 = 24 + mt
        w = pw - ml - mr
        h = ph - mt - mb
        t = panel.timeline.get("t_s", [])
        tmax = max([*t, panel.floor_s or 0.0, panel.measured_s or 0.0, 1.0])
        tmin = min([0.0, *t])
        ymax = max([1.0, *(v for key, *_ in _SERIES for v in panel.timeline.get(key, []))]) * 1.05

        def px(
            tv: float, x0: float = x0, w: float = w, lo: float = tmin, hi: float = tmax
        ) -> float:
            return x0 + (tv - lo) / (hi - lo) * w

        def py(v: float, y0: float = y0, h: float = h, ymax: float = ymax) -> float:
            return y0 + h - v / ymax * h

        out.append(
            f'<text x="{x0}" y="{y0 - 18}" font-size="12" font-weight="bold">'
            f"{html.escape(panel.title)}</text>"
        )
        out.append(f'<rect x="{x0}" y="{y0}" width="{w}" height="{h}" fill="none" stroke="#999"/>')
        step = _nice_step(tmax - tmin)
        tick = math.ceil(tmin / step) * step
        while tick <= tmax + 1e-9:
            xx = px(tick)
            out.append(
                f'<line x1="{xx:.1f}" y1="{y0 + h}" x2="{xx:.1f}" y2="{y0 + h + 4}" stroke="#999"/>'
            )
            out.append(f'<text x="{xx:.1f}" y="{y0 + h + 16}" text-anchor="middle">{tick:g}</text>')
            tick += step
        ystep = _nice_step(ymax)
        ytick = 0.0
        while ytick <= ymax + 1e-9:
            yy = py(ytick)
            out.append(
                f'<line x1="{x0 - 4}" y1="{yy:.1f}" x2="{x0 + w}" y2="{yy:.1f}" stroke="#eee"/>'
            )
            out.append(f'<text x="{x0 - 6}" y="{yy + 4:.1f}" text-anchor="end">{ytick:g}</text>')
            ytick += ystep
        out.append(f'<text x="{x0 + w / 2}" y="{y0 + h + 32}" text-anchor="middle">seconds</text>')
        for value, color, dash in (
            (panel.floor_s, _FLOOR_COLOR, "4,3"),
            (panel.measured_s, _MEASURED_COLOR, ""),
        ):
            if value is not None:
                xx = px(value)
                out.append(
                    f'<line x1="{xx:.1f}" y1="{y0}" x2="{xx:.1f}" y2="{y0 + h}" stroke="{color}"'
                    + (f' stroke-dasharray="{dash}"' if dash else "")
                    + "/>"
                )
        if panel.floor_s is not None and panel.measured_s is not None:
            out.append(
                f'<text x="{x0}" y="{y0 - 5}" font-size="10"><tspan fill="{_FLOOR_COLOR}">'
                f'floor {panel.floor_s:.1f} s</tspan>, <tspan fill="{_MEASURED_COLOR}">'
                f"all RUNNING {panel.measured_s:.1f} s</tspan> "
                f"({panel.measured_s / panel.floor_s:.2f}x)</text>"
            )
        for key, _label, color, dash in _SERIES:
            values = panel.timeline.get(key)
            if not values or not t:
                continue
            points = " ".join(f"{px(a):.1f},{py(b):.1f}" for a, b in zip(t, values, strict=False))
            out.append(
                f'<polyline fill="none" stroke="{color}" stroke-width="1.6" points="{points}"'
                + (f' stroke-dasharray="{dash}"' if dash else "")
                + "/>"
            )
    lx = 10
    ly = height - 12
    for _key, label, color, dash in _SERIES:
        out.append(
            f'<line x1="{lx}" y1="{ly - 4}" x2="{lx + 22}" y2="{ly - 4}" stroke="{color}" '
            f'stroke-width="2"' + (f' stroke-dasharray="{dash}"' if dash else "") + "/>"
        )
        out.append(f'<text x="{lx + 26}" y="{ly}">{html.escape(label)}</text>')
        lx += 34 + 7 * len(label)
    out.append("</svg>")
    return "\n".join(out) + "\n"
