"""Commit links: the repository's web page, and the link to one commit on it (report, feed)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

import git

from monitor.errors import UsageError
from monitor.escape import escape_html

_OWNER_REPO = re.compile(r"/?([A-Za-z0-9_.-]+)/([A-Za-z0-9_.-]+?)(?:\.git)?/?")
_SCP_GITHUB = re.compile(r"(?:[A-Za-z0-9_.-]+@)?github\.com:(.+)")


def github_base(remote_url: str) -> str | None:
    """Return ``https://github.com/OWNER/REPO`` for a GitHub remote URL (https, ssh or
    ``git@github.com:OWNER/REPO.git``), else None. Credentials in the URL are dropped."""
    text = remote_url.strip()
    scp = _SCP_GITHUB.fullmatch(text)
    if scp is not None:
        path = scp.group(1)
    else:
        try:
            parts = urlsplit(text)
            host = (parts.hostname or "").lower()
        except ValueError:
            return None
        if parts.scheme not in ("https", "http", "ssh", "git") or host != "github.com":
            return None
        path = parts.path
    match = _OWNER_REPO.fullmatch(path)
    if match is None or {".", ".."} & set(match.groups()):
        return None
    return f"https://github.com/{match.group(1)}/{match.group(2)}"


def resolve_link(repo: git.Repo, link: str | None) -> str | None:
    """Return the base URL that commit links start with: ``link`` when given (checked), else the
    GitHub page of the ``origin`` remote, else None (the page shows short shas).

    Raises UsageError for a ``link`` that is not an http(s) URL.
    """
    if link is not None:
        try:
            parts = urlsplit(link)
            ok = parts.scheme in ("http", "https") and bool(parts.hostname)
            ok = ok and not parts.query and not parts.fragment
        except ValueError:
            ok = False
        if not ok:
            raise UsageError(
                f"--link must be an http(s) URL like https://github.com/OWNER/REPO, not {link!r}"
            )
        return link.rstrip("/")
    try:
        remote = repo.git.remote("get-url", "origin")
    except git.GitCommandError:
        return None
    return github_base(str(remote))


def commit_link(base: str | None, sha: str) -> str:
    """Return the HTML for a commit: a link under ``base`` when there is one, else the short sha."""
    short = escape_html(sha[:7])
    if base is None:
        return f'<code class="sha">{short}</code>'
    href = escape_html(f"{base}/commit/{sha}")
    return f'<a class="sha" href="{href}">{short}</a>'


_ACTIONS_REPOSITORY = re.compile(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+")


def actions_base(environ: Mapping[str, str], work_tree: str | None) -> str | None:
    """Return ``GITHUB_SERVER_URL/GITHUB_REPOSITORY``, the repository GitHub Actions checked
    out, when both are set and sound and ``work_tree`` is that checkout; else None.

    A repository elsewhere on the runner (a demo, a test's repository) is not the one the
    variables describe: when ``GITHUB_WORKSPACE`` is set and is not ``work_tree``, None.
    The server URL keeps only its scheme, host and port (never credentials).
    """
    server = environ.get("GITHUB_SERVER_URL", "")
    repository = environ.get("GITHUB_REPOSITORY", "")
    workspace = environ.get("GITHUB_WORKSPACE")
    if workspace and (work_tree is None or not _same_directory(workspace, work_tree)):
        return None
    if not _ACTIONS_REPOSITORY.fullmatch(repository) or {".", ".."} & set(repository.split("/")):
        return None
    try:
        parts = urlsplit(server)
        host = parts.hostname
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not host or parts.path.strip("/"):
        return None
    netloc = host if port is None else f"{host}:{port}"
    return f"{parts.scheme}://{netloc}/{repository}"


def _same_directory(a: str, b: str) -> bool:
    try:
        return Path(a).resolve() == Path(b).resolve()
    except OSError:
        return False


def repository_base(repo: git.Repo, environ: Mapping[str, str]) -> str | None:
    """Return the repository's web page: the GitHub page of ``origin``, else the one GitHub
    Actions names in ``environ`` for this checkout (see actions_base), else None."""
    base = resolve_link(repo, None)
    if base is not None:
        return base
    tree = repo.working_tree_dir
    return actions_base(environ, None if tree is None else str(tree))


def current_branch(repo: git.Repo) -> str | None:
    """Return the branch HEAD is on (also before its first commit), or None when detached."""
    try:
        return str(repo.git.symbolic_ref("--quiet", "--short", "HEAD")).strip() or None
    except git.GitCommandError:
        return None


def root_commit(repo: git.Repo) -> str | None:
    """Return the sha of the commit HEAD's first-parent line starts from, or None before the
    first commit. A merge that brings in another root does not change it."""
    if not repo.head.is_valid():
        return None
    roots = str(repo.git.rev_list("--first-parent", "--max-parents=0", "HEAD")).split()
    return roots[0] if roots else None
