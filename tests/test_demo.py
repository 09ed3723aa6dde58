"""`registry-monitor demo`: the whole story offline, checked from the outside."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import git
import pytest
import yaml

from monitor.demo import BLOCK_PAGE, DELETED, FILTERED, REFUSED, RETURNING, VANTAGE
from monitor.gitstore import ATTRIBUTES

PROJECT = Path(__file__).parent.parent
READER = "A. Reader"  # the identity in the reader's own global git config
DEMO_IDENTITY = ("registry-monitor demo", "demo@registry-monitor.invalid")


def environment(home: Path | None = None, **extra: str) -> dict[str, str]:
    """Our environment without git or monitor settings; with ``home``, a HOME of its own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "REGISTRY_MONITOR"))}
    if home is not None:
        env.update(HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"), GIT_CONFIG_NOSYSTEM="1")
    env.update(extra)
    return env


def run_demo(
    *args: str,
    tmpdir: Path | None = None,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    env = dict(environment() if env is None else env)
    if tmpdir is not None:
        env["TMPDIR"] = str(tmpdir)
    return subprocess.run(
        # -P: never import the monitor package of the directory run in (a clone has one)
        [sys.executable, "-P", "-m", "monitor", "demo", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=cwd,
        check=False,
    )


def reader_home(tmp_path: Path) -> Path:
    """A HOME whose global git config names the reader, as a real user's does."""
    home = tmp_path / "home"
    home.mkdir()
    (home / ".gitconfig").write_text(f"[user]\n\tname = {READER}\n\temail = reader@example.test\n")
    return home


def tree(root: Path) -> dict[str, bytes | None]:
    """Every file under ``root`` (.git included) by relative path, with its bytes; None for a
    directory. Read with the file system only: git commands could rewrite the index."""
    found: dict[str, bytes | None] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        for name in dirnames:
            found[str((here / name).relative_to(root))] = None
        for name in filenames:
            path = here / name
            found[str(path.relative_to(root))] = (
                os.readlink(path).encode() if path.is_symlink() else path.read_bytes()
            )
    return found


def clone_of_this_project(tmp_path: Path, home: Path) -> Path:
    """A real `git clone` of this checkout, in the state in which a user would keep the demo."""
    clone = tmp_path / "clone"
    subprocess.run(
        ["git", "clone", "--quiet", str(PROJECT), str(clone)],
        env=environment(home),
        check=True,
        timeout=120,
    )
    # the state the issue names: a tracked config.yaml, a history and a .git/config of its own
    assert (clone / "config.yaml").is_file()
    assert b'[remote "origin"]' in (clone / ".git" / "config").read_bytes()
    assert git.Repo(clone).head.is_valid()  # a history (one commit in CI's shallow checkout)
    return clone


def subject(commit: git.Commit) -> str:
    """Return a commit's first line (GitPython gives bytes only for a message it cannot decode)."""
    assert isinstance(commit.summary, str)
    return commit.summary


def test_demo_tells_the_story_and_leaves_a_repository(tmp_path: Path) -> None:
    keep = tmp_path / "demo-repo"
    result = run_demo("--keep", str(keep))
    assert result.returncode == 0, result.stderr
    out = result.stdout

    repo = git.Repo(keep)
    subjects = [subject(c) for c in repo.iter_commits()][::-1]
    assert subjects[0] == "demo: no change, 0 missing of 23 (2026-02-09)"
    assert subjects[1].startswith("demo: 15 disappeared, 2 degraded: youtube.com, web.whatsapp.com")
    assert subjects[1].endswith("(2026-02-10)")
    assert subjects[2] == ("demo: 4 restored: bbc.com, bbc.co.uk, dw.com, and 1 more (2026-02-11)")
    for name in DELETED:
        assert f"disappeared: {name} (present → missing)" in out
    assert f"degraded: {REFUSED} (present → failing)" in out
    assert f"degraded: {BLOCK_PAGE} (present → tampered)" in out
    for name in RETURNING:
        assert f"restored: {name} " in out
    assert "=== diff: the events of 2026-02-10 ===" in out
    assert "youtube.com    missing   2026-02-10 → 2026-02-11 (last run)" in out
    assert f"{FILTERED}  unstable  2026-02-10 → 2026-02-11 (last run)" in out

    snapshot = yaml.safe_load((keep / "snapshots" / VANTAGE / "domains.yaml").read_text())
    assert snapshot["youtube.com"]["verdict"] == "missing"
    assert str(snapshot["youtube.com"]["since"]) == "2026-02-10"
    assert snapshot["bbc.com"]["verdict"] == "present"
    # the filtered name was never judged otherwise than present: that day is marked, not flagged
    assert snapshot[FILTERED] == {
        "verdict": "present",
        "since": __import__("datetime").date(2026, 2, 9),
        "today": "unstable",
        "nsdi-a": "ok",
        "nsdi-b": "ok",
        "google": "ok",
        "cloudflare": "ok",
        "quad9": "nxdomain",
    }
    assert snapshot["xn--e1ajeds9e.xn--p1ai"]["verdict"] == "present"


def test_demo_in_a_temporary_directory_leaves_nothing_behind(tmp_path: Path) -> None:
    result = run_demo(tmpdir=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Done." in result.stdout
    assert list(tmp_path.iterdir()) == []


def test_demo_in_process_stops_its_responders() -> None:
    from monitor.demo import demo

    before = {t.name for t in threading.enumerate()}
    outcome = demo(confirm_spacing=0.0)
    assert [len(day.events) for day in outcome.days] == [0, 17, 4]
    assert not outcome.repo.exists()
    after = {t.name for t in threading.enumerate()}
    assert not {n for n in after - before if n.startswith("lab-responder")}


def test_run_in_a_kept_repository_finds_the_resolvers_gone_and_writes_nothing(
    tmp_path: Path,
) -> None:
    keep = tmp_path / "demo-repo"
    assert run_demo("--keep", str(keep)).returncode == 0
    config = (keep / "config.yaml").read_text(encoding="utf-8")
    assert config.startswith("# Written by `registry-monitor demo`. The resolvers below")
    assert "`run` and `check` here find every one down (exit 4," in config
    before = tree(keep)

    done = subprocess.run(
        [sys.executable, "-m", "monitor", "run", "--date", "2026-02-12"],
        cwd=keep,
        env=environment(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 4, done.stdout + done.stderr
    assert done.stderr.endswith(
        "Error: inconclusive run, nothing written: every national resolver is down"
        " (no canary answered)\n"
    )
    assert tree(keep) == before


def test_keep_refuses_a_folder_that_is_not_empty_and_touches_nothing(tmp_path: Path) -> None:
    folder = tmp_path / "notes"
    (folder / "drafts").mkdir(parents=True)
    (folder / "config.yaml").write_text("mine: true\n")
    (folder / "drafts" / "todo.txt").write_text("call back\n")
    before = tree(folder)

    result = run_demo("--keep", str(folder))

    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr == (
        f"Error: --keep {folder}: the directory is not empty; give a new or empty one"
        " (the demo never writes over files or into a repository)\n"
    )
    assert tree(folder) == before


@pytest.mark.parametrize("how", ["path", "dot"])
def test_keep_refuses_a_clone_of_this_project_and_leaves_it_byte_for_byte(
    tmp_path: Path, how: str
) -> None:
    home = reader_home(tmp_path)
    clone = clone_of_this_project(tmp_path, home)
    before, global_before = tree(clone), tree(home)

    if how == "dot":  # the case: `demo --keep .` inside the clone
        result = run_demo("--keep", ".", cwd=clone, env=environment(home))
        shown = "."
    else:
        result = run_demo("--keep", str(clone), env=environment(home))
        shown = str(clone)

    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stdout == ""
    assert result.stderr.startswith(f"Error: --keep {shown}: the directory is not empty;")
    # files, .git/config, refs, HEAD, the index, objects: all as they were, and no new one
    assert tree(clone) == before
    assert tree(home) == global_before


def test_keep_refuses_when_git_dir_points_elsewhere(tmp_path: Path) -> None:
    home = reader_home(tmp_path)
    clone = clone_of_this_project(tmp_path, home)
    before = tree(clone)
    keep = tmp_path / "new"

    result = run_demo("--keep", str(keep), env=environment(home, GIT_DIR=str(clone / ".git")))

    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr == (
        "Error: GIT_DIR is set: the demo would write into that repository instead of its own;"
        " run it without the variable\n"
    )
    assert tree(clone) == before
    assert not keep.exists()


def test_keep_twice_into_one_folder_refuses_the_second_and_keeps_the_first(
    tmp_path: Path,
) -> None:
    keep = tmp_path / "demo-repo"
    first = run_demo("--keep", str(keep))
    assert first.returncode == 0, first.stderr
    assert len(list(git.Repo(keep).iter_commits())) == 3
    before = tree(keep)

    second = run_demo("--keep", str(keep))

    assert second.returncode == 2
    assert second.stdout == ""
    assert second.stderr == (
        f"Error: --keep {keep}: the directory is not empty; it holds an earlier demo's"
        " repository: read it there, or give --keep a new directory\n"
    )
    assert "--date" not in second.stderr
    assert tree(keep) == before


@pytest.mark.parametrize("state", ["new", "empty"])
def test_keep_into_a_new_folder_sets_the_identity_only_in_its_repository(
    tmp_path: Path, state: str
) -> None:
    home = reader_home(tmp_path)
    clone = clone_of_this_project(tmp_path, home)
    # a folder inside another repository: the demo makes a repository of its own there
    keep = clone / "demo-repo"
    if state == "empty":
        keep.mkdir()
    git_before, global_before = tree(clone / ".git"), tree(home)

    result = run_demo("--keep", str(keep), env=environment(home))

    assert result.returncode == 0, result.stderr
    assert f"The repository is in {keep}: try `git -C {keep} log -p snapshots/`" in result.stdout
    kept = git.Repo(keep)
    assert Path(kept.git_dir) == keep / ".git"
    commits = list(kept.iter_commits())
    assert len(commits) == 3
    for commit in commits:
        assert (commit.author.name, commit.author.email) == DEMO_IDENTITY
        assert (commit.committer.name, commit.committer.email) == DEMO_IDENTITY
    with kept.config_reader("repository") as own:
        assert own.get_value("user", "name") == DEMO_IDENTITY[0]
    # the other repository and the reader's global config: byte for byte as they were
    assert tree(clone / ".git") == git_before
    assert tree(home) == global_before
    assert (home / ".gitconfig").read_text().count("name = ") == 1


def test_a_kept_repository_reads_with_the_projects_attributes(tmp_path: Path) -> None:
    # The lines gitstore gives a kept demo are the ones the project's .gitattributes holds.
    project = (PROJECT / ".gitattributes").read_text(encoding="utf-8").splitlines()
    assert [line for line in project if line and not line.startswith("#")] == (
        ATTRIBUTES.splitlines()
    )
    keep = tmp_path / "kept"
    result = run_demo("--keep", str(keep), env=environment(reader_home(tmp_path)))
    assert result.returncode == 0, result.stderr
    shown = git.Repo(keep).git.log("-p", "snapshots/")
    # feed.atom and run.yaml are said to change; the domain lines are shown.
    assert shown.count("Binary files a/snapshots/demo/feed.atom and b/snapshots/") == 2
    assert "<entry>" not in shown and "verdicts:" not in shown
    assert "+youtube.com: {verdict: missing, since: 2026-02-10" in shown
    assert len(shown.splitlines()) == 179  # the README's figure
    assert "<entry>" in git.Repo(keep).git.log("-p", "--text", "snapshots/")
