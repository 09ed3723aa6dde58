"""The ``run`` command's core: measure, write the snapshot, compare with the last one, commit."""

from __future__ import annotations

import datetime
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from monitor import __version__, gitstore
from monitor.blockpages import BlockPage
from monitor.changes import Event, advance, commit_message
from monitor.config import Config
from monitor.errors import InconclusiveRun, UsageError
from monitor.feed import entries_for, parse_feed, render_feed, source_for
from monitor.measure import CONFIRM_SPACING, Measurement, Progress, measure
from monitor.snapshot import (
    FEED_FILE,
    RESOLVERS_FILE,
    RUN_FILE,
    Entry,
    parse_snapshot,
    render_domains,
    render_resolvers,
    render_run,
    replace_directory,
    snapshot_dir,
)
from monitor.vocabulary import ALERTING, Verdict


@dataclass(frozen=True)
class RunResult:
    """What a run did: the measurement, today's entries, the events, and the commit if any."""

    date: str
    measurement: Measurement
    entries: tuple[Entry, ...]
    events: tuple[Event, ...]
    message: str
    commit: str | None
    pushed: bool

    @property
    def alerting(self) -> bool:
        """Whether the run raised an event that subscribers are alerted about."""
        return any(e.event in ALERTING for e in self.events)


def parse_date(text: str, option: str = "--date") -> str:
    """Return ``text`` if it is a YYYY-MM-DD date. Raises UsageError naming ``option``."""
    try:
        parsed: datetime.date | None = datetime.date.fromisoformat(text)
    except ValueError:
        parsed = None
    if parsed is None or len(text) != 10:
        raise UsageError(f"{option} {text!r}: expected a date as YYYY-MM-DD")
    return parsed.isoformat()


def today() -> str:
    """Return today's date in UTC, as YYYY-MM-DD."""
    return datetime.datetime.now(datetime.UTC).date().isoformat()


def run(
    config: Config,
    *,
    repo: Path | None,
    date: str | None = None,
    commit: bool = True,
    push: bool = False,
    confirm_spacing: float = CONFIRM_SPACING,
    detail: bool = False,
    progress: Callable[[Progress], None] | None = None,
) -> RunResult:
    """Resolve the watchlist, write ``snapshots/<vantage>/``, and commit it with the events.

    Raises UsageError or RepoError before any query when the flags, the repository or the date
    cannot work, and InconclusiveRun (nothing written) when too few resolvers are up to judge
    anything.
    ``detail`` keeps every answer in the measurement (for ``--json``), at a memory cost.
    """
    if push and not commit:
        raise UsageError("--push and --no-commit cannot be used together")
    date = parse_date(date) if date is not None else today()
    git_repo = gitstore.open_repo(repo)
    if commit:
        gitstore.check_unlocked(git_repo)
    root = Path(git_repo.working_tree_dir or ".")
    directory = snapshot_dir(root, config.vantage)
    relative = directory.relative_to(root).as_posix()

    commits = gitstore.vantage_commits(git_repo, config.vantage)
    dated = [c for c in commits if c.date is not None]
    if dated and dated[-1].date is not None and dated[-1].date > date:
        raise UsageError(
            f"--date {date} is before the last snapshot of {config.vantage} ({dated[-1].date})"
        )
    base = next((c for c in reversed(dated) if c.date is not None and c.date < date), None)
    base_files = gitstore.read_files(git_repo, base.sha, relative) if base is not None else {}
    previous = parse_snapshot(base_files)

    measurement = measure(
        config,
        confirm_spacing=confirm_spacing,
        detail=detail,
        progress=progress,
        previous={domain: entry.current for domain, entry in previous.items()},
    )
    if measurement.inconclusive:
        raise InconclusiveRun(f"inconclusive run, nothing written: {measurement.inconclusive}")

    names = [r.name for r in config.resolvers]
    entries, events = advance(previous, measurement.domains, names, date)
    files = render_domains(entries)
    files[RESOLVERS_FILE] = render_resolvers(
        [(r.name, r.group, r.health, r.tcp or "") for r in measurement.resolvers]
    )
    files[RUN_FILE] = render_run(_run_fields(config, date, measurement, entries, events))
    old_feed = base_files.get(FEED_FILE, b"").decode("utf-8", "replace")
    feed = source_for(git_repo, config.vantage, date, dated, old_feed, entries)
    files[FEED_FILE] = render_feed(feed, entries_for(feed, events, entries), parse_feed(old_feed))
    replace_directory(directory, files)

    message = commit_message(config.vantage, date, events, entries)
    sha = None
    if commit:
        sha = gitstore.commit_directory(
            git_repo,
            relative,
            message,
            amend_if=lambda c: c.date == date and c.vantage == config.vantage,
        )
        if push:
            gitstore.push(git_repo)
    return RunResult(date, measurement, tuple(entries), tuple(events), message, sha, push)


def _run_fields(
    config: Config,
    date: str,
    measurement: Measurement,
    entries: list[Entry],
    events: list[Event],
) -> dict[str, object]:
    verdicts = Counter(e.verdict for e in entries)
    today = Counter(r.verdict.value for r in measurement.domains)
    health = Counter(r.health.value for r in measurement.resolvers)
    return {
        "date": date,
        "vantage": config.vantage,
        "version": __version__,
        "names": len(entries),
        "verdicts": {v.value: verdicts[v.value] for v in Verdict if verdicts[v.value]},
        "today": {v.value: today[v.value] for v in Verdict if today[v.value]},
        "events": {kind.value: n for kind, n in Counter(e.event for e in events).items()},
        "resolvers": dict(health),
        "queries": measurement.queries,
        "strategy": config.strategy,
        "queries_by_resolver": dict(measurement.queries_by_resolver),
        **(
            {"suspected_block_pages": [_page_fields(p) for p in measurement.block_pages]}
            if measurement.block_pages
            else {}
        ),
    }


# Names listed with each suspected block page in run.yaml (--json lists them all).
PAGE_NAMES_IN_RUN = 10


def _page_fields(page: BlockPage) -> dict[str, object]:
    shown = list(page.domains[:PAGE_NAMES_IN_RUN])
    return {
        "address": page.address,
        "resolvers": list(page.resolvers),
        "names": len(page.domains),
        "domains": shown,
    }
