"""Files written whole or not at all, and a clear error when the file system refuses.

Any file-system error while writing the snapshot, the report, the export or the summary is
``Error: PATH: REASON`` and exit 2, with yesterday's files untouched; and a reader that goes
away (``| head -1``) ends a command silently, as it ends other tools. The runs here ask a few
in-process responders on loopback (the demo's kind), since what is tested is the writing.
"""

from __future__ import annotations

import errno
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from monitor.errors import FileError
from monitor.files import file_error, write_atomically
from monitor.lab import Lab, World
from monitor.snapshot import replace_directory

PROJECT = Path(__file__).resolve().parent.parent
NAMES = [f"name{i}.example" for i in range(120)]


# ----------------------------------------------------------------------------- file_error


def test_mkdir_under_a_file_names_the_file_and_says_not_a_directory(tmp_path: Path) -> None:
    blocker = tmp_path / "snapshots"
    blocker.write_text("")
    with pytest.raises(OSError) as raised:
        (blocker / "lab" / "x").mkdir(parents=True)
    error = file_error(raised.value, blocker / "lab")
    assert (error.path, error.reason) == (str(blocker), "Not a directory")
    assert str(error) == f"{blocker}: Not a directory"


def test_opening_under_a_file_names_the_file(tmp_path: Path) -> None:
    blocker = tmp_path / "out"
    blocker.write_text("")
    with pytest.raises(OSError) as raised:
        (blocker / "deep" / "index.html").open("w")
    assert raised.value.errno == errno.ENOTDIR
    assert str(file_error(raised.value, blocker / "deep" / "index.html")) == (
        f"{blocker}: Not a directory"
    )


def test_a_private_path_is_shown_as_the_one_people_know(tmp_path: Path) -> None:
    staging, shown = tmp_path / ".lab.new", tmp_path / "lab"
    exc = OSError(errno.EFBIG, os.strerror(errno.EFBIG), str(staging / "domains.yaml"))
    error = file_error(exc, shown, {staging: shown})
    assert str(error) == f"{shown / 'domains.yaml'}: File too large"


def test_an_error_without_a_file_name_names_the_target(tmp_path: Path) -> None:
    error = file_error(OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)), tmp_path / "x.sqlite")
    assert str(error) == f"{tmp_path / 'x.sqlite'}: No space left on device"


def test_a_refusal_names_the_directory_that_refused(tmp_path: Path) -> None:
    target = tmp_path / "site" / "deeper" / "index.html"
    exc = OSError(errno.EACCES, os.strerror(errno.EACCES), str(target.parent))
    assert str(file_error(exc, target)) == f"{tmp_path}: Permission denied"


def test_replace_directory_under_a_file_raises_and_leaves_nothing(tmp_path: Path) -> None:
    blocker = tmp_path / "snapshots"
    blocker.write_text("not a directory\n")
    with pytest.raises(FileError) as raised:
        replace_directory(blocker / "lab", {"domains.yaml": "a.com: {}\n"})
    assert str(raised.value) == f"{blocker}: Not a directory"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["snapshots"]
    assert blocker.read_text() == "not a directory\n"


def test_write_atomically_leaves_no_temporary_file_when_the_rename_fails(tmp_path: Path) -> None:
    (tmp_path / "index.html").mkdir()
    (tmp_path / "index.html" / "keep").write_text("")
    with pytest.raises(IsADirectoryError):
        write_atomically(tmp_path / "index.html", b"<html>")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index.html"]


# ----------------------------------------------------------------------------- through the CLI


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    records: dict[tuple[str, str], list[str]] = {("example.com", "A"): ["93.184.216.34"]}
    for i, name in enumerate(NAMES):
        records[(name, "A")] = [f"93.184.{i // 200}.{10 + i % 200}"]
    with Lab({"nat": World(records), "ctl": World(records)}) as running:
        yield running


def write_config(lab: Lab, where: Path) -> Path:
    config = where / "config.yaml"
    config.write_text(
        "vantage: lab\nrecord_types: [A]\ntimeout: 1.0\nconfirm: 0\n"
        "resolvers:\n"
        f"  national: [{{name: nat, address: 127.0.0.1, port: {lab['nat'].port}, rate: 0}}]\n"
        f"  control: [{{name: ctl, address: 127.0.0.1, port: {lab['ctl'].port}, "
        "transport: tcp, rate: 0}]\n"
        f"watchlist: [{', '.join(NAMES)}]\n",
        encoding="utf-8",
    )
    return config


def environment(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "REGISTRY_MONITOR"))}
    env.update(
        HOME=str(home),
        PYTHONPATH=str(PROJECT),
        PYTHONDONTWRITEBYTECODE="1",
        GIT_CONFIG_NOSYSTEM="1",
        GIT_AUTHOR_NAME="Files Test",
        GIT_AUTHOR_EMAIL="files@example.test",
        GIT_COMMITTER_NAME="Files Test",
        GIT_COMMITTER_EMAIL="files@example.test",
    )
    return env


def monitor(
    repo: Path, *args: str, preexec: Callable[[], None] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "monitor", *args],
        cwd=repo,
        env=environment(repo.parent),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        preexec_fn=preexec,
    )


def new_repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir()
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
    return repo


def tree(directory: Path) -> dict[str, bytes]:
    return {
        p.relative_to(directory).as_posix(): p.read_bytes()
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


def test_run_with_snapshots_a_regular_file_is_an_error_not_a_crash(
    lab: Lab, tmp_path: Path
) -> None:
    repo = new_repo(tmp_path)
    config = write_config(lab, tmp_path)
    (repo / "snapshots").write_text("a file, not a directory\n")
    done = monitor(repo, "--config", str(config), "run", "--no-commit", "--date", "2026-02-10")
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr == f"Error: {repo / 'snapshots'}: Not a directory\n"
    assert (repo / "snapshots").read_text() == "a file, not a directory\n"
    assert sorted(p.name for p in repo.iterdir()) == [".git", "snapshots"]


def test_a_write_that_fails_half_way_leaves_yesterdays_files(lab: Lab, tmp_path: Path) -> None:
    repo = new_repo(tmp_path)
    config = write_config(lab, tmp_path)
    first = monitor(repo, "--config", str(config), "run", "--date", "2026-02-09")
    assert first.returncode == 0, first.stderr
    snapshots = repo / "snapshots" / "lab"
    yesterday = tree(snapshots)
    assert len(yesterday[("domains.yaml")]) > 4096  # bigger than the limit below

    def small_files() -> None:
        # A file may grow to 4 KiB and no more (EFBIG, "File too large"): a disk that fills
        # while today's files are being written.
        import resource

        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))

    done = monitor(
        repo, "--config", str(config), "run", "--date", "2026-02-10", preexec=small_files
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr == f"Error: {snapshots / 'domains.yaml'}: File too large\n"
    assert tree(snapshots) == yesterday
    assert sorted(p.name for p in (repo / "snapshots").iterdir()) == ["lab"]  # no staging left
    log = subprocess.run(
        ["git", "log", "--format=%s"], cwd=repo, capture_output=True, text=True, check=True
    )
    assert log.stdout.splitlines() == ["lab: no change, 0 missing of 120 (2026-02-09)"]


def without_override() -> list[str]:
    """A command prefix under which permissions hold: root ignores them, so as root the
    capabilities that override them are dropped (util-linux setpriv)."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    assert setpriv, "setpriv (util-linux) is needed to test permissions as root"
    return [setpriv, "--bounding-set=-dac_override,-dac_read_search"]


def test_a_snapshot_directory_without_write_permission_is_named(lab: Lab, tmp_path: Path) -> None:
    repo = new_repo(tmp_path)
    config = write_config(lab, tmp_path)
    snapshots = repo / "snapshots"
    snapshots.mkdir()
    snapshots.chmod(0o555)
    try:
        done = subprocess.run(
            [
                *without_override(),
                *(sys.executable, "-m", "monitor", "--config", str(config)),
                *("run", "--no-commit", "--date", "2026-02-10"),
            ],
            cwd=repo,
            env=environment(repo.parent),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        snapshots.chmod(0o755)
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr == f"Error: {snapshots}: Permission denied\n"
    assert list(snapshots.iterdir()) == []


def test_a_summary_that_cannot_be_written_stops_the_run_before_any_query(
    lab: Lab, tmp_path: Path
) -> None:
    repo = new_repo(tmp_path)
    config = write_config(lab, tmp_path)
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    asked = len(lab["nat"].queries)
    done = monitor(repo, "--config", str(config), "run", "--summary", str(blocker / "sum.md"))
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr == f"Error: {blocker}: Not a directory\n"
    assert len(lab["nat"].queries) == asked
    assert sorted(p.name for p in repo.iterdir()) == [".git"]


@pytest.fixture(scope="module")
def history_repo(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("history")
    repo = new_repo(root)
    config = write_config(lab, root)
    for date in ("2026-02-09", "2026-02-10", "2026-02-11"):
        done = monitor(repo, "--config", str(config), "run", "--date", date)
        assert done.returncode == 0, done.stderr
    return repo, config


@pytest.mark.parametrize(
    ("command", "what"),
    [
        (["report", "--out", "{blocker}/site"], "{blocker}"),
        (["export", "--sqlite", "{blocker}/deep/h.sqlite"], "{blocker}"),
    ],
    ids=["report", "export"],
)
def test_report_and_export_under_a_file_are_errors(
    history_repo: tuple[Path, Path], tmp_path: Path, command: list[str], what: str
) -> None:
    repo, config = history_repo
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    args = [a.format(blocker=blocker) for a in command]
    done = monitor(repo, "--config", str(config), *args)
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr == f"Error: {what.format(blocker=blocker)}: Not a directory\n"
    assert blocker.read_text() == ""


# ----------------------------------------------------------------------------- closed pipes


@pytest.mark.parametrize(
    "args",
    [
        ["diff", "HEAD~2", "HEAD"],
        ["history"],
        ["history", "--format", "csv"],
        ["validate"],
        ["--help"],
    ],
    ids=" ".join,
)
def test_a_reader_that_went_away_ends_the_command_silently(
    history_repo: tuple[Path, Path], args: list[str]
) -> None:
    """``registry-monitor diff HEAD~2 HEAD | head -1``: the reader is gone before the command
    writes, so every write fails with EPIPE; the command ends as other tools end, killed by
    SIGPIPE, with nothing on stderr (not ``Internal error``, exit 1)."""
    repo, config = history_repo
    shown = monitor(repo, "--config", str(config), *args)
    assert shown.returncode == 0 and shown.stdout, shown.stderr  # there is something to write
    read, write = os.pipe()
    os.close(read)
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "monitor", "--config", str(config), *args],
            cwd=repo,
            env=environment(repo.parent),
            stdout=write,
            stderr=subprocess.PIPE,
            text=True,
        )
    finally:
        os.close(write)
    _, err = process.communicate(timeout=60)
    assert (process.returncode, err) == (-signal.SIGPIPE, "")


def test_the_pipe_test_sees_a_closed_pipe(tmp_path: Path) -> None:
    """The way the test above closes the pipe makes a plain writer fail with EPIPE."""
    read, write = os.pipe()
    os.close(read)
    try:
        with pytest.raises(BrokenPipeError):
            os.write(write, b"x")
    finally:
        os.close(write)
    assert shutil.which("git")
