"""Crash and race tests: `run` killed with SIGKILL in each state of a run, and runs racing to push.

A killed run must leave the snapshot directory holding yesterday's whole set or today's, every
file readable, HEAD on yesterday's commit or today's (never a broken one), and the next run must
succeed (or, when the kill left git's own lock file, refuse before it asks anything until a
person removes it). Runs that push to one bare remote at the same time must all arrive, in date
order, or fail loudly (exit 2) keeping their local commit. The resolvers are in-process
(monitor.lab), the command line runs as a subprocess, git is real. Run with ``-s`` for the
figures.
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import shutil
import signal
import subprocess
import sys
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
    with Lab(worlds) as lab:
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

# The moments of a run, in order, as a watcher outside the process sees them: replace_directory
# (monitor/snapshot.py) writes today's set into a staging directory beside yesterday's,
# exchanges the two in one rename and removes the old set; commit_directory
# (monitor/gitstore.py) builds the commit in a scratch index, moves HEAD, then refreshes the
# work tree's index.
MEASURING = "measuring"  # asking the resolvers; nothing written yet
STAGING = "staging"  # today's set being written into snapshots/.lab.new
SWAPPED = "swapped"  # today's set in place; yesterday's being removed from .lab.new
WRITTEN = "written, not committed"  # today's set alone in place; git building the commit
HEAD_MOVED = "HEAD moved"  # HEAD on today's commit, the index not refreshed yet
COMMITTED = "committed, not finished"  # the index refreshed too; the process still ending
LOCKED = "a git lock file left"  # killed inside git while it held its lock
FINISHED = "finished before the kill"
MOMENTS = (MEASURING, STAGING, SWAPPED, WRITTEN, HEAD_MOVED, COMMITTED)
# How many kills must land in each state, aimed at it in this order. A kill lands a moment
# after it is aimed, and SWAPPED lasts a few milliseconds and git holds a lock for less, so an
# aimed kill can land in the next state; up to TRIES kills are aimed at each.
PER_STATE = {MEASURING: 3, STAGING: 3, SWAPPED: 3, WRITTEN: 3, COMMITTED: 3, LOCKED: 1}
TRIES = {MEASURING: 6, STAGING: 10, SWAPPED: 12, WRITTEN: 10, COMMITTED: 10, LOCKED: 8}
# A kill aimed at a state waits a random part of how long the state lasted in a run watched
# to its end, up to this share of it (a run can be quicker): at once in the short ones.
SPREAD = {MEASURING: 0.6, STAGING: 0.5, WRITTEN: 0.5, COMMITTED: 0.3}
GIT_LOCKS = ("index.lock", "HEAD.lock", "refs/heads/main.lock")


def inode(path: Path) -> int | None:
    try:
        return os.stat(path).st_ino
    except FileNotFoundError:
        return None


class Watcher:
    """Reads which moment a run in ``repo`` has reached, with a few stat calls and no git."""

    def __init__(self, repo: Path, yesterday_sha: str) -> None:
        self.repo = repo
        self.yesterday_sha = yesterday_sha
        self.directory = repo / "snapshots" / "lab"
        self.staging = repo / "snapshots" / ".lab.new"
        self.ref = repo / ".git" / "refs" / "heads" / "main"
        self.index = repo / ".git" / "index"
        assert self.ref.read_text().strip() == yesterday_sha  # a loose ref, read directly
        self.old_directory, self.old_index = inode(self.directory), inode(self.index)
        assert self.old_directory is not None and self.old_index is not None

    def moment(self) -> str:
        staged = inode(self.staging)
        if staged is not None:
            # The exchange swaps the two names: yesterday's directory is now the staging one.
            return SWAPPED if staged == self.old_directory else STAGING
        if inode(self.directory) == self.old_directory:
            return MEASURING
        if self.ref.read_text().strip() == self.yesterday_sha:
            return WRITTEN
        return COMMITTED if inode(self.index) != self.old_index else HEAD_MOVED

    def locks(self) -> list[str]:
        return [name for name in GIT_LOCKS if (self.repo / ".git" / name).exists()]


def start_run(config: Path, repo: Path, scratch: Path) -> subprocess.Popen[bytes]:
    env = environment(repo)
    env["TMPDIR"] = str(scratch)  # where commit_directory's scratch index goes
    return subprocess.Popen(
        monitor_argv(config, "run", "--repo", str(repo), "--date", DAY2, sharded=True),
        cwd=repo,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # the whole group dies, git children too, as on a runner
    )


def kill_at(target: str, process: subprocess.Popen[bytes], watcher: Watcher, delay: float) -> None:
    """SIGKILL the run's process group ``delay`` seconds after ``watcher`` first sees ``target``
    (MEASURING: after the start), or at once when a later moment comes first.

    LOCKED is aimed at git's index lock, held while the index is refreshed after HEAD moved
    (HEAD's own lock is held too briefly to aim at).
    """
    due_at: float | None = time.monotonic() + delay if target == MEASURING else None
    while process.poll() is None:
        seen = watcher.moment()
        if target == LOCKED:
            due = seen == COMMITTED or (seen == HEAD_MOVED and "index.lock" in watcher.locks())
        elif MOMENTS.index(seen) > MOMENTS.index(target):
            due = True
        else:
            if seen == target and due_at is None:
                due_at = time.monotonic() + delay
            due = due_at is not None and time.monotonic() >= due_at
        if due:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            break
        if seen == MEASURING:
            time.sleep(0.002)  # the lab answering the run's queries lives in this process
    process.wait()


def landed(process: subprocess.Popen[bytes], watcher: Watcher, yesterday: dict[str, bytes]) -> str:
    """Return the state a killed run left, read from the repository once it is dead."""
    if process.returncode == 0:
        return FINISHED
    assert process.returncode == -signal.SIGKILL, process.returncode
    if watcher.locks():
        return LOCKED
    if git(watcher.repo, "rev-parse", "HEAD") != watcher.yesterday_sha:
        stale = subprocess.run(
            ["git", "diff-index", "--cached", "--quiet", "HEAD", "--", "snapshots/lab"],
            cwd=watcher.repo,
            env=environment(watcher.repo),
        )
        return HEAD_MOVED if stale.returncode else COMMITTED
    left_staging = watcher.staging.exists()
    if snapshot(watcher.repo) == yesterday:
        return STAGING if left_staging else MEASURING
    return SWAPPED if left_staging else WRITTEN


def queries_answered(lab: Vantage) -> int:
    return sum(len(lab.lab[name].queries) for name in RESOLVERS)


@pytest.mark.slow
def test_kill_9_in_each_state_of_a_run_leaves_yesterdays_or_todays_whole_set(
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
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    # A run watched to its end: when each moment was first seen, and today's set.
    reference = tmp_path / "reference"
    shutil.copytree(template, reference, symlinks=True)
    watcher = Watcher(reference, yesterday_sha)
    first_seen: dict[str, float] = {}
    started = time.monotonic()
    process = start_run(config, reference, scratch)
    while process.poll() is None:
        moment = watcher.moment()
        first_seen.setdefault(moment, time.monotonic() - started)
        if moment == MEASURING:
            time.sleep(0.002)
    usual = time.monotonic() - started
    assert process.returncode == 0
    today = snapshot(reference)
    assert today != yesterday and today.keys() == yesterday.keys()
    changed = sum(today[p] != yesterday[p] for p in today)
    # How long each moment lasted, to aim kills at random points within it.
    lasted = {m: 0.0 for m in MOMENTS}
    ends = sorted([*first_seen.values(), usual])
    for moment, at in first_seen.items():
        lasted[moment] = min((t for t in ends if t > at), default=at) - at

    rng = random.Random(SEED)
    reached: Counter[str] = Counter()
    aimed: Counter[str] = Counter()
    leftovers: Counter[str] = Counter()
    kills = 0
    test_started = time.monotonic()
    for target, needed in PER_STATE.items():
        while reached[target] < needed and aimed[target] < TRIES[target]:
            aimed[target] += 1
            kills += 1
            label = f"kill {kills} (aimed at {target!r})"
            repo = tmp_path / f"kill{kills}"
            shutil.copytree(template, repo, symlinks=True)
            watcher = Watcher(repo, yesterday_sha)
            process = start_run(config, repo, scratch)
            delay = rng.uniform(0.0, SPREAD.get(target, 0.0) * lasted.get(target, 0.0))
            kill_at(target, process, watcher, delay)
            state = landed(process, watcher, yesterday)
            reached[state] += 1

            files = snapshot(repo)
            assert files in (yesterday, today), (
                f"{label}, landed {state!r}: a mix of sets "
                f"({sum(files.get(p) == today[p] for p in today)} of {len(today)} files today's)"
            )
            assert_every_file_parses(files)
            fsck(repo)
            if state in (HEAD_MOVED, COMMITTED, FINISHED) or (
                state == LOCKED and git(repo, "rev-parse", "HEAD") != yesterday_sha
            ):
                assert git(repo, "rev-parse", "HEAD~1") == yesterday_sha, label
                assert trailer(repo) == DAY2, label
                assert committed(repo, "HEAD") == today, label
                assert files == today, label
            else:
                assert git(repo, "rev-parse", "HEAD") == yesterday_sha, label
            leftovers["staging directory"] += watcher.staging.exists()
            leftovers["scratch index"] += sum(1 for _ in scratch.iterdir())
            for path in scratch.iterdir():
                shutil.rmtree(path)

            if state == LOCKED:
                # Git refuses to work while its lock file is there, and only a person can tell
                # a lock left by a killed git from one held by a running git: the next run
                # must say so before it asks anything, and leave everything as it was.
                locks = watcher.locks()
                head, asked = git(repo, "rev-parse", "HEAD"), queries_answered(lab)
                refused = run(config, repo, DAY2, sharded=True)
                assert refused.returncode == 2, f"{label}: {refused.stdout}{refused.stderr}"
                assert f".git/{locks[0]} exists" in refused.stderr, refused.stderr
                assert queries_answered(lab) == asked, f"{label}: queries sent despite the lock"
                assert git(repo, "rev-parse", "HEAD") == head
                assert snapshot(repo) == files
                leftovers.update(f"git {name}" for name in locks)
                for name in locks:
                    (repo / ".git" / name).unlink()  # what the message tells a person to do

            again = run(config, repo, DAY2, sharded=True)
            assert again.returncode == 0, f"{label}: the next run failed: {again.stderr}"
            assert snapshot(repo) == today
            assert committed(repo, "HEAD") == today
            assert git(repo, "rev-parse", "HEAD~1") == yesterday_sha
            assert git(repo, "status", "--porcelain", "--untracked-files=all") == ""
            assert not watcher.staging.exists()
            fsck(repo)
            shutil.rmtree(repo)

    seconds = time.monotonic() - test_started
    timeline = ", ".join(f"{m} {lasted[m] * 1000:.0f} ms" for m in MOMENTS if m in first_seen)
    print(
        f"\nkill -9: a run of {usual:.2f} s writing {len(today)} files ({changed} changed); "
        f"moments seen: {timeline}\n"
        f"{kills} kills in {seconds:.0f} s (seed {SEED}), aimed {dict(aimed)}, "
        f"landed {dict(reached)}; left: {dict(leftovers)}, each recovered by the next run"
    )
    missed = {s: f"{reached[s]} of {n}" for s, n in PER_STATE.items() if reached[s] < n}
    assert not missed, f"states not reached often enough: {missed} (landed {dict(reached)})"


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
    """Another push holds the remote's ref lock when ours arrives: ours is refused with
    "failed to update ref" and must try again, as for a remote that moved."""
    a = clone(remote, tmp_path / "a")
    lock = remote / "refs" / "heads" / "main.lock"
    lock.write_text("")  # another push is updating main right now
    attempts = tmp_path / "attempts"
    hook = remote / "hooks" / "pre-receive"
    # receive-pack runs pre-receive before it takes the ref lock. The other push is over by
    # the time ours comes again: its lock goes before our second attempt updates main.
    hook.write_text(
        "#!/bin/sh\n"
        f'if [ -s "{attempts}" ]; then rm -f "{lock}"; fi\n'
        f'if [ -e "{lock}" ]; then echo locked; else echo free; fi >> "{attempts}"\n'
    )
    hook.chmod(0o755)
    trace = tmp_path / "packets"
    argv = monitor_argv(lab.configs["lab"], "run", "--repo", str(a), "--date", DAY1, "--push")
    env = {**environment(a), "GIT_TRACE_PACKET": str(trace)}  # what each side said, both ways
    done = subprocess.run(argv, cwd=a, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert attempts.read_text().split() == ["locked", "free"]
    # The remote's answer to each push, as the pushing git read it.
    answers = re.findall(r"push< (ok|ng) refs/heads/main(.*)", trace.read_text())
    assert answers == [("ng", " failed to update ref"), ("ok", "")], answers
    assert remote_log(remote, "lab") == [DAY1]
    assert git(remote, "rev-parse", "main") == git(a, "rev-parse", "HEAD")
    assert not lock.exists()
