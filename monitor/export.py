"""Export: the history of every vantage point as an SQLite database, ready for SQL.

Tables (one row per run date, per name, per period and per event):

- ``runs(vantage, date, sha, watched, present, missing, ..., other)``: names per verdict on
  each run date (hyphens become underscores: ``national_only``); ``sha`` is the date's last
  commit.
- ``domains(vantage, domain, display, label, verdict, last_conclusive, since, first_seen,
  last_seen, watched)``: ``verdict`` is the latest run's (``today`` when not conclusive) and
  ``since`` the snapshot's; both NULL for a name no longer watched (``watched`` 0).
- ``periods(vantage, domain, verdict, from_date, to_date, until)``: ``to_date`` is the last run
  date with that verdict (NULL while current), ``until`` the next run date after it, so that
  ``from_date <= :day AND (until IS NULL OR :day < until)`` is the verdict on any day.
- ``events(vantage, date, domain, display, event, from_verdict, to_verdict, sha)``.
- ``meta(key, value)``: schema version, the commit exported, the tool version.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import git

from monitor import __version__, gitstore
from monitor.changes import display_of
from monitor.errors import FileError
from monitor.files import file_error, replacing
from monitor.history import VantageReport, collect
from monitor.vocabulary import WORST_FIRST

__all__ = ["SCHEMA", "Export", "export_sqlite", "write_database"]

SCHEMA = 1

_COUNT_COLUMNS = tuple(v.replace("-", "_") for v in WORST_FIRST)

_DDL = f"""
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE runs (
  vantage TEXT NOT NULL,
  date TEXT NOT NULL,
  sha TEXT NOT NULL,
  watched INTEGER NOT NULL,
  {", ".join(f"{c} INTEGER NOT NULL" for c in _COUNT_COLUMNS)},
  other INTEGER NOT NULL,
  PRIMARY KEY (vantage, date)
);
CREATE TABLE domains (
  vantage TEXT NOT NULL,
  domain TEXT NOT NULL,
  display TEXT NOT NULL,
  label TEXT,
  verdict TEXT,
  last_conclusive TEXT,
  since TEXT,
  first_seen TEXT NOT NULL,
  last_seen TEXT NOT NULL,
  watched INTEGER NOT NULL,
  PRIMARY KEY (vantage, domain)
);
CREATE TABLE periods (
  vantage TEXT NOT NULL,
  domain TEXT NOT NULL,
  verdict TEXT NOT NULL,
  from_date TEXT NOT NULL,
  to_date TEXT,
  until TEXT
);
CREATE TABLE events (
  vantage TEXT NOT NULL,
  date TEXT NOT NULL,
  domain TEXT NOT NULL,
  display TEXT NOT NULL,
  event TEXT NOT NULL,
  from_verdict TEXT NOT NULL,
  to_verdict TEXT NOT NULL,
  sha TEXT
);
CREATE INDEX periods_by_verdict ON periods (vantage, verdict, from_date);
CREATE INDEX periods_by_domain ON periods (vantage, domain, from_date);
CREATE INDEX events_by_date ON events (vantage, date);
CREATE INDEX events_by_domain ON events (vantage, domain, date);
CREATE INDEX events_by_kind ON events (event, date);
"""


@dataclass(frozen=True)
class Export:
    """What :func:`export_sqlite` wrote: the file and its row counts."""

    path: Path
    vantages: tuple[str, ...]
    runs: int
    domains: int
    periods: int
    events: int


def export_sqlite(
    repo: git.Repo,
    path: Path,
    *,
    vantages: Sequence[str] = (),
    labels: Mapping[str, str] | None = None,
    rev: str = "HEAD",
) -> Export:
    """Write the history of ``vantages`` (default: all under snapshots/) to the SQLite file
    ``path``, replacing it atomically, and return the row counts.

    Raises what :func:`monitor.history.collect` raises, and FileError when the file cannot be
    written.
    """
    reports = collect(repo, vantages, rev)
    head = gitstore.resolve_commit(repo, rev) or ""
    return write_database(path, reports, labels=labels or {}, head=head)


def write_database(
    path: Path,
    reports: Sequence[VantageReport],
    *,
    labels: Mapping[str, str],
    head: str = "",
) -> Export:
    """Write ``reports`` to the SQLite file ``path`` (a temporary file beside it, renamed over
    it once complete) and return the row counts. Raises FileError."""
    try:
        with replacing(path) as temp:
            counts = _fill(temp, reports, labels, head)
    except OSError as exc:
        raise file_error(exc, path) from exc
    except sqlite3.Error as exc:  # "database or disk is full", "disk I/O error"
        raise FileError(str(path), str(exc)) from exc
    return Export(path, tuple(r.vantage for r in reports), *counts)


def _fill(
    temp: Path, reports: Sequence[VantageReport], labels: Mapping[str, str], head: str
) -> tuple[int, int, int, int]:
    connection = sqlite3.connect(temp)
    try:
        # The file is private until the rename, so no journal is needed; fsync comes after.
        connection.execute("PRAGMA journal_mode = OFF")
        connection.execute("PRAGMA synchronous = OFF")
        connection.executescript(_DDL)
        meta = {"schema": str(SCHEMA), "commit": head, "version": __version__}
        connection.executemany("INSERT INTO meta VALUES (?, ?)", sorted(meta.items()))
        totals = [0, 0, 0, 0]
        for report in reports:
            runs = list(_run_rows(report))
            domains = list(_domain_rows(report, labels))
            periods = list(_period_rows(report))
            events = list(_event_rows(report))
            marks = ", ".join("?" * (len(_COUNT_COLUMNS) + 5))
            connection.executemany(f"INSERT INTO runs VALUES ({marks})", runs)
            connection.executemany(
                "INSERT INTO domains VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", domains
            )
            connection.executemany("INSERT INTO periods VALUES (?, ?, ?, ?, ?, ?)", periods)
            connection.executemany("INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?, ?)", events)
            for i, rows in enumerate((runs, domains, periods, events)):
                totals[i] += len(rows)
        connection.commit()
    finally:
        connection.close()
    return totals[0], totals[1], totals[2], totals[3]


Row = tuple[str | int | None, ...]


def _run_rows(report: VantageReport) -> Iterator[Row]:
    for run in report.runs:
        known = [run.counts.get(v, 0) for v in WORST_FIRST]
        other = run.watched - sum(known)
        yield (report.vantage, run.date, run.sha, run.watched, *known, other)


def _domain_rows(report: VantageReport, labels: Mapping[str, str]) -> Iterator[Row]:
    last_run = report.runs[-1].date if report.runs else None
    for h in report.histories:
        entry = report.current.get(h.domain)
        end = h.periods[-1].to or last_run or h.periods[-1].start
        yield (
            report.vantage,
            h.domain,
            display_of(h.domain),
            labels.get(h.domain),
            None if entry is None else entry.current,
            None if entry is None else entry.verdict,
            None if entry is None else entry.since,
            h.periods[0].start,
            end,
            int(entry is not None),
        )


def _period_rows(report: VantageReport) -> Iterator[Row]:
    following = {report.runs[i].date: report.runs[i + 1].date for i in range(len(report.runs) - 1)}
    for h in report.histories:
        for p in h.periods:
            until = None if p.to is None else following.get(p.to)
            yield (report.vantage, h.domain, p.verdict, p.start, p.to, until)


def _event_rows(report: VantageReport) -> Iterator[Row]:
    shas = {run.date: run.sha for run in report.runs}  # later runs of a date come later
    for e in report.events:
        display = e.display or e.domain
        yield (
            report.vantage,
            e.date,
            e.domain,
            display,
            e.event,
            e.before,
            e.after,
            shas.get(e.date),
        )
