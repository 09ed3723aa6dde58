"""Tests of the SQLite export over the generated histories of tests/test_report.py."""

from __future__ import annotations

import datetime
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_report import VANTAGES, Model, build_model, git, hostile_repo, isolate

from monitor import __version__, gitstore
from monitor.errors import FileError, UsageError
from monitor.export import SCHEMA, export_sqlite
from monitor.history import collect, history

MISSING_ON = """
SELECT domain FROM periods
WHERE vantage = :vantage AND verdict = :verdict
  AND from_date <= :day AND (until IS NULL OR :day < until)
"""


@pytest.fixture(autouse=True)
def git_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    isolate(monkeypatch, tmp_path / "global.gitconfig")


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Model]:
    work = tmp_path_factory.mktemp("export-model")
    with pytest.MonkeyPatch.context() as monkeypatch:
        isolate(monkeypatch, work / "global.gitconfig")
        yield build_model(work / "repo")


@pytest.fixture(scope="module")
def db(model: Model, tmp_path_factory: pytest.TempPathFactory) -> Iterator[sqlite3.Connection]:
    path = tmp_path_factory.mktemp("export") / "history.sqlite"
    with pytest.MonkeyPatch.context() as monkeypatch:
        isolate(monkeypatch, path.parent / "global.gitconfig")
        export_sqlite(gitstore.open_repo(model.root), path)
    connection = sqlite3.connect(path)
    yield connection
    connection.close()


def count(db: sqlite3.Connection, table: str, vantage: str) -> int:
    row = db.execute(f"SELECT count(*) FROM {table} WHERE vantage = ?", (vantage,)).fetchone()
    return int(row[0])


def test_one_row_per_period_event_run_and_name(model: Model, db: sqlite3.Connection) -> None:
    repo = gitstore.open_repo(model.root)
    for vantage in VANTAGES:
        histories = history(repo, vantage)
        assert count(db, "periods", vantage) == sum(len(h.periods) for h in histories) > 1000
        assert count(db, "events", vantage) == len(model.vantages[vantage].events) > 100
        assert count(db, "runs", vantage) == len(model.vantages[vantage].dates)
        assert count(db, "domains", vantage) == len(histories)
    meta = dict(db.execute("SELECT key, value FROM meta"))
    assert meta == {
        "schema": str(SCHEMA),
        "commit": git(model.root, "rev-parse", "HEAD"),
        "version": __version__,
    }


def test_periods_are_the_histories(model: Model, db: sqlite3.Connection) -> None:
    repo = gitstore.open_repo(model.root)
    for vantage in VANTAGES:
        expected = sorted(
            (h.domain, p.verdict, p.start, p.to) for h in history(repo, vantage) for p in h.periods
        )
        rows = db.execute(
            "SELECT domain, verdict, from_date, to_date FROM periods WHERE vantage = ? "
            "ORDER BY domain, verdict, from_date, to_date",
            (vantage,),
        ).fetchall()
        assert sorted(rows, key=lambda r: (r[0], r[1], r[2], r[3] or "")) == sorted(
            expected, key=lambda r: (r[0], r[1], r[2], r[3] or "")
        )


def test_which_names_were_missing_on_a_day(model: Model, db: sqlite3.Connection) -> None:
    for vantage, vm in model.vantages.items():
        first = datetime.date.fromisoformat(vm.dates[0])
        # Every run date, and the nights without a run in between (the last run holds).
        days = sorted(
            {
                (first + datetime.timedelta(days=n)).isoformat()
                for n in range((datetime.date.fromisoformat(vm.dates[-1]) - first).days + 1)
            }
        )
        assert len(days) > len(vm.dates)
        checked = 0
        for day in days[::7] + [d for d in days if d not in vm.dates]:
            n = max(i for i, d in enumerate(vm.dates) if d <= day)
            for verdict in ("missing", "gone", "unstable"):
                expected = {name for name, v in vm.days.items() if v[n] == verdict}
                found = {
                    r[0]
                    for r in db.execute(
                        MISSING_ON, {"vantage": vantage, "verdict": verdict, "day": day}
                    )
                }
                assert found == expected, (vantage, day, verdict)
                checked += bool(expected)
        assert checked > 30
        before = (first - datetime.timedelta(days=1)).isoformat()
        assert not db.execute(
            MISSING_ON, {"vantage": vantage, "verdict": "present", "day": before}
        ).fetchall()


def test_the_query_uses_an_index(db: sqlite3.Connection) -> None:
    plan = " ".join(
        str(row[-1])
        for row in db.execute(
            "EXPLAIN QUERY PLAN " + MISSING_ON,
            {"vantage": "abroad", "verdict": "missing", "day": "2025-06-01"},
        )
    )
    assert "USING INDEX periods_by_verdict" in plan
    indexes = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert {
        "periods_by_verdict",
        "periods_by_domain",
        "events_by_date",
        "events_by_domain",
    } <= indexes


def test_runs_count_each_verdict(model: Model, db: sqlite3.Connection) -> None:
    for vantage, vm in model.vantages.items():
        for date in (vm.dates[0], vm.dates[len(vm.dates) // 3], vm.dates[-1]):
            row = db.execute(
                "SELECT watched, present, missing, failing, tampered, partial, national_only, "
                "gone, unstable, inconclusive, other FROM runs WHERE vantage = ? AND date = ?",
                (vantage, date),
            ).fetchone()
            counts = vm.counts(date)
            names = (
                "present",
                "missing",
                "failing",
                "tampered",
                "partial",
                "national-only",
                "gone",
                "unstable",
                "inconclusive",
            )
            assert row == (sum(counts.values()), *(counts.get(v, 0) for v in names), 0)
        # A date run twice: the run's sha is the second commit's.
        date = sorted(vm.rerun_dates)[0]
        sha = db.execute(
            "SELECT sha FROM runs WHERE vantage = ? AND date = ?", (vantage, date)
        ).fetchone()[0]
        assert sha == git(
            model.root,
            "log",
            "-1",
            "--format=%H",
            f"--grep=^Monitor-Date: {date}$",
            "--",
            f"snapshots/{vantage}/",
        )


def test_events_and_domains(model: Model, db: sqlite3.Connection) -> None:
    for vantage, vm in model.vantages.items():
        rows = db.execute(
            "SELECT date, domain, event, from_verdict, to_verdict FROM events WHERE vantage = ?",
            (vantage,),
        ).fetchall()
        assert sorted(rows) == sorted(vm.events)
        assert db.execute(
            "SELECT count(*) FROM events e JOIN runs r USING (vantage, date) "
            "WHERE e.vantage = ? AND e.sha = r.sha",
            (vantage,),
        ).fetchone()[0] == len(rows)
        current = {
            r[0]: r[1:]
            for r in db.execute(
                "SELECT domain, verdict, last_conclusive, since FROM domains "
                "WHERE vantage = ? AND watched = 1",
                (vantage,),
            )
        }
        assert current == {
            e.domain: (e.today or e.verdict, e.verdict, e.since) for e in vm.final.values()
        }
        gone_from_watchlist = {
            r[0]
            for r in db.execute(
                "SELECT domain FROM domains WHERE vantage = ? AND watched = 0 AND verdict IS NULL",
                (vantage,),
            )
        }
        assert (
            gone_from_watchlist == {n for n, days in vm.days.items() if days[-1] is None} != set()
        )


def test_the_file_is_replaced_atomically(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    hostile_repo(root)
    repo = gitstore.open_repo(root)
    path = tmp_path / "out" / "h.sqlite"
    path.parent.mkdir()
    path.write_bytes(b"not a database")
    done = export_sqlite(repo, path, labels={"dw.com": "Deutsche Welle"})
    assert (done.runs, done.domains, done.periods, done.events) == (2, 2, 3, 1)
    assert sorted(p.name for p in path.parent.iterdir()) == ["h.sqlite"]
    reader = sqlite3.connect(path)
    assert reader.execute("SELECT label FROM domains WHERE domain = 'dw.com'").fetchone() == (
        "Deutsche Welle",
    )
    # A second export replaces the file under an open reader, who keeps the old one whole.
    with pytest.raises(UsageError):
        export_sqlite(repo, path, vantages=["elsewhere"])
    export_sqlite(repo, path)
    assert reader.execute("SELECT count(*) FROM periods").fetchone() == (3,)
    assert sqlite3.connect(path).execute(
        "SELECT label FROM domains WHERE domain = 'dw.com'"
    ).fetchone() == (None,)
    assert sorted(p.name for p in path.parent.iterdir()) == ["h.sqlite"]
    reader.close()

    blocker = tmp_path / "file"
    blocker.write_text("")
    # The path a person can act on: the file that stands where a directory should be.
    with pytest.raises(FileError) as raised:
        export_sqlite(repo, blocker / "x.sqlite")
    assert str(raised.value) == f"{blocker}: Not a directory"


def test_the_export_command(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    hostile_repo(root)
    out = tmp_path / "h.sqlite"
    done = subprocess.run(
        [sys.executable, "-m", "monitor", "export", "--sqlite", str(out), "--repo", str(root)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout == f"wrote {out}: lab, 2 runs, 2 names, 3 periods, 1 events\n"
    assert len(collect(gitstore.open_repo(root))[0].events) == 1
    done = subprocess.run(
        [sys.executable, "-m", "monitor", "export", "--repo", str(root)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert "Missing option '--sqlite'" in done.stderr
