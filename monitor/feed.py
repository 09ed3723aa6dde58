"""feed.atom: the latest flag events of a vantage point as an Atom feed (RFC 4287)."""

from __future__ import annotations

import html
import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass

from monitor.changes import Event
from monitor.escape import escape_text

ATOM = "http://www.w3.org/2005/Atom"
KEEP = 200  # entries kept in the feed; older ones live on in git history


@dataclass(frozen=True)
class FeedEntry:
    """One entry of the feed: text safe for one line (control characters already escaped),
    not yet escaped for XML. Reading a feed back gives the same entries, so rendering it
    again changes nothing."""

    id: str
    title: str
    updated: str
    summary: str


def _xml(text: str) -> str:
    """Escape for XML text; characters XML cannot hold at all become \\xNN as on one line."""
    return html.escape(escape_text(text) if _NOT_XML.search(text) else text, quote=True)


_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def entries_for(vantage: str, events: Sequence[Event]) -> list[FeedEntry]:
    """Return one feed entry per event; the id is stable, so feed readers never see it twice."""
    return [
        FeedEntry(
            id=escape_text(f"tag:registry-monitor,2026:{vantage}/{e.date}/{e.domain}/{e.event}"),
            title=e.line,
            updated=e.date,
            summary=f"{vantage}, {e.date}: {e.line}.",
        )
        for e in events
    ]


def parse_feed(text: str) -> list[FeedEntry]:
    """Return the entries of a feed this module wrote; an unreadable feed gives none."""
    try:
        root = ET.fromstring(text)
    except ET.ParseError:
        return []
    entries = []
    for node in root.findall(f"{{{ATOM}}}entry"):
        fields = {child.tag.split("}")[-1]: child.text or "" for child in node}
        entries.append(
            FeedEntry(
                fields.get("id", ""),
                fields.get("title", ""),
                fields.get("updated", "")[:10],
                fields.get("summary", ""),
            )
        )
    return [e for e in entries if e.id]


def render_feed(vantage: str, new: Sequence[FeedEntry], previous: Sequence[FeedEntry]) -> str:
    """Return the feed text: ``new`` entries first, then the previous ones, at most KEEP."""
    seen = set()
    entries = []
    for entry in [*new, *previous]:
        if entry.id not in seen:
            seen.add(entry.id)
            entries.append(entry)
    entries = entries[:KEEP]
    updated = max((e.updated for e in entries), default="1970-01-01")
    lines = [
        '<?xml version="1.0" encoding="utf-8"?>',
        f'<feed xmlns="{ATOM}">',
        f"  <title>registry-monitor: {_xml(vantage)}</title>",
        f"  <id>tag:registry-monitor,2026:{_xml(vantage)}</id>",
        f"  <updated>{_xml(updated)}T00:00:00Z</updated>",
        "  <author><name>registry-monitor</name></author>",
    ]
    for e in entries:
        lines += [
            "  <entry>",
            f"    <id>{_xml(e.id)}</id>",
            f"    <title>{_xml(e.title)}</title>",
            f"    <updated>{_xml(e.updated)}T00:00:00Z</updated>",
            f"    <summary>{_xml(e.summary)}</summary>",
            "  </entry>",
        ]
    lines.append("</feed>")
    return "\n".join(lines) + "\n"
