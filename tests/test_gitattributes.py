"""The project's .gitattributes: `git log -p snapshots/` shows the domain lines, not the feed's XML.

Read on a real repository, the demo's three days, as a fork that inherits the file reads it.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parent.parent
ATTRIBUTES = PROJECT / ".gitattributes"
README = (PROJECT / "README.md").read_text(encoding="utf-8")
# A line of a domain file, as `git log -p` shows it added or removed.
DOMAIN_LINE = re.compile(r"[+-][a-z0-9.-]+: \{verdict: ")
# The README's command for reading which words of a line changed.
WORD_DIFF = "git log -p --word-diff --word-diff-regex='[^ ,{}]+' snapshots/"


def git_env(home: Path) -> dict[str, str]:
    """No user or system git config (no colour, no textconv, no pager), as on a fresh clone."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "REGISTRY_MONITOR"))}
    (home / ".gitconfig").write_text("", encoding="utf-8")
    env.update(HOME=str(home), GIT_CONFIG_NOSYSTEM="1", GIT_PAGER="cat", PYTHONPATH=str(PROJECT))
    return env


@pytest.fixture(scope="module")
def demo_repo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, str]]]:
    """The demo's repository, kept, and the environment to read it in."""
    where = tmp_path_factory.mktemp("gitattributes")
    env = git_env(where)
    repo = where / "demo"
    subprocess.run(
        [sys.executable, "-m", "monitor", "demo", "--keep", str(repo)],
        env=env,
        check=True,
        capture_output=True,
        timeout=300,
    )
    yield repo, env


def log_p(repo: Path, env: dict[str, str], *args: str) -> list[str]:
    command = ["git", "log", "-p", "--no-color", *args, "snapshots/"]
    done = subprocess.run(command, cwd=repo, env=env, check=True, capture_output=True, text=True)
    return done.stdout.splitlines()


def changed(lines: list[str]) -> list[str]:
    """The added and removed lines, without the ---/+++ file headers."""
    return [
        line for line in lines if line[:1] in ("+", "-") and not line.startswith(("+++ ", "--- "))
    ]


def with_attributes(repo: Path) -> None:
    """The project's .gitattributes at the top of the repository, where a fork has it."""
    shutil.copyfile(ATTRIBUTES, repo / ".gitattributes")


def without_attributes(repo: Path) -> None:
    """Neither the project's file nor the copy the demo gives its repository's .git/info."""
    (repo / ".gitattributes").unlink(missing_ok=True)
    (repo / ".git" / "info" / "attributes").unlink(missing_ok=True)


def test_without_the_attributes_the_feed_and_the_counters_crowd_the_domain_lines(
    demo_repo: tuple[Path, dict[str, str]],
) -> None:
    repo, env = demo_repo
    without_attributes(repo)
    lines = changed(log_p(repo, env))
    domain = [line for line in lines if DOMAIN_LINE.match(line)]
    assert any(line[1:].lstrip().startswith("<entry") for line in lines)
    assert len(domain) < len(lines) / 2, "the premise: most changed lines are not domain lines"


def test_with_the_attributes_git_log_p_shows_the_domain_lines(
    demo_repo: tuple[Path, dict[str, str]],
) -> None:
    repo, env = demo_repo
    without_attributes(repo)
    before = log_p(repo, env)
    with_attributes(repo)
    after = log_p(repo, env)
    lines = changed(after)
    domain = [line for line in lines if DOMAIN_LINE.match(line)]
    # Every domain line is still there; nothing of the feed's XML is.
    assert domain == [line for line in changed(before) if DOMAIN_LINE.match(line)]
    assert not [line for line in lines if line[1:].lstrip().startswith("<")]
    assert "Binary files a/snapshots/demo/feed.atom and b/snapshots/demo/feed.atom differ" in after
    assert "Binary files a/snapshots/demo/run.yaml and b/snapshots/demo/run.yaml differ" in after
    # What is left besides the domain lines is resolvers.yaml, which changes when health does.
    assert len(domain) >= 0.9 * len(lines), (len(domain), len(lines))
    assert len(after) < len(before) / 2, (len(after), len(before))


def test_text_still_shows_the_feed_in_full(demo_repo: tuple[Path, dict[str, str]]) -> None:
    repo, env = demo_repo
    with_attributes(repo)
    assert "git log -p --text" in README
    lines = changed(log_p(repo, env, "--text"))
    assert any(line[1:].lstrip().startswith("<entry") for line in lines)
    assert any(line.startswith(("+queries:", "-queries:")) for line in lines)


def test_the_readmes_word_diff_shows_the_words_that_changed(
    demo_repo: tuple[Path, dict[str, str]],
) -> None:
    repo, env = demo_repo
    with_attributes(repo)
    assert WORD_DIFF in README
    # The README's command as a shell splits it: git log -p ARGS snapshots/.
    words = shlex.split(WORD_DIFF)
    assert (words[:3], words[-1]) == (["git", "log", "-p"], "snapshots/")
    lines = log_p(repo, env, *words[3:-1])
    bbc = [line for line in lines if line.startswith("bbc.com: ")]
    # Day 3 brings bbc.com back, day 2 took it away: each word that changed is marked, and only
    # those (the controls said ok throughout).
    assert len(bbc) == 2, bbc
    assert "{verdict: [-missing-]{+present+}, since: [-2026-02-10-]{+2026-02-11+}," in bbc[0]
    assert "{verdict: [-present-]{+missing+}, since: [-2026-02-09-]{+2026-02-10+}," in bbc[1]
    assert all("nsdi-a: [-" in line and "google: ok," in line for line in bbc)
