"""The detail chart's series: sampled from the rows, changes only, drawn as inline SVG."""

from __future__ import annotations

from controller.console.chart import render_svg
from controller.console.history import History
from controller.service import Environments
from tests.support.world import ENVIRONMENT


async def test_the_series_keeps_changes_and_ends_at_the_last_sample(envs: Environments) -> None:
    now = [1_800_000_000.0]
    history = History(envs, interval_s=10, keep_s=3600, clock=lambda: now[0])
    env = await envs.create(ENVIRONMENT)
    for _ in range(5):  # steady: one change point, and the latest sample as the step's end
        await history.sample()
        now[0] += 10
    series = history.series(env.id)
    assert [(s.at - series[0].at, s.desired, s.running) for s in series] == [(0, 2, 0), (40, 2, 0)]
    await envs.scale(env.id, 4)
    await history.sample()
    assert [s.desired for s in history.series(env.id)] == [2, 4]
    await envs.delete(env.id)
    await history.sample()
    assert history.series(env.id) == []


async def test_the_chart_is_an_inline_svg_with_its_legend(envs: Environments) -> None:
    now = [1_800_000_000.0]
    history = History(envs, interval_s=10, keep_s=3600, clock=lambda: now[0])
    env = await envs.create(ENVIRONMENT)
    await history.sample()
    now[0] += 60
    await envs.scale(env.id, 3)
    await history.sample()
    svg = render_svg(history.series(env.id))
    assert svg.startswith("<svg")
    assert svg.rstrip().endswith("</svg>")
    assert ">desired<" in svg
    assert ">running<" in svg
    assert render_svg([]) == ""
