"""The README cannot drift from the command line: every command and option is documented."""

from __future__ import annotations

from pathlib import Path

import click
import pytest

from monitor.cli import cli

ROOT = Path(__file__).parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


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
