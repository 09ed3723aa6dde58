"""Tests of `history` and `diff` over real git repositories of hand-written snapshot files.

No DNS: each day's domain file is written by hand (or rendered by monitor.snapshot for the big
cases) and committed as `run` commits it, so years of days take seconds.
"""

from __future__ import annotations

import datetime
import json
import random
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from monitor import gitstore
from monitor.history import history
from monitor.snapshot import (
    DOMAINS_FILE,
    SHARD_ABOVE,
    Entry,
    domain_files,
    render_domains,
    render_line,
    snapshot_dir,
    write_files,
)

PROJECT = Path(__file__).resolve().parent.parent
AUTHOR = "History Runner"
EMAIL = "history@example.test"
VANTAGE = "lab"
SNAP = f"snapshots/{VANTAGE}"
KREMLIN = "xn--e1ajeds9e.xn--p1ai"  # кремль.рф

Periods = list[tuple[str, str, str | None]]  # (verdict, from, to)


@pytest.fixture(autouse=True)
def git_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An explicit committer and no global or system git config, for git and the CLI alike."""
    isolate(monkeypatch, tmp_path / "global.gitconfig")


def isolate(monkeypatch: pytest.MonkeyPatch, config: Path) -> None:
    config.write_text("")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(config))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for kind in ("AUTHOR", "COMMITTER"):
        monkeypatch.setenv(f"GIT_{kind}_NAME", AUTHOR)
        monkeypatch.setenv(f"GIT_{kind}_EMAIL", EMAIL)
    monkeypatch.delenv("REGISTRY_MONITOR_CONFIG", raising=False)
    monkeypatch.setenv("PYTHONPATH", str(PROJECT))


def git(cwd: Path, *args: str, stdin: str | None = None) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, input=stdin, check=True, capture_output=True, text=True
    ).stdout.rstrip("\n")


def init(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "-q", "-b", "main")
    return path


def message(date: str, vantage: str = VANTAGE) -> str:
    return f"{vantage}: a day ({date})\n\nMonitor-Date: {date}\nMonitor-Vantage: {vantage}\n"


def line(
    domain: str, verdict: str, since: str, today: str | None = None, nsdi_b: str = "ok"
) -> str:
    """One domain line as DESIGN.md writes it (national statuses follow the verdict)."""
    national = {"missing": "nxdomain", "gone": "nxdomain"}.get(verdict, "ok")
    extra = f", today: {today}" if today else ""
    b = national if nsdi_b == "ok" else nsdi_b
    google = "nxdomain" if verdict == "gone" else "ok"
    return (
        f"{domain}: {{verdict: {verdict}, since: {since}{extra}, "
        f"nsdi-a: {national}, nsdi-b: {b}, google: {google}}}"
    )


def commit_day(
    root: Path,
    date: str,
    domain_text: Mapping[str, str],
    *,
    amend: bool = False,
    vantage: str = VANTAGE,
) -> str:
    """Write a day's domain files (relative path -> text) and run.yaml, and commit them."""
    directory = snapshot_dir(root, vantage)
    files = {**domain_text, "run.yaml": f"date: '{date}'\nvantage: {vantage}\n"}
    write_files(directory, files, prune=domain_files(directory))
    repo = gitstore.open_repo(root)
    return gitstore.commit_directory(
        repo,
        f"snapshots/{vantage}",
        message(date, vantage),
        amend_if=(lambda c: c.date == date and c.vantage == vantage) if amend else None,
    )


def commit_lines(root: Path, date: str, lines: Sequence[str]) -> str:
    return commit_day(root, date, {"domains.yaml": "".join(f"{x}\n" for x in sorted(lines))})


def periods_of(root: Path, *domains: str, since: str | None = None) -> dict[str, Periods]:
    found = history(gitstore.open_repo(root), VANTAGE, domains, since)
    return {h.domain: [(p.verdict, p.start, p.to) for p in h.periods] for h in found}


def monitor(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``python -m monitor ARGS`` in ``root`` (no config there: the vantage is inferred)."""
    return subprocess.run(
        [sys.executable, "-m", "monitor", *args],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
    )


def day(n: int) -> str:
    return (datetime.date(2026, 1, 1) + datetime.timedelta(days=n)).isoformat()


D1, D2, D3, D4, D5, D6, D7 = (day(n) for n in range(7))


# ----------------------------------------------------------------------------- periods


@dataclass(frozen=True)
class Case:
    name: str
    days: list[tuple[str, list[str]]]  # (date, lines of that day)
    expected: dict[str, Periods]


CASES = [
    Case(
        "disappear and restore",
        [
            (D1, [line("a.com", "present", D1), line("b.com", "present", D1)]),
            (D2, [line("a.com", "present", D1), line("b.com", "present", D1)]),
            (D3, [line("a.com", "missing", D3), line("b.com", "present", D1)]),
            (D4, [line("a.com", "missing", D3), line("b.com", "present", D1)]),
            (D5, [line("a.com", "present", D5), line("b.com", "present", D1)]),
        ],
        {
            "a.com": [("present", D1, D2), ("missing", D3, D4), ("present", D5, None)],
            "b.com": [("present", D1, None)],
        },
    ),
    Case(
        "unstable days are a period of their own; the verdict line stays",
        [
            (D1, [line("a.com", "present", D1)]),
            (D2, [line("a.com", "present", D1, today="unstable")]),
            (D3, [line("a.com", "present", D1, today="unstable")]),
            (D4, [line("a.com", "present", D1)]),
            (D5, [line("a.com", "missing", D5)]),
            (D6, [line("a.com", "missing", D5, today="inconclusive")]),
        ],
        {
            "a.com": [
                ("present", D1, D1),
                ("unstable", D2, D3),
                ("present", D4, D4),
                ("missing", D5, D5),
                ("inconclusive", D6, None),
            ]
        },
    ),
    Case(
        "never conclusive, then conclusive",
        [
            (D1, [line("a.com", "unstable", D1, today="unstable")]),
            (D2, [line("a.com", "unstable", D1, today="unstable")]),
            (D3, [line("a.com", "present", D3)]),
        ],
        {"a.com": [("unstable", D1, D2), ("present", D3, None)]},
    ),
    Case(
        "a name removed from the watchlist ends at its last day; re-added it starts again",
        [
            (D1, [line("a.com", "present", D1), line("b.com", "missing", D1)]),
            (D2, [line("a.com", "present", D1), line("b.com", "missing", D1)]),
            (D3, [line("a.com", "present", D1)]),
            (D4, [line("a.com", "present", D1)]),
            (D5, [line("a.com", "present", D1), line("b.com", "present", D5)]),
            (D6, [line("a.com", "present", D1), line("b.com", "present", D5)]),
            (D7, [line("b.com", "present", D5)]),
        ],
        {
            "a.com": [("present", D1, D6)],
            "b.com": [("missing", D1, D2), ("present", D5, None)],
        },
    ),
    Case(
        "days without a run: a period ends on the last run date",
        [
            (D1, [line("a.com", "present", D1)]),
            (D4, [line("a.com", "present", D1)]),
            (D7, [line("a.com", "missing", D7)]),
        ],
        {"a.com": [("present", D1, D4), ("missing", D7, None)]},
    ),
    Case(
        "statuses that change under one verdict make no new period",
        [
            (D1, [line("a.com", "present", D1), line("g.example", "gone", D1)]),
            (D2, [line("a.com", "present", D1, nsdi_b="down"), line("g.example", "gone", D1)]),
            (D3, [line("a.com", "present", D1, nsdi_b="timeout"), line("g.example", "gone", D1)]),
            (D4, [line("a.com", "present", D1), line("g.example", "gone", D1)]),
        ],
        {"a.com": [("present", D1, None)], "g.example": [("gone", D1, None)]},
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_periods(tmp_path: Path, case: Case) -> None:
    root = init(tmp_path / "repo")
    for date, lines in case.days:
        commit_lines(root, date, lines)
    assert periods_of(root) == case.expected
    for domain, expected in case.expected.items():
        assert periods_of(root, domain) == {domain: expected}


@pytest.mark.parametrize("amend", [False, True], ids=["stacked", "amended"])
def test_a_same_date_recommit_counts_as_that_days_run(tmp_path: Path, amend: bool) -> None:
    root = init(tmp_path / "repo")
    commit_lines(root, D1, [line("a.com", "present", D1), line("b.com", "present", D1)])
    # The morning run saw a.com go; the re-run that day did not, and saw b.com go instead.
    commit_lines(root, D2, [line("a.com", "missing", D2), line("b.com", "present", D1)])
    morning = git(root, "rev-parse", "HEAD")
    commit_day(
        root,
        D2,
        {"domains.yaml": line("a.com", "present", D1) + "\n" + line("b.com", "missing", D2) + "\n"},
        amend=amend,
    )
    commit_lines(root, D3, [line("a.com", "present", D1), line("b.com", "missing", D2)])
    assert int(git(root, "rev-list", "--count", "HEAD")) == (3 if amend else 4)
    assert (git(root, "rev-parse", "HEAD~2") == morning) is not amend
    assert periods_of(root) == {
        "a.com": [("present", D1, None)],
        "b.com": [("present", D1, D1), ("missing", D2, None)],
    }


def test_since_leaves_out_periods_that_ended_before_it(tmp_path: Path) -> None:
    root = init(tmp_path / "repo")
    a_lines = [
        line("a.com", "present", D1),
        line("a.com", "present", D1),
        line("a.com", "missing", D3),
        line("a.com", "missing", D3),
        line("a.com", "present", D5),
        line("a.com", "present", D5),
        line("a.com", "present", D5),
    ]
    for date, a_line in zip((D1, D2, D3, D4, D5, D6, D7), a_lines, strict=True):
        commit_lines(root, date, [a_line, line("b.com", "missing", D1)])
    everything = [("present", D1, D2), ("missing", D3, D4), ("present", D5, None)]
    assert periods_of(root, "a.com") == {"a.com": everything}
    cases = [
        (D1, everything),
        (D2, everything),  # a period ending on the day itself is kept
        (D3, everything[1:]),
        (D4, everything[1:]),
        (D5, everything[2:]),
        ("2030-01-01", everything[2:]),  # the current period is always kept
    ]
    for since_date, expected in cases:
        assert periods_of(root, "a.com", since=since_date) == {"a.com": expected}, since_date
        assert periods_of(root, "b.com", since=since_date) == {"b.com": [("missing", D1, None)]}
    done = monitor(root, "history", "a.com", "--since", D4, "--format", "csv")
    assert (done.returncode, done.stdout, done.stderr) == (
        0,
        "domain,display,label,verdict,from,to\n"
        f"a.com,a.com,,missing,{D3},{D4}\na.com,a.com,,present,{D5},\n",
        "",
    )


# ----------------------------------------------------------------------------- shards


def entries(names: Sequence[str], verdicts: Mapping[str, tuple[str, str]]) -> list[Entry]:
    """Entries for ``names``: present since D1 unless ``verdicts`` says (verdict, since)."""
    out = []
    for name in names:
        verdict, since = verdicts.get(name, ("present", D1))
        status = "nxdomain" if verdict == "missing" else "ok"
        statuses = (("nsdi-a", status), ("nsdi-b", status), ("google", "ok"))
        out.append(Entry(name, verdict, since, statuses))
    return out


def test_sharded_snapshots(tmp_path: Path) -> None:
    root = init(tmp_path / "repo")
    base = [f"n{i:05d}.example" for i in range(SHARD_ABOVE)]
    extra = [f"x{i}.example" for i in range(10)]
    watched, flagged = "n00042.example", "n04999.example"

    # Day 1: 5,000 names in one file; day 2: ten more, so shards; day 3: shards, one change;
    # day 4: back to 5,000 names and one file.
    days = [
        (D1, base, {}),
        (D2, base + extra, {flagged: ("missing", D2)}),
        (D3, base + extra, {flagged: ("missing", D2), watched: ("missing", D3)}),
        (D4, base, {flagged: ("present", D4), watched: ("missing", D3)}),
    ]
    layouts = []
    for date, names, verdicts in days:
        files = render_domains(entries(names, verdicts))
        commit_day(root, date, files)
        layouts.append(sorted(git(root, "ls-tree", "-r", "--name-only", "HEAD", SNAP).split()))
    assert layouts[0] == [f"{SNAP}/domains.yaml", f"{SNAP}/run.yaml"]
    assert f"{SNAP}/domains.yaml" not in layouts[1]
    assert len([p for p in layouts[1] if p.startswith(f"{SNAP}/domains/")]) > 100
    assert layouts[2] == layouts[1]
    assert layouts[3] == layouts[0]

    found = periods_of(root)
    assert len(found) == SHARD_ABOVE + len(extra)
    assert found[flagged] == [("present", D1, D1), ("missing", D2, D3), ("present", D4, None)]
    assert found[watched] == [("present", D1, D2), ("missing", D3, None)]
    for name in extra:
        assert found[name] == [("present", D2, D3)]
    steady = {n: p for n, p in found.items() if n not in (watched, flagged, *extra)}
    assert set(map(tuple, steady.values())) == {(("present", D1, None),)}

    done = monitor(root, "history", watched, flagged, "--format", "json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["domains"] == [
        {
            "domain": watched,
            "periods": [
                {"verdict": "present", "from": D1, "to": D2},
                {"verdict": "missing", "from": D3, "to": None},
            ],
        },
        {
            "domain": flagged,
            "periods": [
                {"verdict": "present", "from": D1, "to": D1},
                {"verdict": "missing", "from": D2, "to": D3},
                {"verdict": "present", "from": D4, "to": None},
            ],
        },
    ]


# ----------------------------------------------------------------------------- the command line


def three_days(root: Path) -> None:
    commit_lines(root, D1, [line("a.com", "present", D1), line("b.com", "present", D1)])
    commit_lines(root, D2, [line("a.com", "missing", D2), line("b.com", "present", D1)])
    commit_lines(root, D3, [line("a.com", "missing", D2), line("b.com", "present", D1)])


def test_history_table_csv_and_json(tmp_path: Path) -> None:
    root = init(tmp_path / "repo")
    three_days(root)
    outputs = [
        (
            (),
            "domain  verdict  period\n"
            f"a.com   present  {D1} → {D1}\n"
            f"a.com   missing  {D2} → {D3} (last run)\n"
            f"b.com   present  {D1} → {D3} (last run)\n",
        ),
        (
            ("b.com", "--format", "csv"),
            f"domain,display,label,verdict,from,to\nb.com,b.com,,present,{D1},\n",
        ),
        (("nowhere.example",), "lab: no history for nowhere.example\n"),
    ]
    for args, expected in outputs:
        done = monitor(root, "history", *args)
        assert (done.returncode, done.stdout, done.stderr) == (0, expected, ""), args
    done = monitor(root, "history", "--format", "json")
    assert json.loads(done.stdout) == {
        "schema": 1,
        "domains": [
            {
                "domain": "a.com",
                "periods": [
                    {"verdict": "present", "from": D1, "to": D1},
                    {"verdict": "missing", "from": D2, "to": None},
                ],
            },
            {"domain": "b.com", "periods": [{"verdict": "present", "from": D1, "to": None}]},
        ],
    }


def test_history_reads_only_its_own_vantage(tmp_path: Path) -> None:
    root = init(tmp_path / "repo")
    three_days(root)
    commit_day(root, D4, {"domains.yaml": line("a.com", "present", D4) + "\n"}, vantage="other")
    assert periods_of(root, "a.com") == {"a.com": [("present", D1, D1), ("missing", D2, None)]}
    # Two vantage points and no config: the command cannot guess which one.
    done = monitor(root, "history")
    assert done.returncode == 2
    assert done.stderr == (
        "Error: config.yaml: no such file, and snapshots/ holds 2 vantage points: "
        "use --config to say which one\n"
    )


def test_history_since_is_checked(tmp_path: Path) -> None:
    root = init(tmp_path / "repo")
    three_days(root)
    done = monitor(root, "history", "--since", "2026-1-2")
    assert (done.returncode, done.stdout) == (2, "")
    # The message must name the option the user gave (it said --date).
    assert done.stderr == "Error: --since '2026-1-2': expected a date as YYYY-MM-DD\n"


def test_diff_between_commits(tmp_path: Path) -> None:
    root = init(tmp_path / "repo")
    commit_lines(root, D1, [line("a.com", "present", D1), line("b.com", "missing", D1)])
    commit_lines(
        root,
        D2,
        [line("a.com", "missing", D2), line("b.com", "present", D2), line("c.com", "present", D2)],
    )
    # An unstable day keeps the verdict: no event, either way.
    commit_lines(
        root,
        D3,
        [
            line("a.com", "missing", D2, today="unstable"),
            line("b.com", "present", D2),
            line("c.com", "present", D2),
        ],
    )
    commit_lines(
        root,
        D4,
        [line("a.com", "missing", D2), line("b.com", "missing", D4), line("c.com", "present", D2)],
    )
    cases = [
        ((), f"{D4} disappeared: b.com (present → missing)\n"),
        (
            ("HEAD~3", "HEAD~2"),
            f"{D2} disappeared: a.com (present → missing)\n"
            f"{D2} restored: b.com (missing → present)\n",
        ),
        (("HEAD~2", "HEAD~1"), f"{VANTAGE}: no events between HEAD~2 and HEAD~1\n"),
        (("HEAD", "HEAD"), f"{VANTAGE}: no runs between HEAD and HEAD\n"),
        # Every run after HEAD~3, each event dated by its own run: b.com came back on D2 and
        # went again on D4, though it is missing at both ends.
        (
            ("HEAD~3",),
            f"{D2} disappeared: a.com (present → missing)\n"
            f"{D2} restored: b.com (missing → present)\n"
            f"{D4} disappeared: b.com (present → missing)\n",
        ),
    ]
    for revs, expected in cases:
        done = monitor(root, "diff", *revs)
        assert (done.returncode, done.stdout, done.stderr) == (0, expected, ""), revs

    done = monitor(root, "diff", "HEAD~3", "HEAD~2", "--json")
    assert json.loads(done.stdout) == {
        "schema": 1,
        # The commits, not the words typed: HEAD~3 means another commit tomorrow.
        "from": git(root, "rev-parse", "HEAD~3"),
        "to": git(root, "rev-parse", "HEAD~2"),
        "events": [
            {
                "domain": "a.com",
                "event": "disappeared",
                "from": "present",
                "to": "missing",
                "date": D2,
            },
            {
                "domain": "b.com",
                "event": "restored",
                "from": "missing",
                "to": "present",
                "date": D2,
            },
        ],
    }
    head, older = git(root, "rev-parse", "HEAD")[:12], git(root, "rev-parse", "HEAD~2")[:12]
    for revs, message in [
        (("nope",), "Error: unknown revision: nope\n"),
        (("HEAD~9", "HEAD"), "Error: unknown revision: HEAD~9\n"),
        (
            ("HEAD", "HEAD~2"),
            f"Error: HEAD ({head}) is not an ancestor of HEAD~2 ({older}): diff shows the runs "
            "after REV_A up to REV_B, so give the older revision first\n",
        ),
    ]:
        done = monitor(root, "diff", *revs)
        assert (done.returncode, done.stdout, done.stderr) == (2, "", message), revs


def test_diff_dates_each_event_by_its_own_run(tmp_path: Path) -> None:
    """The demo's story over three runs: diff of the first and the last shows the day each name
    went, and bbc.com's one day missing, which the two end states do not."""
    root = init(tmp_path / "repo")
    commit_lines(root, D1, [line("bbc.com", "present", D1), line("youtube.com", "present", D1)])
    commit_lines(root, D2, [line("bbc.com", "missing", D2), line("youtube.com", "missing", D2)])
    commit_lines(root, D3, [line("bbc.com", "present", D3), line("youtube.com", "missing", D2)])
    done = monitor(root, "diff", "HEAD~2", "HEAD")
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout == (
        f"{D2} disappeared: bbc.com (present → missing)\n"
        f"{D2} disappeared: youtube.com (present → missing)\n"
        f"{D3} restored: bbc.com (missing → present)\n"
    )


def test_diff_counts_a_date_run_twice_as_its_last_run(tmp_path: Path) -> None:
    root = init(tmp_path / "repo")
    commit_lines(root, D1, [line("a.com", "present", D1), line("b.com", "present", D1)])
    morning = commit_lines(root, D2, [line("a.com", "missing", D2), line("b.com", "present", D1)])
    # The re-run was pushed, so it stands beside the morning's commit: it saw b.com go instead.
    evening = commit_lines(root, D2, [line("a.com", "present", D1), line("b.com", "missing", D2)])
    commit_lines(root, D3, [line("a.com", "present", D1), line("b.com", "missing", D2)])
    assert git(root, "rev-parse", "HEAD~1") == evening != morning
    expected = f"{D2} disappeared: b.com (present → missing)\n"
    for revs in [("HEAD~3", "HEAD"), ("HEAD~2", "HEAD~1"), ("HEAD~3", "HEAD~1")]:
        done = monitor(root, "diff", *revs)
        assert (done.returncode, done.stdout, done.stderr) == (0, expected, ""), revs
    # Up to the morning's commit, the morning's run is the day's.
    done = monitor(root, "diff", "HEAD~3", "HEAD~2")
    assert done.stdout == f"{D2} disappeared: a.com (present → missing)\n"


def test_diff_of_a_name_dropped_and_added_again(tmp_path: Path) -> None:
    root = init(tmp_path / "repo")
    other = line("z.com", "present", D1)
    commit_lines(root, D1, [line("a.com", "present", D1), other])
    commit_lines(root, D2, [other])  # dropped from the watchlist
    commit_lines(root, D3, [line("a.com", "missing", D3), other])  # back: new, raises nothing
    commit_lines(root, D4, [line("a.com", "present", D4), other])
    done = monitor(root, "diff", "HEAD~3", "HEAD")
    assert (done.returncode, done.stdout, done.stderr) == (
        0,
        f"{D4} restored: a.com (missing → present)\n",
        "",
    )


def test_diff_skips_unstable_days_and_compares_with_the_last_conclusive(tmp_path: Path) -> None:
    root = init(tmp_path / "repo")
    commit_lines(root, D1, [line("a.com", "present", D1)])
    commit_lines(root, D2, [line("a.com", "present", D1, today="unstable")])
    commit_lines(root, D3, [line("a.com", "missing", D3)])
    commit_lines(root, D4, [line("a.com", "missing", D3, today="inconclusive")])
    commit_lines(root, D5, [line("a.com", "present", D5)])
    done = monitor(root, "diff", "HEAD~4", "HEAD")
    assert (done.returncode, done.stdout, done.stderr) == (
        0,
        f"{D3} disappeared: a.com (present → missing)\n{D5} restored: a.com (missing → present)\n",
        "",
    )
    # From the unstable day on: the disappearance is still against the last conclusive day.
    done = monitor(root, "diff", "HEAD~3", "HEAD~2")
    assert done.stdout == f"{D3} disappeared: a.com (present → missing)\n"


def test_diff_reads_its_vantage_among_others_interleaved(tmp_path: Path) -> None:
    root = init(tmp_path / "repo")
    (root / "config.yaml").write_text(LABELLED.format(vantage=VANTAGE), encoding="utf-8")
    commit_day(root, D1, {"domains.yaml": line("a.com", "present", D1) + "\n"})
    commit_day(root, D1, {"domains.yaml": line("a.com", "present", D1) + "\n"}, vantage="other")
    commit_day(root, D2, {"domains.yaml": line("a.com", "missing", D2) + "\n"})
    commit_day(root, D2, {"domains.yaml": line("a.com", "present", D1) + "\n"}, vantage="other")
    commit_day(root, D3, {"domains.yaml": line("a.com", "missing", D3) + "\n"}, vantage="other")
    # HEAD~1..HEAD holds only the other vantage point's commits.
    done = monitor(root, "diff")
    assert (done.returncode, done.stdout, done.stderr) == (
        0,
        f"{VANTAGE}: no runs between HEAD~1 and HEAD\n",
        "",
    )
    done = monitor(root, "diff", "HEAD~4")
    assert done.stdout == f"{D2} disappeared: a.com [Site A] (present → missing)\n"
    (root / "other.yaml").write_text(LABELLED.format(vantage="other"), encoding="utf-8")
    done = monitor(root, "--config", "other.yaml", "diff", "HEAD~4")
    assert done.stdout == f"{D3} disappeared: a.com [Site A] (present → missing)\n"


LABELLED = """\
vantage: {vantage}
resolvers:
  national:
    - {{name: nsdi-a, address: 127.0.0.1}}
  control:
    - {{name: google, address: 127.0.0.2, transport: tcp}}
watchlist:
  - {{domain: a.com, label: Site A}}
  - {{domain: кремль.рф, label: "Kremlin, =1+1"}}
"""


def test_labels_and_unicode_names_in_history_and_diff(tmp_path: Path) -> None:
    root = init(tmp_path / "repo")
    (root / "config.yaml").write_text(LABELLED.format(vantage=VANTAGE), encoding="utf-8")
    commit_lines(root, D1, [line(KREMLIN, "present", D1), line("b.com", "present", D1)])
    commit_lines(root, D2, [line(KREMLIN, "missing", D2), line("b.com", "present", D1)])
    done = monitor(root, "history")
    assert (done.returncode, done.stdout, done.stderr) == (
        0,
        "domain     label          verdict  period\n"
        f"b.com                     present  {D1} → {D2} (last run)\n"
        f"кремль.рф  Kremlin, =1+1  present  {D1} → {D1}\n"
        f"кремль.рф  Kremlin, =1+1  missing  {D2} → {D2} (last run)\n",
        "",
    )
    done = monitor(root, "history", "--format", "csv", "кремль.рф")
    assert done.stdout == (
        "domain,display,label,verdict,from,to\n"
        f'{KREMLIN},кремль.рф,"Kremlin, =1+1",present,{D1},{D1}\n'
        f'{KREMLIN},кремль.рф,"Kremlin, =1+1",missing,{D2},\n'
    )
    done = monitor(root, "history", "--format", "json")
    assert json.loads(done.stdout)["domains"] == [
        {"domain": "b.com", "periods": [{"verdict": "present", "from": D1, "to": None}]},
        {
            "domain": KREMLIN,
            "display": "кремль.рф",
            "label": "Kremlin, =1+1",
            "periods": [
                {"verdict": "present", "from": D1, "to": D1},
                {"verdict": "missing", "from": D2, "to": None},
            ],
        },
    ]
    done = monitor(root, "diff")
    assert done.stdout == f"{D2} disappeared: кремль.рф [Kremlin, =1+1] (present → missing)\n"
    done = monitor(root, "diff", "--json")
    assert json.loads(done.stdout)["events"] == [
        {
            "domain": KREMLIN,
            "display": "кремль.рф",
            "label": "Kremlin, =1+1",
            "event": "disappeared",
            "from": "present",
            "to": "missing",
            "date": D2,
        }
    ]


def test_a_current_period_ends_on_the_last_run_not_today(tmp_path: Path) -> None:
    """Weeks after the last run, history says the period held at that run, not "today"."""
    root = init(tmp_path / "repo")
    commit_lines(root, "2026-02-11", [line("a.com", "missing", "2026-02-11")])
    commit_lines(root, "2026-03-01", [line("a.com", "missing", "2026-02-11")])
    done = monitor(root, "history")
    assert (done.returncode, done.stdout) == (
        0,
        "domain  verdict  period\na.com   missing  2026-02-11 → 2026-03-01 (last run)\n",
    )
    assert json.loads(monitor(root, "history", "--format", "json").stdout)["domains"] == [
        {"domain": "a.com", "periods": [{"verdict": "missing", "from": "2026-02-11", "to": None}]}
    ]


def test_diff_shows_a_unicode_name_as_unicode(tmp_path: Path) -> None:
    root = init(tmp_path / "repo")
    commit_lines(root, D1, [line(KREMLIN, "present", D1)])
    commit_lines(root, D2, [line(KREMLIN, "missing", D2)])
    # As the commit message does: DESIGN.md shows Unicode names as Unicode, and the JSON
    # events carry `display` where it differs from the A-label.
    done = monitor(root, "diff")
    assert (done.returncode, done.stdout) == (
        0,
        f"{D2} disappeared: кремль.рф (present → missing)\n",
    )
    done = monitor(root, "diff", "--json")
    assert json.loads(done.stdout)["events"] == [
        {
            "domain": KREMLIN,
            "event": "disappeared",
            "from": "present",
            "to": "missing",
            "display": "кремль.рф",
            "date": D2,
        }
    ]


def test_history_table_shows_a_unicode_name_as_unicode(tmp_path: Path) -> None:
    root = init(tmp_path / "repo")
    commit_lines(root, D1, [line(KREMLIN, "present", D1)])
    commit_lines(root, D2, [line(KREMLIN, "missing", D2)])
    done = monitor(root, "history", "кремль.рф")
    assert (done.returncode, done.stdout) == (
        0,
        "domain     verdict  period\n"
        f"кремль.рф  present  {D1} → {D1}\n"
        f"кремль.рф  missing  {D2} → {D2} (last run)\n",
    )


# ----------------------------------------------------------------------------- many days


DAYS = 400
NAMES = 1000


@dataclass(frozen=True)
class Model:
    """A generated history: the repository, and each name's day verdict per run date."""

    root: Path
    dates: list[str]
    days: dict[str, list[str | None]]  # name -> the day's verdict per date (None: not watched)


def simulate(
    seed: int = 20260209,
) -> tuple[list[str], list[dict[str, Entry]], dict[str, list[str | None]]]:
    """Return run dates, each date's entries, and each name's day verdicts."""
    rng = random.Random(seed)
    names = [f"n{i:04d}.example" for i in range(NAMES)]
    dates = []
    current = datetime.date(2025, 1, 1)
    for n in range(DAYS):
        dates.append(current.isoformat())
        current += datetime.timedelta(days=3 if n % 50 == 49 else 1)  # a few missed nights
    state: dict[str, Entry] = {}
    made: dict[tuple[str, str, str, bool, str | None], Entry] = {}  # most days repeat a line
    snapshots: list[dict[str, Entry]] = []
    days: dict[str, list[str | None]] = {name: [] for name in names}
    for n, date in enumerate(dates):
        nsdi_b_down = n % 60 == 30
        today_entries: dict[str, Entry] = {}
        for i, name in enumerate(names):
            watched = not (
                (i % 50 == 2 and 200 <= n < 300)  # dropped from the watchlist, then back
                or (i % 50 == 4 and n >= 350)  # dropped for good
                or (i >= 950 and n < 100)  # added later
            )
            if not watched:
                state.pop(name, None)
                days[name].append(None)
                continue
            old = state.get(name)
            verdict = old.verdict if old is not None else ("gone" if i % 7 == 3 else "present")
            since = old.since if old is not None else date
            unstable = None
            if i % 10 == 0 and rng.random() < 0.03:
                verdict, since = ("missing" if verdict == "present" else "present"), date
            elif i % 25 == 1 and rng.random() < 0.05:
                unstable = "unstable"
            key = (name, verdict, since, nsdi_b_down, unstable)
            entry = made.get(key)
            if entry is None:
                national = "nxdomain" if verdict in ("missing", "gone") else "ok"
                statuses = (
                    ("nsdi-a", national),
                    ("nsdi-b", "down" if nsdi_b_down else national),
                    ("google", "nxdomain" if verdict == "gone" else "ok"),
                )
                entry = made[key] = Entry(name, verdict, since, statuses, unstable)
            state[name] = entry
            today_entries[name] = entry
            days[name].append(unstable or verdict)
        snapshots.append(today_entries)
    return dates, snapshots, days


def fast_import(root: Path, dates: list[str], snapshots: list[dict[str, Entry]]) -> None:
    """Commit one snapshot per date, as commit_directory would, in one git fast-import."""
    chunks: list[bytes] = []
    rendered: dict[Entry, str] = {}

    def data(text: str) -> None:
        raw = text.encode()
        chunks.append(f"data {len(raw)}\n".encode() + raw + b"\n")

    for n, (date, snapshot) in enumerate(zip(dates, snapshots, strict=True)):
        # On some dates a first run was replaced by a second one, both kept (it was pushed).
        versions = [snapshot]
        if n % 97 == 5:
            versions.insert(
                0, {k: Entry(k, "missing", date, e.statuses) for k, e in snapshot.items()}
            )
        for version in versions:
            chunks.append(b"commit refs/heads/main\n")
            stamp = 1735689600 + n * 86400 + len(chunks)
            chunks.append(f"committer {AUTHOR} <{EMAIL}> {stamp} +0000\n".encode())
            data(message(date))
            chunks.append(f"M 100644 inline {SNAP}/run.yaml\n".encode())
            data(f"date: '{date}'\nvantage: {VANTAGE}\n")
            # render_domains, with each distinct line rendered once (a few seconds saved).
            assert len(version) <= SHARD_ABOVE
            lines = [
                rendered.get(e) or rendered.setdefault(e, render_line(e)) for e in version.values()
            ]
            chunks.append(f"M 100644 inline {SNAP}/{DOMAINS_FILE}\n".encode())
            data("".join(f"{x}\n" for x in sorted(lines)))
    subprocess.run(["git", "fast-import", "--quiet"], cwd=root, input=b"".join(chunks), check=True)
    git(root, "reset", "-q", "--hard", "main")


def expected_periods(dates: list[str], days: Mapping[str, list[str | None]]) -> dict[str, Periods]:
    out: dict[str, Periods] = {}
    for name, verdicts in days.items():
        periods: Periods = []
        previous: str | None = None
        for n, (date, verdict) in enumerate(zip(dates, verdicts, strict=True)):
            if verdict != previous:
                if previous is not None:
                    periods[-1] = (periods[-1][0], periods[-1][1], dates[n - 1])
                if verdict is not None:
                    periods.append((verdict, date, None))
            previous = verdict
        if periods:
            out[name] = periods
    return out


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Model]:
    work = tmp_path_factory.mktemp("many-days")
    with pytest.MonkeyPatch.context() as monkeypatch:
        isolate(monkeypatch, work / "global.gitconfig")
        root = init(work / "repo")
        dates, snapshots, days = simulate()
        fast_import(root, dates, snapshots)
        yield Model(root, dates, days)


def test_many_days_give_exact_periods(model: Model) -> None:
    expected = expected_periods(model.dates, model.days)
    assert len(git(model.root, "rev-list", "HEAD").split()) > DAYS
    # The generator must have made every kind of period for the test to mean something.
    verdicts = {p[0] for periods in expected.values() for p in periods}
    assert verdicts == {"present", "missing", "gone", "unstable"}
    assert any(p[-1][2] is not None for p in expected.values())  # names no longer watched
    assert any(len(p) > 5 for p in expected.values())
    found = periods_of(model.root)
    assert found.keys() == expected.keys()
    for name in expected:
        assert found[name] == expected[name], name
    since = model.dates[250]
    trimmed = {n: [p for p in ps if p[2] is None or p[2] >= since] for n, ps in expected.items()}
    assert periods_of(model.root, since=since) == {n: ps for n, ps in trimmed.items() if ps}


def test_history_of_many_days_is_fast(model: Model) -> None:
    start = time.perf_counter()
    done = monitor(model.root, "history", "--format", "json")
    elapsed = time.perf_counter() - start
    assert done.returncode == 0, done.stderr
    domains = json.loads(done.stdout)["domains"]
    print(f"\nhistory over {DAYS} days x {NAMES} names: {elapsed:.2f} s, {len(domains)} names")
    assert len(domains) == NAMES
    expected = expected_periods(model.dates, model.days)
    first = domains[0]
    assert [(p["verdict"], p["from"], p["to"]) for p in first["periods"]] == expected[
        first["domain"]
    ]
    start = time.perf_counter()
    periods_of(model.root, "n0010.example")
    print(f"history of one name over {DAYS} days: {time.perf_counter() - start:.2f} s")


def test_a_broken_repository_is_an_error_not_an_empty_history(tmp_path: Path) -> None:
    root = init(tmp_path / "repo")
    commit_lines(root, D1, [line("a.com", "present", D1)])
    commit_lines(root, D2, [line("a.com", "missing", D2)])
    blob = subprocess.run(
        ["git", "rev-parse", f"HEAD:{SNAP}/domains.yaml"],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    (root / ".git" / "objects" / blob[:2] / blob[2:]).unlink()  # a lost object
    done = monitor(root, "history", "a.com")
    assert done.returncode == 2, done
    assert "git log -p failed" in done.stderr and blob in done.stderr
    assert done.stdout == ""
