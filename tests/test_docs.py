"""The README cannot drift from the command line: every command and option is documented."""

from __future__ import annotations

from pathlib import Path

import click
import pytest

from monitor.cli import cli

README = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")


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


def test_readme_starts_with_the_two_setup_commands() -> None:
    first = README.split("```", 2)[1]
    assert "pip install . && registry-monitor demo" in first
    assert "pip install -e '.[test]' && python -m pytest" in first
