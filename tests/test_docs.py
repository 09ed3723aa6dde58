"""The README cannot drift from the command line: every command and option is documented, and
the examples it marks run as written.

A fenced block right after the line MARKER is run, block after block in README order, the way a
reader would type it: each `$ ` line is a command (`registry-monitor ...`, `git ...` or `cd DIR`;
`#` starts a comment), and the lines after it are what it prints, in order, where `...` stands
for lines left out (the lines between two `...` follow one another in the real output). Every
command must exit 0. DEMO_DIR in a command or its output stands for the test's own directory:
the first marked block makes it with `registry-monitor demo --keep /tmp/dk`, and the others are
read in the kept repository, offline.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import click
import pytest

from monitor.cli import cli

ROOT = Path(__file__).parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
MARKER = "<!-- tests/test_docs.py runs this block: see there -->"
DEMO_DIR = "/tmp/dk"
GAP = "..."


@dataclass(frozen=True)
class Example:
    """One `$ ` line of a marked block and the output the README shows for it."""

    line: int  # in README.md, from 1
    command: str
    shown: tuple[tuple[str, ...], ...]  # runs of consecutive lines, split where `...` stands


def examples(text: str) -> list[Example]:
    """Return the commands of the blocks marked with MARKER in ``text``, in order."""
    lines = text.splitlines()
    found: list[Example] = []
    for start, line in enumerate(lines):
        if line != MARKER:
            continue
        assert lines[start + 1] == "```", f"README.md:{start + 1}: the marker must precede a fence"
        end = lines.index("```", start + 2)
        assert lines[start + 2].startswith("$ "), f"README.md:{start + 3}: output before a command"
        at = start + 2
        while at < end:
            body = at + 1
            while body < end and not lines[body].startswith("$ "):
                body += 1
            found.append(Example(at + 1, lines[at][2:], _runs(lines[at + 1 : body])))
            at = body
    return found


def _runs(shown: list[str]) -> tuple[tuple[str, ...], ...]:
    runs: list[tuple[str, ...]] = [()]
    for line in shown:
        if line == GAP:
            runs.append(())
        else:
            runs[-1] += (line.rstrip(),)
    trimmed = []
    for run in runs:
        while run and not run[0]:
            run = run[1:]
        while run and not run[-1]:
            run = run[:-1]
        if run:
            trimmed.append(run)
    return tuple(trimmed)


def missing_from(output: str, shown: tuple[tuple[str, ...], ...]) -> tuple[str, ...] | None:
    """Return the first run of ``shown`` that ``output`` lacks (each run after the one before,
    its lines consecutive), or None when the output has them all."""
    lines = [line.rstrip() for line in output.splitlines()]
    at = 0
    for run in shown:
        for i in range(at, len(lines) - len(run) + 1):
            if tuple(lines[i : i + len(run)]) == run:
                at = i + len(run)
                break
        else:
            return run
    return None


def argv(command: str) -> list[str]:
    """The process to start for a README command (the package under test, not an installed one)."""
    words = shlex.split(command, comments=True)
    if words[0] == "registry-monitor":
        return [sys.executable, "-P", "-m", "monitor", *words[1:]]
    assert words[0] in {"git", "cd"}, f"{command!r}: not a command this test knows how to run"
    return words


def commands() -> list[tuple[str, click.Command]]:
    assert isinstance(cli, click.Group)
    return sorted(cli.commands.items())


@pytest.mark.parametrize(("name", "command"), commands())
def test_every_command_and_option_is_in_the_readme(name: str, command: click.Command) -> None:
    assert f"`{name}" in README
    for param in command.params:
        if isinstance(param, click.Option):
            for opt in param.opts:
                if opt.startswith("--") and opt != "--help":
                    assert opt in README, f"{name} {opt} is not in README.md"


def test_global_options_are_in_the_readme() -> None:
    for param in cli.params:
        for opt in param.opts:
            if opt.startswith("--"):
                assert opt in README


TEST_COMMAND = "tools/test-setup && pip install -e '.[test]' && python -m pytest"


def test_readme_starts_with_the_two_setup_commands() -> None:
    first = README.split("```", 2)[1]
    assert "pip install . && registry-monitor demo" in first
    # The second installs what the tests need first, so a fresh machine gets a passing suite.
    assert TEST_COMMAND in first


def test_the_example_check_fails_on_output_the_readme_does_not_show() -> None:
    text = f"{MARKER}\n```\n$ registry-monitor x  # note\none\ntwo\n...\nfour\n$ cd /tmp\n```\n"
    first, second = examples(text)
    assert (first.line, first.command, first.shown) == (
        3,
        "registry-monitor x  # note",
        (("one", "two"), ("four",)),
    )
    assert (second.command, second.shown) == ("cd /tmp", ())
    assert argv(first.command)[-1] == "x"
    assert missing_from("zero\none\ntwo\nthree\nfour\n", first.shown) is None
    assert missing_from("one\nthree\ntwo\nfour\n", first.shown) == ("one", "two")
    assert missing_from("four\none\ntwo\n", first.shown) == ("four",)


def test_the_marked_examples_run_as_written_in_a_kept_demo_repository(tmp_path: Path) -> None:
    keep = tmp_path / "dk"
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "REGISTRY_MONITOR"))}
    env.update(HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"), GIT_CONFIG_NOSYSTEM="1")
    found = examples(README)
    assert found, f"README.md marks no block with {MARKER}"
    assert found[0].command == f"registry-monitor demo --keep {DEMO_DIR}"
    cwd = tmp_path
    for example in found:
        words = argv(example.command.replace(DEMO_DIR, str(keep)))
        where = f"README.md:{example.line}: {example.command}"
        if words[0] == "cd":
            cwd = cwd / words[1]
            assert cwd.is_dir(), where
            continue
        done = subprocess.run(
            words,
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            encoding="utf-8",
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, f"{where}\n{done.stdout}{done.stderr}"
        assert done.stdout, where
        shown = tuple(
            tuple(line.replace(DEMO_DIR, str(keep)) for line in run) for run in example.shown
        )
        lacking = missing_from(done.stdout + done.stderr, shown)
        assert lacking is None, f"{where}: the output lacks\n" + "\n".join(lacking or ())
    ran = {" ".join(shlex.split(e.command)[:2]) for e in found}
    assert {
        "registry-monitor demo",
        "git log",
        "registry-monitor diff",
        "registry-monitor history",
        "registry-monitor report",
        "registry-monitor export",
    } <= ran
    assert (tmp_path / "dk-site" / "index.html").is_file()
    assert (keep / "history.sqlite").is_file()


def test_ci_runs_the_readmes_test_command() -> None:
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    steps = [line.strip() for line in ci.splitlines() if not line.lstrip().startswith("#")]
    # Each part of the command, in its order, as CI spells it (quieter).
    setup = steps.index("tools/test-setup")
    pip = steps.index("python3 -m pip install -q --disable-pip-version-check -e '.[test]'")
    pytest_ = steps.index("python3 -m pytest -q -p no:cacheprovider || status=$?")
    assert setup < pip < pytest_
    # One list of packages: the script's, not a second one in CI.
    assert "apt-get" not in ci
