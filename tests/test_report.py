"""Tests of the HTML report over real git repositories of generated snapshot histories.

A generator plays `run` for two vantage points over many days (names disappear, come back,
degrade, turn unstable, leave the watchlist and return) and records, independently of
monitor/, what each day's counts and events must be. The repository is written with one
`git fast-import`, as `run` would have committed it, so hundreds of days take a second.
"""

from __future__ import annotations

import datetime
import html.parser
import random
import re
import subprocess
import sys
import time
import unicodedata
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote

import pytest

from monitor import gitstore
from monitor.charts import COLOURS, OTHER_COLOUR, Scale, contrast, ink
from monitor.errors import RepoError, UsageError
from monitor.escape import escape_text
from monitor.history import DomainHistory, Period, collect, daily_counts, history, line_changes
from monitor.links import github_base
from monitor.report import INDEX, MEANINGS, build_site, name_anchor
from monitor.snapshot import (
    SHARD_ABOVE,
    Entry,
    render_domains,
    render_line,
    shard_name,
    snapshot_dir,
    write_files,
)
from monitor.vocabulary import Verdict

PROJECT = Path(__file__).resolve().parent.parent
AUTHOR = "Report Runner"
EMAIL = "report@example.test"
VANTAGES = ("abroad", "ru-inside")
FLAGGED = ("missing", "failing", "tampered", "partial")

# The moves the generator makes between conclusive verdicts, with the event DESIGN.md says
# each one raises (None: none). Written out here so that the test does not lean on monitor/.
MOVES: dict[str, list[tuple[str, str | None]]] = {
    "present": [
        ("missing", "disappeared"),
        ("missing", "disappeared"),
        ("failing", "degraded"),
        ("tampered", "degraded"),
        ("partial", "degraded"),
        ("gone", "gone"),
        ("national-only", "appeared"),
    ],
    "missing": [("present", "restored"), ("failing", "degraded"), ("gone", "gone")],
    "failing": [("present", "restored"), ("missing", "disappeared")],
    "tampered": [("present", "restored"), ("missing", "disappeared")],
    "partial": [("present", "restored"), ("missing", "disappeared")],
    "gone": [("present", None), ("national-only", "appeared")],
    "national-only": [("present", None), ("gone", "gone")],
}

ModelEvent = tuple[str, str, str, str, str]  # (date, domain, event, from, to)


@dataclass
class VantageModel:
    """What the generator did at one vantage point, as the report must show it."""

    dates: list[str] = field(default_factory=list)
    snapshots: list[dict[str, Entry]] = field(default_factory=list)
    days: dict[str, list[str | None]] = field(default_factory=dict)  # None: not watched
    events: list[ModelEvent] = field(default_factory=list)
    rerun_dates: set[str] = field(default_factory=set)  # a first run replaced by a second

    def counts(self, date: str) -> dict[str, int]:
        n = self.dates.index(date)
        return dict(Counter(verdict for v in self.days.values() if (verdict := v[n]) is not None))

    @property
    def final(self) -> dict[str, Entry]:
        return self.snapshots[-1]


@dataclass(frozen=True)
class Model:
    root: Path
    vantages: dict[str, VantageModel]


def _statuses(verdict: str, today: str | None) -> tuple[tuple[str, str], ...]:
    national = {"missing": "nxdomain", "gone": "nxdomain", "failing": "servfail"}.get(verdict, "ok")
    partial = "nxdomain" if verdict == "partial" else national
    google = "nxdomain" if verdict in ("gone", "national-only") else "ok"
    quad9 = "nxdomain" if today == "unstable" else google
    return (("nsdi-a", national), ("nsdi-b", partial), ("google", google), ("quad9", quad9))


def simulate(vantage: str, names: Sequence[str], ndays: int, seed: int) -> VantageModel:
    """Play `run` at one vantage point for ``ndays`` nights (a few missed) over ``names``."""
    rng = random.Random(f"{seed}-{vantage}")
    model = VantageModel(days={name: [] for name in names})
    offset = 0 if vantage == VANTAGES[0] else 3
    current = datetime.date(2025, 3, 1)
    made: dict[tuple[str, str, str, str | None], Entry] = {}

    def entry(name: str, verdict: str, since: str, today: str | None = None) -> Entry:
        key = (name, verdict, since, today)
        found = made.get(key)
        if found is None:
            found = made[key] = Entry(name, verdict, since, _statuses(verdict, today), today)
        return found

    state: dict[str, Entry] = {}
    for n in range(ndays):
        date = current.isoformat()
        current += datetime.timedelta(days=2 if (n + offset) % 37 == 36 else 1)
        model.dates.append(date)
        today: dict[str, Entry] = {}
        for i, name in enumerate(names):
            watched = not (
                (i % 40 == 7 and ndays // 4 <= n < ndays // 4 + 30)  # dropped, then back
                or (i % 40 == 9 and n >= ndays * 3 // 4)  # dropped for good
                or (i >= len(names) * 19 // 20 and n < ndays // 6)  # added later
            )
            if not watched:
                state.pop(name, None)
                model.days[name].append(None)
                continue
            old = state.get(name)
            r = rng.random()
            if old is None:  # new to the watchlist: raises nothing
                if i % 13 == 5:
                    new = entry(name, "unstable", date, "unstable")  # never yet conclusive
                else:
                    new = entry(name, "gone" if i % 17 == 3 else "present", date)
            elif old.verdict == "unstable":
                new = entry(name, "present", date) if r < 0.3 else entry(name, *_keep(old, True))
            elif i % 6 == 0 and r < 0.04:
                verdict, kind = rng.choice(MOVES[old.verdict])
                new = entry(name, verdict, date)
                if kind is not None:
                    model.events.append((date, name, kind, old.verdict, verdict))
            elif i % 4 == 1 and r > 0.985:
                new = entry(
                    name, old.verdict, old.since, "inconclusive" if r > 0.997 else "unstable"
                )
            else:
                new = entry(name, *_keep(old, False))
            state[name] = new
            today[name] = new
            model.days[name].append(new.today or new.verdict)
        model.snapshots.append(today)
    return model


def _keep(old: Entry, unstable: bool) -> tuple[str, str, str | None]:
    return old.verdict, old.since, "unstable" if unstable else None


def message(vantage: str, date: str) -> str:
    return f"{vantage}: a night ({date})\n\nMonitor-Date: {date}\nMonitor-Vantage: {vantage}\n"


def fast_import(root: Path, models: dict[str, VantageModel]) -> None:
    """Commit every night of every vantage point, interleaved by date, in one git fast-import."""
    chunks: list[bytes] = []
    rendered: dict[Entry, str] = {}

    def data(text: str) -> None:
        raw = text.encode()
        chunks.append(f"data {len(raw)}\n".encode() + raw + b"\n")

    nights = sorted(
        (date, vantage, n)
        for vantage, model in models.items()
        for n, date in enumerate(model.dates)
    )
    for count, (date, vantage, n) in enumerate(nights):
        model = models[vantage]
        snapshot = model.snapshots[n]
        versions = [snapshot]
        if n % 41 == 20:  # a first run, pushed, then replaced by a second run of the same date
            model.rerun_dates.add(date)
            versions.insert(0, {k: Entry(k, "missing", date, ()) for k in snapshot})
        for version in versions:
            chunks.append(b"commit refs/heads/main\n")
            stamp = 1740787200 + count * 3600 + len(chunks)
            chunks.append(f"committer {AUTHOR} <{EMAIL}> {stamp} +0000\n".encode())
            data(message(vantage, date))
            base = f"snapshots/{vantage}"
            chunks.append(f"M 100644 inline {base}/run.yaml\n".encode())
            data(f"date: '{date}'\nvantage: {vantage}\n")
            lines = [
                rendered.get(e) or rendered.setdefault(e, render_line(e)) for e in version.values()
            ]
            chunks.append(f"M 100644 inline {base}/domains.yaml\n".encode())
            data("".join(f"{x}\n" for x in sorted(lines)))
    subprocess.run(["git", "fast-import", "--quiet"], cwd=root, input=b"".join(chunks), check=True)
    git(root, "reset", "-q", "--hard", "main")


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout.rstrip("\n")


def isolate(monkeypatch: pytest.MonkeyPatch, config: Path) -> None:
    """An explicit committer and no global or system git config, for git and the CLI alike."""
    config.write_text("")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(config))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for kind in ("AUTHOR", "COMMITTER"):
        monkeypatch.setenv(f"GIT_{kind}_NAME", AUTHOR)
        monkeypatch.setenv(f"GIT_{kind}_EMAIL", EMAIL)
    monkeypatch.delenv("REGISTRY_MONITOR_CONFIG", raising=False)
    monkeypatch.setenv("PYTHONPATH", str(PROJECT))


def init(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "-q", "-b", "main")
    return path


def build_model(root: Path, names: int = 300, days: int = 200, seed: int = 8) -> Model:
    """A repository of ``days`` nights of ``names`` names at both vantage points."""
    init(root)
    domains = [f"n{i:04d}.example" for i in range(names)]
    models = {v: simulate(v, domains, days, seed) for v in VANTAGES}
    fast_import(root, models)
    return Model(root, models)


@pytest.fixture(autouse=True)
def git_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    isolate(monkeypatch, tmp_path / "global.gitconfig")


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Model]:
    work = tmp_path_factory.mktemp("report-model")
    with pytest.MonkeyPatch.context() as monkeypatch:
        isolate(monkeypatch, work / "global.gitconfig")
        yield build_model(work / "repo")


@pytest.fixture(scope="module")
def page(model: Model, tmp_path_factory: pytest.TempPathFactory) -> Node:
    out = tmp_path_factory.mktemp("site")
    with pytest.MonkeyPatch.context() as monkeypatch:
        isolate(monkeypatch, out / "global.gitconfig")
        repo = gitstore.open_repo(model.root)
        build_site(repo, out, link="https://github.com/owner/repo")
    return parse_html((out / INDEX).read_text(encoding="utf-8"))


# ----------------------------------------------------------------------------- reading HTML


@dataclass
class Node:
    """An element of the page: tag, attributes, children (Nodes and text)."""

    tag: str
    attrs: dict[str, str]
    children: list[Node | str] = field(default_factory=list)

    def text(self) -> str:
        return "".join(c if isinstance(c, str) else c.text() for c in self.children)

    def find_all(self, tag: str, **attrs: str) -> Iterator[Node]:
        for child in self.children:
            if isinstance(child, Node):
                if child.tag == tag and all(
                    value in child.attrs.get(key.rstrip("_"), "").split()
                    if key == "class_"
                    else child.attrs.get(key) == value
                    for key, value in attrs.items()
                ):
                    yield child
                yield from child.find_all(tag, **attrs)

    def find(self, tag: str, **attrs: str) -> Node:
        found = next(self.find_all(tag, **attrs), None)
        assert found is not None, f"no <{tag} {attrs}>"
        return found


_VOID = {"meta", "input", "br", "img", "link", "hr"}
# SVG elements the page writes self-closed.
_SELF_CLOSED = {"line", "path", "rect"}


class _TreeBuilder(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#document", {})
        self.stack = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, {k: v or "" for k, v in attrs})
        self.stack[-1].children.append(node)
        if tag not in _VOID:
            self.stack.append(node)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.stack[-1].children.append(Node(tag, {k: v or "" for k, v in attrs}))

    def handle_endtag(self, tag: str) -> None:
        if tag in _VOID:
            return
        assert self.stack[-1].tag == tag, f"</{tag}> closes <{self.stack[-1].tag}>"
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.stack[-1].children.append(data)


def parse_html(text: str) -> Node:
    """Parse the page into Nodes; fails on a tag closed out of order (broken markup)."""
    builder = _TreeBuilder()
    builder.feed(text)
    builder.close()
    assert builder.stack == [builder.root], "unclosed elements"
    return builder.root


_CHART_TITLE = re.compile(
    r"(\d{4}-\d\d-\d\d)(?: – (\d{4}-\d\d-\d\d) \((\d+) runs\))?: (.*)", re.DOTALL
)


def chart_counts(section: Node, date: str) -> list[dict[str, int]]:
    """The counts each chart of a section shows for ``date``, from its tooltips."""
    found = []
    for chart in section.find_all("svg", class_="plot"):
        for rect in chart.find_all("rect", class_="hover"):
            match = _CHART_TITLE.fullmatch(rect.find("title").text())
            assert match is not None, rect.find("title").text()
            first, last = match.group(1), match.group(2) or match.group(1)
            if first <= date <= last:
                counts = {}
                for part in match.group(4).split(", "):
                    verdict, _, number = part.rpartition(" ")
                    counts[verdict] = int(number.replace(",", ""))
                found.append(counts)
    return found


# ----------------------------------------------------------------------------- the numbers


def test_the_generator_made_every_kind_of_day(model: Model) -> None:
    for vm in model.vantages.values():
        kinds = {e[2] for e in vm.events}
        assert kinds == {"disappeared", "degraded", "restored", "appeared", "gone"}
        verdicts = {v for days in vm.days.values() for v in days}
        assert {"unstable", "inconclusive", None, *FLAGGED} <= verdicts
        assert vm.rerun_dates
    assert model.vantages["abroad"].dates != model.vantages["ru-inside"].dates


def test_counts_per_run_equal_the_days_verdicts(model: Model) -> None:
    reports = collect(gitstore.open_repo(model.root))
    assert [r.vantage for r in reports] == list(VANTAGES)
    for report in reports:
        vm = model.vantages[report.vantage]
        assert [r.date for r in report.runs] == vm.dates
        for run in report.runs:
            assert run.counts == vm.counts(run.date), (report.vantage, run.date)


def test_runs_point_at_the_last_commit_of_their_date(model: Model) -> None:
    for report in collect(gitstore.open_repo(model.root)):
        date = sorted(model.vantages[report.vantage].rerun_dates)[0]
        shas = git(
            model.root,
            "log",
            "--format=%H",
            f"--grep=^Monitor-Date: {date}$",
            "--",
            f"snapshots/{report.vantage}/",
        ).split()
        assert len(shas) == 2
        assert report.sha_on(date) == shas[0]  # git log lists the newest first


def test_events_equal_the_generators(model: Model) -> None:
    for report in collect(gitstore.open_repo(model.root)):
        found = [(e.date, e.domain, e.event, e.before, e.after) for e in report.events]
        assert sorted(found) == sorted(model.vantages[report.vantage].events)
        assert found == sorted(found, key=lambda e: e[0])


def test_the_page_shows_the_counts_of_some_days(model: Model, page: Node) -> None:
    for vantage, vm in model.vantages.items():
        section = page.find("section", id=f"v-{vantage}")
        for date in (vm.dates[0], vm.dates[len(vm.dates) // 2], vm.dates[-1], *vm.rerun_dates):
            shown = chart_counts(section, date)
            assert len(shown) == 2, date  # the chart of all names and the one of the others
            assert shown[0] == shown[1] == vm.counts(date), (vantage, date)


def test_the_page_lists_the_names_not_present_now(model: Model, page: Node) -> None:
    for vantage, vm in model.vantages.items():
        section = page.find("section", id=f"v-{vantage}")
        rows = [
            [td.text() for td in tr.find_all("td")]
            for tr in section.find("table", class_="flags").find("tbody").find_all("tr")
        ]
        shown = {r[0]: (r[1].split(" ")[0], r[2]) for r in rows}
        expected = {
            e.domain: ((e.today or e.verdict), e.since)
            for e in vm.final.values()
            if (e.today or e.verdict) != "present"
        }
        assert shown == expected
        assert len(expected) > 10
        # Worst first: every missing name comes before every gone one.
        order = [r[1].split(" ")[0] for r in rows]
        assert order.index("gone") > max(i for i, v in enumerate(order) if v == "missing")


def test_the_page_lists_an_event_day_with_its_commit(model: Model, page: Node) -> None:
    for vantage, vm in model.vantages.items():
        section = page.find("section", id=f"v-{vantage}")
        days = {d.find("time").text(): d for d in section.find_all("details", class_="day")}
        assert set(days) == {e[0] for e in vm.events}
        busiest = Counter(e[0] for e in vm.events).most_common(1)[0][0]
        day = days[busiest]
        items = sorted(li.text() for li in day.find_all("li"))
        expected = sorted(
            f"{kind} {domain} ({before} → {after})"
            for date, domain, kind, before, after in vm.events
            if date == busiest
        )
        assert items == expected
        sha = git(
            model.root,
            "log",
            "-1",
            "--format=%H",
            f"--grep=^Monitor-Date: {busiest}$",
            "--",
            f"snapshots/{vantage}/",
        )
        link = day.find("a", class_="sha")
        assert link.attrs["href"] == f"https://github.com/owner/repo/commit/{sha}"
        assert link.text() == sha[:7]


def test_timelines_show_only_names_that_were_ever_not_present(model: Model, page: Node) -> None:
    for vantage, vm in model.vantages.items():
        section = page.find("section", id=f"v-{vantage}")
        rows = [r for r in section.find_all("div", class_="row")]
        shown = {r.find("span").text() for r in rows}
        eventful = {
            n for n, days in vm.days.items() if any(v not in (None, "present") for v in days)
        }
        assert shown == eventful
        quiet = len(vm.days) - len(eventful)
        summary = section.find("details").find("summary").text()
        assert summary == f"{quiet} names were present on every run"
        # A strip: present is the background; each other period and each stretch off the
        # watchlist is a rectangle with its dates.
        for name in sorted(eventful)[:20]:
            row = next(r for r in rows if r.find("span").text() == name)
            titles = [t.text() for t in row.find("svg").find_all("title")]
            assert titles[0] == f"{name}: present on the runs not marked"
            expected = [
                f"{verdict} {start}" if start == to else f"{verdict} {start} → {to or 'now'}"
                for verdict, start, to in periods_of(vm, name)
                if verdict != "present"
            ]
            assert [t for t in titles[1:] if not t.startswith("not watched")] == expected
            gaps = [t for t in titles if t.startswith("not watched")]
            days = vm.days[name]
            assert bool(gaps) == (None in days), name


def periods_of(vm: VantageModel, name: str) -> list[tuple[str, str, str | None]]:
    periods: list[tuple[str, str, str | None]] = []
    previous = None
    for n, verdict in enumerate(vm.days[name]):
        if verdict != previous:
            if previous is not None:
                periods[-1] = (*periods[-1][:2], vm.dates[n - 1])
            if verdict is not None:
                periods.append((verdict, vm.dates[n], None))
        previous = verdict
    return periods


def view_rows(vm: VantageModel, name: str) -> list[tuple[str | None, str, str | None]]:
    """The rows a name's view must show: each stretch of runs with one verdict, or off the
    watchlist (None), from the first run it was watched; the last one runs on (None)."""
    rows: list[tuple[str | None, str, str | None]] = []
    days = vm.days[name]
    for n, verdict in enumerate(days):
        if n == 0 or verdict != days[n - 1]:
            if rows:
                rows[-1] = (*rows[-1][:2], vm.dates[n - 1])
            rows.append((verdict, vm.dates[n], None))
    return rows[1:] if rows and rows[0][0] is None else rows


def commit_dates(root: Path) -> dict[str, str]:
    out = git(root, "log", "--format=%H %(trailers:key=Monitor-Date,valueonly)")
    return dict(line.split(" ", 1) for line in out.splitlines() if line.strip())


def test_every_name_ever_not_present_has_a_view_of_its_periods(model: Model, page: Node) -> None:
    link = "https://github.com/owner/repo"
    dates = commit_dates(model.root)
    blobs: dict[str, list[str]] = {}
    checked = 0
    for vantage, vm in model.vantages.items():
        section = page.find("section", id=f"v-{vantage}")
        views = {a.attrs["id"]: a for a in section.find_all("article", class_="view")}
        eventful = {
            n for n, days in vm.days.items() if any(v not in (None, "present") for v in days)
        }
        assert set(views) == {name_anchor(vantage, n) for n in eventful}
        for name in sorted(eventful):
            view = views[name_anchor(vantage, name)]
            assert view.find("h4").find("span").text() == name
            rows = list(view.find("tbody").find_all("tr"))
            cells = [[td.text() for td in tr.find_all("td")] for tr in rows]
            expected = view_rows(vm, name)
            assert [c[:3] for c in cells] == [
                [verdict or "not watched", start, to or f"{vm.dates[-1]} (latest run)"]
                for verdict, start, to in expected
            ], name
            for (verdict, start, _), tr, row in zip(expected, rows, cells, strict=True):
                if verdict is None:
                    assert row[3:] == ["", "", ""]
                    continue
                # What each resolver said: the statuses of the line the run wrote that day.
                entry = vm.snapshots[vm.dates.index(start)][name]
                assert row[3] == " · ".join(f"{r} {s}" for r, s in entry.statuses)
                commit = tr.find("a", class_="sha").attrs["href"]
                sha = commit.removeprefix(f"{link}/commit/")
                assert dates[sha] == start
                line = [a for a in tr.find_all("a") if "/blob/" in a.attrs["href"]]
                assert len(line) == 1
                match = re.fullmatch(
                    rf"{link}/blob/{sha}/(snapshots/{vantage}/domains\.yaml)#L(\d+)",
                    line[0].attrs["href"],
                )
                assert match is not None, line[0].attrs["href"]
                if checked < 400:  # the line links of a few hundred rows, read back from git
                    key = f"{sha}:{match.group(1)}"
                    if key not in blobs:
                        blobs[key] = git(model.root, "show", key).splitlines()
                    assert blobs[key][int(match.group(2)) - 1] == render_line(entry)
                    assert line[0].text() == f"{match.group(1)}:{match.group(2)}"
                    checked += 1
    assert checked == 400


def test_every_link_within_the_page_leads_to_an_element(model: Model, page: Node) -> None:
    ids = [e.attrs["id"] for e in elements(page) if "id" in e.attrs]
    assert len(ids) == len(set(ids))
    targets = [a.attrs["href"][1:] for a in page.find_all("a") if a.attrs["href"][:1] == "#"]
    assert set(targets) <= set(ids)
    for vantage, vm in model.vantages.items():
        section = page.find("section", id=f"v-{vantage}")
        flagged = section.find("table", class_="flags").find("tbody").find_all("tr")
        for tr in flagged:
            name = tr.find("span").text()
            assert tr.find("a").attrs["href"] == "#" + name_anchor(vantage, name)
        assert len(targets) > 2 * len(vm.final)


def test_the_legend_says_what_each_verdict_means_as_the_readme_does(page: Node) -> None:
    readme = (PROJECT / "README.md").read_text(encoding="utf-8")
    bullets = readme.split("### Verdicts\n\n", 1)[1].split("\n\n")[0]
    documented = {
        verdict: " ".join(text.replace("`", "").split())
        for verdict, text in re.findall(
            r"^- \*\*([a-z-]+)\*\*: (.*?)(?=^- |\Z)", bullets, re.M | re.S
        )
    }
    assert documented == MEANINGS
    assert set(MEANINGS) == set(Verdict)
    legend = page.find("dl", class_="meanings")
    shown = dict(
        zip(
            [dt.text() for dt in legend.find_all("dt")],
            [dd.text() for dd in legend.find_all("dd")],
            strict=True,
        )
    )
    assert shown == MEANINGS


# ----------------------------------------------------------------------------- pure parts


def P(verdict: str, start: str, to: str | None = None) -> Period:
    return Period(verdict, start, to)


DATES = ["2026-01-01", "2026-01-02", "2026-01-03", "2026-01-05", "2026-01-06"]


def test_daily_counts_add_up_periods() -> None:
    histories = [
        DomainHistory("a", [P("present", DATES[0], DATES[1]), P("missing", DATES[2])]),
        DomainHistory("b", [P("present", DATES[1], DATES[3])]),  # added, then dropped
        DomainHistory("c", [P("gone", DATES[0])]),
    ]
    assert daily_counts(histories, DATES) == [
        {"present": 1, "gone": 1},
        {"present": 2, "gone": 1},
        {"present": 1, "missing": 1, "gone": 1},
        {"present": 1, "missing": 1, "gone": 1},
        {"missing": 1, "gone": 1},
    ]


@pytest.mark.parametrize(
    ("first", "last", "labels"),
    [
        # Days: the first label is the whole date, and so is the first of a new year.
        ("2026-02-09", "2026-02-11", ["2026-02-09", "02-10", "02-11"]),
        ("2025-12-30", "2026-01-02", ["2025-12-30", "12-31", "2026-01-01", "01-02"]),
        (
            "2026-01-01",
            "2026-02-14",
            ["2026-01-01", "01-07", "01-13", "01-19", "01-25", "01-31", "02-06", "02-12"],
        ),
        # Months and half years: YYYY-MM.
        ("2025-03-01", "2025-07-28", ["2025-04", "2025-05", "2025-06", "2025-07"]),
        ("2023-01-01", "2025-12-31", ["2023-07", "2024-01", "2024-07", "2025-01", "2025-07"]),
        ("2015-01-01", "2025-12-31", ["2016", "2018", "2020", "2022", "2024"]),
    ],
)
def test_every_time_axis_names_its_years(first: str, last: str, labels: list[str]) -> None:
    ticks = Scale.of([first, last]).ticks()
    assert [t.label for t in ticks] == labels
    assert re.match(r"\d{4}", ticks[0].label)
    assert not ticks[0].minor  # the label kept at phone width, with its year
    assert [t.x for t in ticks] == sorted(t.x for t in ticks) and 0 <= ticks[0].x < ticks[
        -1
    ].x < 100
    assert sum(not t.minor for t in ticks) <= 4  # what fits at phone width


def test_contrast_is_wcags() -> None:
    assert contrast("#ffffff", "#000000") == 21
    assert contrast("#777777", "#777777") == 1
    # The figures of issue 14: white on the old present and degraded colours.
    assert round(contrast("#ffffff", "#43a047"), 2) == 3.30
    assert round(contrast("#ef6c00", "#ffffff"), 2) == 3.08


@pytest.mark.parametrize("fill", [*COLOURS.values(), OTHER_COLOUR])
def test_every_badge_is_readable(fill: str) -> None:
    assert contrast(fill, ink(fill)) >= 4.5  # WCAG 2.1 AA for small text


@pytest.mark.parametrize("verdict", [v for v in COLOURS if v != "present"])
def test_every_verdict_stands_out_from_present_in_a_timeline(verdict: str) -> None:
    assert contrast(COLOURS[verdict], COLOURS["present"]) >= 3  # WCAG 2.1's 1.4.11, graphics


@pytest.mark.parametrize(
    ("remote", "base"),
    [
        ("https://github.com/owner/repo", "https://github.com/owner/repo"),
        ("https://github.com/owner/repo.git", "https://github.com/owner/repo"),
        ("https://github.com/owner/repo/", "https://github.com/owner/repo"),
        ("https://x-access-token:SECRET@github.com/o-1/r.x.git", "https://github.com/o-1/r.x"),
        ("git@github.com:owner/repo.git", "https://github.com/owner/repo"),
        ("ssh://git@github.com/owner/repo.git", "https://github.com/owner/repo"),
        ("ssh://git@github.com:22/owner/repo", "https://github.com/owner/repo"),
        ("https://gitlab.com/owner/repo.git", None),
        ("https://github.com.evil.example/owner/repo", None),
        ("https://github.com/owner", None),
        ("https://github.com/owner/repo/extra", None),
        ("https://github.com/owner/<script>", None),
        ("/srv/git/repo.git", None),
        ("file:///srv/git/repo.git", None),
        ("git@example.com:owner/repo.git", None),
    ],
)
def test_github_base(remote: str, base: str | None) -> None:
    assert github_base(remote) == base


# ----------------------------------------------------------------------------- small repos


def commit_night(root: Path, vantage: str, date: str, entries: Sequence[Entry]) -> str:
    directory = snapshot_dir(root, vantage)
    write_files(directory, {**render_domains(entries), "run.yaml": f"date: '{date}'\n"})
    repo = gitstore.open_repo(root)
    return gitstore.commit_directory(repo, f"snapshots/{vantage}", message(vantage, date))


HOSTILE = '<script>alert("x")</script>.example'
HOSTILE_STATUS = "<img src=x onerror=alert(1)>"
HOSTILE_LABEL = "<script>alert('label')</script>"


def hostile_repo(root: Path) -> list[str]:
    init(root)
    ok = (("nsdi-a", "ok"), ("google", "ok"))
    gone = (("nsdi-a", HOSTILE_STATUS), ("google", "ok"))
    shas = [
        commit_night(
            root,
            "lab",
            "2026-02-09",
            [
                Entry(HOSTILE, "present", "2026-02-09", ok),
                Entry("dw.com", "present", "2026-02-09", ok),
            ],
        ),
        commit_night(
            root,
            "lab",
            "2026-02-10",
            [
                Entry(HOSTILE, "missing", "2026-02-10", gone),
                Entry("dw.com", "present", "2026-02-09", ok),
            ],
        ),
    ]
    return shas


def test_names_labels_and_statuses_from_snapshots_are_escaped(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    hostile_repo(root)
    repo = gitstore.open_repo(root)
    assert [h.domain for h in history(repo, "lab")] == sorted([HOSTILE, "dw.com"])
    site = build_site(repo, tmp_path / "site", labels={HOSTILE: HOSTILE_LABEL})
    text = site.index.read_text(encoding="utf-8")
    # Only the page's own script element: no markup from the data survives.
    assert text.count("<script") == 1
    assert "<img" not in text
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;.example" in text
    assert "&lt;img src=x onerror=alert(1)&gt;" in text
    assert "&lt;script&gt;alert(&#39;label&#39;)&lt;/script&gt;" in text
    page = parse_html(text)
    row = page.find("table", class_="flags").find("tbody").find("tr")
    assert row.find("td").text() == HOSTILE + HOSTILE_LABEL
    assert "nsdi-a " + HOSTILE_STATUS in row.text()
    day = page.find("details", class_="day")
    assert day.find("li").text() == f"disappeared {HOSTILE}{HOSTILE_LABEL} (present → missing)"


# Strings a hand-edited snapshot (or a hostile label) may hold: markup, ANSI escapes, a bidi
# override, a newline; in a name, a label, a resolver's name, a status and a verdict.
ANSI_NAME = "\x1b[31mred\x1b[0m.example"
BIDI_NAME = "\u202egnp.exe.example"
NEWLINE_NAME = "two\nlines.example"
HOSTILE_VERDICT = '"><svg onload=alert(1)>'
HOSTILE_RESOLVER = "<i>r</i>"
EVIL_STATUS = "nxdomain\x1b[2J\n<b>bold</b>"
EVIL_LABEL = "\u202e<b>label</b>\nsecond line"
LONG_NAME = ".".join(["x" * 63] * 3) + ".example"  # no space to break a line at
HOSTILE_NAMES = (HOSTILE, ANSI_NAME, BIDI_NAME, NEWLINE_NAME, LONG_NAME)
PAGE_TAGS = {
    *("html", "head", "meta", "title", "style", "body", "main", "h1", "h2", "h3", "h4", "p"),
    *("nav", "a", "span", "code", "time", "table", "thead", "tbody", "tr", "th", "td", "dl"),
    *("dt", "dd", "section", "div", "svg", "line", "text", "path", "rect", "details"),
    *("summary", "ul", "li", "article", "footer", "script", "label", "input"),
}


def hostile_values_repo(root: Path) -> list[str]:
    init(root)
    ok = (("nsdi-a", "ok"), (HOSTILE_RESOLVER, "ok"))
    bad = (("nsdi-a", EVIL_STATUS), (HOSTILE_RESOLVER, "ok"))
    return [
        commit_night(
            root,
            "lab",
            "2026-02-09",
            [Entry(n, "present", "2026-02-09", ok) for n in HOSTILE_NAMES],
        ),
        commit_night(
            root,
            "lab",
            "2026-02-10",
            [
                Entry(HOSTILE, "missing", "2026-02-10", bad),
                Entry(ANSI_NAME, HOSTILE_VERDICT, "2026-02-10", bad),
                Entry(BIDI_NAME, "tampered", "2026-02-10", bad),
                Entry(NEWLINE_NAME, "present", "2026-02-09", ok, HOSTILE_VERDICT),
                Entry(LONG_NAME, "missing", "2026-02-10", bad),
            ],
        ),
    ]


def elements(node: Node) -> Iterator[Node]:
    for child in node.children:
        if isinstance(child, Node):
            yield child
            yield from elements(child)


def test_hostile_names_labels_resolvers_statuses_and_verdicts_stay_text(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    hostile_values_repo(root)
    repo = gitstore.open_repo(root)
    labels = dict.fromkeys(HOSTILE_NAMES, EVIL_LABEL)
    site = build_site(repo, tmp_path / "site", labels=labels, link="https://github.com/o/r")
    text = site.index.read_text(encoding="utf-8")
    page = parse_html(text)  # well-formed: nothing from the data opened or closed an element
    found = list(elements(page))
    assert {e.tag for e in found} <= PAGE_TAGS
    assert [e.tag for e in found].count("script") == 1
    assert not [(e.tag, k) for e in found for k in e.attrs if k.startswith("on")]
    # No control or format character from the data reaches the page: no ANSI, no bidi
    # override, no newline inside a name; each is shown as its escape.
    assert [c for c in text if unicodedata.category(c) in ("Cc", "Cf") and c != "\n"] == []
    for raw in HOSTILE_NAMES:
        assert escape_text(raw) in page.text()
    assert escape_text(EVIL_STATUS) in page.text() and escape_text(EVIL_LABEL) in page.text()
    flags = page.find("table", class_="flags").find("tbody")
    shown = {tr.find("td").text(): tr for tr in flags.find_all("tr")}
    assert set(shown) == {escape_text(n) + escape_text(EVIL_LABEL) for n in HOSTILE_NAMES}
    ansi_row = shown[escape_text(ANSI_NAME) + escape_text(EVIL_LABEL)]
    badge = ansi_row.find("span", class_="badge")
    assert badge.attrs["data-v"] == HOSTILE_VERDICT and badge.text() == HOSTILE_VERDICT
    assert f"{HOSTILE_RESOLVER} ok" in ansi_row.text()
    # Each name's view: one id, a permalink to it, stable for any name.
    views = {a.attrs["id"]: a for a in page.find_all("article", class_="view")}
    for raw in HOSTILE_NAMES:
        anchor = name_anchor("lab", raw)
        assert anchor in views
        assert unquote(anchor.partition("/")[2]) == raw
        assert re.fullmatch(r"lab/[A-Za-z0-9_.~%-]+", anchor), anchor
        assert views[anchor].find("a").attrs["href"] == "#" + anchor
    assert len(views) == len(HOSTILE_NAMES)


def test_commit_links_come_from_the_origin_remote(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    shas = hostile_repo(root)
    repo = gitstore.open_repo(root)
    site = build_site(repo, tmp_path / "plain")
    text = site.index.read_text(encoding="utf-8")
    assert site.link is None
    assert f'<code class="sha">{shas[1][:7]}</code>' in text
    assert "http://" not in text and "https://" not in text

    git(root, "remote", "add", "origin", "https://x-access-token:SECRET@github.com/o/r.git")
    site = build_site(repo, tmp_path / "linked")
    text = site.index.read_text(encoding="utf-8")
    assert site.link == "https://github.com/o/r"
    assert f'<a class="sha" href="https://github.com/o/r/commit/{shas[1]}">' in text
    assert "SECRET" not in text

    site = build_site(repo, tmp_path / "given", link="https://git.example/o/r/")
    assert f'href="https://git.example/o/r/commit/{shas[1]}"' in site.index.read_text()


def test_the_page_links_the_feed_and_the_export_and_says_when_it_was_made(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    hostile_repo(root)
    repo = gitstore.open_repo(root)
    moscow = datetime.timezone(datetime.timedelta(hours=3))
    now = datetime.datetime(2026, 2, 11, 9, 30, 15, tzinfo=moscow)
    site = build_site(repo, tmp_path / "site", link="https://github.com/o/r", now=now)
    page = parse_html(site.index.read_text(encoding="utf-8"))
    links = {a.text(): a.attrs["href"] for a in page.find_all("a") if a.find_all("code")}
    assert (
        links["snapshots/lab/feed.atom"]
        == "https://github.com/o/r/raw/HEAD/snapshots/lab/feed.atom"
    )
    assert links["history.sqlite"] == "history.sqlite"
    generated = page.find("time", datetime="2026-02-11T06:30:15Z")
    assert generated.text() == "2026-02-11 06:30 UTC"

    # Without a link: the relative path from the page to the feed, when the page is built in
    # the repository (the default site/) and the feed is there; else the path as text.
    feed = root / "snapshots" / "lab" / "feed.atom"
    feed.write_text("<feed/>\n")
    site = build_site(repo, root / "site")
    page = parse_html(site.index.read_text(encoding="utf-8"))
    links = {a.text(): a.attrs["href"] for a in page.find_all("a") if a.find_all("code")}
    assert links["snapshots/lab/feed.atom"] == "../snapshots/lab/feed.atom"
    assert (root / "site" / links["snapshots/lab/feed.atom"]).resolve() == feed.resolve()
    site = build_site(repo, tmp_path / "elsewhere")
    page = parse_html(site.index.read_text(encoding="utf-8"))
    links = {a.text(): a.attrs["href"] for a in page.find_all("a") if a.find_all("code")}
    assert "snapshots/lab/feed.atom" not in links
    assert "snapshots/lab/feed.atom" in [c.text() for c in page.find_all("code")]


def test_line_changes_point_at_each_line_in_its_file_and_shard(tmp_path: Path) -> None:
    # history.line_changes, which the per-name views read: tested here beside its one reader.
    root = init(tmp_path / "repo")
    names = [f"n{i:05d}.example" for i in range(SHARD_ABOVE + 1)]  # one more: sharded
    ok, gone = (("nsdi-a", "ok"),), (("nsdi-a", "nxdomain"),)
    first = {n: Entry(n, "present", "2026-02-09", ok) for n in names}
    moved = names[::1000]
    second = {**first, **{n: Entry(n, "missing", "2026-02-10", gone) for n in moved}}
    sha1 = commit_night(root, "lab", "2026-02-09", list(first.values()))
    sha2 = commit_night(root, "lab", "2026-02-10", list(second.values()))
    # A hand edit without a Monitor-Date is not a run: left out, as history() leaves it out.
    shard = root / "snapshots" / "lab" / shard_name(moved[1], len(names))
    shard.write_text(shard.read_text().replace("verdict: missing", "verdict: gone", 1))
    git(root, "commit", "-q", "-am", "hand edit")
    changes = line_changes(gitstore.open_repo(root), "lab")
    assert set(changes) == set(names)
    assert {n for n, c in changes.items() if len(c) == 2} == set(moved)
    for name in moved:
        before, after = changes[name]
        assert (before.date, before.sha, before.entry) == ("2026-02-09", sha1, first[name])
        assert (after.date, after.sha, after.entry) == ("2026-02-10", sha2, second[name])
        for change in (before, after):
            assert change.path == f"snapshots/lab/{shard_name(name, len(names))}"
            assert change.path.startswith("snapshots/lab/domains/")
            lines = git(root, "show", f"{change.sha}:{change.path}").splitlines()
            assert lines[change.line - 1] == render_line(change.entry)


def test_errors(tmp_path: Path) -> None:
    root = init(tmp_path / "repo")
    repo = gitstore.open_repo(root)
    with pytest.raises(RepoError, match="no snapshots/ yet"):
        collect(repo)
    hostile_repo(root)
    with pytest.raises(UsageError, match=r"no snapshots/elsewhere/ at HEAD; there are: lab"):
        collect(repo, ["elsewhere"])
    for link in ("javascript:alert(1)", "ftp://x", "https://", "http://[::1", "https://h/?q=1"):
        with pytest.raises(UsageError, match="--link must be an http"):
            build_site(repo, tmp_path / "site", link=link)
    assert not (tmp_path / "site").exists()


def monitor(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "monitor", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_report_command(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    hostile_repo(root)
    done = monitor(root, "report")
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"wrote {root / 'site' / INDEX}: lab, 2 runs, 1 events\n"
    assert (root / "site" / INDEX).stat().st_mode & 0o777 == 0o644

    out = tmp_path / "elsewhere"
    done = monitor(tmp_path, "report", "--repo", str(root), "--out", str(out), "--vantage", "lab")
    assert done.returncode == 0, done.stderr
    assert (out / INDEX).is_file()

    config = tmp_path / "labels.yaml"
    config.write_text(
        "vantage: lab\nresolvers:\n  national:\n    - {name: nsdi-a, address: 192.0.2.1}\n"
        "  control:\n    - {name: google, address: 192.0.2.2}\n"
        'watchlist:\n  - {domain: dw.com, label: "<b>Deutsche Welle</b>"}\n'
    )
    done = monitor(root, "--config", str(config), "report", "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert "&lt;b&gt;Deutsche Welle&lt;/b&gt;" in (out / INDEX).read_text()

    for args, error in [
        (["report", "--vantage", "nope"], "Error: no snapshots/nope/ at HEAD; there are: lab\n"),
        (
            ["report", "--link", "ftp://x"],
            "Error: --link must be an http(s) URL like "
            "https://github.com/OWNER/REPO, not 'ftp://x'\n",
        ),
        (
            ["report", "--repo", str(tmp_path / "none")],
            f"Error: not a git repository: {tmp_path / 'none'} (use --repo DIR or git init)\n",
        ),
    ]:
        done = monitor(root, *args)
        assert (done.returncode, done.stderr) == (2, error)


def test_build_time_for_1000_names_over_three_years(tmp_path: Path) -> None:
    start = time.perf_counter()
    m = build_model(tmp_path / "repo", names=1000, days=3 * 365, seed=3)
    made = time.perf_counter() - start
    start = time.perf_counter()
    site = build_site(gitstore.open_repo(m.root), tmp_path / "site")
    elapsed = time.perf_counter() - start
    size = site.index.stat().st_size
    print(
        f"\nreport over {site.runs} runs (2 vantage points x 3 years x 1,000 names): "
        f"{elapsed:.2f} s, {size / 1e6:.1f} MB (repository made in {made:.1f} s)"
    )
    assert site.runs == 2 * 3 * 365
    assert elapsed < 60
