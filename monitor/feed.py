"""feed.atom: the latest flag events of a vantage point as an Atom feed (RFC 4287).

What the feed is made of:

- **Ids** are tag URIs unique to the repository and the vantage point:
  ``tag:registry-monitor,2026:REPOSITORY/VANTAGE[/DATE/DOMAIN/EVENT]``. REPOSITORY is the
  GitHub page the commit links use, without its scheme (``github.com/owner/repo``, from the
  ``origin`` remote or from GitHub Actions' variables), so each fork has its own ids. Without
  one it is the identity the feed already carries in its own id, else ``root-SHA`` (the
  repository's root commit), else, in a repository with no commit yet, ``first-run-HEX`` (a
  digest of the first snapshot). Entries read back from yesterday's feed keep their ids, so a
  reader never sees an entry twice, even when the identity changes (a repository pushed to
  GitHub after its first runs).
- **Links.** The run writes the feed before it commits, so an entry cannot name the commit
  that carries it. A new entry links the history of ``snapshots/<vantage>/`` on the branch
  (``BASE/commits/BRANCH/snapshots/VANTAGE``), whose newest commit is that run's on the day the
  entry is news; every later run knows from git which commit each earlier run made and links
  the entry to it (``BASE/commit/SHA``), a link that never changes. The previous commit would
  be stable but shows the state before the event; the report's anchors would be better still,
  but the run does not know whether or where the report is published. Without a known base
  the feed has no links and each entry still carries its content, so it stays valid.
- **Many events in one run**: above SUMMARY_ABOVE events, the run gets one summary entry
  listing them (the first SUMMARY_LISTS; the commit message has them all) instead of one
  entry per event.
- **Dates**: the feed's ``updated`` is its newest entry's date; a feed with no entry keeps the
  date of the run that first wrote it, so a quiet day leaves the file as it was.
"""

from __future__ import annotations

import hashlib
import html
import os
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import quote, urlsplit

import git

from monitor import links
from monitor.changes import Event, event_counts
from monitor.escape import escape_html, escape_text
from monitor.gitstore import SnapshotCommit
from monitor.snapshot import Entry
from monitor.vocabulary import Verdict

ATOM = "http://www.w3.org/2005/Atom"
KEEP = 200  # entries kept in the feed; older ones live on in git history
SUMMARY_ABOVE = 20  # a run with more events than this gets one summary entry
SUMMARY_LISTS = 500  # the events a summary entry lists
TAG = "tag:registry-monitor,2026:"

# What a move into each verdict means, for a person reading one entry (README's "Verdicts").
_WHAT: dict[str, str] = {
    Verdict.MISSING: "disappeared from the national DNS system: every national resolver that "
    "answered says it does not exist (NXDOMAIN), while the control resolvers find it",
    Verdict.FAILING: "gets no answer from the national resolvers (SERVFAIL, REFUSED or "
    "timeouts), while the control resolvers find it",
    Verdict.TAMPERED: "is answered by a national resolver with something no control gives (a "
    "bogon, a block page, an emptied answer or a blocking Extended DNS Error)",
    Verdict.PARTIAL: "is found by some national resolvers while others say it does not exist; "
    "the control resolvers find it",
    Verdict.PRESENT: "is back: the national resolvers find it, as the control resolvers do",
    Verdict.NATIONAL_ONLY: "exists only in the national DNS system: the control resolvers say "
    "it does not exist",
    Verdict.GONE: "is gone everywhere: the control resolvers say it does not exist either, so "
    "the domain itself is gone",
}
# An identity read back from a feed a person may have edited: tag URI characters only.
_IDENTITY = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:@/-]*")
# The markup this module writes in content; content read back with any other is shown as text.
_OWN_MARKUP = re.compile(r"</?(?:p|ul|li)>")


@dataclass(frozen=True)
class FeedEntry:
    """One entry of the feed: text safe for one line (control characters already escaped),
    not yet escaped for XML; ``content`` is HTML. ``link`` is the alternate link it was last
    written with ("" for none). Reading a feed back gives the same entries, so rendering it
    again changes nothing."""

    id: str
    title: str
    updated: str
    content: str
    link: str = ""


@dataclass(frozen=True)
class FeedSource:
    """Where a vantage point's feed lives: what its ids and links are made of.

    ``repository`` is the identity in every id (None: ids name the vantage only, as a caller
    that knows no repository gets); ``base`` the repository's web page (None: no links);
    ``branch`` the branch the snapshots are committed on (None: HEAD); ``date`` the run's date;
    ``commits`` maps each earlier run's date to the commit it made; ``written`` is the date of
    the feed as the last run left it, kept while the feed has no entry (so that a quiet day does
    not touch the file).
    """

    vantage: str
    repository: str | None = None
    base: str | None = None
    branch: str | None = None
    date: str | None = None
    commits: Mapping[str, str] = field(default_factory=dict)
    written: str | None = None

    @property
    def id(self) -> str:
        """The feed's own id; every entry's id starts with it."""
        where = f"{self.repository}/" if self.repository else ""
        return f"{TAG}{where}{_segment(self.vantage)}"

    @property
    def _ref(self) -> str:
        return quote(self.branch or "HEAD", safe="/")

    @property
    def self_link(self) -> str | None:
        """The URL the feed is read from (GitHub serves raw files from their own host)."""
        if self.base is None:
            return None
        path = f"{self._ref}/snapshots/{_segment(self.vantage)}/feed.atom"
        parts = urlsplit(self.base)
        if parts.hostname == "github.com":
            return f"https://raw.githubusercontent.com{parts.path}/{path}"
        return f"{self.base}/raw/{path}"

    def link_for(self, entry: FeedEntry) -> str:
        """Return an entry's alternate link: the commit of its run once that commit is known,
        else the link it had, else the history of the vantage's snapshots. Without a base (no
        remote known), "./": the snapshot folder the feed sits in, as a reader resolves it
        against the feed's own address (RFC 4287 §4.2.7, RFC 3986 §5)."""
        sha = self.commits.get(entry.updated) if entry.updated != self.date else None
        if self.base is not None and sha is not None:
            return f"{self.base}/commit/{sha}"
        if entry.link:
            return entry.link
        if self.base is not None:
            return f"{self.base}/commits/{self._ref}/snapshots/{_segment(self.vantage)}"
        return "./"


def _source(feed: FeedSource | str) -> FeedSource:
    return FeedSource(feed) if isinstance(feed, str) else feed


def _segment(text: str) -> str:
    """``text`` as one segment of a tag URI's path: IRI-safe, and no "/" of its own."""
    return quote(text, safe="")


def _xml(text: str) -> str:
    """Escape for XML text; characters XML cannot hold at all become \\xNN as on one line."""
    return html.escape(escape_text(text) if _NOT_XML.search(text) else text, quote=True)


_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


# --------------------------------------------------------------------------- entries


def entries_for(
    feed: FeedSource | str, events: Sequence[Event], lines: Iterable[Entry] = ()
) -> list[FeedEntry]:
    """Return the feed entries of ``events``: one per event, or one summary entry for a run
    date with more than SUMMARY_ABOVE events. Ids are stable, so feed readers never see an
    entry twice. ``lines`` (the run's snapshot entries) add what each resolver said."""
    source = _source(feed)
    by_date: dict[str, list[Event]] = {}
    for event in events:
        by_date.setdefault(event.date, []).append(event)
    flagged = {e.domain for e in events}
    statuses = {line.domain: line.statuses for line in lines if line.domain in flagged}
    entries: list[FeedEntry] = []
    for date, today in by_date.items():
        if len(today) > SUMMARY_ABOVE:
            entries.append(_summary_entry(source, date, today))
        else:
            entries += [_event_entry(source, e, statuses.get(e.domain, ())) for e in today]
    return entries


def _event_entry(
    source: FeedSource, event: Event, statuses: tuple[tuple[str, str], ...]
) -> FeedEntry:
    what = _WHAT.get(event.after, f"changed: {event.event}")
    parts = [
        f"<p>{escape_html(event.display or event.domain)} {escape_html(what)}.</p>",
        f"<p>Verdict: {escape_html(event.before)} → {escape_html(event.after)}. Run of "
        f"{escape_html(event.date)}, vantage point {escape_html(source.vantage)}.</p>",
    ]
    if statuses:
        said = ", ".join(f"{escape_html(r)}: {escape_html(s)}" for r, s in statuses)
        parts.append(f"<p>What each resolver said: {said}.</p>")
    path = "/".join(_segment(p) for p in (event.date, event.domain, event.event))
    return FeedEntry(f"{source.id}/{path}", event.line, event.date, "\n".join(parts))


def _summary_entry(source: FeedSource, date: str, events: Sequence[Event]) -> FeedEntry:
    counts = ", ".join(event_counts(events))
    title = f"{len(events)} events on {escape_text(date)}: {counts}"
    parts = [
        f"<p>{len(events)} events in the run of {escape_html(date)} at vantage point "
        f"{escape_html(source.vantage)}: {escape_html(counts)}.</p>",
        "<ul>",
        *(f"<li>{escape_html(e.line)}</li>" for e in events[:SUMMARY_LISTS]),
        "</ul>",
    ]
    if len(events) > SUMMARY_LISTS:
        more = len(events) - SUMMARY_LISTS
        parts.append(f"<p>And {more} more: the run's commit message lists every one.</p>")
    return FeedEntry(f"{source.id}/{_segment(date)}/summary", title, date, "\n".join(parts))


# --------------------------------------------------------------------------- reading back


def _root(text: str) -> ET.Element | None:
    try:
        root = ET.fromstring(text)
    except ET.ParseError:
        return None
    return root if root.tag == f"{{{ATOM}}}feed" else None


def parse_feed(text: str) -> list[FeedEntry]:
    """Return the entries of a feed this module wrote; an unreadable feed gives none.

    An entry of the feeds before content and links (a ``summary``) gets it as its content.
    Only http(s) links are kept: the feed may have been edited by hand.
    """
    root = _root(text)
    if root is None:
        return []
    entries = []
    for node in root.findall(f"{{{ATOM}}}entry"):
        content = node.find(f"{{{ATOM}}}content")
        if content is not None:
            body = content.text or ""
            if content.get("type") != "html" or "<" in _OWN_MARKUP.sub("", body):
                body = html.escape(body)
        else:
            body = html.escape(node.findtext(f"{{{ATOM}}}summary") or "")
        link = ""
        for child in node.findall(f"{{{ATOM}}}link"):
            href = child.get("href") or ""
            if child.get("rel", "alternate") == "alternate" and href.startswith(
                ("https://", "http://")
            ):
                link = href
                break
        entries.append(
            FeedEntry(
                node.findtext(f"{{{ATOM}}}id") or "",
                node.findtext(f"{{{ATOM}}}title") or "",
                (node.findtext(f"{{{ATOM}}}updated") or "")[:10],
                body,
                link,
            )
        )
    return [e for e in entries if e.id]


def stored_repository(text: str, vantage: str) -> str | None:
    """Return the repository identity in the id of a feed this module wrote for ``vantage``,
    or None (no feed, a feed of the days before identities, or an id edited out of shape)."""
    root = _root(text)
    if root is None:
        return None
    feed_id = root.findtext(f"{{{ATOM}}}id") or ""
    identity, _, tail = feed_id.removeprefix(TAG).rpartition("/")
    if not feed_id.startswith(TAG) or tail != _segment(vantage):
        return None
    return identity if _IDENTITY.fullmatch(identity) else None


# --------------------------------------------------------------------------- the source


def identity_of(base: str) -> str:
    """Return the repository identity of a web page: host and path, lower case (GitHub's
    owner and repository names are case-insensitive), ``github.com/owner/repo``."""
    parts = urlsplit(base)
    return f"{parts.netloc}{parts.path}".rstrip("/").lower()


def first_run_identity(vantage: str, date: str, lines: Iterable[Entry]) -> str:
    """Return the identity of a repository with no commit and no known page: a digest of its
    first snapshot, so that the same run gives the same feed."""
    digest = hashlib.sha256(f"{vantage}\n{date}\n".encode())
    # The names and verdicts, in one string: at a million lines, a call per line cost seconds.
    text = "\n".join(sorted(f"{e.domain} {e.verdict}" for e in lines))
    digest.update(text.encode())
    return f"first-run-{digest.hexdigest()[:16]}"


def source_for(
    repo: git.Repo,
    vantage: str,
    date: str,
    commits: Iterable[SnapshotCommit],
    previous: str,
    lines: Iterable[Entry],
    environ: Mapping[str, str] = os.environ,
) -> FeedSource:
    """Return the feed's source for a run on ``date``: the repository's page and identity (see
    the module's docstring), its branch, and the commit of each earlier run in ``commits``.
    ``previous`` is yesterday's feed text and ``lines`` today's snapshot entries."""
    base = links.repository_base(repo, environ)
    root = links.root_commit(repo)
    repository = (
        (identity_of(base) if base is not None else None)
        or stored_repository(previous, vantage)
        or (f"root-{root}" if root is not None else None)
        or first_run_identity(vantage, date, lines)
    )
    earlier = {c.date: c.sha for c in commits if c.date is not None and c.date < date}
    return FeedSource(
        vantage,
        repository,
        base,
        links.current_branch(repo),
        date,
        earlier,
        _written(previous, earlier),
    )


def _written(previous: str, runs: Mapping[str, str]) -> str | None:
    """The date of yesterday's feed when it is the date of a run (the feeds before this one
    said 1970-01-01 when they had no entry)."""
    root = _root(previous)
    written = (root.findtext(f"{{{ATOM}}}updated") or "")[:10] if root is not None else ""
    return written if written in runs else None


# --------------------------------------------------------------------------- rendering


def render_feed(
    feed: FeedSource | str, new: Sequence[FeedEntry], previous: Sequence[FeedEntry]
) -> str:
    """Return the feed text: ``new`` entries first, then the previous ones, at most KEEP.

    Its ``updated`` is the newest entry's date; a feed with no entry keeps the date it was
    written on, else takes the run's. Raises ValueError for a feed with no entry and no date.
    """
    source = _source(feed)
    seen = set()
    entries = []
    for entry in [*new, *previous]:
        if entry.id not in seen:
            seen.add(entry.id)
            entries.append(entry)
    entries = entries[:KEEP]
    updated = max((e.updated for e in entries), default=source.written or source.date)
    if updated is None:
        raise ValueError("a feed with no entry needs the run's date")
    lines = [
        '<?xml version="1.0" encoding="utf-8"?>',
        f'<feed xmlns="{ATOM}">',
        f"  <title>registry-monitor: {_xml(source.vantage)}</title>",
        f"  <id>{_xml(source.id)}</id>",
        f"  <updated>{_xml(updated)}T00:00:00Z</updated>",
        "  <author><name>registry-monitor</name></author>",
    ]
    if source.self_link is not None:
        lines.append(
            f'  <link rel="self" type="application/atom+xml" href="{_xml(source.self_link)}"/>'
        )
    if source.base is not None:
        lines.append(f'  <link rel="alternate" type="text/html" href="{_xml(source.base)}"/>')
    for e in entries:
        lines += [
            "  <entry>",
            f"    <id>{_xml(e.id)}</id>",
            f"    <title>{_xml(e.title)}</title>",
            f"    <updated>{_xml(e.updated)}T00:00:00Z</updated>",
            f'    <link rel="alternate" href="{_xml(source.link_for(e))}"/>',
            f'    <content type="html">{_xml(e.content)}</content>',
            "  </entry>",
        ]
    lines.append("</feed>")
    return "\n".join(lines) + "\n"
