"""Tests of the SQLite export: over the generated histories of tests/test_report.py, over a
small story written as `run` writes it (resolvers.yaml included), and the README's queries over
the demo's export."""

from __future__ import annotations

import datetime
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlite_utils
from test_report import VANTAGES, Model, build_model, git, hostile_repo, init, isolate

from monitor import __version__, gitstore
from monitor.errors import FileError, UsageError
from monitor.export import SCHEMA, export_sqlite
from monitor.history import collect, history
from monitor.snapshot import domain_files, snapshot_dir, write_files

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


# ----------------------------------------------------------------------------- the evidence

# A story at one vantage point, written as `run` writes it (domain lines, resolvers.yaml and
# run.yaml, one commit per run with its trailers). Run dates skip 2026-02-13.
R1, R2, R3, R4, R5, R6 = (
    "2026-02-09",
    "2026-02-10",
    "2026-02-11",
    "2026-02-12",
    "2026-02-14",
    "2026-02-15",
)
KREMLIN = "xn--e1ajeds9e.xn--p1ai"  # кремль.рф


def story_line(
    domain: str, verdict: str, since: str, a: str, b: str, *, google: str = "ok", extra: str = ""
) -> str:
    return (
        f"{domain}: {{verdict: {verdict}, since: {since}{extra}, nsdi-a: {a}, nsdi-b: {b}, "
        f"google: {google}}}"
    )


def health_lines(nsdi_b: str = "up", nsdi_a_extra: str = "") -> str:
    return (
        f"nsdi-a: {{group: national, health: up{nsdi_a_extra}}}\n"
        f"nsdi-b: {{group: national, health: {nsdi_b}}}\n"
        "google: {group: control, health: up}\n"
    )


def commit_run(root: Path, date: str, lines: list[str], resolvers: str) -> str:
    directory = snapshot_dir(root, "lab")
    files = {
        "domains.yaml": "".join(f"{x}\n" for x in sorted(lines)),
        "resolvers.yaml": resolvers,
        "run.yaml": f"date: '{date}'\nvantage: lab\n",
    }
    write_files(directory, files, prune=domain_files(directory))
    message = f"lab: a run ({date})\n\nMonitor-Date: {date}\nMonitor-Vantage: lab\n"
    return gitstore.commit_directory(gitstore.open_repo(root), "snapshots/lab", message)


def story_repo(root: Path) -> None:
    """youtube.com goes on R2 and stays gone; bbc.com goes on R2, is unstable on R3 (nsdi-b
    times out) and is back on R5; dw.com goes on R2 and leaves the watchlist on R3; кремль.рф
    goes on R4 while nsdi-b is down (only nsdi-a said NXDOMAIN), then both say it; split.example
    is partial from R2, its line carrying Extended DNS Errors; meduza.io is tampered from R3,
    nsdi-a giving a block page's address with EDE 15, another address from R5. On R5 a first
    run, pushed, was replaced by a second one that saw bbc.com back."""
    init(root)
    ok = "ok"
    nx = "nxdomain"
    ede = ", ede: {nsdi-a: [15]}"
    present = {
        d: story_line(d, "present", R1, ok, ok)
        for d in ("youtube.com", "bbc.com", "dw.com", KREMLIN, "split.example", "meduza.io")
    }
    commit_run(root, R1, list(present.values()), health_lines())
    day2 = {
        **present,
        "youtube.com": story_line("youtube.com", "missing", R2, nx, nx),
        "bbc.com": story_line("bbc.com", "missing", R2, nx, nx),
        "dw.com": story_line("dw.com", "missing", R2, nx, nx),
        "split.example": story_line("split.example", "partial", R2, nx, ok, extra=ede),
    }
    commit_run(root, R2, list(day2.values()), health_lines())

    def block_page(address: str) -> str:
        evidence = f", ede: {{nsdi-a: [15]}}, answers: {{nsdi-a: [{address}]}}"
        return story_line("meduza.io", "tampered", R3, ok, ok, extra=evidence)

    day3 = {
        **day2,
        "bbc.com": story_line("bbc.com", "missing", R2, nx, "timeout", extra=", today: unstable"),
        "meduza.io": block_page("95.213.158.62"),
    }
    del day3["dw.com"]
    commit_run(root, R3, list(day3.values()), health_lines())
    day4 = {
        **day3,
        "bbc.com": story_line("bbc.com", "missing", R2, nx, nx),
        KREMLIN: story_line(KREMLIN, "missing", R4, nx, "down"),
    }
    commit_run(root, R4, list(day4.values()), health_lines("down", ", tcp: refused, note: {x: 1}"))
    day5 = {
        **day4,
        KREMLIN: story_line(KREMLIN, "missing", R4, nx, nx),
        "meduza.io": block_page("95.213.158.63"),
    }
    commit_run(root, R5, list(day5.values()), health_lines())
    day5["bbc.com"] = story_line("bbc.com", "present", R5, ok, ok)
    commit_run(root, R5, list(day5.values()), health_lines())
    commit_run(root, R6, list(day5.values()), health_lines())


@pytest.fixture(scope="module")
def story(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    work = tmp_path_factory.mktemp("story")
    with pytest.MonkeyPatch.context() as monkeypatch:
        isolate(monkeypatch, work / "global.gitconfig")
        story_repo(work / "repo")
        path = work / "story.sqlite"
        export_sqlite(gitstore.open_repo(work / "repo"), path, labels={"youtube.com": "YouTube"})
    yield path


def rows(path: Path, sql: str, **params: str) -> list[tuple[object, ...]]:
    connection = sqlite3.connect(path)
    try:
        return connection.execute(sql, params).fetchall()
    finally:
        connection.close()


def test_missing_now_and_since_when(story: Path) -> None:
    assert rows(
        story,
        "SELECT domain, display, label, since, days, latest_run FROM missing_now "
        "ORDER BY since, domain",
    ) == [
        ("youtube.com", "youtube.com", "YouTube", R2, 5, R6),
        (KREMLIN, "кремль.рф", None, R4, 3, R6),
    ]


def test_every_disappearance_with_its_duration(story: Path) -> None:
    assert rows(
        story,
        "SELECT domain, date, back_on, back_as, days, last_missing, ongoing FROM disappearances "
        "ORDER BY date, domain",
    ) == [
        # Missing, unstable (a day that is not conclusive ends nothing), missing, back.
        ("bbc.com", R2, R5, "present", 4, R4, 0),
        # Dropped from the watchlist while missing: never seen back, and no longer watched.
        ("dw.com", R2, None, None, 0, R2, 0),
        ("youtube.com", R2, None, None, 5, R6, 1),
        (KREMLIN, R4, None, None, 3, R6, 1),
    ]
    # The counts compare as numbers also when a filter gives them as text (Datasette's
    # ?ongoing=0 and ?days=3 do).
    assert rows(story, "SELECT domain FROM disappearances WHERE ongoing = '0' AND days = '4'") == [
        ("bbc.com",)
    ]
    assert rows(story, "SELECT domain FROM missing_now WHERE days = '3'") == [(KREMLIN,)]


NATIONAL_ON_THE_DAY = """
SELECT d.domain, d.date,
  group_concat(s.resolver || ': ' || s.status, ', ') AS national_said,
  sum(s.status = 'nxdomain') = count(*) AS all_nxdomain
FROM disappearances d
JOIN (SELECT * FROM statuses ORDER BY resolver) s
  ON s.vantage = d.vantage AND s.domain = d.domain
  AND s.from_date <= d.date AND (s.until IS NULL OR d.date < s.until)
JOIN resolvers r ON r.vantage = s.vantage AND r.resolver = s.resolver
WHERE r.resolver_group = 'national'
GROUP BY d.vantage, d.domain, d.date
ORDER BY d.date, d.domain
"""


def test_did_both_national_resolvers_drop_it_and_what_did_each_say(story: Path) -> None:
    assert rows(story, NATIONAL_ON_THE_DAY) == [
        ("bbc.com", R2, "nsdi-a: nxdomain, nsdi-b: nxdomain", 1),
        ("dw.com", R2, "nsdi-a: nxdomain, nsdi-b: nxdomain", 1),
        ("youtube.com", R2, "nsdi-a: nxdomain, nsdi-b: nxdomain", 1),
        (KREMLIN, R4, "nsdi-a: nxdomain, nsdi-b: down", 0),
    ]
    # Change by change, what each resolver said about bbc.com: the day's last run counts (on
    # R5 the first run still saw it missing), and the EDE key of a line is not a resolver.
    assert rows(
        story,
        "SELECT resolver, status, from_date, to_date, until FROM statuses "
        "WHERE domain = 'bbc.com' AND resolver = 'nsdi-b' ORDER BY from_date",
    ) == [
        ("nsdi-b", "ok", R1, R1, R2),
        ("nsdi-b", "nxdomain", R2, R2, R3),
        ("nsdi-b", "timeout", R3, R3, R4),
        ("nsdi-b", "nxdomain", R4, R4, R5),
        ("nsdi-b", "ok", R5, None, None),
    ]
    assert rows(story, "SELECT DISTINCT resolver FROM statuses ORDER BY 1") == [
        ("google",),
        ("nsdi-a",),
        ("nsdi-b",),
    ]


def test_what_a_tampering_resolver_gave_and_declared_day_by_day(story: Path) -> None:
    # The evidence a flagged line keeps is part of what a resolver said: a new address is a
    # new period, with the same status.
    assert rows(
        story,
        "SELECT resolver, status, ede, answers, from_date, to_date FROM statuses "
        "WHERE domain = 'meduza.io' ORDER BY resolver, from_date",
    ) == [
        ("google", "ok", None, None, R1, None),
        ("nsdi-a", "ok", None, None, R1, R2),
        ("nsdi-a", "ok", "[15]", '["95.213.158.62"]', R3, R4),
        ("nsdi-a", "ok", "[15]", '["95.213.158.63"]', R5, None),
        ("nsdi-b", "ok", None, None, R1, None),
    ]
    # Every address a national resolver gave instead, with SQLite's own JSON functions.
    assert rows(
        story,
        "SELECT DISTINCT s.domain, s.resolver, a.value FROM statuses s, json_each(s.answers) a "
        "ORDER BY a.value",
    ) == [("meduza.io", "nsdi-a", "95.213.158.62"), ("meduza.io", "nsdi-a", "95.213.158.63")]
    assert rows(
        story,
        "SELECT DISTINCT domain, resolver, ede FROM statuses WHERE ede IS NOT NULL ORDER BY 1",
    ) == [("meduza.io", "nsdi-a", "[15]"), ("split.example", "nsdi-a", "[15]")]


def test_resolver_health_per_run(story: Path) -> None:
    found = rows(
        story,
        "SELECT date, resolver, resolver_group, health, tcp, extra FROM resolver_health "
        "ORDER BY date, resolver",
    )
    assert len(found) == 6 * 3
    assert [r for r in found if r[0] == R4] == [
        (R4, "google", "control", "up", None, None),
        (R4, "nsdi-a", "national", "up", "refused", '{"note": {"x": 1}}'),
        (R4, "nsdi-b", "national", "down", None, None),
    ]
    # An unchanged resolvers.yaml still gives each run its rows.
    assert {r[3] for r in found if r[0] in (R5, R6)} == {"up"}
    assert rows(story, "SELECT resolver, resolver_group FROM resolvers ORDER BY resolver") == [
        ("google", "control"),
        ("nsdi-a", "national"),
        ("nsdi-b", "national"),
    ]


def test_keys_hold_and_are_enforced(story: Path, db: sqlite3.Connection) -> None:
    assert db.execute("PRAGMA foreign_key_check").fetchall() == []
    connection = sqlite3.connect(story)
    try:
        assert connection.execute("PRAGMA foreign_key_check").fetchall() == []
        assert connection.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        connection.execute("PRAGMA foreign_keys = ON")
        bad = [
            "INSERT INTO periods VALUES ('lab', 'nowhere.example', 'present', ?, NULL, NULL, 1)",
            "INSERT INTO events (vantage, date, domain, display, event, from_verdict, to_verdict, "
            "domain_id, run_id) VALUES ('lab', '2026-02-13', 'bbc.com', 'bbc.com', 'gone', "
            "'present', 'gone', 1, 1)",
            "INSERT INTO statuses VALUES "
            "('lab', 'bbc.com', 'quad9', 'ok', NULL, NULL, ?, NULL, NULL, 1, 1)",
        ]
        for sql in bad:
            with pytest.raises(sqlite3.IntegrityError, match="FOREIGN KEY"):
                connection.execute(sql, (R1,) if "?" in sql else ())
    finally:
        connection.close()


def test_the_database_as_sqlite_utils_sees_it(story: Path) -> None:
    db = sqlite_utils.Database(story)
    assert set(db.table_names()) == {
        "meta",
        "runs",
        "domains",
        "resolvers",
        "periods",
        "statuses",
        "resolver_health",
        "events",
    }
    assert set(db.view_names()) == {"missing_now", "disappearances"}
    assert db.table("periods").pks == ["vantage", "domain", "from_date"]
    assert db.table("statuses").pks == ["vantage", "domain", "resolver", "from_date"]
    assert db.table("domains").pks == ["id"]

    def keys(table: str) -> set[tuple[tuple[str, ...], str, tuple[str, ...]]]:
        return {
            (tuple(fk.columns), fk.other_table, tuple(fk.other_columns))
            for fk in db.table(table).foreign_keys
        }

    runs = ("runs", ("vantage", "date"))
    assert keys("statuses") == {
        (("vantage", "domain"), "domains", ("vantage", "domain")),
        (("vantage", "resolver"), "resolvers", ("vantage", "resolver")),
        *((("vantage", c), runs[0], runs[1]) for c in ("from_date", "to_date", "until")),
        (("domain_id",), "domains", ("id",)),
        (("resolver_id",), "resolvers", ("id",)),
    }
    assert (("vantage", "date"), "runs", ("vantage", "date")) in keys("events")
    assert (("run_id",), "runs", ("id",)) in keys("resolver_health")
    assert db.table("meta").get("schema")["value"] == str(SCHEMA) == "2"
    youtube = next(db.table("domains").rows_where("domain = ?", ["youtube.com"]))
    assert (youtube["label"], youtube["last_conclusive"], youtube["since"]) == (
        "YouTube",
        "missing",
        R2,
    )
    assert db.view("disappearances").count == 4


def test_statuses_are_what_each_line_said_on_each_day(model: Model, db: sqlite3.Connection) -> None:
    query = (
        "SELECT domain, resolver, status FROM statuses WHERE vantage = :vantage "
        "AND from_date <= :day AND (until IS NULL OR :day < until)"
    )
    for vantage, vm in model.vantages.items():
        checked = 0
        # Every 9th run date, and each date whose first run (with no statuses) was replaced.
        for n, day in enumerate(vm.dates):
            if n % 9 and day not in vm.rerun_dates:
                continue
            expected = {
                (name, resolver, status)
                for name, entry in vm.snapshots[n].items()
                for resolver, status in entry.statuses
            }
            found = set(db.execute(query, {"vantage": vantage, "day": day}).fetchall())
            assert found == expected, (vantage, day)
            checked += len(expected)
        assert checked > 10_000
        # The model's snapshots name no resolvers.yaml: resolvers without a group, no health.
        assert db.execute(
            "SELECT resolver, resolver_group FROM resolvers WHERE vantage = ? ORDER BY 1",
            (vantage,),
        ).fetchall() == [("google", None), ("nsdi-a", None), ("nsdi-b", None), ("quad9", None)]
        assert count(db, "resolver_health", vantage) == 0


# ----------------------------------------------------------------------------- the README

README = Path(__file__).resolve().parent.parent / "README.md"
GAP = "..."


@dataclass(frozen=True)
class Query:
    """A README ```sql block and the ``sqlite3 -header`` output shown in the block after it."""

    line: int
    sql: str
    shown: tuple[str, ...]


def readme_queries() -> list[Query]:
    lines = README.read_text(encoding="utf-8").splitlines()
    found = []
    for i, line in enumerate(lines):
        if line != "```sql":
            continue
        end = lines.index("```", i + 1)
        assert lines[end + 1] == "```", f"README.md:{end + 2}: the query's output must follow it"
        close = lines.index("```", end + 2)
        found.append(Query(i + 1, "\n".join(lines[i + 1 : end]), tuple(lines[end + 2 : close])))
    return found


def shown_in(output: list[str], shown: tuple[str, ...]) -> bool:
    """Whether ``output`` has the lines ``shown``: the first one first, in order, consecutive
    between two GAP lines, and the last one last unless a GAP ends ``shown``."""
    runs: list[list[str]] = [[]]
    for line in shown:
        if line == GAP:
            runs.append([])
        else:
            runs[-1].append(line)
    if output[: len(runs[0])] != runs[0]:
        return False
    at = len(runs[0])
    for run in runs[1:]:
        if not run:
            at = len(output)  # a trailing GAP
            continue
        starts = [
            i for i in range(at, len(output) - len(run) + 1) if output[i : i + len(run)] == run
        ]
        if not starts:
            return False
        at = starts[0] + len(run)
    return at == len(output)


def test_the_readme_queries_print_what_the_readme_shows(tmp_path: Path) -> None:
    queries = readme_queries()
    assert len(queries) >= 5
    keep = tmp_path / "dk"
    for args in (["demo", "--keep", str(keep)], ["export", "--sqlite", "history.sqlite"]):
        done = subprocess.run(
            [sys.executable, "-m", "monitor", *args],
            cwd=keep if args[0] == "export" else tmp_path,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stdout + done.stderr
    connection = sqlite3.connect(keep / "history.sqlite")
    try:
        for query in queries:
            cursor = connection.execute(query.sql)
            output = ["|".join(c[0] for c in cursor.description)]
            output += ["|".join("" if v is None else str(v) for v in row) for row in cursor]
            assert shown_in(output, query.shown), f"README.md:{query.line}:\n" + "\n".join(output)
    finally:
        connection.close()


def test_the_output_check_fails_on_output_the_readme_does_not_show() -> None:
    assert shown_in(["h", "a", "b", "c"], ("h", "a", GAP, "c"))
    assert shown_in(["h", "a", "b", "c"], ("h", GAP))
    assert not shown_in(["h", "a", "b", "c"], ("h", "a", "b"))  # a row left out, no GAP
    assert not shown_in(["h", "b", "a"], ("h", GAP, "a", "b"))
    assert not shown_in(["x", "a"], ("h", GAP))
