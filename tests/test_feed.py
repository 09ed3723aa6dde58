"""feed.atom: valid Atom, escaped, stable when read back and written again."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from monitor.changes import Event
from monitor.feed import ATOM, KEEP, entries_for, parse_feed, render_feed
from monitor.vocabulary import EventKind

HOSTILE = Event(
    "x.com", EventKind.DISAPPEARED, "present", "missing", "2026-01-01", "a\\b<i>\x1b[31m&\n"
)


def test_feed_is_atom_and_escapes_what_it_shows() -> None:
    text = render_feed("v", entries_for("v", [HOSTILE]), [])
    root = ET.fromstring(text)
    assert root.tag == f"{{{ATOM}}}feed"
    (entry,) = root.findall(f"{{{ATOM}}}entry")
    title = entry.findtext(f"{{{ATOM}}}title")
    assert title == "disappeared: a\\\\b<i>\\x1b[31m&\\x0a (present → missing)"
    assert "\x1b" not in text and "<i>" not in text


def test_reading_back_and_writing_again_changes_nothing() -> None:
    first = render_feed("v", entries_for("v", [HOSTILE]), [])
    second = render_feed("v", [], parse_feed(first))
    assert second == first
    assert render_feed("v", [], parse_feed(second)) == first


def test_new_entries_come_first_and_the_feed_is_bounded() -> None:
    old = [
        Event(f"d{i}.com", EventKind.DISAPPEARED, "present", "missing", "2026-01-01")
        for i in range(KEEP)
    ]
    feed = render_feed("v", entries_for("v", old), [])
    new = Event("new.com", EventKind.RESTORED, "missing", "present", "2026-01-02")
    entries = parse_feed(render_feed("v", entries_for("v", [new]), parse_feed(feed)))
    assert len(entries) == KEEP
    assert entries[0].title == "restored: new.com (missing → present)"
    assert entries[0].updated == "2026-01-02"


def test_an_unreadable_feed_starts_afresh() -> None:
    assert parse_feed("<feed><entry>") == []
