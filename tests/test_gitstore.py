"""Tests for monitor.gitstore against real git repositories in tmp_path."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from monitor import gitstore
from monitor.errors import RepoError
from monitor.gitstore import SnapshotCommit

AUTHOR = "Test Runner"
EMAIL = "runner@example.test"


@pytest.fixture(autouse=True)
def git_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An explicit committer and no global or system git config, so every run is the same."""
    config = tmp_path / "global.gitconfig"
    config.write_text("")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(config))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for kind in ("AUTHOR", "COMMITTER"):
        monkeypatch.setenv(f"GIT_{kind}_NAME", AUTHOR)
        monkeypatch.setenv(f"GIT_{kind}_EMAIL", EMAIL)


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout.rstrip("\n")


def init(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "-q", "-b", "main")
    return path


def write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        target = root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)


def message(vantage: str, date: str, subject: str = "no change") -> str:
    return f"{vantage}: {subject} ({date})\n\nMonitor-Date: {date}\nMonitor-Vantage: {vantage}\n"


def snapshot(
    root: Path,
    vantage: str,
    date: str,
    files: dict[str, str],
    amend_if: Callable[[SnapshotCommit], bool] | None = None,
) -> str:
    """Write files under snapshots/<vantage>/ and commit them with commit_directory."""
    write(root / "snapshots" / vantage, files)
    repo = gitstore.open_repo(root)
    return gitstore.commit_directory(
        repo,
        f"snapshots/{vantage}",
        message(vantage, date),
        amend_if=amend_if,
    )


def status(root: Path) -> list[str]:
    return git(root, "status", "--porcelain", "--untracked-files=all").splitlines()


# ----------------------------------------------------------------------------- open_repo


def test_open_repo_refuses_a_plain_directory(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    with pytest.raises(RepoError) as err:
        gitstore.open_repo(plain)
    assert str(err.value) == f"not a git repository: {plain} (use --repo DIR or git init)"


def test_open_repo_searches_upward_from_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = init(tmp_path / "repo")
    (root / "deep" / "er").mkdir(parents=True)
    monkeypatch.chdir(root / "deep" / "er")
    repo = gitstore.open_repo(None)
    assert Path(str(repo.working_tree_dir)).resolve() == root.resolve()


def test_open_repo_refuses_a_bare_repository(tmp_path: Path) -> None:
    bare = tmp_path / "bare.git"
    git(tmp_path, "init", "-q", "--bare", str(bare))
    with pytest.raises(RepoError, match="bare repository"):
        gitstore.open_repo(bare)


# ----------------------------------------------------------------------------- commit_directory


def test_first_commit_in_an_empty_repository(tmp_path: Path) -> None:
    root = init(tmp_path / "repo")
    sha = snapshot(root, "default", "2026-11-28", {"domains.yaml": "a.com: {}\n"})
    assert git(root, "rev-parse", "HEAD") == sha
    assert git(root, "rev-parse", "--abbrev-ref", "HEAD") == "main"
    assert git(root, "rev-list", "--parents", "HEAD") == sha  # a root commit
    assert git(root, "ls-tree", "-r", "--name-only", "HEAD") == "snapshots/default/domains.yaml"
    assert git(root, "log", "-1", "--format=%B", "HEAD") == message("default", "2026-11-28").strip()
    assert git(root, "log", "-1", "--format=%an <%ae>|%cn <%ce>") == (
        f"{AUTHOR} <{EMAIL}>|{AUTHOR} <{EMAIL}>"
    )
    assert status(root) == []


def test_commit_takes_only_the_directory_and_leaves_the_users_changes(tmp_path: Path) -> None:
    root = init(tmp_path / "repo")
    write(
        root,
        {
            "README.md": "readme\n",
            "snapshots/default/domains.yaml": "a.com: {verdict: present}\n",
            "snapshots/default/old.yaml": "old\n",
            "snapshots/other/domains.yaml": "other\n",
        },
    )
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "seed")
    seed = git(root, "rev-parse", "HEAD")

    write(root, {"README.md": "edited, not staged\n", "staged.txt": "staged\n"})
    git(root, "add", "staged.txt")
    write(root, {"snapshots/other/domains.yaml": "other vantage, edited\n"})
    write(root / "snapshots/default", {"domains.yaml": "a.com: {verdict: missing}\n"})
    write(root / "snapshots/default", {"domains/ab.yaml": "ab.com: {}\n"})
    (root / "snapshots/default/old.yaml").unlink()

    sha = gitstore.commit_directory(
        gitstore.open_repo(root), "snapshots/default/", message("default", "2026-11-28")
    )

    assert git(root, "rev-parse", "HEAD") == sha
    assert git(root, "rev-parse", "HEAD^") == seed
    changed = git(root, "show", "--name-status", "--format=", "HEAD").splitlines()
    assert sorted(changed) == [
        "A\tsnapshots/default/domains/ab.yaml",
        "D\tsnapshots/default/old.yaml",
        "M\tsnapshots/default/domains.yaml",
    ]
    assert sorted(status(root)) == [
        " M README.md",
        " M snapshots/other/domains.yaml",
        "A  staged.txt",
    ]
    assert git(root, "diff", "--cached", "--name-only") == "staged.txt"
    assert (root / "README.md").read_text() == "edited, not staged\n"


def test_an_unchanged_tree_still_makes_a_commit(tmp_path: Path) -> None:
    root = init(tmp_path / "repo")
    first = snapshot(root, "default", "2026-11-27", {"domains.yaml": "same\n"})
    second = snapshot(root, "default", "2026-11-28", {"domains.yaml": "same\n"})
    assert first != second
    assert git(root, "rev-parse", "HEAD^") == first
    assert git(root, "rev-parse", "HEAD^{tree}") == git(root, "rev-parse", "HEAD^^{tree}")


def test_a_directory_deleted_from_the_work_tree_is_deleted_in_the_commit(tmp_path: Path) -> None:
    root = init(tmp_path / "repo")
    snapshot(root, "default", "2026-11-27", {"a.yaml": "a\n", "domains/ab.yaml": "ab\n"})
    write(root, {"keep.txt": "kept\n"})
    git(root, "add", "keep.txt")
    git(root, "commit", "-q", "-m", "keep")
    for file in sorted((root / "snapshots/default").rglob("*"), reverse=True):
        file.unlink() if file.is_file() else file.rmdir()
    (root / "snapshots/default").rmdir()

    gitstore.commit_directory(gitstore.open_repo(root), "snapshots/default", "gone\n")
    assert git(root, "ls-tree", "-r", "--name-only", "HEAD") == "keep.txt"
    assert status(root) == []


@pytest.mark.parametrize("lock", ["index.lock", "HEAD.lock", "refs/heads/day.lock"])
def test_a_lock_file_left_by_a_killed_git_is_named(tmp_path: Path, lock: str) -> None:
    """Git's lock on the index, HEAD or the branch a commit moves: left by a git that was
    killed (tests/test_crash.py kills real ones), or held by one that is running."""
    root = init(tmp_path / "repo")
    git(root, "checkout", "-q", "-b", "day")
    snapshot(root, "default", "2026-11-27", {"domains.yaml": "a\n"})
    repo = gitstore.open_repo(root)
    gitstore.check_unlocked(repo)
    (root / ".git" / "refs" / "heads" / "main.lock").write_text("")  # not the branch HEAD is on
    gitstore.check_unlocked(repo)
    path = Path(repo.git_dir) / lock
    path.write_text("")
    with pytest.raises(RepoError) as caught:
        gitstore.check_unlocked(repo)
    assert str(caught.value) == (
        f"{path} exists: a git process is running in this repository, or one was killed and "
        "left its lock behind; remove the file if no git is running"
    )
    path.unlink()
    gitstore.check_unlocked(repo)


def test_commit_falls_back_to_the_registry_monitor_identity(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for variable in ("NAME", "EMAIL"):
        monkeypatch.delenv(f"GIT_AUTHOR_{variable}")
        monkeypatch.delenv(f"GIT_COMMITTER_{variable}")
    monkeypatch.delenv("EMAIL", raising=False)
    root = init(tmp_path / "repo")
    snapshot(root, "default", "2026-11-28", {"a.yaml": "a\n"})
    expected = f"{gitstore.FALLBACK_NAME} <{gitstore.FALLBACK_EMAIL}>"
    assert git(root, "log", "-1", "--format=%an <%ae>|%cn <%ce>") == f"{expected}|{expected}"


def test_commit_uses_the_configured_identity(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for variable in ("NAME", "EMAIL"):
        monkeypatch.delenv(f"GIT_AUTHOR_{variable}")
        monkeypatch.delenv(f"GIT_COMMITTER_{variable}")
    root = init(tmp_path / "repo")
    git(root, "config", "user.name", "Configured Person")
    git(root, "config", "user.email", "person@example.test")
    snapshot(root, "default", "2026-11-28", {"a.yaml": "a\n"})
    assert git(root, "log", "-1", "--format=%an <%ae>") == "Configured Person <person@example.test>"


# ----------------------------------------------------------------------------- amend_if


def same_date(date: str) -> Callable[[SnapshotCommit], bool]:
    return lambda commit: commit.date == date


def test_amend_if_replaces_an_unpushed_head(tmp_path: Path) -> None:
    root = init(tmp_path / "repo")
    base = snapshot(root, "default", "2026-11-27", {"a.yaml": "day 1\n"})
    first = snapshot(root, "default", "2026-11-28", {"a.yaml": "day 2, first run\n"})
    again = snapshot(
        root,
        "default",
        "2026-11-28",
        {"a.yaml": "day 2, again\n"},
        amend_if=same_date("2026-11-28"),
    )
    assert again != first
    assert git(root, "rev-list", "HEAD").splitlines() == [again, base]
    assert git(root, "show", "HEAD:snapshots/default/a.yaml") == "day 2, again"
    assert status(root) == []


@pytest.mark.parametrize(
    ("predicate", "pushed"),
    [
        (same_date("2026-11-28"), True),  # same date, but already on origin/main
        (same_date("2026-11-27"), False),  # not pushed, but the predicate says no
    ],
)
def test_amend_if_adds_a_commit_when_head_is_pushed_or_does_not_qualify(
    tmp_path: Path, predicate: Callable[[SnapshotCommit], bool], pushed: bool
) -> None:
    remote = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(remote))
    root = init(tmp_path / "repo")
    git(root, "remote", "add", "origin", str(remote))
    first = snapshot(root, "default", "2026-11-28", {"a.yaml": "first run\n"})
    if pushed:
        git(root, "push", "-q", "origin", "main")
    again = snapshot(root, "default", "2026-11-28", {"a.yaml": "again\n"}, amend_if=predicate)
    assert git(root, "rev-list", "HEAD").splitlines() == [again, first]
    assert gitstore.is_pushed(gitstore.open_repo(root), first) is pushed


# ----------------------------------------------------------------------------- vantage_commits


def test_vantage_commits_reads_trailers_oldest_first_and_keeps_vantages_apart(
    tmp_path: Path,
) -> None:
    root = init(tmp_path / "repo")
    a1 = snapshot(root, "alpha", "2026-11-26", {"d.yaml": "1\n"})
    b1 = snapshot(root, "beta", "2026-11-26", {"d.yaml": "1\n"})
    write(root, {"README.md": "unrelated\n"})
    git(root, "add", "README.md")
    git(root, "commit", "-q", "-m", "docs")
    a2 = snapshot(root, "alpha", "2026-11-27", {"d.yaml": "2\n"})
    write(root / "snapshots/alpha-old", {"d.yaml": "a vantage whose name starts alike\n"})
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "alpha-old")

    repo = gitstore.open_repo(root)
    assert gitstore.vantage_commits(repo, "alpha") == [
        SnapshotCommit(a1, "2026-11-26", "alpha", "alpha: no change (2026-11-26)"),
        SnapshotCommit(a2, "2026-11-27", "alpha", "alpha: no change (2026-11-27)"),
    ]
    assert gitstore.vantage_commits(repo, "beta") == [
        SnapshotCommit(b1, "2026-11-26", "beta", "beta: no change (2026-11-26)")
    ]
    assert [c.sha for c in gitstore.vantage_commits(repo, "alpha", rev=b1)] == [a1]
    assert gitstore.vantage_commits(repo, "gamma") == []


def test_vantage_commits_without_trailers_gives_none(tmp_path: Path) -> None:
    root = init(tmp_path / "repo")
    write(root, {"snapshots/default/a.yaml": "hand edit\n"})
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "fix a snapshot by hand")
    [commit] = gitstore.vantage_commits(gitstore.open_repo(root), "default")
    assert (commit.date, commit.vantage, commit.subject) == (None, None, "fix a snapshot by hand")


def test_vantage_commits_in_an_empty_repository_and_with_a_bad_revision(tmp_path: Path) -> None:
    repo = gitstore.open_repo(init(tmp_path / "repo"))
    assert gitstore.vantage_commits(repo, "default") == []
    assert gitstore.read_files(repo, "HEAD", "snapshots/default") == {}
    for rev in ("no-such-branch", "--all"):
        with pytest.raises(RepoError, match=f"unknown revision: {rev}"):
            gitstore.vantage_commits(repo, "default", rev=rev)


@pytest.mark.parametrize(
    ("attributes", "git_shows"),
    [
        # A fork that marks its snapshot files binary, or gives them a textconv that rewrites.
        ("snapshots/** -diff\n", "Binary files a/snapshots/default/domains.yaml and b/"),
        ("*.yaml diff=upper\n", "+A.COM: {VERDICT: MISSING}"),
    ],
    ids=["-diff", "textconv"],
)
def test_patches_are_the_files_own_lines_whatever_the_attributes_say(
    tmp_path: Path, attributes: str, git_shows: str
) -> None:
    root = init(tmp_path / "repo")
    snapshot(root, "default", "2026-11-26", {"domains.yaml": "a.com: {verdict: present}\n"})
    sha = snapshot(root, "default", "2026-11-27", {"domains.yaml": "a.com: {verdict: missing}\n"})
    repo = gitstore.open_repo(root)
    plain = gitstore.patches(repo, "HEAD", ["snapshots/default/domains.yaml"])
    assert plain.startswith(f"\x00{sha}\n")
    assert "\n+a.com: {verdict: missing}\n" in plain
    write(root, {".gitattributes": attributes})
    git(root, "config", "diff.upper.textconv", "tr a-z A-Z <")
    assert git_shows in git(root, "log", "-p", "-1", "--format=", "snapshots/")
    assert gitstore.patches(repo, "HEAD", ["snapshots/default/domains.yaml"]) == plain


# ----------------------------------------------------------------------------- read_files


def test_read_files_returns_old_content_without_touching_the_work_tree(tmp_path: Path) -> None:
    root = init(tmp_path / "repo")
    old_files = {
        "domains.yaml": "a.com: {verdict: present}\n",
        "domains/ab.yaml": "ab.com: {verdict: missing}\n",
        "domains/deeper/cd.yaml": "cd.com: {}\n",
        "empty.yaml": "",
        "unicode.yaml": "xn--e1afmkfd.xn--p1ai: {display: пример.рф}\n",
    }
    old = snapshot(root, "default", "2026-11-27", old_files)
    write(root, {"snapshots/defaultish/x.yaml": "not under the directory\n"})
    git(root, "add", "snapshots/defaultish")
    git(root, "commit", "-q", "-m", "a sibling whose name starts alike")
    snapshot(root, "default", "2026-11-28", {"domains/ab.yaml": "ab.com: {verdict: present}\n"})
    (root / "snapshots/default/empty.yaml").unlink()
    before = status(root)

    repo = gitstore.open_repo(root)
    got = gitstore.read_files(repo, old, "snapshots/default")
    assert got == {name: text.encode() for name, text in old_files.items()}
    at_head = gitstore.read_files(repo, "HEAD", "snapshots/default")
    assert sorted(at_head) == sorted(old_files)  # nothing from snapshots/defaultish
    assert at_head["domains/ab.yaml"] == b"ab.com: {verdict: present}\n"
    assert (
        root / "snapshots/default/domains/ab.yaml"
    ).read_text() == "ab.com: {verdict: present}\n"
    assert status(root) == before == [" D snapshots/default/empty.yaml"]
    assert gitstore.read_files(repo, old, "snapshots/absent") == {}
    with pytest.raises(RepoError, match="unknown revision"):
        gitstore.read_files(repo, "0" * 40, "snapshots/default")


def test_read_files_keeps_binary_content_exact(tmp_path: Path) -> None:
    root = init(tmp_path / "repo")
    blob = bytes(range(256)) + b"\n\n"
    (root / "snapshots/default").mkdir(parents=True)
    (root / "snapshots/default/raw.bin").write_bytes(blob)
    (root / "snapshots/default/z.txt").write_bytes(b"after\n")
    sha = gitstore.commit_directory(gitstore.open_repo(root), "snapshots/default", "raw\n")
    got = gitstore.read_files(gitstore.open_repo(root), sha, "snapshots/default")
    assert got == {"raw.bin": blob, "z.txt": b"after\n"}


# ----------------------------------------------------------------------------- push


@pytest.fixture
def clones(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A bare remote holding one commit, and two clones of it, A and B."""
    remote = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(remote))
    seed = init(tmp_path / "seed")
    write(seed, {"README.md": "seed\n", "snapshots/shared/x.yaml": "shared\n"})
    git(seed, "add", "-A")
    git(seed, "commit", "-q", "-m", "seed")
    git(seed, "push", "-q", str(remote), "main")
    a, b = tmp_path / "a", tmp_path / "b"
    for clone in (a, b):
        git(tmp_path, "clone", "-q", str(remote), str(clone))
    return remote, a, b


def test_a_rejected_push_is_rebased_and_retried(clones: tuple[Path, Path, Path]) -> None:
    remote, a, b = clones
    from_a = snapshot(a, "alpha", "2026-11-28", {"d.yaml": "from a\n"})
    snapshot(b, "beta", "2026-11-28", {"d.yaml": "from b\n"})
    gitstore.push(gitstore.open_repo(b), pause=0)
    write(a, {"README.md": "an unrelated local edit\n"})

    gitstore.push(gitstore.open_repo(a), pause=0)

    subjects = git(remote, "log", "--format=%s", "main").splitlines()
    assert subjects == [
        "alpha: no change (2026-11-28)",
        "beta: no change (2026-11-28)",
        "seed",
    ]
    assert git(a, "rev-parse", "HEAD") == git(remote, "rev-parse", "main") != from_a
    assert git(a, "rev-parse", "--abbrev-ref", "main@{upstream}") == "origin/main"
    assert git(remote, "show", "main:snapshots/beta/d.yaml") == "from b"
    assert git(remote, "show", "main:snapshots/alpha/d.yaml") == "from a"
    assert status(a) == [" M README.md"]


def test_a_conflicting_push_raises_and_keeps_the_local_commit(
    clones: tuple[Path, Path, Path],
) -> None:
    remote, a, b = clones
    snapshot(b, "shared", "2026-11-28", {"x.yaml": "b says\n"})
    gitstore.push(gitstore.open_repo(b), pause=0)
    local = snapshot(a, "shared", "2026-11-28", {"x.yaml": "a says\n"})

    with pytest.raises(RepoError) as err:
        gitstore.push(gitstore.open_repo(a), pause=0)

    assert "origin branch main" in str(err.value)
    assert "Merge conflict in snapshots/shared/x.yaml" in str(err.value)
    assert git(a, "rev-parse", "HEAD") == local
    assert git(a, "rev-parse", "--abbrev-ref", "HEAD") == "main"
    assert (a / "snapshots/shared/x.yaml").read_text() == "a says\n"
    assert not (a / ".git/rebase-merge").exists()
    assert not (a / ".git/rebase-apply").exists()
    assert status(a) == []
    assert git(remote, "show", "main:snapshots/shared/x.yaml") == "b says"


def test_push_gives_up_after_the_last_attempt(clones: tuple[Path, Path, Path]) -> None:
    remote, a, b = clones
    snapshot(b, "beta", "2026-11-28", {"d.yaml": "from b\n"})
    gitstore.push(gitstore.open_repo(b), pause=0)
    local = snapshot(a, "alpha", "2026-11-28", {"d.yaml": "from a\n"})
    with pytest.raises(RepoError, match=r"still rejected after 1 attempts.*\(fetch first\)"):
        gitstore.push(gitstore.open_repo(a), attempts=1, pause=0)
    assert git(a, "rev-parse", "HEAD") == local  # not rebased
    assert (
        git(remote, "log", "--format=%s", "main").splitlines()[0] == "beta: no change (2026-11-28)"
    )


def test_push_without_the_remote_raises(tmp_path: Path) -> None:
    root = init(tmp_path / "repo")
    local = snapshot(root, "default", "2026-11-28", {"a.yaml": "a\n"})
    with pytest.raises(RepoError, match="no remote named 'origin'"):
        gitstore.push(gitstore.open_repo(root))
    assert git(root, "rev-parse", "HEAD") == local


def test_push_to_an_unreachable_remote_fails_at_once(tmp_path: Path) -> None:
    root = init(tmp_path / "repo")
    git(root, "remote", "add", "origin", str(tmp_path / "missing.git"))
    local = snapshot(root, "default", "2026-11-28", {"a.yaml": "a\n"})
    with pytest.raises(RepoError, match=r"push to origin branch main failed: .*missing\.git"):
        gitstore.push(gitstore.open_repo(root), pause=60)  # a retry would take a minute
    assert git(root, "rev-parse", "HEAD") == local
