"""History: the model of the git record that ``report``, ``export`` and ``diff`` read.

Each domain's verdict periods, each vantage point's runs with their counts per verdict, and
the events between them. Only the changed lines of the domain files are read (one ``git log
-p -U0`` over the snapshot paths), so a few years of daily commits cost what changed, not what
was there.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import git

from monitor import gitstore
from monitor.changes import Event, compare, derive_events
from monitor.errors import RepoError, UsageError
from monitor.snapshot import DOMAINS_FILE, SHARDS_DIR, Entry, parse_line, parse_snapshot
from monitor.vocabulary import SLUG


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


@dataclass(frozen=True)
class LineChange:
    """A domain line as one dated run's commit wrote it: where it is, and what it said."""

    date: str  # the run's Monitor-Date
    sha: str
    path: str  # from the repository's root: snapshots/<vantage>/domains.yaml, or a shard
    line: int  # 1-based, in that commit's version of ``path``
    entry: Entry


def line_changes(repo: git.Repo, vantage: str, rev: str = "HEAD") -> dict[str, list[LineChange]]:
    """Return every domain line that a dated run wrote (added or changed), by domain, oldest
    first: what each resolver said on each change, and the file and line to link to.

    Commits without a Monitor-Date (hand edits) are left out, as :func:`history` leaves them
    out. Raises RepoError when git fails.
    """
    dates = {c.sha: c.date for c in gitstore.vantage_commits(repo, vantage, rev) if c.date}
    base = f"snapshots/{vantage}"
    output = gitstore.patches(repo, rev, [f"{base}/{DOMAINS_FILE}", f"{base}/{SHARDS_DIR}"])
    result: dict[str, list[LineChange]] = {}
    for sha, path, line, entry in _added_lines(output.splitlines()):
        date = dates.get(sha)
        if date is not None:
            result.setdefault(entry.domain, []).append(LineChange(date, sha, path, line, entry))
    for changes in result.values():
        changes.reverse()  # git log lists the newest commit first
    return result


def _added_lines(lines: Iterable[str]) -> Iterator[tuple[str, str, int, Entry]]:
    """(sha, path, line number, entry) of each domain line added in ``git log -p -U0`` output."""
    sha, path, number = "", "", 0
    in_hunk = False
    for line in lines:
        if line.startswith("\x00"):
            sha, in_hunk = line[1:].strip(), False
        elif line.startswith("diff --git"):
            in_hunk = False
        elif not in_hunk and line.startswith("+++ "):
            path = line[4:].removeprefix("b/")
        elif line.startswith("@@"):
            # @@ -a[,b] +c[,d] @@: with -U0, the added lines are c, c+1, ...
            new = line.split(" ", 3)[2]
            number = int(new[1:].partition(",")[0])
            in_hunk = True
        elif in_hunk and line.startswith("+"):
            entry = parse_line(line[1:])
            if entry is not None:
                yield sha, path, number, entry
            number += 1


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


@dataclass(frozen=True)
class Run:
    """One run date of a vantage point: its last commit and how many names had each verdict."""

    date: str
    sha: str
    counts: Mapping[str, int]

    @property
    def watched(self) -> int:
        """How many names the run looked at."""
        return sum(self.counts.values())


@dataclass(frozen=True)
class VantageReport:
    """Everything the report shows about one vantage point."""

    vantage: str
    runs: tuple[Run, ...]
    histories: tuple[DomainHistory, ...]  # every name ever watched, by name
    current: Mapping[str, Entry]  # the snapshot at the report's revision
    events: tuple[Event, ...]  # oldest day first; worst kind first within a day

    def sha_on(self, date: str) -> str | None:
        """Return the sha of the last commit of the run on ``date``."""
        return next((r.sha for r in reversed(self.runs) if r.date == date), None)


def collect(repo: git.Repo, vantages: Sequence[str] = (), rev: str = "HEAD") -> list[VantageReport]:
    """Return the report data of ``vantages`` (default: every directory under snapshots/ at
    ``rev``), by vantage name.

    Raises RepoError when ``rev`` has no snapshots, UsageError for a vantage it does not hold,
    and SnapshotError for a snapshot file that cannot be read.
    """
    files = gitstore.read_files(repo, rev, "snapshots")
    by_vantage: dict[str, dict[str, bytes]] = {}
    for path, data in files.items():
        vantage, sep, rest = path.partition("/")
        if sep and SLUG.fullmatch(vantage):
            by_vantage.setdefault(vantage, {})[rest] = data
    if not by_vantage:
        raise RepoError(f"{rev} has no snapshots/ yet: run `registry-monitor run` first")
    unknown = [v for v in vantages if v not in by_vantage]
    if unknown:
        raise UsageError(
            f"no snapshots/{unknown[0]}/ at {rev}; there are: {', '.join(sorted(by_vantage))}"
        )
    chosen = sorted(set(vantages)) if vantages else sorted(by_vantage)
    return [_vantage_report(repo, v, by_vantage[v], rev) for v in chosen]


def _vantage_report(
    repo: git.Repo, vantage: str, files: Mapping[str, bytes], rev: str
) -> VantageReport:
    dates: list[str] = []
    shas: list[str] = []
    for commit in gitstore.vantage_commits(repo, vantage, rev):
        if not commit.date:
            continue
        # A same-date re-run replaced that day's result: the day is its last commit.
        if dates and dates[-1] == commit.date:
            shas[-1] = commit.sha
        else:
            dates.append(commit.date)
            shas.append(commit.sha)
    histories = history(repo, vantage, rev=rev)
    counts = daily_counts(histories, dates)
    runs = tuple(Run(d, s, c) for d, s, c in zip(dates, shas, counts, strict=True))
    return VantageReport(
        vantage,
        runs,
        tuple(histories),
        parse_snapshot(files),
        tuple(derive_events(histories, dates)),
    )


def daily_counts(histories: Iterable[DomainHistory], dates: Sequence[str]) -> list[dict[str, int]]:
    """Return, for each run date, how many names had each verdict (the day's verdict, as the
    periods give it); verdicts nobody had are left out.

    Each period adds one at its first run and removes it after its last, so the cost is the
    number of periods plus days times verdicts, never days times names.
    """
    index = {date: i for i, date in enumerate(dates)}
    last = len(dates) - 1
    deltas: dict[str, list[int]] = {}
    for h in histories:
        for period in h.periods:
            start = index.get(period.start)
            if start is None:
                continue
            end = last if period.to is None else index.get(period.to, last)
            row = deltas.setdefault(period.verdict, [0] * (len(dates) + 1))
            row[start] += 1
            row[end + 1] -= 1
    result: list[dict[str, int]] = [{} for _ in dates]
    for verdict, row in deltas.items():
        running = 0
        for i in range(len(dates)):
            running += row[i]
            if running:
                result[i][verdict] = running
    return result
