"""Commit links: the repository's web page, and the link to one commit on it (report, feed)."""

from __future__ import annotations

import re
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
