"""The git layer: read snapshot history and commit and push snapshot directories, via GitPython."""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Literal, cast, overload

import git

from monitor.errors import RepoError

__all__ = [
    "ATTRIBUTES",
    "FALLBACK_EMAIL",
    "FALLBACK_NAME",
    "SnapshotCommit",
    "check_unlocked",
    "commit_directory",
    "head_snapshot",
    "is_pushed",
    "open_repo",
    "push",
    "read_files",
    "resolve_commit",
    "vantage_commits",
]

FALLBACK_NAME = "registry-monitor"
FALLBACK_EMAIL = "registry-monitor@users.noreply.github.com"

# What the project's .gitattributes says of snapshot files (tests/test_demo.py holds them
# equal): feed.atom and run.yaml out of text diffs, so `git log -p` shows the domain lines.
ATTRIBUTES = (
    "snapshots/*/feed.atom -diff linguist-generated\n"
    "snapshots/*/run.yaml -diff linguist-generated\n"
)

DATE_TRAILER = "Monitor-Date"
VANTAGE_TRAILER = "Monitor-Vantage"

# One record per commit with -z: the fields are NUL-separated and git ends each record with NUL.
_LOG_FORMAT = (
    f"%H%x00%(trailers:key={DATE_TRAILER},valueonly)"
    f"%x00%(trailers:key={VANTAGE_TRAILER},valueonly)%x00%s"
)
_LOG_FIELDS = 4

# Why a push was refused that a fetch and rebase can cure; anything else is reported at once.
# "failed to update ref": another push held the remote's ref lock; trying again is right.
_RETRYABLE_PUSH = ("(fetch first)", "(non-fast-forward)", "(failed to update ref)")


@dataclass(frozen=True)
class SnapshotCommit:
    """One commit as the monitor sees it: its sha, its trailers and its subject line."""

    sha: str
    date: str | None
    vantage: str | None
    subject: str


@dataclass(frozen=True)
class _Result:
    status: int
    stdout: str
    stderr: str

    def message(self) -> str:
        """The part of stderr (or stdout) worth showing a person: no hints, no blank lines."""
        text = self.stderr or self.stdout
        lines = [ln for ln in text.splitlines() if ln.strip() and not ln.startswith("hint:")]
        return " / ".join(lines) or f"git exited with status {self.status}"


# --------------------------------------------------------------------------- running git


@overload
def _run(
    repo: git.Repo,
    *args: str,
    env: Mapping[str, str] | None = ...,
    stdin: bytes | None = ...,
    binary: Literal[False] = ...,
) -> _Result: ...


@overload
def _run(
    repo: git.Repo,
    *args: str,
    env: Mapping[str, str] | None = ...,
    stdin: bytes | None = ...,
    binary: Literal[True],
) -> tuple[int, bytes, str]: ...


def _run(
    repo: git.Repo,
    *args: str,
    env: Mapping[str, str] | None = None,
    stdin: bytes | None = None,
    binary: bool = False,
) -> _Result | tuple[int, bytes, str]:
    """Run one git command in the work tree; never raises on a non-zero exit."""
    command = [str(repo.git.GIT_PYTHON_GIT_EXECUTABLE), *args]
    # Paths we pass are plain directory names, never patterns.
    full_env = {"GIT_LITERAL_PATHSPECS": "1", **(env or {})}
    with contextlib.ExitStack() as stack:
        stream: BinaryIO | None = None
        if stdin is not None:
            # Popen needs a real file; a temp file also avoids the per-argument length limit.
            stream = cast(BinaryIO, stack.enter_context(tempfile.TemporaryFile()))
            stream.write(stdin)
            stream.seek(0)
        try:
            raw = repo.git.execute(
                command,
                istream=stream,
                with_extended_output=True,
                with_exceptions=False,
                stdout_as_string=not binary,
                strip_newline_in_stdout=not binary,
                env=full_env,
            )
        except git.GitCommandNotFound as exc:
            raise RepoError(f"cannot run git: {exc}") from exc
    status, out, err = raw
    if binary:
        return status, out if isinstance(out, bytes) else b"", err
    text = out if isinstance(out, str) else (out or b"").decode("utf-8", "replace")
    return _Result(status, text, err)


def _check(
    repo: git.Repo,
    *args: str,
    env: Mapping[str, str] | None = None,
    stdin: bytes | None = None,
    what: str | None = None,
) -> str:
    """Run git and return its stdout; a failure becomes a RepoError naming ``what``."""
    result = _run(repo, *args, env=env, stdin=stdin)
    if result.status != 0:
        raise RepoError(f"{what or 'git ' + args[0]} failed: {result.message()}")
    return result.stdout


def _work_tree(repo: git.Repo) -> Path:
    if repo.working_tree_dir is None:
        raise RepoError(f"{repo.git_dir} is a bare repository; snapshots need a work tree")
    return Path(repo.working_tree_dir)


def _clean_dir(directory: str) -> str:
    """``directory`` as git names it: relative to the top level, forward slashes, no trailing /."""
    path = PurePosixPath(directory.replace(os.sep, "/"))
    if path.is_absolute() or ".." in path.parts or str(path) in ("", "."):
        raise ValueError(f"directory must be relative to the repository top level: {directory!r}")
    return str(path)


def _ident_env(repo: git.Repo) -> dict[str, str]:
    """Environment that gives git an author and committer when none is configured."""
    env: dict[str, str] = {}
    for key, fallback, variables in (
        ("user.name", FALLBACK_NAME, ("GIT_AUTHOR_NAME", "GIT_COMMITTER_NAME")),
        ("user.email", FALLBACK_EMAIL, ("GIT_AUTHOR_EMAIL", "GIT_COMMITTER_EMAIL")),
    ):
        configured = _run(repo, "config", "--get", key)
        if configured.status == 0 and configured.stdout.strip():
            continue
        if key == "user.email" and os.environ.get("EMAIL"):
            continue  # git takes the address from $EMAIL before guessing one
        for variable in variables:
            if not os.environ.get(variable):
                env[variable] = fallback
    return env


# --------------------------------------------------------------------------- opening, reading


def open_repo(path: Path | None) -> git.Repo:
    """Return the repository at ``path``, or (None) the one containing the current directory.

    Raises RepoError when there is no such repository or it has no work tree.
    """
    where = Path.cwd() if path is None else path
    try:
        repo = git.Repo(where, search_parent_directories=path is None)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError) as exc:
        raise RepoError(f"not a git repository: {where} (use --repo DIR or git init)") from exc
    _work_tree(repo)
    return repo


def resolve_commit(repo: git.Repo, rev: str) -> str | None:
    """Return the full sha of commit ``rev``, or None when ``rev`` is HEAD on an unborn branch.

    Raises RepoError for a revision that names no commit.
    """
    if not rev.startswith("-"):
        result = _run(repo, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}")
        if result.status == 0:
            return result.stdout.strip()
        if rev == "HEAD" and not repo.head.is_valid():
            return None
    raise RepoError(f"unknown revision: {rev}")


def _parse_log(output: str) -> list[SnapshotCommit]:
    if not output:
        return []
    fields = output.split("\0")
    if fields[-1] == "":
        fields.pop()  # the terminator of the last record
    if len(fields) % _LOG_FIELDS:
        raise RepoError(f"unexpected git log output ({len(fields)} fields)")

    def trailer(value: str) -> str | None:
        lines = value.strip().splitlines()
        return lines[0].strip() if lines else None

    commits = []
    for i in range(0, len(fields), _LOG_FIELDS):
        sha, date, vantage, subject = fields[i : i + _LOG_FIELDS]
        commits.append(SnapshotCommit(sha.strip(), trailer(date), trailer(vantage), subject))
    return commits


def vantage_commits(repo: git.Repo, vantage: str, rev: str = "HEAD") -> list[SnapshotCommit]:
    """Return the commits reachable from ``rev`` that touch ``snapshots/<vantage>/``, oldest first.

    A commit that changed nothing there (an unchanged re-run) is not listed. Empty for a
    repository without commits. Raises RepoError for an unknown ``rev``.
    """
    sha = resolve_commit(repo, rev)
    if sha is None:
        return []
    out = _check(
        repo,
        "log",
        "-z",
        "--reverse",
        f"--format={_LOG_FORMAT}",
        sha,
        "--",
        f"snapshots/{vantage}/",
        what="git log",
    )
    return _parse_log(out)


def patches(repo: git.Repo, rev: str, paths: Sequence[str]) -> str:
    """Return ``git log -p -U0`` of ``paths`` from ``rev``: each commit as a NUL, its SHA, and
    its patch, newest first. Raises RepoError when git fails (a missing object, say).

    The lines are the files' own whatever the repository's attributes say: ``-diff`` (which
    .gitattributes sets on feed.atom and run.yaml for people) or a textconv never hide them.
    """
    return _check(
        repo,
        "log",
        rev,
        "-p",
        "-U0",
        "--text",
        "--no-textconv",
        "--no-color",
        "--no-renames",
        "--no-ext-diff",
        "--format=%x00%H",
        "--",
        *paths,
        what="git log -p",
    )


def head_snapshot(repo: git.Repo, rev: str = "HEAD") -> SnapshotCommit | None:
    """Return commit ``rev`` with its trailers, or None when HEAD is unborn."""
    sha = resolve_commit(repo, rev)
    if sha is None:
        return None
    out = _check(repo, "log", "-z", "-1", f"--format={_LOG_FORMAT}", sha, what="git log")
    return _parse_log(out)[0]


def read_files(repo: git.Repo, rev: str, directory: str) -> dict[str, bytes]:
    """Return every file under ``directory`` as it is in commit ``rev``, keyed relative to it.

    Reads the object database only; the work tree and index are untouched. Empty when the
    directory is absent from that commit or HEAD is unborn. Raises RepoError for an unknown rev.
    """
    prefix = _clean_dir(directory) + "/"
    sha = resolve_commit(repo, rev)
    if sha is None:
        return {}
    listing = _check(
        repo, "ls-tree", "-r", "-z", "--full-tree", sha, "--", prefix, what="git ls-tree"
    )
    names: list[str] = []
    objects: list[str] = []
    for entry in listing.split("\0"):
        if not entry:
            continue
        meta, _, path = entry.partition("\t")
        _mode, kind, obj = meta.split()
        if kind == "blob" and path.startswith(prefix):
            names.append(path[len(prefix) :])
            objects.append(obj)
    if not objects:
        return {}
    status, out, err = _run(
        repo, "cat-file", "--batch", stdin="".join(o + "\n" for o in objects).encode(), binary=True
    )
    if status != 0:
        raise RepoError(f"git cat-file failed: {err.strip()}")
    files: dict[str, bytes] = {}
    pos = 0
    for name in names:
        end = out.index(b"\n", pos)
        header = out[pos:end].split()
        if len(header) != 3:
            raise RepoError(f"git cat-file: cannot read {prefix}{name}: {header!r}")
        size = int(header[2])
        files[name] = out[end + 1 : end + 1 + size]
        pos = end + 1 + size + 1  # the content is followed by a newline
    return files


def is_pushed(repo: git.Repo, rev: str = "HEAD") -> bool:
    """Return True when commit ``rev`` is contained in some remote-tracking branch."""
    sha = resolve_commit(repo, rev)
    if sha is None:
        return False
    out = _check(
        repo,
        "for-each-ref",
        "--contains",
        sha,
        "--format=%(refname)",
        "refs/remotes/",
        what="git for-each-ref",
    )
    return bool(out.strip())


# --------------------------------------------------------------------------- committing


def check_unlocked(repo: git.Repo) -> None:
    """Raise RepoError when the lock file of the index, HEAD or the current branch exists.

    A git killed while it held one (kill -9, a runner's timeout) leaves the file behind, and
    git then refuses to update what it locks until a person removes it: only a person can tell
    it from the lock of a git that is running. A run checks this before it sends any query,
    so that it stops at once and changes nothing, rather than failing after the snapshot.
    """
    names = ["index.lock", "HEAD.lock"]
    branch = _run(repo, "symbolic-ref", "--quiet", "HEAD")
    if branch.status == 0:
        names.append(branch.stdout.strip() + ".lock")
    args = [arg for name in names for arg in ("--git-path", name)]
    paths = _check(repo, "rev-parse", *args, what="git rev-parse").splitlines()
    for path in (_work_tree(repo) / p for p in paths):
        if path.exists():
            raise RepoError(
                f"{path} exists: a git process is running in this repository, or one was "
                "killed and left its lock behind; remove the file if no git is running"
            )


def commit_directory(
    repo: git.Repo,
    directory: str,
    message: str,
    *,
    amend_if: Callable[[SnapshotCommit], bool] | None = None,
) -> str:
    """Commit the work-tree content of ``directory`` (and nothing else) on HEAD; return the sha.

    Other changes in the user's work tree and index are left alone; the index is refreshed
    for ``directory`` only. An unchanged tree still yields a commit: it records that a run
    happened. With ``amend_if``, a HEAD that satisfies it and is on no remote-tracking branch
    is replaced rather than built upon. Raises RepoError when git fails or HEAD moves meanwhile.
    """
    path = _clean_dir(directory)
    top = _work_tree(repo)
    old = resolve_commit(repo, "HEAD")
    parents: list[str] = [] if old is None else [old]
    if old is not None and amend_if is not None:
        head = head_snapshot(repo)
        if head is not None and amend_if(head) and not is_pushed(repo, old):
            listed = _check(repo, "rev-list", "--parents", "-n", "1", old, what="git rev-list")
            parents = listed.split()[1:]

    ident = _ident_env(repo)
    with tempfile.TemporaryDirectory(prefix="registry-monitor-") as scratch:
        index_env = {"GIT_INDEX_FILE": str(Path(scratch) / "index")}
        if old is None:
            _check(repo, "read-tree", "--empty", env=index_env, what="git read-tree")
        else:
            _check(repo, "read-tree", old, env=index_env, what="git read-tree")
        if (top / path).is_dir():
            _check(repo, "add", "-A", "--", path, env=index_env, what=f"git add {path}")
        else:
            # `add -A` refuses a pathspec that matches nothing; the directory is simply gone.
            _check(
                repo,
                "rm",
                "-r",
                "-q",
                "--cached",
                "--ignore-unmatch",
                "--",
                path,
                env=index_env,
                what=f"git rm {path}",
            )
        tree = _check(repo, "write-tree", env=index_env, what="git write-tree").strip()

    text = message if message.endswith("\n") else message + "\n"
    parent_args = [arg for p in parents for arg in ("-p", p)]
    new = _check(
        repo,
        "commit-tree",
        tree,
        *parent_args,
        "-F",
        "-",
        env=ident,
        stdin=text.encode(),
        what="git commit-tree",
    ).strip()

    subject = text.splitlines()[0] if text.strip() else "snapshot"
    reflog = f"registry-monitor: {subject}"
    # The old value guards against a commit made by someone else while we built ours.
    updated = _run(repo, "update-ref", "-m", reflog, "HEAD", new, old or "")
    if updated.status != 0:
        raise RepoError(
            f"HEAD moved while committing {path}; nothing committed: {updated.message()}"
        )

    refreshed = _run(repo, "reset", "-q", "--", path)
    if refreshed.status != 0:
        raise RepoError(
            f"committed {new[:12]}, but could not refresh the index for {path} "
            f"(run `git reset -- {path}`): {refreshed.message()}"
        )
    return new


# --------------------------------------------------------------------------- pushing


def _current_branch(repo: git.Repo) -> str:
    result = _run(repo, "symbolic-ref", "--quiet", "--short", "HEAD")
    if result.status != 0:
        raise RepoError("HEAD is detached: check out a branch before pushing")
    return result.stdout.strip()


def _rebase_in_progress(repo: git.Repo) -> bool:
    return any((Path(repo.git_dir) / name).exists() for name in ("rebase-merge", "rebase-apply"))


def push(repo: git.Repo, *, remote: str = "origin", attempts: int = 5, pause: float = 1.0) -> None:
    """Push the current branch to the branch of the same name on ``remote`` and track it.

    A push refused because the remote moved is answered by fetch, rebase and another try,
    ``attempts`` tries in all, waiting ``pause`` seconds longer before each retry. Raises
    RepoError, keeping the local commits, when the remote is missing or refuses otherwise,
    when the rebase conflicts (it is aborted) or when every attempt was refused.
    """
    if attempts < 1:
        raise ValueError("attempts must be at least 1")
    branch = _current_branch(repo)
    remotes = _check(repo, "remote", what="git remote").split()
    if remote not in remotes:
        raise RepoError(f"no remote named {remote!r}; add one with `git remote add {remote} URL`")
    where = f"{remote} branch {branch}"
    ref = f"refs/heads/{branch}"
    tracking = f"refs/remotes/{remote}/{branch}"
    env = {**_ident_env(repo), "GIT_EDITOR": "true", "GIT_TERMINAL_PROMPT": "0"}

    for attempt in range(1, attempts + 1):
        pushed = _run(
            repo, "push", "--porcelain", "--set-upstream", remote, f"{ref}:{ref}", env=env
        )
        if pushed.status == 0:
            return
        rejected = [ln for ln in pushed.stdout.splitlines() if ln.startswith("!")]
        if not rejected or not all(any(r in ln for r in _RETRYABLE_PUSH) for ln in rejected):
            detail = " / ".join(rejected) if rejected else pushed.message()
            raise RepoError(f"push to {where} failed: {detail}")
        if attempt == attempts:
            raise RepoError(
                f"push to {where} was still rejected after {attempts} attempts "
                f"(the remote keeps moving): {' / '.join(rejected)}"
            )
        time.sleep(pause * attempt)
        _check(repo, "fetch", remote, f"+{ref}:{tracking}", env=env, what=f"fetch from {where}")
        rebased = _run(repo, "rebase", "--autostash", tracking, env=env)
        if rebased.status != 0:
            if _rebase_in_progress(repo):
                _run(repo, "rebase", "--abort", env=env)
            output = (rebased.stdout + "\n" + rebased.stderr).splitlines()
            conflicts = [ln.strip() for ln in output if ln.startswith("CONFLICT")]
            if conflicts:
                raise RepoError(
                    f"push to {where}: the remote has changes that conflict with the local "
                    f"commit (rebase aborted, local commit kept): {' / '.join(conflicts)}"
                )
            raise RepoError(
                f"push to {where}: rebase onto {remote}/{branch} failed (aborted, local commit "
                f"kept): {rebased.message()}"
            )
