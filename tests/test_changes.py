"""Events and commit messages from one day to the next (pure)."""

from __future__ import annotations

from typing import NamedTuple

import pytest

from monitor.changes import (
    Event,
    advance,
    commit_message,
    compare,
    derive_events,
    event_for,
)
from monitor.config import WatchedName
from monitor.history import DomainHistory, Period
from monitor.measure import DomainResult
from monitor.snapshot import Entry
from monitor.vocabulary import EVENT_ORDER, EventKind, Verdict

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


def result(
    domain: str, verdict: str, status: str = "ok", display: str | None = None
) -> DomainResult:
    name = WatchedName(domain, display or domain, None)
    return DomainResult(name, Verdict(verdict), tuple(RESOLVERS), (status, "ok"))


YESTERDAY = (("nsdi-a", "ok"), ("google", "ok"))


def entry(domain: str, verdict: str, since: str, today: str | None = None) -> Entry:
    return Entry(domain, verdict, since, YESTERDAY, today)


def test_disappearance_raises_an_event_and_restarts_since() -> None:
    previous = {"youtube.com": entry("youtube.com", "present", "2026-01-01")}
    entries, events = advance(
        previous, [result("youtube.com", "missing", "nxdomain")], RESOLVERS, "2026-02-10"
    )
    assert entries == [
        Entry("youtube.com", "missing", "2026-02-10", (("nsdi-a", "nxdomain"), ("google", "ok")))
    ]
    assert events == [
        Event(
            "youtube.com", EventKind.DISAPPEARED, "present", "missing", "2026-02-10", "youtube.com"
        )
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


DAY = "2026-03-01"
IDN = "xn--e1afmkfd.xn--p1ai"  # пример.рф


class Story(NamedTuple):
    """One name's day: yesterday's line ("verdict since [today]", or None for a new name), today's
    verdict and nsdi-a status, and the line and event that advance must make of them."""

    domain: str
    yesterday: str | None
    verdict: str
    status: str
    line: str
    event: str | None


S = Story
STORIES = [
    S("same.com", "present 2026-01-01", "present", "ok",
      "present 2026-01-01", None),
    S("still-missing.com", "missing 2026-02-01", "missing", "nxdomain",
      "missing 2026-02-01", None),
    S("lost.com", "present 2026-01-01", "missing", "nxdomain",
      "missing 2026-03-01", "disappeared"),
    S("new.com", None, "missing", "nxdomain",
      "missing 2026-03-01", None),
    S("doubt.com", "missing 2026-02-01", "unstable", "nxdomain",
      "missing 2026-02-01 unstable", None),
    S("dark.com", "present 2026-01-01", "inconclusive", "timeout",
      "present 2026-01-01 inconclusive", None),
    S("still-odd.com", "unstable 2026-02-15 unstable", "inconclusive", "timeout",
      "unstable 2026-02-15 inconclusive", None),
    S("settled.com", "unstable 2026-02-15 unstable", "missing", "nxdomain",
      "missing 2026-03-01", None),
    S("new-odd.com", None, "unstable", "ok",
      "unstable 2026-03-01 unstable", None),
    S("back.com", "missing 2026-02-01", "present", "ok",
      "present 2026-03-01", "restored"),
    S("back-after-doubt.com", "missing 2026-02-01 unstable", "present", "ok",
      "present 2026-03-01", "restored"),
    S("worse.com", "present 2026-01-01", "tampered", "ok",
      "tampered 2026-03-01", "degraded"),
    S("gone.com", "present 2026-01-01", "gone", "nxdomain",
      "gone 2026-03-01", "gone"),
    S("alive.com", "gone 2026-01-01", "present", "ok",
      "present 2026-03-01", None),
    S("only-here.com", "present 2026-01-01", "national-only", "ok",
      "national-only 2026-03-01", "appeared"),
    S(IDN, "present 2026-01-01", "failing", "servfail",
      "failing 2026-03-01", "degraded"),
]  # fmt: skip


def line_entry(domain: str, line: str, statuses: tuple[tuple[str, str], ...]) -> Entry:
    verdict, since, *today = line.split()
    return Entry(domain, verdict, since, statuses, today[0] if today else None)


def display(domain: str) -> str:
    return "пример.рф" if domain == IDN else domain


def advance_stories(stories: list[Story]) -> tuple[list[Entry], list[Event]]:
    previous = {
        s.domain: line_entry(s.domain, s.yesterday, YESTERDAY)
        for s in stories
        if s.yesterday is not None
    }
    results = [result(s.domain, s.verdict, s.status, display(s.domain)) for s in stories]
    return advance(previous, results, RESOLVERS, DAY)


def expected_entries(stories: list[Story]) -> list[Entry]:
    return [line_entry(s.domain, s.line, (("nsdi-a", s.status), ("google", "ok"))) for s in stories]


def expected_events(stories: list[Story]) -> list[Event]:
    """Every event, worst kind first, then in watchlist order."""
    events = [
        Event(
            s.domain,
            EventKind(s.event),
            s.yesterday.split()[0],
            s.line.split()[0],
            DAY,
            display(s.domain),
        )
        for s in stories
        if s.event is not None and s.yesterday is not None
    ]
    return [e for kind in EVENT_ORDER for e in events if e.event == kind]


def test_a_whole_day_of_mixed_names() -> None:
    entries, events = advance_stories(STORIES)
    assert entries == expected_entries(STORIES)
    assert [(e.domain, e.event, e.before, e.after) for e in events] == [
        ("lost.com", "disappeared", "present", "missing"),
        ("worse.com", "degraded", "present", "tampered"),
        (IDN, "degraded", "present", "failing"),
        ("back.com", "restored", "missing", "present"),
        ("back-after-doubt.com", "restored", "missing", "present"),
        ("only-here.com", "appeared", "present", "national-only"),
        ("gone.com", "gone", "present", "gone"),
    ]
    assert events == expected_events(STORIES)


@pytest.mark.parametrize("first", [s.domain for s in STORIES])
def test_every_name_is_judged_whatever_comes_before_it(first: str) -> None:
    """Each story first, the others after it in their order: no kind of day ends the loop."""
    stories = sorted(STORIES, key=lambda s: s.domain != first)
    entries, events = advance_stories(stories)
    assert entries == expected_entries(stories)
    assert events == expected_events(stories)


def test_commit_message_with_events() -> None:
    events = [
        Event("youtube.com", EventKind.DISAPPEARED, "present", "missing", "2026-11-28"),
        Event("dw.com", EventKind.RESTORED, "missing", "present", "2026-11-28"),
        Event("bbc.com", EventKind.DISAPPEARED, "present", "missing", "2026-11-28"),
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
        Event(f"d{i}.com", EventKind.DISAPPEARED, "present", "missing", "2026-11-28")
        for i in range(9)
    ]
    subject = commit_message("v", "2026-11-28", events, []).splitlines()[0]
    assert subject == "v: 9 disappeared: d0.com, d1.com, d2.com, and 6 more (2026-11-28)"


def test_hostile_names_cannot_break_the_message() -> None:
    event = Event(
        "x.com", EventKind.DISAPPEARED, "present", "missing", "2026-11-28", display="x\ny\x1b[31m"
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


def test_compare_skips_new_and_never_conclusive_names_and_goes_on() -> None:
    before = {
        "odd.com": entry("odd.com", "unstable", "2026-01-01", "unstable"),
        "settled.com": entry("settled.com", "unstable", "2026-01-01", "unstable"),
        "lost.com": entry("lost.com", "present", "2026-01-01"),
        IDN: entry(IDN, "missing", "2026-01-01"),
        "same.com": entry("same.com", "present", "2026-01-01"),
        "doubt.com": entry("doubt.com", "present", "2026-01-01"),
        "xn--zz.com": entry("xn--zz.com", "present", "2026-01-01"),  # no valid IDNA
    }
    after = {
        "new.com": entry("new.com", "missing", "2026-02-01"),
        "odd.com": entry("odd.com", "unstable", "2026-01-01", "unstable"),
        "settled.com": entry("settled.com", "missing", "2026-02-01"),
        "same.com": entry("same.com", "present", "2026-01-01"),
        "doubt.com": entry("doubt.com", "present", "2026-01-01", "inconclusive"),
        "lost.com": entry("lost.com", "missing", "2026-02-01"),
        IDN: entry(IDN, "present", "2026-02-01"),
        "xn--zz.com": entry("xn--zz.com", "gone", "2026-02-01"),
    }
    assert compare(before, after, "2026-02-01") == [
        Event("lost.com", EventKind.DISAPPEARED, "present", "missing", "2026-02-01", "lost.com"),
        Event(IDN, EventKind.RESTORED, "missing", "present", "2026-02-01", "пример.рф"),
        Event("xn--zz.com", EventKind.GONE, "present", "gone", "2026-02-01", "xn--zz.com"),
    ]


@pytest.mark.parametrize(
    ("event", "document"),
    [
        (
            Event("bbc.com", EventKind.DISAPPEARED, "present", "missing", "2026-11-28"),
            {"domain": "bbc.com", "event": "disappeared", "from": "present", "to": "missing",
             "date": "2026-11-28"},
        ),
        (
            Event("bbc.com", EventKind.RESTORED, "missing", "present", "2026-11-28", "bbc.com"),
            {"domain": "bbc.com", "event": "restored", "from": "missing", "to": "present",
             "date": "2026-11-28"},
        ),
        (
            Event(IDN, EventKind.DEGRADED, "present", "tampered", "2026-11-28", "пример.рф"),
            {"domain": IDN, "event": "degraded", "from": "present", "to": "tampered",
             "display": "пример.рф", "date": "2026-11-28"},
        ),
    ],
)  # fmt: skip
def test_event_document_is_designs_json(event: Event, document: dict[str, str]) -> None:
    """Keys in DESIGN.md's order; ``display`` only where it differs from the A-label."""
    assert list(event.document().items()) == list(document.items())


# ----------------------------------------------------------------------------- derive_events


def P(verdict: str, start: str, to: str | None = None) -> Period:
    return Period(verdict, start, to)


DATES = ["2026-01-01", "2026-01-02", "2026-01-03", "2026-01-05", "2026-01-06"]


@pytest.mark.parametrize(
    ("periods", "events"),
    [
        pytest.param([P("present", DATES[0])], [], id="quiet"),
        pytest.param(
            [P("present", DATES[0], DATES[1]), P("missing", DATES[2])],
            [("disappeared", "present", "missing", DATES[2])],
            id="disappeared",
        ),
        pytest.param(
            [
                P("missing", DATES[0], DATES[1]),
                P("unstable", DATES[2], DATES[2]),
                P("missing", DATES[3]),
            ],
            [],
            id="an unstable day raises and clears nothing",
        ),
        pytest.param(
            [
                P("missing", DATES[0], DATES[0]),
                P("inconclusive", DATES[1], DATES[2]),
                P("present", DATES[3]),
            ],
            [("restored", "missing", "present", DATES[3])],
            id="compared with the last conclusive verdict",
        ),
        pytest.param(
            [P("unstable", DATES[0], DATES[1]), P("missing", DATES[2])],
            [],
            id="never conclusive before: new",
        ),
        pytest.param(
            [P("present", DATES[0], DATES[0]), P("missing", DATES[2])],
            [],
            id="back on the watchlist after a gap: new",
        ),
        pytest.param(
            [
                P("present", DATES[0], DATES[0]),
                P("gone", DATES[1], DATES[2]),
                P("present", DATES[3], DATES[3]),
                P("failing", DATES[4]),
            ],
            [("gone", "present", "gone", DATES[1]), ("degraded", "present", "failing", DATES[4])],
            id="gone and back raises no restored",
        ),
    ],
)
def test_derive_events(periods: list[Period], events: list[tuple[str, str, str, str]]) -> None:
    found = derive_events([DomainHistory("a.example", periods)], DATES)
    assert [(e.event, e.before, e.after, e.date) for e in found] == events
    assert all(e.domain == e.display == "a.example" for e in found)


def test_a_line_edited_to_verdict_inconclusive_is_a_name_never_yet_conclusive() -> None:
    # A person may write any verdict into a line; `inconclusive` is never the last conclusive
    # one, so an unstable day writes the line of a name never yet conclusive.
    previous = {"a.example": entry("a.example", "inconclusive", "2026-01-01")}
    entries, events = advance(previous, [result("a.example", "unstable")], RESOLVERS, "2026-01-02")
    assert entries == [Entry("a.example", "unstable", "2026-01-01", YESTERDAY, "unstable")]
    assert events == []


def test_a_flagged_line_carries_the_codes_of_the_edes_sent_and_a_present_one_none() -> None:
    said = (("nsdi-a", ((15, "blocked by the registry"), (18, ""))),)
    flagged = DomainResult(
        WatchedName("youtube.com", "youtube.com", None),
        Verdict.MISSING,
        tuple(RESOLVERS),
        ("nxdomain", "ok"),
        ede=said,
    )
    present = DomainResult(
        WatchedName("dw.com", "dw.com", None),
        Verdict.PRESENT,
        tuple(RESOLVERS),
        ("ok", "ok"),
        ede=(("nsdi-a", ((15, "labelled, yet the controls agree"),)),),
    )
    unstable = DomainResult(
        WatchedName("bbc.com", "bbc.com", None),
        Verdict.UNSTABLE,
        tuple(RESOLVERS),
        ("nxdomain", "ok"),
        ede=said,
    )
    previous = {"bbc.com": entry("bbc.com", "missing", "2026-01-01")}
    entries, _ = advance(previous, [flagged, present, unstable], RESOLVERS, "2026-02-10")
    assert [(e.domain, e.ede) for e in entries] == [
        ("youtube.com", (("nsdi-a", (15, 18)),)),  # codes only: their texts vary
        ("dw.com", ()),
        ("bbc.com", (("nsdi-a", (15, 18)),)),  # still missing, unstable today
    ]


def test_lines_carry_the_name_as_people_read_it_and_a_tampered_one_its_addresses() -> None:
    kremlin = DomainResult(
        WatchedName("xn--e1ajeds9e.xn--p1ai", "кремль.рф", "Kremlin"),
        Verdict.TAMPERED,
        tuple(RESOLVERS),
        ("ok", "ok"),
        answers=(("nsdi-a", ("10.0.34.34",)),),
    )
    youtube = DomainResult(
        WatchedName("youtube.com", "youtube.com", "YouTube"),
        Verdict.PRESENT,
        tuple(RESOLVERS),
        ("ok", "ok"),
        answers=(("nsdi-a", ("10.0.34.34",)),),  # shown on a tampered line only
    )
    plain = result("dw.com", "present")
    entries, _ = advance({}, [kremlin, youtube, plain], RESOLVERS, "2026-02-10")
    assert [(e.note, e.answers) for e in entries] == [
        ("кремль.рф, Kremlin", (("nsdi-a", ("10.0.34.34",)),)),
        ("YouTube", ()),
        (None, ()),
    ]


def test_every_kind_of_line_keeps_its_note_and_the_evidence_of_its_verdict() -> None:
    blocked = (("nsdi-a", ((15, "blocked"),)),)
    gave = (("nsdi-a", ("10.0.34.34",)),)

    def said(domain: str, verdict: str) -> DomainResult:
        name = WatchedName(domain, domain, domain.split(".")[0].title())
        return DomainResult(
            name, Verdict(verdict), tuple(RESOLVERS), ("ok", "ok"), ede=blocked, answers=gave
        )

    previous = {
        "tampered.example": entry("tampered.example", "tampered", "2026-01-01"),
        "present.example": entry("present.example", "present", "2026-01-01"),
        "same.example": entry("same.example", "tampered", "2026-01-01"),
        "never.example": entry("never.example", "unstable", "2026-01-01", today="unstable"),
    }
    entries, _ = advance(
        previous,
        [
            said("tampered.example", "unstable"),  # unstable today, tampered still
            said("present.example", "unstable"),  # unstable today, present still
            said("same.example", "tampered"),  # the same verdict again
            said("never.example", "unstable"),  # never yet conclusive
            said("new.example", "tampered"),  # new to the watchlist
        ],
        RESOLVERS,
        "2026-01-02",
    )
    codes = (("nsdi-a", (15,)),)
    assert [(e.domain, e.verdict, e.today, e.ede, e.answers, e.note) for e in entries] == [
        ("tampered.example", "tampered", "unstable", codes, gave, "Tampered"),
        ("present.example", "present", "unstable", (), (), "Present"),
        ("same.example", "tampered", None, codes, gave, "Same"),
        ("never.example", "unstable", "unstable", codes, (), "Never"),
        ("new.example", "tampered", None, codes, gave, "New"),
    ]
