"""Text that came from DNS cannot break the step summary, the commit message or the feed."""

from __future__ import annotations

import re
import unicodedata
import xml.etree.ElementTree as ET

import pytest

from monitor.blockpages import BlockPage
from monitor.changes import Event, commit_message
from monitor.config import WatchedName
from monitor.feed import ATOM, entries_for, parse_feed, render_feed
from monitor.measure import DomainResult, Measurement, ResolverHealth
from monitor.output import run_summary
from monitor.run import RunResult
from monitor.snapshot import Entry
from monitor.vocabulary import EventKind, Group, Health, TcpHealth, Verdict

DATE = "2026-11-28"
VANTAGE = "abroad"
RESOLVERS = ("nsdi-a", "google")

# Names and details as a hostile or broken server could make them (a Unicode watchlist name, a
# resolver's error detail quoting the reply): HTML, Markdown, table pipes, newlines, ANSI.
HOSTILE = [
    "<script>alert(1)</script>.example",
    "a|b|c.example",
    "evil.example\n# injected heading\n| forged | row | x | y |",
    "\x1b[31mred\x1b[0m.example\x1b]0;title\x07",
    "back\\|slash\\\\|two.example",
    "[click](javascript:alert(1)) ![img](http://x/y.png)",
    "**bold** _em_ `code` ~~gone~~ <b>html</b>",
    "line\u2028sep\u2029para\u202eoverride\u0085nel",
    "crlf.example\r\nMonitor-Vantage: forged\r\n",
    "&lt;already&gt; &amp; &#60;script&#62;",
    "nul\x00.example\x7f",
    "xn--e1ajeds9e.xn--p1ai",  # a harmless one among them
]
ALLOWED_CONTROL = {"\n"}


def controls_in(text: str) -> set[str]:
    """Control, format and separator characters other than a newline."""
    return {
        ch
        for ch in text
        if ch not in ALLOWED_CONTROL and unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp")
    }


def unescaped(text: str, char: str) -> int:
    """How many times ``char`` occurs without a backslash escaping it (an odd run before it)."""
    count = 0
    for match in re.finditer(re.escape(char), text):
        backslashes = len(text[: match.start()]) - len(text[: match.start()].rstrip("\\"))
        count += backslashes % 2 == 0
    return count


def make_result(names: list[str]) -> RunResult:
    """A run whose events, display names and resolver details carry ``names``."""
    events = []
    entries = []
    domains = []
    for i, name in enumerate(names):
        domain = f"d{i}.example"
        # Half of the events show the hostile text as the display name, half as the domain.
        event = (
            Event(domain, EventKind.DISAPPEARED, "present", "missing", DATE, display=name)
            if i % 2 == 0
            else Event(name, EventKind.DEGRADED, "present", "tampered", DATE)
        )
        events.append(event)
        statuses = (("nsdi-a", "nxdomain"), ("google", "ok"))
        entries.append(Entry(domain, event.after, DATE, statuses, "unstable" if i == 1 else None))
        domains.append(
            DomainResult(
                WatchedName(domain, name, label=name),
                Verdict(event.after),
                RESOLVERS,
                ("nxdomain", "ok"),
                ede=(("nsdi-a", ((15, name),)),),  # the resolver's own text is hostile too
            )
        )
    health = [ResolverHealth("nsdi-a", Group.NATIONAL, Health.UP)]
    health += [
        ResolverHealth(
            name, Group.CONTROL, Health.NXDOMAIN_REWRITING if i % 2 else Health.DOWN, detail=name
        )
        for i, name in enumerate(names)
    ]
    measurement = Measurement(VANTAGE, tuple(health), tuple(domains))
    message = commit_message(VANTAGE, DATE, events, entries)
    return RunResult(DATE, measurement, tuple(entries), tuple(events), message, "ab" * 20, True)


def section(markdown: str, heading: str) -> list[str]:
    """The lines after ``heading`` up to the next blank line that follows some content."""
    lines = markdown.splitlines()
    start = lines.index(heading) + 1
    while lines[start] == "":
        start += 1
    end = start
    while end < len(lines) and lines[end] != "":
        end += 1
    return lines[start:end]


# --------------------------------------------------------------------------- run_summary


@pytest.mark.parametrize("name", HOSTILE, ids=range(len(HOSTILE)))
def test_summary_escapes_each_hostile_name(name: str) -> None:
    markdown = run_summary(make_result([name, name]))
    assert not re.search(r"(?<!\\)<script", markdown, re.I), "no raw <script>"
    # Markdown syntax left live is the summary's own: `**counts**` and the commit's `sha`.
    own = {"<": 0, ">": 0, "[": 0, "]": 0, "_": 0, "~": 0, "&": 0, "`": 2, "*": 4}
    assert {char: unescaped(markdown, char) for char in own} == own
    assert controls_in(markdown) == set(), "no ESC, CR, NUL, bidi override or line separator"
    # Only the summary's own headings start a line with `#`.
    headings = [ln for ln in markdown.splitlines() if ln.startswith("#")]
    assert headings == [
        f"## registry-monitor: {VANTAGE}, {DATE}",
        "### Events",
        "### Resolvers not up",
    ]


@pytest.mark.parametrize("name", HOSTILE, ids=range(len(HOSTILE)))
def test_summary_keeps_one_table_row_per_event(name: str) -> None:
    result = make_result([name, name, name])
    rows = section(run_summary(result), "### Events")
    assert rows[:2] == [
        "| event | domain | from | to | the national resolvers said |",
        "|---|---|---|---|---|",
    ]
    body = rows[2:]
    assert len(body) == len(result.events), "a newline in a name must not add or split a row"
    for row, event in zip(body, result.events, strict=True):
        assert unescaped(row, "|") == 6, (
            f"a pipe in a name or an EDE must not add a column: {row!r}"
        )
        assert row.startswith(f"| {event.event} | ")
        assert f" | {event.before} | {event.after} | " in row
        if event.display is not None:  # its domain is a watched one: what the nationals said
            assert "| nsdi\\-a: nxdomain, EDE 15 Blocked " in row  # Markdown-escaped


@pytest.mark.parametrize("name", HOSTILE, ids=range(len(HOSTILE)))
def test_summary_keeps_one_list_item_per_troubled_resolver(name: str) -> None:
    result = make_result([name, name])
    items = section(run_summary(result), "### Resolvers not up")
    troubled = [r for r in result.measurement.resolvers if r.health != "up"]
    assert len(items) == len(troubled)
    for item, resolver in zip(items, troubled, strict=True):
        assert item.startswith("- ")
        assert f" ({resolver.group}): {resolver.health}: " in item


def test_summary_escapes_rather_than_drops() -> None:
    markdown = run_summary(make_result(HOSTILE))
    # The text is still there for a reader, shown literally.
    assert "\\<script\\>alert\\(1\\)\\</script\\>" in markdown
    assert "a\\|b\\|c" in markdown
    assert "\\\\x1b\\[31mred" in markdown  # ESC shown as \x1b, its backslash escaped for Markdown
    assert "evil\\.example\\\\x0a\\# injected heading" in markdown


def test_summary_escapes_the_vantage_and_counts_the_verdicts() -> None:
    result = make_result(HOSTILE)
    measurement = Measurement("x|<b>\n# v", result.measurement.resolvers, ())
    hostile_vantage = RunResult(
        result.date, measurement, result.entries, result.events, "", None, False
    )
    markdown = run_summary(hostile_vantage)
    assert markdown.splitlines()[0] == f"## registry-monitor: x\\|\\<b\\>\\\\x0a\\# v, {DATE}"
    tally = section(markdown, "| verdict | names |")
    half = len(HOSTILE) // 2
    assert tally == ["|---|---:|", f"| missing | {half} |", f"| tampered | {half} |"]
    assert f"**{half} disappeared, {half} degraded**" in markdown


# --------------------------------------------------------------------------- commit message


@pytest.mark.parametrize("name", HOSTILE, ids=range(len(HOSTILE)))
def test_commit_message_keeps_its_shape(name: str) -> None:
    result = make_result([name, name, name, name])
    message = commit_message(VANTAGE, DATE, result.events, result.entries)
    assert controls_in(message) == set()
    lines = message.splitlines()
    events = len(result.events)
    # subject, blank, one line per event, blank, two trailers
    assert len(lines) == 1 + 1 + events + 1 + 2, "a newline in a name must not add a line"
    assert lines[0].startswith(f"{VANTAGE}: 2 disappeared, 2 degraded: ")
    assert lines[0].endswith(f", and 1 more ({DATE})")
    for line, event in zip(lines[2 : 2 + events], result.events, strict=True):
        assert line.startswith(f"{event.event}: ")
        assert line.endswith(f" ({event.before} → {event.after})")
    trailers = [ln for ln in lines if ln.startswith("Monitor-")]
    assert trailers == [f"Monitor-Date: {DATE}", f"Monitor-Vantage: {VANTAGE}"]
    assert lines[-2:] == trailers


def test_commit_message_shows_the_hidden_characters() -> None:
    result = make_result(HOSTILE)
    message = commit_message(VANTAGE, DATE, result.events, result.entries)
    assert "\\x1b[31mred" in message
    assert "crlf.example\\x0d\\x0aMonitor-Vantage: forged" in message
    assert "\\u202eoverride" in message


# --------------------------------------------------------------------------- feed


@pytest.mark.parametrize("name", HOSTILE, ids=range(len(HOSTILE)))
def test_feed_is_well_formed_and_escaped(name: str) -> None:
    result = make_result([name, name])
    text = render_feed(VANTAGE, entries_for(VANTAGE, result.events), [])
    assert "<script" not in text.lower()
    assert controls_in(text) == set()
    root = ET.fromstring(text)  # raises on anything that is not well-formed XML
    entries = root.findall(f"{{{ATOM}}}entry")
    assert len(entries) == len(result.events)
    for node, event in zip(entries, result.events, strict=True):
        title = node.findtext(f"{{{ATOM}}}title") or ""
        assert "\n" not in title and controls_in(title) == set()
        assert title.startswith(f"{event.event}: ")
        # What a feed reader shows is the name, its hidden characters spelled out (how many
        # backslashes spell them is not this test's business).
        assert event.shown.replace("\\", "") in title.replace("\\", "")
    assert len(parse_feed(text)) == len(result.events)


def test_feed_keeps_the_markup_as_text() -> None:
    result = make_result(HOSTILE)
    text = render_feed(VANTAGE, entries_for(VANTAGE, result.events), [])
    titles = [n.text or "" for n in ET.fromstring(text).iter(f"{{{ATOM}}}title")]
    assert any("<script>alert(1)</script>" in t for t in titles), "escaped, then read back"
    assert "&lt;script&gt;" in text
    assert "&amp;lt;already&amp;gt;" in text, "entities in a name are not taken as entities"


# --------------------------------------------------------------------------- evidence


def with_pages_and_tcp(names: list[str]) -> RunResult:
    """A run where a hostile name is a suspected block page's address and its domains, and a
    national resolver gave no answer over TCP."""
    base = make_result(["plain"])
    pages = tuple(
        BlockPage(name, ("nsdi-a",), (f"a{i}.example", name, f"c{i}.example"))
        for i, name in enumerate(names)
    )
    health = (ResolverHealth("nsdi-a", Group.NATIONAL, Health.UP, None, TcpHealth.REFUSED),)
    m = base.measurement
    measurement = Measurement(m.vantage, health, m.domains, block_pages=pages)
    return RunResult(
        base.date, measurement, base.entries, base.events, base.message, base.commit, True
    )


@pytest.mark.parametrize("name", HOSTILE, ids=range(len(HOSTILE)))
def test_summary_lists_suspected_block_pages_escaped(name: str) -> None:
    markdown = run_summary(with_pages_and_tcp([name, "10.0.34.34"]))
    rows = section(markdown, "### Suspected block pages")
    assert rows[0].startswith("Given by the national resolvers for names of several")
    table = section(markdown, "| address or host | from | names |")
    assert table[0] == "|---|---|---|"
    assert len(table) == 3, "a newline in a page must not add or split a row"
    for row in table[1:]:
        assert unescaped(row, "|") == 4, row
    assert (
        table[2] == "| 10\\.0\\.34\\.34 | nsdi\\-a | a1\\.example, 10\\.0\\.34\\.34, c1\\.example |"
    )
    assert not controls_in(markdown)


def test_summary_says_which_resolvers_gave_no_answer_over_tcp() -> None:
    markdown = run_summary(with_pages_and_tcp([]))
    assert section(markdown, "### Resolvers that gave no answer over TCP") == [
        "- nsdi\\-a (national): tcp: refused; its re-queries went over UDP"
    ]
    assert "### Suspected block pages" not in markdown
