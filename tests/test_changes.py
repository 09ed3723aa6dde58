"""Events and commit messages from one day to the next (pure)."""

from __future__ import annotations

import pytest

from monitor.changes import Event, advance, commit_message, compare, event_for
from monitor.config import WatchedName
from monitor.measure import DomainResult
from monitor.snapshot import Entry
from monitor.vocabulary import Verdict

RESOLVERS = ["nsdi-a", "google"]


@pytest.mark.parametrize(
    ("before", "after", "event"),
    [
        ("present", "missing", "disappeared"),
        ("partial", "missing", "disappeared"),
        ("present", "failing", "degraded"),
        ("present", "tampered", "degraded"),
        ("missing", "partial", "degraded"),
        ("missing", "present", "restored"),
        ("failing", "present", "restored"),
        ("tampered", "present", "restored"),
        ("partial", "present", "restored"),
        ("gone", "present", None),
        ("national-only", "present", None),
        ("present", "national-only", "appeared"),
        ("present", "gone", "gone"),
        ("missing", "gone", "gone"),
        ("missing", "missing", None),
        ("present", "present", None),
    ],
)
def test_event_for(before: str, after: str, event: str | None) -> None:
    assert event_for(before, after) == event


def result(domain: str, verdict: str, status: str = "ok") -> DomainResult:
    name = WatchedName(domain, domain, None)
    return DomainResult(name, Verdict(verdict), tuple(RESOLVERS), (status, "ok"))


def entry(domain: str, verdict: str, since: str, today: str | None = None) -> Entry:
    return Entry(domain, verdict, since, (("nsdi-a", "ok"), ("google", "ok")), today)


def test_disappearance_raises_an_event_and_restarts_since() -> None:
    previous = {"youtube.com": entry("youtube.com", "present", "2026-01-01")}
    entries, events = advance(
        previous, [result("youtube.com", "missing", "nxdomain")], RESOLVERS, "2026-02-10"
    )
    assert entries == [
        Entry("youtube.com", "missing", "2026-02-10", (("nsdi-a", "nxdomain"), ("google", "ok")))
    ]
    assert events == [
        Event("youtube.com", "disappeared", "present", "missing", "2026-02-10", "youtube.com")
    ]


def test_same_verdict_keeps_since() -> None:
    previous = {"a.com": entry("a.com", "missing", "2026-02-10")}
    entries, events = advance(
        previous, [result("a.com", "missing", "nxdomain")], RESOLVERS, "2026-03-01"
    )
    assert entries[0].since == "2026-02-10" and events == []


@pytest.mark.parametrize("today", ["unstable", "inconclusive"])
def test_a_doubtful_day_neither_raises_nor_clears(today: str) -> None:
    previous = {"a.com": entry("a.com", "missing", "2026-02-10")}
    entries, events = advance(previous, [result("a.com", today)], RESOLVERS, "2026-03-01")
    assert events == []
    assert (entries[0].verdict, entries[0].since, entries[0].today) == (
        "missing",
        "2026-02-10",
        today,
    )
    # the next conclusive day compares with the last conclusive verdict, not with the doubt
    entries2, events2 = advance(
        {"a.com": entries[0]}, [result("a.com", "present")], RESOLVERS, "2026-03-02"
    )
    assert [e.event for e in events2] == ["restored"] and entries2[0].today is None


def test_new_names_raise_nothing_and_never_conclusive_shows_unstable() -> None:
    entries, events = advance(
        {}, [result("new.com", "missing"), result("odd.com", "unstable")], RESOLVERS, "2026-03-01"
    )
    assert events == []
    assert [(e.domain, e.verdict, e.today) for e in entries] == [
        ("new.com", "missing", None),
        ("odd.com", "unstable", "unstable"),
    ]
    # first conclusive day of a never-conclusive name raises nothing either
    _, events = advance(
        {"odd.com": entries[1]}, [result("odd.com", "missing")], RESOLVERS, "2026-03-02"
    )
    assert events == []


def test_removed_names_leave_the_snapshot() -> None:
    previous = {"gone.com": entry("gone.com", "present", "2026-01-01")}
    entries, events = advance(previous, [result("kept.com", "present")], RESOLVERS, "2026-03-01")
    assert [e.domain for e in entries] == ["kept.com"] and events == []


def test_commit_message_with_events() -> None:
    events = [
        Event("youtube.com", "disappeared", "present", "missing", "2026-11-28"),
        Event("dw.com", "restored", "missing", "present", "2026-11-28"),
        Event("bbc.com", "disappeared", "present", "missing", "2026-11-28"),
    ]
    from monitor.changes import sort_events

    message = commit_message("default", "2026-11-28", sort_events(events), [])
    assert message == (
        "default: 2 disappeared, 1 restored: youtube.com, bbc.com, dw.com (2026-11-28)\n"
        "\n"
        "disappeared: youtube.com (present → missing)\n"
        "disappeared: bbc.com (present → missing)\n"
        "restored: dw.com (missing → present)\n"
        "\n"
        "Monitor-Date: 2026-11-28\n"
        "Monitor-Vantage: default\n"
    )


def test_quiet_day_message() -> None:
    entries = [
        entry(f"d{i}.com", "missing" if i < 13 else "present", "2026-01-01") for i in range(50)
    ]
    message = commit_message("default", "2026-11-28", [], entries)
    assert message.splitlines()[0] == "default: no change, 13 missing of 50 (2026-11-28)"
    assert message.endswith("\n\nMonitor-Date: 2026-11-28\nMonitor-Vantage: default\n")


def test_many_events_are_cut_in_the_subject() -> None:
    events = [
        Event(f"d{i}.com", "disappeared", "present", "missing", "2026-11-28") for i in range(9)
    ]
    subject = commit_message("v", "2026-11-28", events, []).splitlines()[0]
    assert subject == "v: 9 disappeared: d0.com, d1.com, d2.com, and 6 more (2026-11-28)"


def test_hostile_names_cannot_break_the_message() -> None:
    event = Event(
        "x.com", "disappeared", "present", "missing", "2026-11-28", display="x\ny\x1b[31m"
    )
    message = commit_message("v", "2026-11-28", [event], [])
    lines = message.splitlines()
    assert lines[0] == "v: 1 disappeared: x\\x0ay\\x1b[31m (2026-11-28)"
    assert "\x1b" not in message and len(lines) == 6


def test_compare_for_diff() -> None:
    before = {
        "a.com": entry("a.com", "present", "2026-01-01"),
        "b.com": entry("b.com", "missing", "2026-01-01"),
    }
    after = {
        "a.com": entry("a.com", "missing", "2026-02-01"),
        "b.com": entry("b.com", "present", "2026-02-01"),
        "c.com": entry("c.com", "missing", "2026-02-01"),
    }
    events = compare(before, after, "2026-02-01")
    assert [(e.domain, e.event) for e in events] == [
        ("a.com", "disappeared"),
        ("b.com", "restored"),
    ]
