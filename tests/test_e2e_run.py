"""End-to-end tests of the daily loop: `run`, `diff` and `history` on real git and real DNS.

One lab (NSD as the root, two national and two control unbounds) serves the whole module;
each simulated day restarts the national unbounds on the same ports with that day's deletions,
and the command line runs as a subprocess against a real repository in tmp_path.
"""

from __future__ import annotations

import datetime
import json
import socket
import ssl
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import dns.message
import dns.query
import dns.rcode
import pytest
import realdns
import yaml
from realdns import DNSLab, Endpoint

PROJECT = Path(__file__).resolve().parent.parent
AUTHOR = "E2E Runner"
EMAIL = "e2e@example.test"
ATOM = "{http://www.w3.org/2005/Atom}"
VANTAGE = "lab"
SNAP = f"snapshots/{VANTAGE}"

KREMLIN = "xn--e1ajeds9e.xn--p1ai"  # кремль.рф
# Its line ends with the name as people read it.
KREMLIN_NOTE = "  # кремль.рф"
RECORDS = [
    "example.com. 300 IN A 93.184.216.10",
    "youtube.com. 300 IN A 93.184.216.11",
    "bbc.com. 300 IN A 93.184.216.12",
    "dw.com. 300 IN A 93.184.216.13",
    "vk.com. 300 IN A 93.184.216.14",
    "www.vk.com. 300 IN CNAME vk.com.",
    f"{KREMLIN}. 300 IN A 93.184.216.15",
]
WATCHLIST = ["youtube.com", "bbc.com", "dw.com", "www.vk.com", "кремль.рф", "gone.example"]
N = len(WATCHLIST)
ALL_OK = "nsdi-a: ok, nsdi-b: ok, google: ok, cloudflare: ok"
GONE = "nsdi-a: nxdomain, nsdi-b: nxdomain, google: nxdomain, cloudflare: nxdomain"
DELETED = "nsdi-a: nxdomain, nsdi-b: nxdomain, google: ok, cloudflare: ok"

DAY1, DAY2, DAY3, DAY4 = "2026-02-09", "2026-02-10", "2026-02-11", "2026-02-12"


def day1_domains(day: str = DAY1) -> str:
    """The domains.yaml of a first run on ``day`` with every name where the root zone has it."""
    return (
        f"bbc.com: {{verdict: present, since: {day}, {ALL_OK}}}\n"
        f"dw.com: {{verdict: present, since: {day}, {ALL_OK}}}\n"
        f"gone.example: {{verdict: gone, since: {day}, {GONE}}}\n"
        f"www.vk.com: {{verdict: present, since: {day}, {ALL_OK}}}\n"
        f"{KREMLIN}: {{verdict: present, since: {day}, {ALL_OK}}}{KREMLIN_NOTE}\n"
        f"youtube.com: {{verdict: present, since: {day}, {ALL_OK}}}\n"
    )


# ----------------------------------------------------------------------------- the lab


@dataclass
class World:
    """The running lab and the state of its national resolvers."""

    lab: DNSLab
    config: Path
    nationals: dict[str, Endpoint]
    deleted: frozenset[str] = frozenset()
    down: frozenset[str] = frozenset()
    # A silent UDP socket in place of a stopped national: its queries time out.
    silent: dict[str, socket.socket] = field(default_factory=dict)

    def set_nationals(
        self, deleted: frozenset[str] = frozenset(), down: frozenset[str] = frozenset()
    ) -> None:
        """Delete ``deleted`` (A-labels) at every national and take ``down`` off the air."""
        for name, endpoint in self.nationals.items():
            was_running = name not in self.down
            if name in down:
                if was_running:
                    self.lab.stop_server(endpoint)
                    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                    sock.bind((endpoint.address, endpoint.port))
                    self.silent[name] = sock
                continue
            if was_running and deleted == self.deleted:
                continue
            if name in self.silent:
                self.silent.pop(name).close()
            self.nationals[name] = self.lab.restart_unbound(
                endpoint, local_zones={f"{d}.": "always_nxdomain" for d in sorted(deleted)}
            )
        self.deleted, self.down = deleted, down

    def close(self) -> None:
        for sock in self.silent.values():
            sock.close()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    realdns.fail_unless_installed()
    work = tmp_path_factory.mktemp("e2e")
    with DNSLab(work / "lab") as lab:
        lab.start_nsd(records=RECORDS)
        nationals = {name: lab.start_unbound(name) for name in ("nsdi-a", "nsdi-b")}
        google = lab.start_unbound("google")
        cloudflare = lab.start_unbound("cloudflare")
        config = work / "config.yaml"
        lines = [
            f"vantage: {VANTAGE}",
            "timeout: 0.5",
            "attempts: 1",
            "confirm: 0",
            "resolvers:",
            "  national:",
            *(
                f"    - {{name: {n}, address: {e.address}, port: {e.port}}}"
                for n, e in nationals.items()
            ),
            "  control:",
            *(
                f"    - {{name: {n}, address: {e.address}, port: {e.port}, transport: tcp}}"
                for n, e in (("google", google), ("cloudflare", cloudflare))
            ),
            "watchlist:",
            *(f"  - {name}" for name in WATCHLIST),
        ]
        config.write_text("\n".join(lines) + "\n", encoding="utf-8")
        state = World(lab, config, nationals)
        try:
            yield state
        finally:
            state.close()


@pytest.fixture
def lab(world: World) -> World:
    """The module's lab with both nationals up and nothing deleted, as each test expects."""
    world.set_nationals()
    return world


# ----------------------------------------------------------------------------- git and the CLI


@pytest.fixture(autouse=True)
def git_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An explicit committer and no global or system git config, for git and the CLI alike."""
    config = tmp_path / "global.gitconfig"
    config.write_text("")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(config))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for kind in ("AUTHOR", "COMMITTER"):
        monkeypatch.setenv(f"GIT_{kind}_NAME", AUTHOR)
        monkeypatch.setenv(f"GIT_{kind}_EMAIL", EMAIL)
    monkeypatch.delenv("REGISTRY_MONITOR_CONFIG", raising=False)
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    monkeypatch.setenv("PYTHONPATH", str(PROJECT))


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout.rstrip("\n")


def init(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "-q", "-b", "main")
    return path


def commit_count(repo: Path) -> int:
    return int(git(repo, "rev-list", "--count", "HEAD"))


def status(repo: Path) -> list[str]:
    return git(repo, "status", "--porcelain", "--untracked-files=all").splitlines()


def monitor(world: World, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run ``python -m monitor --config CFG ARGS`` in ``cwd``."""
    return subprocess.run(
        [sys.executable, "-m", "monitor", "--config", str(world.config), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


def run_day(
    world: World, repo: Path, date: str, *extra: str, expect: int = 0
) -> subprocess.CompletedProcess[str]:
    done = monitor(world, "run", "--repo", str(repo), "--date", date, *extra, cwd=repo)
    assert done.returncode == expect, done.stdout + done.stderr
    return done


def snapshot_files(repo: Path) -> dict[str, bytes]:
    base = repo / SNAP
    return {p.relative_to(base).as_posix(): p.read_bytes() for p in base.rglob("*") if p.is_file()}


def subject(repo: Path, rev: str = "HEAD") -> str:
    return git(repo, "log", "-1", "--format=%s", rev)


def body(repo: Path, rev: str = "HEAD") -> str:
    return git(repo, "log", "-1", "--format=%B", rev).strip("\n")


def trailers(repo: Path, rev: str = "HEAD") -> tuple[str, str]:
    fmt = "%(trailers:key=Monitor-Date,valueonly)|%(trailers:key=Monitor-Vantage,valueonly)"
    date, vantage = git(repo, "log", "-1", f"--format={fmt}", rev).split("|")
    return date.strip(), vantage.strip()


def changed_lines(repo: Path, rev: str, path: str) -> list[str]:
    """The -/+ lines of ``path`` in commit ``rev`` (headers left out)."""
    patch = git(repo, "log", "-1", "-p", "--format=", "--no-color", rev, "--", path)
    return [
        line
        for line in patch.splitlines()
        if line[:1] in "+-" and not line.startswith(("+++", "---"))
    ]


def feed_entries(repo: Path) -> list[tuple[str, str]]:
    root = ET.fromstring((repo / SNAP / "feed.atom").read_text(encoding="utf-8"))
    assert root.tag == f"{ATOM}feed"
    return [
        (e.findtext(f"{ATOM}title") or "", e.findtext(f"{ATOM}updated") or "")
        for e in root.findall(f"{ATOM}entry")
    ]


# ----------------------------------------------------------------------------- three days


def test_three_days_disappear_and_restore(lab: World, tmp_path: Path) -> None:
    repo = init(tmp_path / "repo")

    # Day 1: every name where it should be.
    run_day(lab, repo, DAY1)
    assert body(repo) == (
        f"lab: no change, 0 missing of {N} ({DAY1})\n\nMonitor-Date: {DAY1}\nMonitor-Vantage: lab"
    )
    assert trailers(repo) == (DAY1, "lab")
    assert git(repo, "show", "--name-only", "--format=", "HEAD").splitlines() == [
        f"{SNAP}/domains.yaml",
        f"{SNAP}/feed.atom",
        f"{SNAP}/resolvers.yaml",
        f"{SNAP}/run.yaml",
    ]
    assert (repo / SNAP / "domains.yaml").read_text(encoding="utf-8") == day1_domains()
    domains = yaml.safe_load((repo / SNAP / "domains.yaml").read_text(encoding="utf-8"))
    assert domains["youtube.com"] == {
        "verdict": "present",
        "since": datetime.date(2026, 2, 9),
        "nsdi-a": "ok",
        "nsdi-b": "ok",
        "google": "ok",
        "cloudflare": "ok",
    }
    resolvers = yaml.safe_load((repo / SNAP / "resolvers.yaml").read_text(encoding="utf-8"))
    assert resolvers == {
        "nsdi-a": {"group": "national", "health": "up"},
        "nsdi-b": {"group": "national", "health": "up"},
        "google": {"group": "control", "health": "up"},
        "cloudflare": {"group": "control", "health": "up"},
    }
    run_yaml = yaml.safe_load((repo / SNAP / "run.yaml").read_text(encoding="utf-8"))
    assert str(run_yaml["date"]) == DAY1
    assert run_yaml["vantage"] == "lab"
    assert run_yaml["names"] == N
    assert run_yaml["verdicts"] == {"present": N - 1, "gone": 1}
    assert feed_entries(repo) == []
    assert status(repo) == []

    # Day 2: youtube.com deleted from both national resolvers.
    lab.set_nationals(deleted=frozenset({"youtube.com"}))
    done = run_day(lab, repo, DAY2, "--exit-code", expect=3)
    assert done.stdout.startswith(f"lab: 1 disappeared: youtube.com ({DAY2})\n")
    assert body(repo) == (
        f"lab: 1 disappeared: youtube.com ({DAY2})\n\n"
        "disappeared: youtube.com (present → missing)\n\n"
        f"Monitor-Date: {DAY2}\nMonitor-Vantage: lab"
    )
    assert trailers(repo) == (DAY2, "lab")
    assert commit_count(repo) == 2
    assert changed_lines(repo, "HEAD", f"{SNAP}/domains.yaml") == [
        f"-youtube.com: {{verdict: present, since: {DAY1}, {ALL_OK}}}",
        f"+youtube.com: {{verdict: missing, since: {DAY2}, {DELETED}}}",
    ]
    assert feed_entries(repo) == [
        ("disappeared: youtube.com (present → missing)", f"{DAY2}T00:00:00Z")
    ]

    diff = monitor(lab, "diff", "--repo", str(repo), cwd=repo)
    assert (diff.returncode, diff.stdout, diff.stderr) == (
        0,
        f"{DAY2} disappeared: youtube.com (present → missing)\n",
        "",
    )
    diff_json = monitor(lab, "diff", "--repo", str(repo), "--json", cwd=repo)
    assert diff_json.returncode == 0, diff_json.stderr
    assert json.loads(diff_json.stdout) == {
        "schema": 1,
        "from": git(repo, "rev-parse", "HEAD~1").strip(),
        "to": git(repo, "rev-parse", "HEAD").strip(),
        "events": [
            {
                "domain": "youtube.com",
                "event": "disappeared",
                "from": "present",
                "to": "missing",
                "date": DAY2,
            }
        ],
    }

    # Day 3: restored. A restore is not alerting, so --exit-code exits 0.
    lab.set_nationals()
    run_day(lab, repo, DAY3, "--exit-code", expect=0)
    assert body(repo) == (
        f"lab: 1 restored: youtube.com ({DAY3})\n\n"
        "restored: youtube.com (missing → present)\n\n"
        f"Monitor-Date: {DAY3}\nMonitor-Vantage: lab"
    )
    assert changed_lines(repo, "HEAD", f"{SNAP}/domains.yaml") == [
        f"-youtube.com: {{verdict: missing, since: {DAY2}, {DELETED}}}",
        f"+youtube.com: {{verdict: present, since: {DAY3}, {ALL_OK}}}",
    ]
    assert feed_entries(repo) == [
        ("restored: youtube.com (missing → present)", f"{DAY3}T00:00:00Z"),
        ("disappeared: youtube.com (present → missing)", f"{DAY2}T00:00:00Z"),
    ]

    cases = [
        ((), f"{DAY3} restored: youtube.com (missing → present)\n"),
        (("HEAD~2", "HEAD~1"), f"{DAY2} disappeared: youtube.com (present → missing)\n"),
        # Every run after HEAD~2, each event dated by its own run: missing at neither end, but
        # missing on DAY2.
        (
            ("HEAD~2", "HEAD"),
            f"{DAY2} disappeared: youtube.com (present → missing)\n"
            f"{DAY3} restored: youtube.com (missing → present)\n",
        ),
    ]
    for revs, expected in cases:
        diff = monitor(lab, "diff", *revs, "--repo", str(repo), cwd=repo)
        assert (diff.returncode, diff.stdout) == (0, expected), (revs, diff.stderr)

    table = monitor(lab, "history", "youtube.com", "--repo", str(repo), cwd=repo)
    assert (table.returncode, table.stdout) == (
        0,
        "domain       verdict  period\n"
        f"youtube.com  present  {DAY1} → {DAY1}\n"
        f"youtube.com  missing  {DAY2} → {DAY2}\n"
        f"youtube.com  present  {DAY3} → {DAY3} (last run)\n",
    )
    as_json = monitor(
        lab, "history", "youtube.com", "--format", "json", "--repo", str(repo), cwd=repo
    )
    assert as_json.returncode == 0, as_json.stderr
    assert json.loads(as_json.stdout) == {
        "schema": 1,
        "domains": [
            {
                "domain": "youtube.com",
                "periods": [
                    {"verdict": "present", "from": DAY1, "to": DAY1},
                    {"verdict": "missing", "from": DAY2, "to": DAY2},
                    {"verdict": "present", "from": DAY3, "to": None},
                ],
            }
        ],
    }
    as_csv = monitor(
        lab, "history", "youtube.com", "--format", "csv", "--repo", str(repo), cwd=repo
    )
    assert (as_csv.returncode, as_csv.stdout) == (
        0,
        "domain,display,label,verdict,from,to\n"
        f"youtube.com,youtube.com,,present,{DAY1},{DAY1}\n"
        f"youtube.com,youtube.com,,missing,{DAY2},{DAY2}\n"
        f"youtube.com,youtube.com,,present,{DAY3},\n",
    )
    # Every other name has had one verdict all along.
    everything = monitor(lab, "history", "--format", "json", "--repo", str(repo), cwd=repo)
    periods = {d["domain"]: d["periods"] for d in json.loads(everything.stdout)["domains"]}
    assert sorted(periods) == sorted(
        ["bbc.com", "dw.com", "gone.example", "www.vk.com", KREMLIN, "youtube.com"]
    )
    assert periods["gone.example"] == [{"verdict": "gone", "from": DAY1, "to": None}]
    assert periods[KREMLIN] == [{"verdict": "present", "from": DAY1, "to": None}]
    assert status(repo) == []


# ----------------------------------------------------------------------------- quiet and down days


def test_an_unchanged_day_commits_without_touching_a_domain_line(
    lab: World, tmp_path: Path
) -> None:
    repo = init(tmp_path / "repo")
    run_day(lab, repo, DAY1)
    first = git(repo, "rev-parse", "HEAD")
    run_day(lab, repo, DAY2)
    assert git(repo, "rev-parse", "HEAD^") == first
    assert subject(repo) == f"lab: no change, 0 missing of {N} ({DAY2})"
    assert git(repo, "diff", first, "HEAD", "--", f"{SNAP}/domains.yaml") == ""
    assert git(repo, "diff", "--name-only", first, "HEAD").splitlines() == [f"{SNAP}/run.yaml"]
    assert (repo / SNAP / "domains.yaml").read_text(encoding="utf-8") == day1_domains()


def test_a_silent_national_is_down_and_raises_nothing(lab: World, tmp_path: Path) -> None:
    repo = init(tmp_path / "repo")
    run_day(lab, repo, DAY1)

    # nsdi-b swallows every query: it is down for the day, judged by nsdi-a alone.
    lab.set_nationals(down=frozenset({"nsdi-b"}))
    done = run_day(lab, repo, DAY2, "--exit-code")
    assert "nsdi-b (national) is down" in done.stderr
    assert body(repo) == (
        f"lab: no change, 0 missing of {N} ({DAY2})\n\nMonitor-Date: {DAY2}\nMonitor-Vantage: lab"
    )
    domains = yaml.safe_load((repo / SNAP / "domains.yaml").read_text(encoding="utf-8"))
    assert {d: (v["verdict"], str(v["since"]), v["nsdi-b"]) for d, v in domains.items()} == {
        "bbc.com": ("present", DAY1, "down"),
        "dw.com": ("present", DAY1, "down"),
        "gone.example": ("gone", DAY1, "down"),
        "www.vk.com": ("present", DAY1, "down"),
        KREMLIN: ("present", DAY1, "down"),
        "youtube.com": ("present", DAY1, "down"),
    }
    resolvers = yaml.safe_load((repo / SNAP / "resolvers.yaml").read_text(encoding="utf-8"))
    assert resolvers["nsdi-b"] == {"group": "national", "health": "down"}
    assert resolvers["nsdi-a"] == {"group": "national", "health": "up"}
    assert feed_entries(repo) == []

    # Both nationals silent: the run says nothing, writes nothing, commits nothing.
    lab.set_nationals(down=frozenset({"nsdi-a", "nsdi-b"}))
    head, before = git(repo, "rev-parse", "HEAD"), snapshot_files(repo)
    done = run_day(lab, repo, DAY3, "--exit-code", expect=4)
    assert done.stderr.strip().splitlines()[-1] == (
        "Error: inconclusive run, nothing written: "
        "every national resolver is down (no canary answered)"
    )
    assert git(repo, "rev-parse", "HEAD") == head
    assert snapshot_files(repo) == before
    assert status(repo) == []

    # Back on the air the next day: statuses return, no event for the gap.
    lab.set_nationals()
    run_day(lab, repo, DAY4, "--exit-code")
    assert subject(repo) == f"lab: no change, 0 missing of {N} ({DAY4})"
    assert (repo / SNAP / "domains.yaml").read_text(encoding="utf-8") == day1_domains()
    history = monitor(
        lab, "history", "youtube.com", "--format", "csv", "--repo", str(repo), cwd=repo
    )
    assert history.stdout == (
        f"domain,display,label,verdict,from,to\nyoutube.com,youtube.com,,present,{DAY1},\n"
    )


# ----------------------------------------------------------------------------- commits


def test_a_second_run_on_the_same_date_replaces_that_days_commit(
    lab: World, tmp_path: Path
) -> None:
    repo = init(tmp_path / "repo")
    run_day(lab, repo, DAY1)
    first = git(repo, "rev-parse", "HEAD")
    run_day(lab, repo, DAY2)
    replaced = git(repo, "rev-parse", "HEAD")
    assert subject(repo) == f"lab: no change, 0 missing of {N} ({DAY2})"

    # Later that day кремль.рф goes; the re-run compares with day 1, not with the morning run.
    lab.set_nationals(deleted=frozenset({KREMLIN}))
    run_day(lab, repo, DAY2)
    assert commit_count(repo) == 2
    assert git(repo, "rev-parse", "HEAD^") == first
    assert git(repo, "rev-parse", "HEAD") != replaced
    assert body(repo) == (
        f"lab: 1 disappeared: кремль.рф ({DAY2})\n\n"
        "disappeared: кремль.рф (present → missing)\n\n"
        f"Monitor-Date: {DAY2}\nMonitor-Vantage: lab"
    )
    assert changed_lines(repo, "HEAD", f"{SNAP}/domains.yaml") == [
        f"-{KREMLIN}: {{verdict: present, since: {DAY1}, {ALL_OK}}}{KREMLIN_NOTE}",
        f"+{KREMLIN}: {{verdict: missing, since: {DAY2}, {DELETED}}}{KREMLIN_NOTE}",
    ]
    assert git(repo, "reflog", "--format=%H").splitlines()[1] == replaced


@pytest.mark.parametrize(
    ("date", "message"),
    [
        ("2026-02-08", f"Error: --date 2026-02-08 is before the last snapshot of lab ({DAY1})"),
        ("2026-2-10", "Error: --date '2026-2-10': expected a date as YYYY-MM-DD"),
        ("2026-02-30", "Error: --date '2026-02-30': expected a date as YYYY-MM-DD"),
    ],
)
def test_a_bad_or_earlier_date_is_refused(
    lab: World, tmp_path: Path, date: str, message: str
) -> None:
    repo = init(tmp_path / "repo")
    run_day(lab, repo, DAY1)
    head, before = git(repo, "rev-parse", "HEAD"), snapshot_files(repo)
    done = run_day(lab, repo, date, expect=2)
    assert (done.stdout, done.stderr) == ("", message + "\n")
    assert git(repo, "rev-parse", "HEAD") == head
    assert snapshot_files(repo) == before


def test_push_and_no_commit_together_are_refused(lab: World, tmp_path: Path) -> None:
    repo = init(tmp_path / "repo")
    done = run_day(lab, repo, DAY1, "--push", "--no-commit", expect=2)
    assert done.stderr == "Error: --push and --no-commit cannot be used together\n"
    assert not (repo / "snapshots").exists()


def test_the_commit_touches_only_the_vantage_directory(lab: World, tmp_path: Path) -> None:
    repo = init(tmp_path / "repo")
    (repo / "README.md").write_text("readme\n")
    (repo / "snapshots" / "other").mkdir(parents=True)
    (repo / "snapshots" / "other" / "domains.yaml").write_text("other\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "seed")
    seed = git(repo, "rev-parse", "HEAD")
    (repo / "README.md").write_text("edited, not staged\n")
    (repo / "snapshots" / "other" / "domains.yaml").write_text("other, edited\n")
    (repo / "staged.txt").write_text("staged\n")
    git(repo, "add", "staged.txt")
    (repo / "untracked.txt").write_text("untracked\n")

    run_day(lab, repo, DAY1)
    assert git(repo, "rev-parse", "HEAD^") == seed
    changed = git(repo, "show", "--name-status", "--format=", "HEAD").splitlines()
    assert changed == [
        f"A\t{SNAP}/domains.yaml",
        f"A\t{SNAP}/feed.atom",
        f"A\t{SNAP}/resolvers.yaml",
        f"A\t{SNAP}/run.yaml",
    ]
    assert sorted(status(repo)) == [
        " M README.md",
        " M snapshots/other/domains.yaml",
        "?? untracked.txt",
        "A  staged.txt",
    ]
    assert git(repo, "show", "HEAD:README.md") == "readme"
    assert (repo / "README.md").read_text() == "edited, not staged\n"


def test_push_rebases_onto_a_commit_another_clone_pushed(lab: World, tmp_path: Path) -> None:
    remote = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(remote))
    ours = init(tmp_path / "ours")
    (ours / "README.md").write_text("readme\n")
    git(ours, "add", "README.md")
    git(ours, "commit", "-q", "-m", "seed")
    git(ours, "remote", "add", "origin", str(remote))
    git(ours, "push", "-q", "-u", "origin", "main")
    run_day(lab, ours, DAY1, "--push")
    assert git(remote, "rev-parse", "main") == git(ours, "rev-parse", "HEAD")

    theirs = tmp_path / "theirs"
    git(tmp_path, "clone", "-q", str(remote), str(theirs))
    (theirs / "snapshots" / "other").mkdir(parents=True)
    (theirs / "snapshots" / "other" / "run.yaml").write_text("date: '2026-02-10'\n")
    git(theirs, "add", "-A")
    git(theirs, "commit", "-q", "-m", "other: no change (2026-02-10)")
    git(theirs, "push", "-q", "origin", "main")
    their_commit = git(theirs, "rev-parse", "HEAD")

    lab.set_nationals(deleted=frozenset({"youtube.com"}))
    done = run_day(lab, ours, DAY2, "--push")
    assert "and pushed" in done.stdout
    assert git(remote, "log", "--format=%s", "main").splitlines() == [
        f"lab: 1 disappeared: youtube.com ({DAY2})",
        "other: no change (2026-02-10)",
        f"lab: no change, 0 missing of {N} ({DAY1})",
        "seed",
    ]
    assert git(remote, "rev-parse", "main^") == their_commit
    assert git(remote, "rev-parse", "main") == git(ours, "rev-parse", "HEAD")
    assert git(ours, "show", "HEAD:snapshots/other/run.yaml") == "date: '2026-02-10'"
    assert trailers(ours) == (DAY2, "lab")
    assert status(ours) == []

    # That day's commit is on the remote now: a re-run builds on it instead of replacing it.
    pushed = git(ours, "rev-parse", "HEAD")
    run_day(lab, ours, DAY2)
    assert git(ours, "rev-parse", "HEAD^") == pushed
    assert subject(ours) == f"lab: 1 disappeared: youtube.com ({DAY2})"


def test_no_commit_writes_files_and_json_prints_the_document(lab: World, tmp_path: Path) -> None:
    repo = init(tmp_path / "repo")
    run_day(lab, repo, DAY1)
    head = git(repo, "rev-parse", "HEAD")

    lab.set_nationals(deleted=frozenset({"youtube.com"}))
    done = run_day(lab, repo, DAY2, "--no-commit")
    assert done.stdout.startswith(f"lab: 1 disappeared: youtube.com ({DAY2})\n")
    assert "committed" not in done.stdout
    assert git(repo, "rev-parse", "HEAD") == head
    assert sorted(status(repo)) == [
        f" M {SNAP}/domains.yaml",
        f" M {SNAP}/feed.atom",
        f" M {SNAP}/run.yaml",
    ]
    text = (repo / SNAP / "domains.yaml").read_text(encoding="utf-8")
    assert f"youtube.com: {{verdict: missing, since: {DAY2}, {DELETED}}}\n" in text

    # The uncommitted files are no baseline: a committed run still sees the event.
    done = run_day(lab, repo, DAY2, "--json", "--exit-code", expect=3)
    doc = json.loads(done.stdout)
    assert (doc["schema"], doc["vantage"], doc["date"]) == (1, "lab", DAY2)
    assert doc["events"] == [
        {
            "domain": "youtube.com",
            "event": "disappeared",
            "from": "present",
            "to": "missing",
            "date": DAY2,
        }
    ]
    assert doc["resolvers"] == {
        "nsdi-a": {"group": "national", "health": "up"},
        "nsdi-b": {"group": "national", "health": "up"},
        "google": {"group": "control", "health": "up"},
        "cloudflare": {"group": "control", "health": "up"},
    }
    by_name = {d["domain"]: d for d in doc["domains"]}
    assert {d: v["verdict"] for d, v in by_name.items()} == {
        "youtube.com": "missing",
        "bbc.com": "present",
        "dw.com": "present",
        "www.vk.com": "present",
        KREMLIN: "present",
        "gone.example": "gone",
    }
    assert by_name[KREMLIN]["display"] == "кремль.рф"
    assert by_name["youtube.com"]["resolvers"]["nsdi-a"]["A"] == {
        "status": "nxdomain",
        "answers": [],
        # how the NXDOMAIN was made: unbound's local-zone sets AA and sends no SOA
        "ede": [],
        "cname": [],
        "soa": None,
        "aa": True,
    }
    assert by_name["youtube.com"]["resolvers"]["google"]["A"] == {
        "status": "ok",
        "answers": ["93.184.216.11"],
        "ede": [],
        "cname": [],
        "soa": None,
        "aa": False,
    }
    assert commit_count(repo) == 2
    assert subject(repo) == f"lab: 1 disappeared: youtube.com ({DAY2})"
    assert status(repo) == []


# ----------------------------------------------------------------------------- the lab itself


def rcode_of(endpoint: Endpoint, name: str, *, tls: bool = False) -> str:
    query = dns.message.make_query(name, "A")
    if tls:
        assert endpoint.tls_port is not None and endpoint.ca_file is not None
        context = ssl.create_default_context(cafile=str(endpoint.ca_file))
        reply = dns.query.tls(
            query,
            endpoint.address,
            port=endpoint.tls_port,
            timeout=2,
            ssl_context=context,
            server_hostname=realdns.SERVER_HOSTNAME,
        )
    else:
        reply = dns.query.udp(query, endpoint.address, port=endpoint.port, timeout=2)
    return dns.rcode.to_text(reply.rcode())


def test_restart_unbound_keeps_the_address_and_takes_the_new_zones(lab: World) -> None:
    before = lab.nationals["nsdi-a"]
    lab.set_nationals(deleted=frozenset({"youtube.com"}))
    after = lab.nationals["nsdi-a"]
    assert (after.address, after.port, after.name) == (before.address, before.port, "nsdi-a")
    assert after.pid != before.pid
    assert rcode_of(after, "youtube.com.") == "NXDOMAIN"
    assert rcode_of(after, "bbc.com.") == "NOERROR"
    assert before not in lab.lab.servers
    assert after in lab.lab.servers

    # DoT: the TLS port is kept too.
    dot = lab.lab.start_unbound("dot-restart", tls=True)
    again = lab.lab.restart_unbound(dot, tls=True, local_zones={"bbc.com.": "always_nxdomain"})
    assert (again.address, again.port, again.tls_port) == (dot.address, dot.port, dot.tls_port)
    assert rcode_of(again, "bbc.com.", tls=True) == "NXDOMAIN"
    assert rcode_of(again, "youtube.com.", tls=True) == "NOERROR"
    lab.lab.stop_server(again)

    stranger = Endpoint("nobody", "127.0.0.1", 53, 1, Path("/nonexistent.log"))
    with pytest.raises(realdns.LabError, match="'nobody' is not an unbound server of this lab"):
        lab.lab.restart_unbound(stranger)
