"""Export: the history of every vantage point as an SQLite database, ready for SQL.

Tables, each keyed by its vantage point and natural key, every child row referencing its name,
its resolver and its run dates (``PRAGMA foreign_key_check`` finds nothing). ``runs``,
``domains`` and ``resolvers`` also have an integer ``id``, which the children name in
``domain_id``, ``resolver_id`` and ``run_id``: Datasette links rows only through such
single-column keys.

- ``runs(vantage, date, sha, watched, present, missing, ..., other)``: names per verdict on
  each run date (hyphens become underscores: ``national_only``); ``sha`` is the date's last
  commit.
- ``domains(vantage, domain, display, label, verdict, last_conclusive, since, first_seen,
  last_seen, watched)``: ``verdict`` is the latest run's (``today`` when not conclusive) and
  ``since`` the snapshot's; both NULL for a name no longer watched (``watched`` 0).
- ``resolvers(vantage, resolver, resolver_group)``: every resolver a snapshot line or
  ``resolvers.yaml`` names; the group from the latest ``resolvers.yaml`` that names it.
- ``periods(vantage, domain, verdict, from_date, to_date, until)``: ``to_date`` is the last run
  date with that verdict (NULL while current), ``until`` the next run date after it, so that
  ``from_date <= :day AND (until IS NULL OR :day < until)`` is the verdict on any day.
- ``statuses(vantage, domain, resolver, status, ede, answers, from_date, to_date, until)``:
  what each resolver said, as periods read like ``periods``: the line's status, and the
  evidence a flagged line keeps, as JSON arrays (NULL when none): ``ede`` the Extended DNS
  Error codes it sent (``[15]``), ``answers`` on a tampered line the addresses it gave.
- ``resolver_health(vantage, date, resolver, resolver_group, health, tcp, extra)``: each run's
  ``resolvers.yaml``; ``extra`` holds any other key of the line as JSON.
- ``events(vantage, date, domain, display, event, from_verdict, to_verdict, sha)``.
- ``meta(key, value)``: schema version, the commit exported, the tool version.

Views: ``missing_now`` (the names whose last conclusive verdict at the latest run is
``missing``, since when) and ``disappearances`` (every ``disappeared`` event, when the name
was back, and how many days it took).
"""

from __future__ import annotations

import json
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

# 2: resolvers, statuses and resolver_health; primary and foreign keys; the two views.
SCHEMA = 2

_COUNT_COLUMNS = tuple(v.replace("-", "_") for v in WORST_FIRST)

# A day that is not conclusive never clears a flag (DESIGN.md), so it does not end a spell.
_NOT_CONCLUSIVE = "('unstable', 'inconclusive')"


def _run_key(column: str) -> str:
    return f"FOREIGN KEY (vantage, {column}) REFERENCES runs (vantage, date)"


_DDL = f"""
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE runs (
  id INTEGER PRIMARY KEY,
  vantage TEXT NOT NULL,
  date TEXT NOT NULL,
  sha TEXT NOT NULL,
  watched INTEGER NOT NULL,
  {", ".join(f"{c} INTEGER NOT NULL" for c in _COUNT_COLUMNS)},
  other INTEGER NOT NULL,
  UNIQUE (vantage, date)
);
CREATE TABLE domains (
  id INTEGER PRIMARY KEY,
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
  UNIQUE (vantage, domain),
  {_run_key("first_seen")},
  {_run_key("last_seen")}
);
CREATE TABLE resolvers (
  id INTEGER PRIMARY KEY,
  vantage TEXT NOT NULL,
  resolver TEXT NOT NULL,
  resolver_group TEXT,
  UNIQUE (vantage, resolver)
);
CREATE TABLE periods (
  vantage TEXT NOT NULL,
  domain TEXT NOT NULL,
  verdict TEXT NOT NULL,
  from_date TEXT NOT NULL,
  to_date TEXT,
  until TEXT,
  domain_id INTEGER NOT NULL REFERENCES domains (id),
  PRIMARY KEY (vantage, domain, from_date),
  FOREIGN KEY (vantage, domain) REFERENCES domains (vantage, domain),
  {_run_key("from_date")},
  {_run_key("to_date")},
  {_run_key("until")}
);
CREATE TABLE statuses (
  vantage TEXT NOT NULL,
  domain TEXT NOT NULL,
  resolver TEXT NOT NULL,
  status TEXT NOT NULL,
  ede TEXT,
  answers TEXT,
  from_date TEXT NOT NULL,
  to_date TEXT,
  until TEXT,
  domain_id INTEGER NOT NULL REFERENCES domains (id),
  resolver_id INTEGER NOT NULL REFERENCES resolvers (id),
  PRIMARY KEY (vantage, domain, resolver, from_date),
  FOREIGN KEY (vantage, domain) REFERENCES domains (vantage, domain),
  FOREIGN KEY (vantage, resolver) REFERENCES resolvers (vantage, resolver),
  {_run_key("from_date")},
  {_run_key("to_date")},
  {_run_key("until")}
);
CREATE TABLE resolver_health (
  vantage TEXT NOT NULL,
  date TEXT NOT NULL,
  resolver TEXT NOT NULL,
  resolver_group TEXT,
  health TEXT,
  tcp TEXT,
  extra TEXT,
  run_id INTEGER NOT NULL REFERENCES runs (id),
  resolver_id INTEGER NOT NULL REFERENCES resolvers (id),
  PRIMARY KEY (vantage, date, resolver),
  FOREIGN KEY (vantage, resolver) REFERENCES resolvers (vantage, resolver),
  {_run_key("date")}
);
CREATE TABLE events (
  vantage TEXT NOT NULL,
  date TEXT NOT NULL,
  domain TEXT NOT NULL,
  display TEXT NOT NULL,
  event TEXT NOT NULL,
  from_verdict TEXT NOT NULL,
  to_verdict TEXT NOT NULL,
  sha TEXT,
  domain_id INTEGER NOT NULL REFERENCES domains (id),
  run_id INTEGER NOT NULL REFERENCES runs (id),
  PRIMARY KEY (vantage, domain, date),
  FOREIGN KEY (vantage, domain) REFERENCES domains (vantage, domain),
  {_run_key("date")}
);
CREATE INDEX periods_by_verdict ON periods (vantage, verdict, from_date);
CREATE INDEX periods_by_domain ON periods (vantage, domain, from_date);
CREATE INDEX statuses_by_status ON statuses (vantage, resolver, status, from_date);
CREATE INDEX events_by_date ON events (vantage, date);
CREATE INDEX events_by_domain ON events (vantage, domain, date);
CREATE INDEX events_by_kind ON events (event, date);

CREATE VIEW missing_now AS
SELECT d.vantage, d.domain, d.display, d.label, d.since,
  CAST(julianday(latest.date) - julianday(d.since) AS INTEGER) AS days,
  d.verdict AS latest_verdict, latest.date AS latest_run
FROM domains d
JOIN (SELECT vantage, max(date) AS date FROM runs GROUP BY vantage) latest USING (vantage)
WHERE d.watched = 1 AND d.last_conclusive = 'missing';

CREATE VIEW disappearances AS
WITH RECURSIVE spell (vantage, domain, date, verdict, from_date, to_date, until) AS (
  SELECT p.vantage, p.domain, e.date, p.verdict, p.from_date, p.to_date, p.until
  FROM events e
  JOIN periods p ON p.vantage = e.vantage AND p.domain = e.domain AND p.from_date = e.date
  WHERE e.event = 'disappeared'
  UNION ALL
  SELECT s.vantage, s.domain, s.date, p.verdict, p.from_date, p.to_date, p.until
  FROM spell s
  JOIN periods p ON p.vantage = s.vantage AND p.domain = s.domain AND p.from_date = s.until
  WHERE s.verdict = 'missing' OR s.verdict IN {_NOT_CONCLUSIVE}
),
ends AS (
  SELECT vantage, domain, date,
    max(CASE WHEN verdict = 'missing' OR verdict IN {_NOT_CONCLUSIVE}
        THEN coalesce(to_date, (SELECT max(r.date) FROM runs r WHERE r.vantage = spell.vantage))
        END) AS last_missing,
    max(CASE WHEN verdict <> 'missing' AND verdict NOT IN {_NOT_CONCLUSIVE}
        THEN from_date END) AS back_on,
    max(CASE WHEN verdict <> 'missing' AND verdict NOT IN {_NOT_CONCLUSIVE}
        THEN verdict END) AS back_as,
    max(to_date IS NULL AND (verdict = 'missing' OR verdict IN {_NOT_CONCLUSIVE})) AS ongoing
  FROM spell
  GROUP BY vantage, domain, date
)
SELECT ends.vantage, ends.domain, d.display, d.label, ends.date, ends.back_on, ends.back_as,
  CAST(julianday(coalesce(ends.back_on, ends.last_missing)) - julianday(ends.date) AS INTEGER)
    AS days,
  ends.last_missing,
  -- A computed column has no affinity unless CAST gives it one: without it, a filter such as
  -- Datasette's ?ongoing=0 compares the text '0' with the number 0 and matches nothing.
  CAST(ends.ongoing AS INTEGER) AS ongoing
FROM ends JOIN domains d USING (vantage, domain);
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
    statuses: int = 0
    health: int = 0


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
    reports = collect(repo, vantages, rev, resolvers=True)
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


_TABLES = ("runs", "domains", "periods", "events", "statuses", "resolver_health")


class _Ids:
    """The integer keys of runs, names and resolvers, over every vantage point (Datasette links
    a column to the row it names only through a single-column foreign key)."""

    def __init__(self) -> None:
        self.runs: dict[tuple[str, str], int] = {}
        self.domains: dict[tuple[str, str], int] = {}
        self.resolvers: dict[tuple[str, str], int] = {}

    @staticmethod
    def add(table: dict[tuple[str, str], int], vantage: str, key: str) -> int:
        return table.setdefault((vantage, key), len(table) + 1)


def _fill(
    temp: Path, reports: Sequence[VantageReport], labels: Mapping[str, str], head: str
) -> tuple[int, ...]:
    connection = sqlite3.connect(temp)
    try:
        # The file is private until the rename, so no journal is needed; fsync comes after.
        connection.execute("PRAGMA journal_mode = OFF")
        connection.execute("PRAGMA synchronous = OFF")
        connection.executescript(_DDL)
        meta = {"schema": str(SCHEMA), "commit": head, "version": __version__}
        connection.executemany("INSERT INTO meta VALUES (?, ?)", sorted(meta.items()))
        totals = dict.fromkeys(_TABLES, 0)
        ids = _Ids()
        for report in reports:
            # Parents first, so that each child finds its keys.
            rows = {
                "runs": list(_run_rows(report, ids)),
                "domains": list(_domain_rows(report, labels, ids)),
                "resolvers": list(_resolver_rows(report, ids)),
                "periods": list(_period_rows(report, ids)),
                "statuses": list(_status_rows(report, ids)),
                "resolver_health": list(_health_rows(report, ids)),
                "events": list(_event_rows(report, ids)),
            }
            for table, table_rows in rows.items():
                if table_rows:
                    marks = ", ".join("?" * len(table_rows[0]))
                    connection.executemany(f"INSERT INTO {table} VALUES ({marks})", table_rows)
                if table in totals:
                    totals[table] += len(table_rows)
        connection.commit()
    finally:
        connection.close()
    return tuple(totals[t] for t in _TABLES)


Row = tuple[str | int | None, ...]


def _run_rows(report: VantageReport, ids: _Ids) -> Iterator[Row]:
    for run in report.runs:
        known = [run.counts.get(v, 0) for v in WORST_FIRST]
        other = run.watched - sum(known)
        key = ids.add(ids.runs, report.vantage, run.date)
        yield (key, report.vantage, run.date, run.sha, run.watched, *known, other)


def _domain_rows(report: VantageReport, labels: Mapping[str, str], ids: _Ids) -> Iterator[Row]:
    last_run = report.runs[-1].date if report.runs else None
    for h in report.histories:
        entry = report.current.get(h.domain)
        end = h.periods[-1].to or last_run or h.periods[-1].start
        yield (
            ids.add(ids.domains, report.vantage, h.domain),
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


def _resolver_rows(report: VantageReport, ids: _Ids) -> Iterator[Row]:
    groups: dict[str, str | None] = {s.resolver: None for s in report.statuses}
    for health in report.health:  # oldest first: the latest line that names a group wins
        if health.group is not None or health.resolver not in groups:
            groups[health.resolver] = health.group
    for name in sorted(groups):
        yield (ids.add(ids.resolvers, report.vantage, name), report.vantage, name, groups[name])


def _following(report: VantageReport) -> dict[str, str]:
    return {report.runs[i].date: report.runs[i + 1].date for i in range(len(report.runs) - 1)}


def _period_rows(report: VantageReport, ids: _Ids) -> Iterator[Row]:
    following = _following(report)
    v = report.vantage
    for h in report.histories:
        domain_id = ids.domains[(v, h.domain)]
        for p in h.periods:
            until = None if p.to is None else following.get(p.to)
            yield (v, h.domain, p.verdict, p.start, p.to, until, domain_id)


def _status_rows(report: VantageReport, ids: _Ids) -> Iterator[Row]:
    following = _following(report)
    v = report.vantage
    for s in report.statuses:
        until = None if s.to is None else following.get(s.to)
        yield (
            v,
            s.domain,
            s.resolver,
            s.status,
            json.dumps(list(s.ede)) if s.ede else None,
            json.dumps(list(s.answers)) if s.answers else None,
            s.start,
            s.to,
            until,
            ids.domains[(v, s.domain)],
            ids.resolvers[(v, s.resolver)],
        )


def _health_rows(report: VantageReport, ids: _Ids) -> Iterator[Row]:
    v = report.vantage
    for h in report.health:
        extra = {k: x for k, x in h.extra.items() if k != "tcp"}
        tcp = h.extra.get("tcp")
        yield (
            v,
            h.date,
            h.resolver,
            h.group,
            h.health,
            None if tcp is None else tcp if isinstance(tcp, str) else _json(tcp),
            _json(extra) if extra else None,
            ids.runs[(v, h.date)],
            ids.resolvers[(v, h.resolver)],
        )


def _json(value: object) -> str:
    # A date or anything else YAML reads that JSON has no word for is written as text.
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


def _event_rows(report: VantageReport, ids: _Ids) -> Iterator[Row]:
    shas = {run.date: run.sha for run in report.runs}  # later runs of a date come later
    v = report.vantage
    for e in report.events:
        yield (
            v,
            e.date,
            e.domain,
            e.display or e.domain,
            e.event,
            e.before,
            e.after,
            shas.get(e.date),
            ids.domains[(v, e.domain)],
            ids.runs[(v, e.date)],
        )
