"""Crash and race tests: `run` killed with SIGKILL at random moments, and runs racing to push.

A killed run must leave the snapshot directory holding yesterday's whole set or today's, every
file readable, HEAD on yesterday's commit or today's (never a broken one), and the next run must
succeed. Runs that push to one bare remote at the same time must all arrive, in date order, or
fail loudly (exit 2) keeping their local commit. The resolvers are in-process (monitor.lab), the
command line runs as a subprocess, git is real. Run with ``-s`` for the figures.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from monitor.lab import Lab, World

PROJECT = Path(__file__).resolve().parent.parent
NAMES = [f"name{i}.example" for i in range(600)]
DELETED_TODAY = NAMES[10:16]
CANARY = "example.com"
RESOLVERS = ("nat-a", "nat-b", "ctl-a", "ctl-b")
DAY1, DAY2, DAY3 = "2026-03-01", "2026-03-02", "2026-03-03"
KILLS = 20
RACE_ROUNDS = 3
SEED = int(os.environ.get("CRASH_SEED", "20260301"))
# The snapshot is split into shard files above SHARD_ABOVE names; the kill test lowers it so
# that a few hundred names make a set of a few hundred files, as a big watchlist does.
SHARDED_MAIN = (
    "import sys, monitor.snapshot as s; s.SHARD_ABOVE = 100; "
    "from monitor.cli import main; sys.argv[0] = 'registry-monitor'; main()"
)


@dataclass
class Vantage:
    lab: Lab
    worlds: dict[str, World]
    configs: dict[str, Path]


@pytest.fixture(scope="module")
def vantage(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Vantage]:
    records = {(n, "A"): [f"93.184.{i // 250}.{i % 250 + 1}"] for i, n in enumerate(NAMES)}
    records[(CANARY, "A")] = ["93.184.216.34"]
    base = World(records)
    worlds = {name: base.variant() for name in RESOLVERS}
    work = tmp_path_factory.mktemp("crash")
    with Lab(worlds) as lab:  # type: ignore[arg-type]
        configs = {}
        for name in ("lab", "lab-b"):
            # TCP and a long timeout: no retry, so today's files are the same on every run.
            entries = {
                r: f"    - {{name: {r}, address: 127.0.0.1, port: {lab[r].port}, "
                "transport: tcp, rate: 0}"
                for r in RESOLVERS
            }
            text = "\n".join(
                [
                    f"vantage: {name}",
                    "timeout: 10",
                    "record_types: [A]",
                    # Files, not verdicts, are under test here: no confirmation rounds.
                    "confirm: 0",
                    "resolvers:",
                    "  national:",
                    entries["nat-a"],
                    entries["nat-b"],
                    "  control:",
                    entries["ctl-a"],
                    entries["ctl-b"],
                    "watchlist:",
                    *(f"  - {n}" for n in NAMES),
                ]
            )
            configs[name] = work / f"{name}.yaml"
            configs[name].write_text(text + "\n", encoding="utf-8")
        yield Vantage(lab, worlds, configs)


@pytest.fixture
def lab(vantage: Vantage) -> Vantage:
    """The module's lab with nothing deleted."""
    delete(vantage, [])
    return vantage


def delete(vantage: Vantage, names: list[str]) -> None:
    for name in ("nat-a", "nat-b"):
        vantage.worlds[name].update(nxdomain=names)


# ----------------------------------------------------------------------------- git and the CLI


def environment(home: Path) -> dict[str, str]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": str(PROJECT),
        "HOME": str(home),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
    }
    for kind in ("AUTHOR", "COMMITTER"):
        env[f"GIT_{kind}_NAME"] = "Crash Tests"
        env[f"GIT_{kind}_EMAIL"] = "crash@example.test"
    return env


def git(cwd: Path, *args: str, check: bool = True) -> str:
    done = subprocess.run(
        ["git", *args], cwd=cwd, env=environment(cwd), capture_output=True, text=True
    )
    if check and done.returncode:
        raise AssertionError(f"git {' '.join(args)} failed: {done.stderr}")
    return done.stdout.strip()


def monitor_argv(config: Path, *args: str, sharded: bool = False) -> list[str]:
    head = [sys.executable, "-c", SHARDED_MAIN] if sharded else [sys.executable, "-m", "monitor"]
    return [*head, "--config", str(config), *args]


def run(
    config: Path, repo: Path, date: str, *extra: str, sharded: bool = False
) -> subprocess.CompletedProcess[str]:
    argv = monitor_argv(config, "run", "--repo", str(repo), "--date", date, *extra, sharded=sharded)
    return subprocess.run(
        argv, cwd=repo, env=environment(repo), capture_output=True, text=True, timeout=120
    )


def snapshot(repo: Path, vantage: str = "lab") -> dict[str, bytes]:
    base = repo / "snapshots" / vantage
    return {p.relative_to(base).as_posix(): p.read_bytes() for p in base.rglob("*") if p.is_file()}


def committed(repo: Path, rev: str, vantage: str = "lab") -> dict[str, bytes]:
    listing = git(repo, "ls-tree", "-r", "--name-only", rev, f"snapshots/{vantage}/")
    prefix = f"snapshots/{vantage}/"
    out = {}
    for path in listing.splitlines():
        blob = subprocess.run(
            ["git", "show", f"{rev}:{path}"], cwd=repo, capture_output=True, check=True
        ).stdout
        out[path[len(prefix) :]] = blob
    return out


def trailer(repo: Path, rev: str = "HEAD") -> str:
    return git(repo, "log", "-1", "--format=%(trailers:key=Monitor-Date,valueonly)", rev)


def assert_every_file_parses(files: dict[str, bytes]) -> None:
    for path, data in files.items():
        text = data.decode("utf-8")
        if path.endswith(".yaml"):
            assert isinstance(yaml.safe_load(text), dict), path
        elif path.endswith(".atom"):
            ET.fromstring(text)
        else:
            raise AssertionError(f"unexpected file in the snapshot: {path}")


def fsck(repo: Path) -> None:
    done = subprocess.run(
        ["git", "fsck", "--full", "--no-dangling"],
        cwd=repo,
        env=environment(repo),
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0 and not done.stdout.strip(), done.stdout + done.stderr


# ----------------------------------------------------------------------------- kill -9


@pytest.mark.slow
def test_kill_9_at_random_moments_leaves_yesterdays_or_todays_whole_set(
    lab: Vantage, tmp_path: Path
) -> None:
    config = lab.configs["lab"]
    template = tmp_path / "template"
    template.mkdir()
    git(template, "init", "-q", "-b", "main")
    day1 = run(config, template, DAY1, sharded=True)
    assert day1.returncode == 0, day1.stderr
    yesterday_sha = git(template, "rev-parse", "HEAD")
    yesterday = snapshot(template)
    assert len(yesterday) > 100  # the sharded layout: many files that must change as one set

    delete(lab, DELETED_TODAY)
    reference = tmp_path / "reference"
    shutil.copytree(template, reference, symlinks=True)
    started = time.monotonic()
    day2 = run(config, reference, DAY2, sharded=True)
    usual = time.monotonic() - started
    assert day2.returncode == 0, day2.stderr
    today = snapshot(reference)
    assert today != yesterday and today.keys() == yesterday.keys()
    changed = sum(today[p] != yesterday[p] for p in today)

    rng = random.Random(SEED)
    outcomes: Counter[str] = Counter()
    delays: list[float] = []
    leftovers = 0
    for i in range(KILLS):
        repo = tmp_path / f"kill{i}"
        shutil.copytree(template, repo, symlinks=True)
        # Half the kills anywhere in the run, half in its last 40%, where the files are written
        # and committed (the interpreter's start takes much of the first part).
        delay = rng.uniform(0.0 if i % 2 else 0.6 * usual, usual)
        process = subprocess.Popen(
            monitor_argv(config, "run", "--repo", str(repo), "--date", DAY2, sharded=True),
            cwd=repo,
            env=environment(repo),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # the whole group dies, git children too, as on a runner
        )
        delays.append(delay)
        time.sleep(delay)
        finished = process.poll() is not None
        if not finished:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()

        files = snapshot(repo)
        assert files in (yesterday, today), (
            f"kill {i} after {delay:.2f} s: a mix of sets "
            f"({sum(files.get(p) == today[p] for p in today)} of {len(today)} files today's)"
        )
        assert_every_file_parses(files)
        fsck(repo)
        head = git(repo, "rev-parse", "HEAD")
        if head == yesterday_sha:
            state = "yesterday" if files == yesterday else "written, not committed"
        else:
            assert git(repo, "rev-parse", "HEAD~1") == yesterday_sha
            assert trailer(repo) == DAY2
            assert committed(repo, "HEAD") == today
            assert files == today
            state = "committed"
        outcomes["finished before the kill" if finished else state] += 1
        leftovers += any(p.name.startswith(".") for p in (repo / "snapshots").iterdir())

        again = run(config, repo, DAY2, sharded=True)
        assert again.returncode == 0, f"kill {i}: the next run failed: {again.stderr}"
        assert snapshot(repo) == today
        assert committed(repo, "HEAD") == today
        assert git(repo, "rev-parse", "HEAD~1") == yesterday_sha
        assert git(repo, "status", "--porcelain", "--untracked-files=all") == ""
        fsck(repo)
        shutil.rmtree(repo)

    print(
        f"\nkill -9: {KILLS} kills (seed {SEED}) over a run of {usual:.2f} s writing "
        f"{len(today)} files ({changed} changed), delays {min(delays):.2f}-{max(delays):.2f} s: "
        f"{dict(outcomes)}; "
        f"{leftovers} left a staging directory, recovered by the next run"
    )


# ----------------------------------------------------------------------------- racing pushes


def clone(remote: Path, path: Path) -> Path:
    subprocess.run(
        ["git", "clone", "-q", str(remote), str(path)],
        env=environment(path.parent),
        check=True,
        capture_output=True,
    )
    return path


@pytest.fixture
def remote(tmp_path: Path) -> Path:
    """A bare remote holding one commit on main, as a project repository would."""
    bare = tmp_path / "remote.git"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(bare)], check=True)
    seed = clone(bare, tmp_path / "seed")
    (seed / "README.md").write_text("snapshots\n")
    git(seed, "add", "README.md")
    git(seed, "commit", "-q", "-m", "start")
    git(seed, "push", "-q", "origin", "main")
    return bare


def remote_log(remote: Path, vantage: str) -> list[str]:
    """The Monitor-Date of each commit on the remote's main touching the vantage, oldest first."""
    out = git(
        remote,
        "log",
        "--reverse",
        "--format=%(trailers:key=Monitor-Date,valueonly)",
        "main",
        "--",
        f"snapshots/{vantage}/",
    )
    return [line for line in out.splitlines() if line.strip()]


def start(config: Path, repo: Path, date: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        monitor_argv(config, "run", "--repo", str(repo), "--date", date, "--push"),
        cwd=repo,
        env=environment(repo),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.slow
def test_two_vantages_racing_to_push_both_arrive_in_order(
    lab: Vantage, remote: Path, tmp_path: Path
) -> None:
    a = clone(remote, tmp_path / "a")
    b = clone(remote, tmp_path / "b")
    dates = [f"2026-03-{day:02d}" for day in range(1, RACE_ROUNDS + 1)]
    for date in dates:
        runs = [start(lab.configs["lab"], a, date), start(lab.configs["lab-b"], b, date)]
        for process in runs:
            _, err = process.communicate(timeout=120)
            assert process.returncode == 0, f"{date}: {err}"
    assert remote_log(remote, "lab") == dates
    assert remote_log(remote, "lab-b") == dates
    assert int(git(remote, "rev-list", "--count", "main")) == 1 + 2 * len(dates)
    print(f"\nraces: {RACE_ROUNDS} rounds of two vantages pushing at once, all arrived in order")


@pytest.mark.parametrize("first", [DAY2, DAY3], ids=["in-date-order", "later-date-first"])
def test_the_same_vantage_from_two_clones_never_lands_out_of_order(
    lab: Vantage, remote: Path, tmp_path: Path, first: str
) -> None:
    """Two clones of one vantage push consecutive dates; git cannot merge the second.

    The second push fails loudly (exit 2), keeps its local commit, and the remote keeps the
    first one: nothing is overwritten and no date lands after a later one.
    """
    first_clone = clone(remote, tmp_path / "first")
    assert run(lab.configs["lab"], first_clone, DAY1, "--push").returncode == 0
    a = clone(remote, tmp_path / "a")
    b = clone(remote, tmp_path / "b")
    second = DAY3 if first == DAY2 else DAY2
    one = run(lab.configs["lab"], a if first == DAY2 else b, first, "--push")
    assert one.returncode == 0, one.stderr
    repo = b if first == DAY2 else a
    two = run(lab.configs["lab"], repo, second, "--push")
    assert two.returncode == 2, two.stdout + two.stderr
    assert "Error: push to origin branch main" in two.stderr
    assert "local commit kept" in two.stderr
    assert trailer(repo) == second  # the local commit is kept
    assert git(repo, "status", "--porcelain") == ""
    assert remote_log(remote, "lab") == [DAY1, first]


def test_a_push_that_loses_the_remote_ref_lock_is_retried(
    lab: Vantage, remote: Path, tmp_path: Path
) -> None:
    """Two pushes at the same moment: one holds the remote's ref lock, the other is refused
    with "failed to update ref" and must try again, as for a remote that moved."""
    a = clone(remote, tmp_path / "a")
    lock = remote / "refs" / "heads" / "main.lock"
    lock.write_text("")  # another push is updating main right now
    releaser = threading.Timer(2.0, lock.unlink)
    releaser.start()
    try:
        done = run(lab.configs["lab"], a, DAY1, "--push")
    finally:
        releaser.join()
    assert done.returncode == 0, done.stderr
    assert remote_log(remote, "lab") == [DAY1]
