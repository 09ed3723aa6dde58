"""The outside contract, byte for byte: the demo's world through the command line, against files.

The demo's three days are run with `run --json` (and `check --json`, `diff --json`, `history
--format json`) against the demo's embedded resolvers, and everything a user or a program
reads is compared with the files under tests/golden/: each day's commit message and JSON
document, every snapshot file of every commit, and the other commands' output. A change of the
product that changes any of them shows here as a diff; when the change is meant, regenerate
the files with

    REGISTRY_MONITOR_GOLDEN=update python -m pytest tests/test_golden.py

and read the diff of tests/golden/ before committing it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from monitor import demo as demo_module
from monitor.lab import Lab, World

GOLDEN = Path(__file__).parent / "golden" / "demo"
AUTHOR = "Golden Runner"
EMAIL = "golden@example.test"
UPDATE = os.environ.get("REGISTRY_MONITOR_GOLDEN") == "update"
# The one figure that depends on the machine: a query retried after a lost reply is counted.
_QUERIES = re.compile(r"^queries: \d+$|^queries_by_resolver:\n(?:  .*\n)*", re.MULTILINE)


def environment(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "REGISTRY_MONITOR"))}
    env.update(
        HOME=str(home),
        GIT_CONFIG_NOSYSTEM="1",
        GIT_AUTHOR_NAME=AUTHOR,
        GIT_AUTHOR_EMAIL=EMAIL,
        GIT_COMMITTER_NAME=AUTHOR,
        GIT_COMMITTER_EMAIL=EMAIL,
    )
    return env


def cli(repo: Path, config: Path, *args: str, code: int = 0) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "monitor", "--config", str(config), *args],
        cwd=repo,
        env=environment(repo.parent),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == code, done.stdout + done.stderr
    return done.stdout


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args],
        cwd=repo,
        env=environment(repo.parent),
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def _stable(name: str, text: str) -> str:
    """The text as compared: run.yaml's query counts (which a retry changes) masked."""
    if name.endswith("run.yaml"):
        return _QUERIES.sub(lambda m: re.sub(r": \d+", ": N", m.group(0)), text)
    return text


@pytest.fixture(scope="module")
def outputs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Every output of the demo's three days, keyed by a file name under tests/golden/demo/."""
    root = tmp_path_factory.mktemp("golden")
    repo = root / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    worlds = {name: World(demo_module._records()) for name in (*demo_module.NATIONAL,)}
    base = worlds[demo_module.NATIONAL[0]]
    for name in (*demo_module.NATIONAL[1:], *demo_module.CONTROL):
        worlds[name] = base.variant()
    found: dict[str, str] = {}
    with Lab(worlds) as lab:
        config = root / "config.yaml"
        config.write_text(demo_module._config_text(lab), encoding="utf-8")
        for day, date in enumerate(demo_module.DAYS):
            demo_module._scenario(worlds, day)
            if day == 1:
                check = cli(repo, config, "check", "--json")
                found["check.json"] = check
            document = cli(repo, config, "run", "--date", date, "--json")
            found[f"{date}/run.json"] = document
            found[f"{date}/message.txt"] = git(repo, "log", "-1", "--format=%B")
            for path in git(repo, "ls-tree", "-r", "--name-only", "HEAD", "snapshots").split():
                name = f"{date}/{path}"
                found[name] = _stable(name, git(repo, "show", f"HEAD:{path}"))
        # diff --json names the commits, whose shas change with the clock: they stand as the
        # revisions typed, once checked to be the ones git resolves.
        diff_json = cli(repo, config, "diff", "HEAD~2", "HEAD~1", "--json")
        for rev in ("HEAD~2", "HEAD~1"):
            sha = git(repo, "rev-parse", rev).strip()
            assert f'"{sha}"' in diff_json
            diff_json = diff_json.replace(f'"{sha}"', f'"{rev}"')
        found["diff.json"] = diff_json
        found["diff.txt"] = cli(repo, config, "diff", "HEAD~2", "HEAD")
        found["history.json"] = cli(repo, config, "history", "--format", "json")
        found["history.txt"] = cli(repo, config, "history")
        found["history.csv"] = cli(repo, config, "history", "--format", "csv")
    if UPDATE:
        for stale in GOLDEN.rglob("*"):
            if stale.is_file():
                stale.unlink()
        for name, text in found.items():
            (GOLDEN / name).parent.mkdir(parents=True, exist_ok=True)
            (GOLDEN / name).write_text(text, encoding="utf-8")
    yield found


def golden_names() -> list[str]:
    return sorted(p.relative_to(GOLDEN).as_posix() for p in GOLDEN.rglob("*") if p.is_file())


def test_the_same_files_are_written(outputs: dict[str, str]) -> None:
    assert sorted(outputs) == golden_names()


@pytest.mark.parametrize("name", golden_names())
def test_each_output_is_byte_for_byte_the_golden_file(outputs: dict[str, str], name: str) -> None:
    assert outputs[name] == (GOLDEN / name).read_text(encoding="utf-8")


def test_the_documents_parse_and_the_query_counts_are_counts(outputs: dict[str, str]) -> None:
    for name, text in outputs.items():
        if name.endswith(".json"):
            assert json.loads(text)["schema"] == 1
    run_yaml = outputs["2026-02-10/snapshots/demo/run.yaml"]
    assert "queries: N" in run_yaml and "nsdi-a: N" in run_yaml
