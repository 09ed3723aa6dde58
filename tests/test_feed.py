"""feed.atom: valid Atom (RFC 4287) that a real reader accepts, ids unique to the repository
and stable across runs, links to each run's commit, escaped, stable when read back."""

from __future__ import annotations

import datetime
import re
import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import feedparser  # type: ignore[import-untyped]  # feedparser 6 ships no type information
import git
import pytest

from monitor import demo as demo_module
from monitor.changes import Event
from monitor.config import load_config_text
from monitor.feed import (
    ATOM,
    KEEP,
    SUMMARY_ABOVE,
    SUMMARY_LISTS,
    FeedSource,
    entries_for,
    parse_feed,
    render_feed,
    source_for,
)
from monitor.gitstore import SnapshotCommit, vantage_commits
from monitor.lab import Lab, World
from monitor.run import run
from monitor.snapshot import Entry
from monitor.vocabulary import EventKind

A = f"{{{ATOM}}}"
DAY1, DAY2, DAY3 = "2026-02-09", "2026-02-10", "2026-02-11"
BASE = "https://github.com/alice/monitor"
SHA1 = "1" * 40
HOSTILE = Event(
    "x.com", EventKind.DISAPPEARED, "present", "missing", "2026-01-01", "a\\b<i>\x1b[31m&\n"
)
YOUTUBE = Event("youtube.com", EventKind.DISAPPEARED, "present", "missing", DAY2)
MEDUZA = Event("meduza.io", EventKind.DEGRADED, "present", "tampered", DAY2)
BBC = Event("bbc.com", EventKind.DISAPPEARED, "present", "missing", DAY1)
LINES = [
    Entry("youtube.com", "missing", DAY2, (("nsdi-a", "nxdomain"), ("google", "ok"))),
    Entry("meduza.io", "tampered", DAY2, (("nsdi-a", "ok"), ("google", "ok"))),
]
# RFC 3339 as Atom dates are written (§3.3).
DATE_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:\d\d)")


def rfc4287_problems(text: str) -> list[str]:
    """Return what breaks the rules of RFC 4287 that this feed must follow ([] when none)."""
    problems = []
    root = ET.fromstring(text)
    if root.tag != f"{A}feed":
        return [f"the root is {root.tag}"]

    def one(node: ET.Element, name: str, where: str) -> str:
        found = node.findall(f"{A}{name}")
        if len(found) != 1:
            problems.append(f"{where}: {len(found)} atom:{name}")
            return ""
        return found[0].text or ""

    def dated(value: str, where: str) -> None:
        if not DATE_TIME.fullmatch(value):
            problems.append(f"{where}: updated {value!r} is not an RFC 3339 date-time")
        elif datetime.datetime.fromisoformat(value.replace("Z", "+00:00")).year <= 1970:
            problems.append(f"{where}: updated {value!r} is no real date")

    def alternates(node: ET.Element, where: str) -> int:
        links = [n for n in node.findall(f"{A}link") if n.get("rel", "alternate") == "alternate"]
        kinds = [(n.get("type"), n.get("hreflang")) for n in links]
        if len(set(kinds)) != len(kinds):
            problems.append(f"{where}: two alternate links of one type and language")
        for n in node.findall(f"{A}link"):  # a web address, or one relative to the feed's
            href = n.get("href") or ""
            if not href or urlsplit(href).scheme not in ("http", "https", ""):
                problems.append(f"{where}: link href {n.get('href')!r}")
        return len(links)

    ids = [one(root, "id", "feed")]
    one(root, "title", "feed")
    dated(one(root, "updated", "feed"), "feed")
    alternates(root, "feed")
    feed_author = root.find(f"{A}author/{A}name") is not None
    for i, entry in enumerate(root.findall(f"{A}entry")):
        where = f"entry {i}"
        ids.append(one(entry, "id", where))
        one(entry, "title", where)
        dated(one(entry, "updated", where), where)
        has_content = len(entry.findall(f"{A}content")) == 1
        if alternates(entry, where) == 0 and not has_content:
            problems.append(f"{where}: neither atom:content nor an alternate link (§4.1.2)")
        if not feed_author and entry.find(f"{A}author/{A}name") is None:
            problems.append(f"{where}: no author, and the feed has none")
    for value in ids:
        if not re.match(r"[a-z][a-z0-9+.-]*:", value):
            problems.append(f"id {value!r} is not an absolute IRI")
    if len(set(ids)) != len(ids):
        problems.append("ids are not unique")
    return problems


def read(text: str) -> Any:
    """The feed as feedparser reads it, which must find it well-formed."""
    parsed = feedparser.parse(text)
    assert not parsed.bozo, parsed.get("bozo_exception")
    assert parsed.version == "atom10"
    return parsed


def links(node: Any) -> dict[str, str]:
    return {link.rel: link.href for link in node.get("links", [])}


# ----------------------------------------------------------------------------- what a reader sees


def test_a_real_atom_parser_reads_the_feed_with_its_links_content_and_ids() -> None:
    yesterday = FeedSource("abroad", "github.com/alice/monitor", BASE, "main", DAY1)
    old = parse_feed(render_feed(yesterday, entries_for(yesterday, [BBC]), []))
    source = FeedSource("abroad", "github.com/alice/monitor", BASE, "main", DAY2, {DAY1: SHA1})
    feed = read(render_feed(source, entries_for(source, [YOUTUBE, MEDUZA], LINES), old))

    prefix = "tag:registry-monitor,2026:github.com/alice/monitor/abroad"
    assert feed.feed.id == prefix
    assert feed.feed.title == "registry-monitor: abroad"
    assert feed.feed.updated_parsed[:3] == (2026, 2, 10)
    assert feed.feed.author == "registry-monitor"
    assert links(feed.feed) == {
        "self": "https://raw.githubusercontent.com/alice/monitor/main/snapshots/abroad/feed.atom",
        "alternate": BASE,
    }
    assert [e.id for e in feed.entries] == [
        f"{prefix}/{DAY2}/youtube.com/disappeared",
        f"{prefix}/{DAY2}/meduza.io/degraded",
        f"{prefix}/{DAY1}/bbc.com/disappeared",
    ]
    assert [e.title for e in feed.entries] == [
        "disappeared: youtube.com (present → missing)",
        "degraded: meduza.io (present → tampered)",
        "disappeared: bbc.com (present → missing)",
    ]
    # Today's run has no commit yet: the history of the vantage's snapshots, topped by it.
    # Yesterday's entry links the commit yesterday's run made.
    assert [e.link for e in feed.entries] == [
        f"{BASE}/commits/main/snapshots/abroad",
        f"{BASE}/commits/main/snapshots/abroad",
        f"{BASE}/commit/{SHA1}",
    ]
    youtube = feed.entries[0]
    assert youtube.updated_parsed[:3] == (2026, 2, 10)
    (content,) = youtube.content
    assert content.type == "text/html"
    assert content.value == (
        "<p>youtube.com disappeared from the national DNS system: every national resolver that "
        "answered says it does not exist (NXDOMAIN), while the control resolvers find it.</p>\n"
        "<p>Verdict: present → missing. Run of 2026-02-10, vantage point abroad.</p>\n"
        "<p>What each resolver said: nsdi-a: nxdomain, google: ok.</p>"
    )
    assert "is answered by a national resolver" in feed.entries[1].content[0].value
    assert "Run of 2026-02-09, vantage point abroad." in feed.entries[2].content[0].value


def many(count: int, date: str = DAY2) -> list[Event]:
    return [
        Event(f"d{i:03}.com", EventKind.DISAPPEARED, "present", "missing", date)
        for i in range(count)
    ]


FEEDS: dict[str, tuple[FeedSource, list[Event]]] = {
    "no base": (FeedSource("v", "root-abc", None, None, DAY2), [YOUTUBE, MEDUZA]),
    "github": (
        FeedSource("v", "github.com/a/b", "https://github.com/a/b", "main", DAY2),
        [YOUTUBE],
    ),
    "server": (FeedSource("v", "ghe.example/a/b", "https://ghe.example/a/b", "m", DAY2), [MEDUZA]),
    "no events": (FeedSource("v", "root-abc", "https://github.com/a/b", "main", DAY2), []),
    "summary": (FeedSource("v", "root-abc", "https://github.com/a/b", "main", DAY2), many(30)),
    "hostile": (FeedSource("v", "root-abc", None, None, DAY2), [HOSTILE, HOSTILE]),
    "no repository": (FeedSource("v", date=DAY2), [YOUTUBE]),
}


@pytest.mark.parametrize("case", FEEDS)
def test_every_feed_follows_rfc4287_and_a_reader_accepts_it(case: str) -> None:
    source, events = FEEDS[case]
    text = render_feed(source, entries_for(source, events), [])
    assert rfc4287_problems(text) == []
    feed = read(text)
    assert len(feed.entries) == len(ET.fromstring(text).findall(f"{A}entry"))
    assert all(e.content[0].value for e in feed.entries)
    if source.base is not None:
        assert all(e.link.startswith(source.base + "/") for e in feed.entries)
        assert set(links(feed.feed)) == {"self", "alternate"}
    else:  # the folder the feed sits in, relative to the feed's own address
        assert all(links(e) == {"alternate": "./"} for e in feed.entries)
        assert links(feed.feed) == {}


def test_the_server_of_github_actions_serves_the_feed_itself() -> None:
    source, _ = FEEDS["server"]
    assert source.self_link == "https://ghe.example/a/b/raw/m/snapshots/v/feed.atom"


def test_a_feed_with_no_entry_is_dated_by_its_run() -> None:
    text = render_feed(FeedSource("v", "root-abc", date=DAY1), [], [])
    assert ET.fromstring(text).findtext(f"{A}updated") == f"{DAY1}T00:00:00Z"
    assert read(text).feed.updated_parsed[:3] == (2026, 2, 9)
    assert "1970" not in text
    with pytest.raises(ValueError, match="run's date"):
        render_feed("v", [], [])


def test_a_quiet_day_leaves_a_feed_with_no_entry_as_it_was(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", None)
    day1 = source_for(repo, "v", DAY1, [], "", [], {})
    text = render_feed(day1, [], [])
    runs = [SnapshotCommit(SHA1, DAY1, "v", "v: no change")]
    day2 = source_for(repo, "v", DAY2, runs, text, [], {})
    assert render_feed(day2, [], []) == text
    # The feeds before this one said 1970-01-01: that is no run's date.
    old = text.replace(f"{DAY1}T00:00:00Z", "1970-01-01T00:00:00Z")
    again = render_feed(source_for(repo, "v", DAY2, runs, old, [], {}), [], [])
    assert ET.fromstring(again).findtext(f"{A}updated") == f"{DAY2}T00:00:00Z"


@pytest.mark.parametrize("count", [SUMMARY_ABOVE, SUMMARY_ABOVE + 1])
def test_a_run_with_more_than_twenty_events_gets_one_summary_entry(count: int) -> None:
    source = FeedSource("v", "root-abc", BASE, "main", DAY2)
    events = [*many(count), *many(2, DAY1)]
    feed = read(render_feed(source, entries_for(source, events), []))
    day2 = [e for e in feed.entries if e.updated.startswith(DAY2)]
    assert len([e for e in feed.entries if e.updated.startswith(DAY1)]) == 2
    if count <= SUMMARY_ABOVE:
        assert len(day2) == count
        return
    (summary,) = day2
    assert summary.id == f"tag:registry-monitor,2026:root-abc/v/{DAY2}/summary"
    assert summary.title == f"{count} events on {DAY2}: {count} disappeared"
    assert summary.link == f"{BASE}/commits/main/snapshots/v"
    body = summary.content[0].value
    assert body.startswith(f"<p>{count} events in the run of {DAY2} at vantage point v: ")
    assert [f"disappeared: d{i:03}.com (present → missing)" for i in range(count)] == (
        re.findall(r"<li>(.*?)</li>", body)
    )


def test_a_summary_lists_a_bounded_number_of_events() -> None:
    source = FeedSource("v", "root-abc", date=DAY2)
    (entry,) = entries_for(source, many(SUMMARY_LISTS + 7))
    assert entry.content.count("<li>") == SUMMARY_LISTS
    assert entry.content.endswith("<p>And 7 more: the run's commit message lists every one.</p>")


# ----------------------------------------------------------------------------- ids per repository


def make_repo(path: Path, remote: str | None = None, commit: str | None = "first") -> git.Repo:
    repo = git.Repo.init(path, initial_branch="main")
    with repo.config_writer() as writer:
        writer.set_value("user", "name", "Feed Tester")
        writer.set_value("user", "email", "feed@example.test")
    if remote is not None:
        repo.create_remote("origin", remote)
    if commit is not None:
        (path / "README").write_text(f"{commit}\n", encoding="utf-8")
        repo.index.add(["README"])
        repo.index.commit(commit)
    return repo


def identity(repo: git.Repo, environ: Mapping[str, str] | None = None, previous: str = "") -> str:
    source = source_for(repo, "abroad", DAY2, [], previous, [], environ or {})
    assert source.repository is not None
    return source.repository


def test_two_repositories_with_the_same_vantage_publish_different_ids(tmp_path: Path) -> None:
    alice = make_repo(tmp_path / "alice", "https://github.com/Alice/Monitor.git")
    bob = make_repo(tmp_path / "bob", "git@github.com:bob/monitor.git")
    local = make_repo(tmp_path / "local", None, "one")
    other = make_repo(tmp_path / "other", None, "two")
    server = make_repo(tmp_path / "server", "https://ghe.example.org/org/monitor.git")
    actions = {
        "GITHUB_SERVER_URL": "https://ghe.example.org",
        "GITHUB_REPOSITORY": "org/monitor",
        "GITHUB_WORKSPACE": str(tmp_path / "server"),
    }
    found = {
        "alice": identity(alice),
        "bob": identity(bob),
        "local": identity(local),
        "other": identity(other),
        "server": identity(server, actions),
    }
    assert found == {
        "alice": "github.com/alice/monitor",
        "bob": "github.com/bob/monitor",
        "local": f"root-{local.head.commit.hexsha}",
        "other": f"root-{other.head.commit.hexsha}",
        "server": "ghe.example.org/org/monitor",
    }
    ids = set()
    for name in found:
        source = FeedSource("abroad", found[name], date=DAY2)
        ids |= {e.id for e in parse_feed(render_feed(source, entries_for(source, [YOUTUBE]), []))}
        ids.add(source.id)
    assert len(ids) == 2 * len(found)


def test_the_actions_variables_name_only_their_own_checkout(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "demo", None)
    actions = {
        "GITHUB_SERVER_URL": "https://github.com",
        "GITHUB_REPOSITORY": "alice/monitor",
        "GITHUB_WORKSPACE": str(tmp_path / "checkout"),
    }
    elsewhere = source_for(repo, "v", DAY2, [], "", [], actions)
    assert (elsewhere.base, elsewhere.repository) == (None, f"root-{repo.head.commit.hexsha}")
    here = source_for(
        repo, "v", DAY2, [], "", [], {**actions, "GITHUB_WORKSPACE": str(tmp_path / "demo")}
    )
    assert (here.base, here.repository) == (BASE, "github.com/alice/monitor")
    forged = {**actions, "GITHUB_WORKSPACE": "", "GITHUB_SERVER_URL": "https://u:p@github.com"}
    assert source_for(repo, "v", DAY2, [], "", [], forged).base == BASE


def test_credentials_in_the_remote_never_reach_the_feed(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", "https://x-access-token:SECRET@github.com/alice/monitor.git")
    source = source_for(repo, "v", DAY2, [], "", [], {})
    text = render_feed(source, entries_for(source, [YOUTUBE]), [])
    assert "SECRET" not in text and "x-access-token" not in text
    assert links(read(text).feed)["alternate"] == BASE


def test_a_repository_without_commit_or_page_names_its_first_snapshot(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "new", None, None)
    first = source_for(repo, "abroad", DAY1, [], "", LINES, {})
    again = source_for(make_repo(tmp_path / "again", None, None), "abroad", DAY1, [], "", LINES, {})
    assert first.repository == again.repository
    assert re.fullmatch(r"first-run-[0-9a-f]{16}", first.repository or "")
    assert first.branch == "main"
    assert source_for(repo, "abroad", DAY1, [], "", LINES[:1], {}).repository != first.repository
    # Once the feed carries it, the identity stays, the repository's root commit notwithstanding.
    text = render_feed(first, [], [])
    (tmp_path / "new" / "f").write_text("x", encoding="utf-8")
    repo.index.add(["f"])
    repo.index.commit("first")
    assert identity(repo, previous=text) == first.repository
    other_vantage = render_feed(FeedSource("home", first.repository, date=DAY1), [], [])
    assert identity(repo, previous=other_vantage) == f"root-{repo.head.commit.hexsha}"
    # A GitHub page wins over what the feed carries: a fork carries its upstream's feed.
    repo.create_remote("origin", "https://github.com/bob/fork")
    assert identity(repo, previous=text) == "github.com/bob/fork"


def test_ids_of_carried_entries_stay_when_the_identity_changes() -> None:
    before = FeedSource("v", "root-abc", date=DAY1)
    day1 = render_feed(before, entries_for(before, [BBC]), [])
    after = FeedSource("v", "github.com/alice/monitor", BASE, "main", DAY2, {DAY1: SHA1})
    day2 = read(render_feed(after, entries_for(after, [YOUTUBE]), parse_feed(day1)))
    assert [e.id for e in day2.entries] == [
        f"tag:registry-monitor,2026:github.com/alice/monitor/v/{DAY2}/youtube.com/disappeared",
        f"tag:registry-monitor,2026:root-abc/v/{DAY1}/bbc.com/disappeared",
    ]
    assert day2.entries[1].link == f"{BASE}/commit/{SHA1}"


# ----------------------------------------------------------------------------- a real run


@pytest.fixture
def lab() -> Iterator[tuple[Lab, dict[str, World]]]:
    worlds = {name: World(demo_module._records()) for name in demo_module.NATIONAL}
    base = worlds[demo_module.NATIONAL[0]]
    for name in (*demo_module.NATIONAL[1:], *demo_module.CONTROL):
        worlds[name] = base.variant()
    with Lab(worlds) as running:
        yield running, worlds


def test_runs_link_each_entry_to_the_commit_of_its_run(
    lab: tuple[Lab, dict[str, World]], tmp_path: Path
) -> None:
    running, worlds = lab
    root = tmp_path / "repo"
    repo = make_repo(root, "https://github.com/alice/monitor.git", None)
    config_path = root / "config.yaml"
    config_path.write_text(demo_module._config_text(running), encoding="utf-8")
    config = load_config_text(config_path.read_text(encoding="utf-8"), config_path)
    feed_file = root / "snapshots" / demo_module.VANTAGE / "feed.atom"
    feeds = []
    for day, date in enumerate(demo_module.DAYS):
        demo_module._scenario(worlds, day)
        run(config, repo=root, date=date, confirm_spacing=0.05)
        feeds.append(feed_file.read_text(encoding="utf-8"))
    day_sha = {c.date: c.sha for c in vantage_commits(repo, demo_module.VANTAGE)}
    assert list(day_sha) == list(demo_module.DAYS)

    first, second, third = (read(text) for text in feeds)
    for text in feeds:
        assert rfc4287_problems(text) == []
    assert first.entries == [] and first.feed.updated_parsed[:3] == (2026, 2, 9)
    assert links(third.feed)["self"] == (
        "https://raw.githubusercontent.com/alice/monitor/main/snapshots/demo/feed.atom"
    )
    history = f"{BASE}/commits/main/snapshots/demo"
    news = {e.id: e.link for e in second.entries}
    assert len(news) == 17 and set(news.values()) == {history}
    carried = {e.id: e.link for e in third.entries if e.id in news}
    assert set(carried) == set(news), "ids stay from one run to the next"
    assert set(carried.values()) == {f"{BASE}/commit/{day_sha[DAY2]}"}
    assert {e.link for e in third.entries if e.id not in news} == {history}
    assert third.entries[0].id.startswith("tag:registry-monitor,2026:github.com/alice/monitor/")
    # The commit linked is the one whose diff shows the name disappear.
    shown = subprocess.run(
        ["git", "show", "--format=", day_sha[DAY2], "--", "snapshots/demo/domains.yaml"],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "+youtube.com: {verdict: missing, since: 2026-02-10" in shown


# ----------------------------------------------------------------------------- escaping, stability


def test_feed_is_atom_and_escapes_what_it_shows() -> None:
    text = render_feed("v", entries_for("v", [HOSTILE]), [])
    root = ET.fromstring(text)
    assert root.tag == f"{A}feed"
    (entry,) = root.findall(f"{A}entry")
    title = entry.findtext(f"{A}title")
    assert title == "disappeared: a\\\\b<i>\\x1b[31m&\\x0a (present → missing)"
    assert "\x1b" not in text and "<i>" not in text
    assert entry.findtext(f"{A}id") == "tag:registry-monitor,2026:v/2026-01-01/x.com/disappeared"
    content = read(text).entries[0].content[0].value
    assert content.startswith("<p>a\\\\b&lt;i&gt;\\x1b[31m&amp;\\x0a disappeared from")


def test_a_hostile_domain_is_one_percent_encoded_segment_of_its_id() -> None:
    event = Event("a/b <c>\x1b", EventKind.DISAPPEARED, "present", "missing", DAY2)
    (entry,) = entries_for(FeedSource("v", "root-abc", date=DAY2), [event])
    assert entry.id == f"tag:registry-monitor,2026:root-abc/v/{DAY2}/a%2Fb%20%3Cc%3E%1B/disappeared"


def test_reading_back_and_writing_again_changes_nothing() -> None:
    source = FeedSource("v", "root-abc", BASE, "main", DAY2, {DAY1: SHA1})
    first = render_feed(source, entries_for(source, [HOSTILE, YOUTUBE, *many(25, DAY1)], LINES), [])
    second = render_feed(source, [], parse_feed(first))
    assert second == first
    assert render_feed(source, [], parse_feed(second)) == first


def test_an_edited_feed_is_carried_over_as_text() -> None:
    edited = f"""<feed xmlns="{ATOM}"><id>tag:x</id><entry><id>tag:x/1</id><title>t</title>
    <updated>{DAY1}T00:00:00Z</updated><link href="javascript:alert(1)"/>
    <content type="html">&lt;script&gt;alert(1)&lt;/script&gt;&lt;p&gt;ok&lt;/p&gt;</content>
    </entry></feed>"""
    (entry,) = parse_feed(edited)
    assert entry.link == ""
    assert entry.content == "&lt;script&gt;alert(1)&lt;/script&gt;&lt;p&gt;ok&lt;/p&gt;"
    text = render_feed(FeedSource("v", "root-abc", date=DAY2), [], [entry])
    # A reader shows the markup as text.
    assert read(text).entries[0].content[0].value == entry.content
    assert "<script" not in text and "javascript" not in text


def test_a_feed_of_the_days_before_content_and_links_is_carried_over_valid() -> None:
    old = f"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="{ATOM}">
  <title>registry-monitor: v</title>
  <id>tag:registry-monitor,2026:v</id>
  <updated>{DAY1}T00:00:00Z</updated>
  <author><name>registry-monitor</name></author>
  <entry>
    <id>tag:registry-monitor,2026:v/{DAY1}/bbc.com/disappeared</id>
    <title>disappeared: bbc.com (present → missing)</title>
    <updated>{DAY1}T00:00:00Z</updated>
    <summary>v, {DAY1}: disappeared: bbc.com (present → missing).</summary>
  </entry>
</feed>
"""
    assert rfc4287_problems(old) == ["entry 0: neither atom:content nor an alternate link (§4.1.2)"]
    source = FeedSource("v", "root-abc", date=DAY2)
    text = render_feed(source, entries_for(source, [YOUTUBE]), parse_feed(old))
    assert rfc4287_problems(text) == []
    carried = read(text).entries[1]
    assert carried.id == f"tag:registry-monitor,2026:v/{DAY1}/bbc.com/disappeared"
    assert carried.content[0].value == f"v, {DAY1}: disappeared: bbc.com (present → missing)."


def test_new_entries_come_first_and_the_feed_is_bounded() -> None:
    dates = [f"2025-12-{d:02}" for d in range(1, 21)]
    old = [e for date in dates for e in many(KEEP // len(dates), date)]
    feed = render_feed("v", entries_for("v", old), [])
    assert len(parse_feed(feed)) == KEEP
    new = Event("new.com", EventKind.RESTORED, "missing", "present", "2026-01-02")
    entries = parse_feed(render_feed("v", entries_for("v", [new]), parse_feed(feed)))
    assert len(entries) == KEEP
    assert entries[0].title == "restored: new.com (missing → present)"
    assert entries[0].updated == "2026-01-02"
    assert entries[-1].updated == "2025-12-20", "the last entry listed is the one dropped"


def test_an_unreadable_feed_starts_afresh() -> None:
    assert parse_feed("<feed><entry>") == []


def test_the_readme_states_the_feed_s_numbers() -> None:
    readme = " ".join((Path(__file__).parent.parent / "README.md").read_text("utf-8").split())
    assert f"the newest {KEEP} entries" in readme
    assert f"a run with more than {SUMMARY_ABOVE} events gets one summary entry" in readme
    assert f"(the first {SUMMARY_LISTS}; the commit message lists every one)" in readme
