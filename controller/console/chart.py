"""The detail page's chart: desired vs running (and hourly spend) over time, as inline SVG.

Drawn by matplotlib's SVG backend on the server (the page loads nothing from outside), with
text kept as text so the page's font and the browser's search apply.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Sequence
from datetime import UTC

from controller.console.history import Sample

WIDTH_IN, HEIGHT_IN = 7.0, 3.0
SECONDS_PER_DAY = 86400.0
_one_at_a_time = threading.Lock()


def render_svg(samples: Sequence[Sample]) -> str:
    """An ``<svg>`` element (no XML prolog) for ``samples``; empty string when there are none."""
    if not samples:
        return ""
    with _one_at_a_time:  # matplotlib's settings are process-wide; renders run in threads
        return _render(samples)


def _render(samples: Sequence[Sample]) -> str:
    import matplotlib
    from matplotlib.backends.backend_svg import FigureCanvasSVG
    from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    times = [s.at / SECONDS_PER_DAY for s in samples]  # matplotlib's dates: days since 1970
    figure = Figure(figsize=(WIDTH_IN, HEIGHT_IN), layout="constrained")
    FigureCanvasSVG(figure)
    axes = figure.add_subplot()
    axes.step(times, [s.desired for s in samples], where="post", label="desired", color="#888")
    axes.step(times, [s.running for s in samples], where="post", label="running", color="#0a6ebd")
    top = max(max(s.desired, s.running) for s in samples)
    axes.set_ylim(0, max(1, top) * 1.15)
    axes.set_ylabel("instances")
    axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    locator = AutoDateLocator(maxticks=6, tz=UTC)  # type: ignore[no-untyped-call]
    axes.xaxis.set_major_locator(locator)
    formatter = ConciseDateFormatter(locator, tz=UTC)  # type: ignore[no-untyped-call]
    axes.xaxis.set_major_formatter(formatter)
    axes.grid(alpha=0.3)
    handles, labels = axes.get_legend_handles_labels()
    spend = [
        (t, float(s.hourly_spend))
        for t, s in zip(times, samples, strict=True)
        if s.hourly_spend is not None
    ]
    if spend:
        cost = axes.twinx()
        cost.step(
            [t for t, _ in spend],
            [v for _, v in spend],
            where="post",
            label="CNY/h",
            color="#c77c02",
            linestyle="--",
        )
        cost.set_ylim(0, max(v for _, v in spend) * 1.15 or 1)
        cost.set_ylabel("CNY per hour")
        more_handles, more_labels = cost.get_legend_handles_labels()
        handles, labels = handles + more_handles, labels + more_labels
    axes.legend(handles, labels, loc="lower right", bbox_to_anchor=(1, 1), frameon=False, ncols=3)
    axes.set_xlabel("UTC")
    out = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "font.size": 9}):
        figure.savefig(out, format="svg", metadata={"Date": None})
    text = out.getvalue()
    return text[text.index("<svg") :]
