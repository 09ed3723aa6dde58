"""History: the model of the git record that ``report``, ``export`` and ``diff`` read.

Each domain's verdict periods, each vantage point's runs with their counts per verdict, the
events between them, and (for the export) what each resolver said and each resolver's health
per run. Only the changed lines of the snapshot files are read (one ``git log -p -U0`` over
the snapshot paths), so a few years of daily commits cost what changed, not what was there.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import git
import yaml

from monitor import gitstore
from monitor.changes import Event, derive_events
from monitor.errors import RepoError, UsageError
from monitor.snapshot import (
    DOMAINS_FILE,
    RESOLVERS_FILE,
    SHARDS_DIR,
    Entry,
    parse_line,
    parse_snapshot,
)
from monitor.vocabulary import SLUG

# Keys of a domain line that are not resolvers: a flagged line's Extended DNS Error codes
# (``ede: {RESOLVER: [CODES]}``) hold a mapping, not a status.
_NOT_RESOLVERS = frozenset({"ede"})


@dataclass
class Period:
    """A run of days on which a domain had one verdict; ``to`` is None while it is current.

    ``through`` is the last run date the period covers: ``to``, or while it is current the date
    of the vantage point's latest run (what ``history`` shows instead of "today").
    """

    verdict: str
    start: str
    to: str | None = None
    through: str | None = None


@dataclass
class DomainHistory:
    """One domain's periods, oldest first."""

    domain: str
    periods: list[Period] = field(default_factory=list)


@dataclass
class StatusPeriod:
    """A run of days on which one resolver said one thing of a domain, as the domain's line
    says: its most telling status over the record types, and on a flagged line the Extended
    DNS Error codes it sent and (tampered) the addresses it gave; ``to`` is None while it is
    current."""

    domain: str
    resolver: str
    status: str
    start: str
    to: str | None = None
    ede: tuple[int, ...] = ()
    answers: tuple[str, ...] = ()


@dataclass(frozen=True)
class ResolverHealth:
    """One resolver's line of ``resolvers.yaml`` on one run date: its group and health, and any
    other key the line holds (``tcp``, say) with its value as YAML read it."""

    date: str
    resolver: str
    group: str | None
    health: str | None
    extra: Mapping[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class _Change:
    added: dict[str, Entry]  # domain -> its new line
    removed: set[str]


# One run date: its date, its last commit, and each domain whose line changed that day, with
# its line before the day (None: not watched) and after it.
_Day = tuple[str, str, list[tuple[str, Entry | None, Entry | None]]]


def _walk(repo: git.Repo, vantage: str, rev: str) -> Iterator[_Day]:
    """Yield the vantage point's run dates up to ``rev``, oldest first (a date run more than once
    is one day: its last commit). Raises RepoError."""
    runs = [c for c in gitstore.vantage_commits(repo, vantage, rev) if c.date]
    if not runs:
        return
    changes = _domain_changes(repo, vantage, rev)
    state: dict[str, Entry] = {}
    index = 0
    while index < len(runs):
        date = runs[index].date
        assert date is not None
        before: dict[str, Entry | None] = {}
        sha = runs[index].sha
        while index < len(runs) and runs[index].date == date:
            sha = runs[index].sha
            change = changes.get(sha)
            if change is not None:
                for domain in change.removed | change.added.keys():
                    if domain not in before:
                        before[domain] = state.get(domain)
                for domain in change.removed - change.added.keys():
                    state.pop(domain, None)
                state.update(change.added)
            index += 1
        yield date, sha, [(d, old, state.get(d)) for d, old in sorted(before.items())]


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
    return _Record.read(repo, vantage, rev, wanted=set(domains)).histories(since)


class _Record:
    """What one pass over a vantage point's history found: periods, run dates and shas, and
    (when asked) each resolver's status periods."""

    def __init__(self) -> None:
        self.periods: dict[str, DomainHistory] = {}
        self.dates: list[str] = []
        self.shas: list[str] = []
        self.statuses: list[StatusPeriod] = []

    @classmethod
    def read(
        cls,
        repo: git.Repo,
        vantage: str,
        rev: str,
        *,
        wanted: set[str] | frozenset[str] = frozenset(),
        statuses: bool = False,
    ) -> _Record:
        """Read the record up to ``rev``. Raises RepoError."""
        record = cls()
        open_statuses: dict[tuple[str, str], StatusPeriod] = {}
        previous: str | None = None
        for date, sha, touched in _walk(repo, vantage, rev):
            for domain, old, new in touched:
                if wanted and domain not in wanted:
                    continue
                record._advance(domain, old, new, date, previous)
                if statuses:
                    record._advance_statuses(open_statuses, domain, old, new, date, previous)
            record.dates.append(date)
            record.shas.append(sha)
            previous = date
        for h in record.periods.values():
            for p in h.periods:
                p.through = p.to if p.to is not None else previous
        record.statuses.sort(key=lambda p: (p.domain, p.resolver, p.start))
        return record

    def _advance(
        self, domain: str, old: Entry | None, new: Entry | None, date: str, previous: str | None
    ) -> None:
        before = None if old is None else old.current
        after = None if new is None else new.current
        if before == after:
            return
        periods = self.periods.setdefault(domain, DomainHistory(domain)).periods
        if before is not None and periods:
            periods[-1].to = previous
        if after is not None:
            periods.append(Period(after, date))

    def _advance_statuses(
        self,
        open_statuses: dict[tuple[str, str], StatusPeriod],
        domain: str,
        old: Entry | None,
        new: Entry | None,
        date: str,
        previous: str | None,
    ) -> None:
        before = _resolver_statuses(old)
        after = _resolver_statuses(new)
        if before == after:
            return
        for resolver in sorted(before.keys() | after.keys()):
            if before.get(resolver) == after.get(resolver):
                continue
            ended = open_statuses.pop((domain, resolver), None)
            if ended is not None:
                ended.to = previous
            said = after.get(resolver)
            if said is not None:
                status, ede, answers = said
                period = StatusPeriod(domain, resolver, status, date, None, ede, answers)
                open_statuses[(domain, resolver)] = period
                self.statuses.append(period)

    def histories(self, since: str | None = None) -> list[DomainHistory]:
        """The periods by name, leaving out those that ended before ``since``."""
        result = []
        for domain in sorted(self.periods):
            h = self.periods[domain]
            h.periods = [p for p in h.periods if since is None or p.to is None or p.to >= since]
            if h.periods:
                result.append(h)
        return result


_Said = tuple[str, tuple[int, ...], tuple[str, ...]]  # a status, EDE codes, addresses


def _resolver_statuses(entry: Entry | None) -> dict[str, _Said]:
    """What each resolver said on a domain's line: its status and the evidence beside it."""
    if entry is None:
        return {}
    ede, answers = dict(entry.ede), dict(entry.answers)
    return {
        name: (status, ede.get(name, ()), answers.get(name, ()))
        for name, status in entry.statuses
        if name not in _NOT_RESOLVERS
    }


def _domain_changes(repo: git.Repo, vantage: str, rev: str) -> dict[str, _Change]:
    """Return each commit's changed domain lines, by commit. Raises RepoError."""
    base = f"snapshots/{vantage}"
    output = gitstore.patches(repo, rev, [f"{base}/{DOMAINS_FILE}", f"{base}/{SHARDS_DIR}"])
    changes: dict[str, _Change] = {}
    for sha, added, removed in _parse_patches(output.splitlines()):
        change = changes[sha] = _Change({}, set())
        for text in added:
            entry = parse_line(text)
            if entry is not None:
                change.added[entry.domain] = entry
        for text in removed:
            entry = parse_line(text)
            if entry is not None:
                change.removed.add(entry.domain)
    return changes


def _parse_patches(lines: Iterable[str]) -> Iterator[tuple[str, list[str], list[str]]]:
    """Yield each commit of ``gitstore.patches`` output as (sha, added lines, removed lines)."""
    sha: str | None = None
    added: list[str] = []
    removed: list[str] = []
    in_hunk = False
    for line in lines:
        if line.startswith("\x00"):
            if sha is not None:
                yield sha, added, removed
            sha, added, removed, in_hunk = line[1:].strip(), [], [], False
        elif line.startswith("diff --git"):
            in_hunk = False
        elif line.startswith("@@"):
            in_hunk = True
        elif in_hunk and line[:1] == "+":
            added.append(line[1:])
        elif in_hunk and line[:1] == "-":
            removed.append(line[1:])
    if sha is not None:
        yield sha, added, removed


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


# --------------------------------------------------------------------------- resolver health


def resolver_health(repo: git.Repo, vantage: str, rev: str = "HEAD") -> list[ResolverHealth]:
    """Return each resolver's line of ``resolvers.yaml`` on each run date up to ``rev`` (a date
    run more than once: its last commit), oldest first, resolvers by name.

    A run whose commit left the file unchanged has the lines of the run before it; a line that
    is not one resolver's mapping is left out. Raises RepoError.
    """
    runs = [c for c in gitstore.vantage_commits(repo, vantage, rev) if c.date]
    if not runs:
        return []
    output = gitstore.patches(repo, rev, [f"snapshots/{vantage}/{RESOLVERS_FILE}"])
    changes: dict[str, tuple[dict[str, dict[str, Any]], set[str]]] = {}
    for sha, added, removed in _parse_patches(output.splitlines()):
        lines: dict[str, dict[str, Any]] = {}
        gone: set[str] = set()
        for text in added:
            if (parsed := _resolver_line(text)) is not None:
                lines[parsed[0]] = parsed[1]
        for text in removed:
            if (parsed := _resolver_line(text)) is not None:
                gone.add(parsed[0])
        changes[sha] = (lines, gone)
    state: dict[str, dict[str, Any]] = {}
    by_date: dict[str, dict[str, dict[str, Any]]] = {}
    for commit in runs:
        assert commit.date is not None
        change = changes.get(commit.sha)
        if change is not None:
            added_lines, gone = change
            for name in gone - added_lines.keys():
                state.pop(name, None)
            state.update(added_lines)
        by_date[commit.date] = dict(state)  # a later commit of the same date replaces it
    result = []
    for date, lines in by_date.items():
        for name in sorted(lines):
            fields = lines[name]
            extra = {str(k): v for k, v in fields.items() if k not in ("group", "health")}
            result.append(
                ResolverHealth(
                    date,
                    name,
                    _text_or_none(fields.get("group")),
                    _text_or_none(fields.get("health")),
                    extra,
                )
            )
    return result


def _resolver_line(text: str) -> tuple[str, dict[str, Any]] | None:
    """(name, fields) of one ``resolvers.yaml`` line, or None when it holds no single resolver."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        return None
    if not isinstance(data, dict) or len(data) != 1:
        return None
    ((name, fields),) = data.items()
    if not isinstance(fields, dict):
        return None
    return str(name), fields


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


def _text_or_none(value: Any) -> str | None:
    return None if value is None else _as_text(value)


# --------------------------------------------------------------------------- diff


@dataclass(frozen=True)
class Diff:
    """The runs of a vantage point after one commit up to another, and the events they raised."""

    vantage: str
    start: str  # the full sha of REV_A
    end: str  # the full sha of REV_B
    dates: tuple[str, ...]  # the run dates after ``start`` up to ``end``, oldest first
    events: tuple[Event, ...]  # oldest day first; worst kind first within a day, then by name


def diff(repo: git.Repo, vantage: str, rev_a: str, rev_b: str) -> Diff:
    """Return the events of every run of ``vantage`` after ``rev_a`` up to ``rev_b`` (``diff``),
    each dated by its own run, as ``run`` raised them: each conclusive verdict against the last
    conclusive one, from the whole history up to ``rev_b``.

    A date run more than once counts as its last commit up to ``rev_b``. Raises RepoError for an
    unknown revision, UsageError when ``rev_a`` is not ``rev_b`` or an ancestor of it.
    """
    sha_a, sha_b = gitstore.resolve_commit(repo, rev_a), gitstore.resolve_commit(repo, rev_b)
    if sha_a is None or sha_b is None:
        raise RepoError("the repository has no commits yet")
    if not _is_ancestor(repo, sha_a, sha_b):
        raise UsageError(
            f"{rev_a} ({sha_a[:12]}) is not an ancestor of {rev_b} ({sha_b[:12]}): diff shows "
            "the runs after REV_A up to REV_B, so give the older revision first"
        )
    before = {c.sha for c in gitstore.vantage_commits(repo, vantage, sha_a)}
    after = [c for c in gitstore.vantage_commits(repo, vantage, sha_b) if c.sha not in before]
    dates = sorted({c.date for c in after if c.date})
    record = _Record.read(repo, vantage, sha_b)
    chosen = set(dates)
    events = [e for e in derive_events(record.histories(), record.dates) if e.date in chosen]
    return Diff(vantage, sha_a, sha_b, tuple(dates), tuple(events))


def _is_ancestor(repo: git.Repo, ancestor: str, sha: str) -> bool:
    """Whether commit ``ancestor`` is ``sha`` or one of its ancestors. Raises RepoError."""
    try:
        repo.git.merge_base("--is-ancestor", ancestor, sha)
    except git.GitCommandError as exc:
        if exc.status == 1:
            return False
        raise RepoError(f"git merge-base failed: {str(exc.stderr).strip() or exc}") from exc
    return True


def events_between(repo: git.Repo, vantage: str, rev_a: str, rev_b: str) -> list[Event]:
    """Return the events of the runs after ``rev_a`` up to ``rev_b``, as :func:`diff` does."""
    return list(diff(repo, vantage, rev_a, rev_b).events)


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
    # Only when collect() is asked for them (the export): what each resolver said, by name,
    # resolver and start, and each resolver's health on each run date.
    statuses: tuple[StatusPeriod, ...] = ()
    health: tuple[ResolverHealth, ...] = ()

    def sha_on(self, date: str) -> str | None:
        """Return the sha of the last commit of the run on ``date``."""
        return next((r.sha for r in reversed(self.runs) if r.date == date), None)


def collect(
    repo: git.Repo, vantages: Sequence[str] = (), rev: str = "HEAD", *, resolvers: bool = False
) -> list[VantageReport]:
    """Return the report data of ``vantages`` (default: every directory under snapshots/ at
    ``rev``), by vantage name; with ``resolvers``, also each resolver's status periods and
    health per run.

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
    return [_vantage_report(repo, v, by_vantage[v], rev, resolvers) for v in chosen]


def _vantage_report(
    repo: git.Repo, vantage: str, files: Mapping[str, bytes], rev: str, resolvers: bool
) -> VantageReport:
    record = _Record.read(repo, vantage, rev, statuses=resolvers)
    histories = record.histories()
    counts = daily_counts(histories, record.dates)
    runs = tuple(Run(d, s, c) for d, s, c in zip(record.dates, record.shas, counts, strict=True))
    return VantageReport(
        vantage,
        runs,
        tuple(histories),
        parse_snapshot(files),
        tuple(derive_events(histories, record.dates)),
        tuple(record.statuses),
        tuple(resolver_health(repo, vantage, rev)) if resolvers else (),
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
