"""History: each domain's verdict periods, read from the git history of the snapshot files.

Only the changed lines of the domain files are read (one ``git log -p -U0`` over the snapshot
paths), so a few years of daily commits cost what changed, not what was there.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import git

from monitor import gitstore
from monitor.changes import Event, compare
from monitor.errors import RepoError
from monitor.snapshot import DOMAINS_FILE, SHARDS_DIR, parse_line, parse_snapshot


@dataclass
class Period:
    """A run of days on which a domain had one verdict; ``to`` is None while it is current."""

    verdict: str
    start: str
    to: str | None = None


@dataclass
class DomainHistory:
    """One domain's periods, oldest first."""

    domain: str
    periods: list[Period] = field(default_factory=list)


@dataclass(frozen=True)
class _Change:
    added: dict[str, str]  # domain -> day's verdict
    removed: set[str]


def history(
    repo: git.Repo,
    vantage: str,
    domains: Sequence[str] = (),
    since: str | None = None,
    rev: str = "HEAD",
) -> list[DomainHistory]:
    """Return the verdict periods of ``domains`` (default: every domain ever watched), by name.

    A day's verdict is the one the run saw (``today`` where it was not conclusive). Periods
    that ended before ``since`` are left out.
    """
    runs = [c for c in gitstore.vantage_commits(repo, vantage, rev) if c.date]
    if not runs:
        return []
    changes = _domain_changes(repo, vantage, rev)
    wanted = set(domains)
    state: dict[str, str] = {}
    histories: dict[str, DomainHistory] = {}
    previous_date: str | None = None
    index = 0
    while index < len(runs):
        date = runs[index].date
        assert date is not None
        before = dict(state)
        touched: set[str] = set()
        while index < len(runs) and runs[index].date == date:
            change = changes.get(runs[index].sha)
            if change is not None:
                for domain in change.removed - change.added.keys():
                    state.pop(domain, None)
                state.update(change.added)
                touched |= change.removed | change.added.keys()
            index += 1
        for domain in sorted(touched):
            if wanted and domain not in wanted:
                continue
            old, new = before.get(domain), state.get(domain)
            if old == new:
                continue
            periods = histories.setdefault(domain, DomainHistory(domain)).periods
            if old is not None and periods:
                periods[-1].to = previous_date
            if new is not None:
                periods.append(Period(new, date))
        previous_date = date
    result = []
    for domain in sorted(histories):
        h = histories[domain]
        h.periods = [p for p in h.periods if since is None or p.to is None or p.to >= since]
        if h.periods:
            result.append(h)
    return result


def _domain_changes(repo: git.Repo, vantage: str, rev: str) -> dict[str, _Change]:
    """Return each commit's changed domain lines, by commit. Raises RepoError."""
    base = f"snapshots/{vantage}"
    output = gitstore.patches(repo, rev, [f"{base}/{DOMAINS_FILE}", f"{base}/{SHARDS_DIR}"])
    return dict(_parse_patches(output.splitlines()))


def _parse_patches(lines: Iterable[str]) -> Iterator[tuple[str, _Change]]:
    sha: str | None = None
    change = _Change({}, set())
    in_hunk = False
    for line in lines:
        if line.startswith("\x00"):
            if sha is not None:
                yield sha, change
            sha, change, in_hunk = line[1:].strip(), _Change({}, set()), False
        elif line.startswith("diff --git"):
            in_hunk = False
        elif line.startswith("@@"):
            in_hunk = True
        elif in_hunk and line[:1] in ("+", "-"):
            entry = parse_line(line[1:])
            if entry is None:
                continue
            if line[0] == "+":
                change.added[entry.domain] = entry.current
            else:
                change.removed.add(entry.domain)
    if sha is not None:
        yield sha, change


def events_between(repo: git.Repo, vantage: str, rev_a: str, rev_b: str) -> list[Event]:
    """Return the events between the vantage's snapshots in two commits (``diff``).

    Each event carries the date of the last run at ``rev_b``. Raises RepoError for an unknown
    revision.
    """
    sha_a, sha_b = gitstore.resolve_commit(repo, rev_a), gitstore.resolve_commit(repo, rev_b)
    if sha_a is None or sha_b is None:
        raise RepoError("the repository has no commits yet")
    directory = f"snapshots/{vantage}"
    before = parse_snapshot(gitstore.read_files(repo, sha_a, directory))
    after = parse_snapshot(gitstore.read_files(repo, sha_b, directory))
    runs = gitstore.vantage_commits(repo, vantage, sha_b)
    date = next((c.date for c in reversed(runs) if c.date), "")
    return compare(before, after, date)
