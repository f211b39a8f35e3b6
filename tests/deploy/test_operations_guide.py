"""docs/operations.md and the deploy files invent nothing: commands, options, settings, files,
metrics, events and statuses they name all exist."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import click

from controller.cli import main
from controller.core.plan import EnvStatus
from tests.deploy.helpers import DEPLOY, GUIDE, ROOT, SETTINGS_ENV

README = ROOT / "README.md"
HEALTH = ROOT / "controller" / "health.py"
# A program invocation, and what follows it (in a lookahead, so that matches may overlap):
# `spot-controller` after a space, a backtick, a quote or `/bin/`; the compose service
# (`run --rm controller ...`); the guide's `sc` alias for the systemd host.
INVOCATION = re.compile(
    r"(?:(?:^|(?<=[\s`'\"(])|(?<=/bin/))spot-controller|run --rm controller|^sc)"
    r"(?=((?:[ \t]+[^\s`'\"|&;#\\]+)*))"
)
# Words before `spot-controller` that make it a unit, user or namespace name, not the program.
NOT_THE_PROGRAM = re.compile(
    r"(?:-n|-u|--namespace|useradd|groupadd|generic|systemctl \w+|chown|install .*)[ \t]+$"
)


def _documents() -> list[Path]:
    files = [GUIDE, *DEPLOY.rglob("README.md")]
    files += [p for p in DEPLOY.rglob("*") if p.is_file() and p.suffix != ".json"]
    return sorted(set(files))


def _code_fragments(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, text) of what is code: fenced blocks and `spans` of Markdown, `spans` of
    comments elsewhere, and the binary run by its path (ExecStart=/opt/.../spot-controller run)."""
    fenced = False
    pending = ""
    markdown = path.suffix == ".md"
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if markdown and line.lstrip().startswith("```"):
            fenced = not fenced
            continue
        if fenced:
            if line.endswith("\\"):  # a shell line continued on the next one
                pending += line[:-1]
                continue
            yield number, pending + line
            pending = ""
            continue
        for span in re.findall(r"`([^`]+)`", line):
            yield number, span
        if not markdown:
            for match in re.finditer(r"/bin/spot-controller[ \t].*", line):
                yield number, match.group(0)


def _invocations(path: Path) -> Iterator[tuple[int, list[str]]]:
    for number, code in _code_fragments(path):
        for match in INVOCATION.finditer(code):
            if NOT_THE_PROGRAM.search(code[: match.start()]):
                continue
            words = match.group(1).split()
            if words:
                yield number, words


def _check_invocation(words: list[str]) -> str | None:
    """None if click knows the subcommand path and every option after it, else the problem."""
    command: click.Command = main
    path: list[str] = []
    ctx = click.Context(main)
    rest = list(words)
    while isinstance(command, click.Group) and rest and not rest[0].startswith("-"):
        name = rest.pop(0)
        sub = command.get_command(ctx, name)
        if sub is None:
            return f"no command {' '.join([*path, name])!r}"
        command, path = sub, [*path, name]
    options = {opt for param in command.params for opt in param.opts + param.secondary_opts}
    options |= {"--help", "-h"}
    for word in rest:
        if word.startswith("-") and word.split("=")[0] not in options:
            return f"{' '.join(path) or 'spot-controller'} has no option {word}"
    return None


def test_every_spot_controller_command_named_exists_with_its_options() -> None:
    seen = 0
    problems = []
    for path in _documents():
        for number, words in _invocations(path):
            seen += 1
            problem = _check_invocation(words)
            if problem:
                problems.append(f"{path.relative_to(ROOT)}:{number}: {problem}")
    assert seen > 30, "the invocation pattern stopped matching"
    assert not problems, problems


def test_the_checker_rejects_invented_commands_and_options() -> None:
    assert _check_invocation(["env", "create", "web", "--zone", "z"]) is None
    assert _check_invocation(["env", "drain", "web"]) == "no command 'env drain'"
    assert _check_invocation(["status", "--watch"]) == "status has no option --watch"


def test_every_setting_named_exists() -> None:
    pattern = re.compile(r"\b(?:SPOT_CONTROLLER|TENCENTCLOUD)_[A-Z0-9_]*[A-Z0-9]\b")
    unknown = {}
    for path in _documents():
        names = set(pattern.findall(path.read_text())) - SETTINGS_ENV
        if names:
            unknown[str(path.relative_to(ROOT))] = sorted(names)
    assert not unknown, unknown


def _slug(heading: str) -> str:
    """GitHub's anchor of a heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def test_links_and_paths_of_the_guide_resolve() -> None:
    text = GUIDE.read_text()
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if target.startswith(("http://", "https://")):
            continue
        file_part, _, anchor = target.partition("#")
        resolved = (GUIDE.parent / file_part).resolve() if file_part else GUIDE
        assert resolved.exists(), target
        if anchor:
            headings = re.findall(r"^#+ (.+)$", resolved.read_text(), re.M)
            assert anchor in {_slug(h) for h in headings}, target
    for path in set(re.findall(r"\bdeploy/[\w./-]*[\w/]", text)):
        assert (ROOT / path).exists(), path


def _readme_events(levels: tuple[str, ...]) -> set[str]:
    section = README.read_text().split("## Logs", 1)[1].split("\n## ", 1)[0]
    events: set[str] = set()
    for row in section.splitlines():
        cells = [c.strip() for c in row.split("|")]
        if len(cells) > 3 and any(level in cells[2] for level in levels):
            events.update(re.findall(r"`([a-z_]+)`", cells[1]))
    return events


def test_guide_says_what_to_do_for_every_warning_and_error_event() -> None:
    events = _readme_events(("warning", "error"))
    assert {"launch_failed", "pass_failed", "instance_interrupted"} <= events
    section = GUIDE.read_text().split("## 9.", 1)[1].split("\n## ", 1)[0]
    missing = sorted(e for e in events if f"`{e}`" not in section)
    assert not missing, missing


def test_guide_explains_every_environment_status() -> None:
    section = GUIDE.read_text().split("## 10.", 1)[1].split("\n## ", 1)[0]
    for status in EnvStatus:
        assert f"| `{status.value}` |" in section, status


def test_metrics_named_by_the_guide_are_exported() -> None:
    source = HEALTH.read_text() + (ROOT / "controller/notifications/metrics.py").read_text()
    exported = set(re.findall(r'GaugeMetricFamily\(\s*"(spot_controller_\w+)"', source))
    counters = re.findall(r'CounterMetricFamily\(\s*"(spot_controller_\w+)"', source)
    exported |= {f"{name}_total" for name in counters}
    named = set(re.findall(r"\bspot_controller_[a-z_]*[a-z]\b", GUIDE.read_text()))
    assert named, "the guide names no metric"
    assert named <= exported, named - exported
