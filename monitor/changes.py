"""Changes: the one place events are derived, today's entries, and the commit message (pure)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from monitor.config import WatchedName
from monitor.escape import escape_text
from monitor.measure import DomainResult
from monitor.names import to_display
from monitor.snapshot import Entry, shared_statuses
from monitor.vocabulary import EVENT_ORDER, FLAGGED, EventKind, Verdict, conclusive

# The verdict on the line of a domain never yet conclusive (DESIGN.md); it raises nothing.
NEVER_CONCLUSIVE = Verdict.UNSTABLE.value
NAMES_IN_SUBJECT = 3


@dataclass(frozen=True, slots=True)
class Event:
    """A domain's verdict changed in a way worth telling people."""

    domain: str
    event: EventKind
    before: str
    after: str
    date: str
    display: str | None = None

    @property
    def shown(self) -> str:
        """The name as people read it (Unicode where it differs), escaped for one line."""
        return escape_text(self.display or self.domain)

    @property
    def line(self) -> str:
        """The event on one line for people: "disappeared: bbc.com (present → missing)".

        The verdicts come from snapshot files, which a person may have edited: escaped too.
        """
        move = f"{escape_text(self.before)} → {escape_text(self.after)}"
        return f"{self.event}: {self.shown} ({move})"

    def document(self) -> dict[str, str]:
        """Return the event as in DESIGN.md's JSON (``from``/``to``)."""
        doc = {"domain": self.domain, "event": self.event, "from": self.before, "to": self.after}
        if self.display and self.display != self.domain:
            doc["display"] = self.display
        doc["date"] = self.date
        return doc


def event_for(before: str, after: str) -> EventKind | None:
    """Return the event raised by a move between two conclusive verdicts, or None."""
    if before == after:
        return None
    if after == Verdict.MISSING:
        return EventKind.DISAPPEARED
    if after in FLAGGED:
        return EventKind.DEGRADED
    if after == Verdict.PRESENT:
        return EventKind.RESTORED if before in FLAGGED else None
    if after == Verdict.NATIONAL_ONLY:
        return EventKind.APPEARED
    if after == Verdict.GONE:
        return EventKind.GONE
    return None


def event_since(last: str, now: str) -> EventKind | None:
    """Return the event that the verdict ``now`` raises against ``last``, the last verdict of
    the domain's line (or period), or None. Only conclusive verdicts are compared: a day that is
    not conclusive raises and clears nothing, and a name never yet conclusive raises nothing.
    """
    if not (conclusive(last) and conclusive(now)):
        return None
    return event_for(last, now)


def advance(
    previous: Mapping[str, Entry],
    results: Iterable[DomainResult],
    resolvers: Sequence[str],
    date: str,
) -> tuple[list[Entry], list[Event]]:
    """Return today's entries and the events they raise against ``previous``.

    An unstable or inconclusive day keeps the last conclusive verdict (adding ``today``) and
    raises nothing; a name new to the watchlist, or never yet conclusive, raises nothing; names
    no longer watched are simply not in the result.
    """
    entries: list[Entry] = []
    events: list[Event] = []
    for result in results:
        today = result.verdict
        statuses = shared_statuses(
            tuple((name, s) for name in resolvers if (s := result.status(name)))
        )
        old = previous.get(result.domain)
        note = note_of(result.name)
        if not conclusive(today):
            if old is not None and conclusive(old.verdict):
                entries.append(
                    Entry(
                        result.domain,
                        old.verdict,
                        old.since,
                        statuses,
                        today.value,
                        _flagged_ede(old.verdict, result),
                        _tampered_answers(old.verdict, result),
                        note,
                    )
                )
            else:
                since = old.since if old is not None else date
                ede = _flagged_ede(NEVER_CONCLUSIVE, result)
                entries.append(
                    Entry(
                        result.domain, NEVER_CONCLUSIVE, since, statuses, today.value, ede, (), note
                    )
                )
            continue
        ede = _flagged_ede(today, result)
        gave = _tampered_answers(today, result)
        if old is not None and old.verdict == today.value:
            entries.append(
                Entry(result.domain, today.value, old.since, statuses, None, ede, gave, note)
            )
            continue
        entries.append(Entry(result.domain, today.value, date, statuses, None, ede, gave, note))
        if old is not None and (kind := event_since(old.verdict, today)) is not None:
            events.append(
                Event(result.domain, kind, old.verdict, today.value, date, result.name.display)
            )
    return entries, sort_events(events)


def note_of(name: WatchedName) -> str | None:
    """Return the note at the end of a name's line: its Unicode form where it differs from the
    A-label, and its label (``кремль.рф, Kremlin``), or None."""
    parts = [p for p in (name.display if name.display != name.domain else None, name.label) if p]
    return ", ".join(parts) or None


def _tampered_answers(
    verdict: str, result: DomainResult
) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """The addresses a tampered line shows, by national resolver."""
    return result.answers if verdict == Verdict.TAMPERED else ()


def _flagged_ede(verdict: str, result: DomainResult) -> tuple[tuple[str, tuple[int, ...]], ...]:
    """The EDE codes a line carries (codes only: their texts vary): only a flagged line
    (verdict not present) does."""
    if verdict == Verdict.PRESENT:
        return ()
    return tuple(
        (name, tuple(sorted({code for code, _ in said}))) for name, said in result.ede if said
    )


def compare(before: Mapping[str, Entry], after: Mapping[str, Entry], date: str) -> list[Event]:
    """Return the events between two snapshots (for ``diff``): last conclusive verdicts compared."""
    events = []
    for domain, new in after.items():
        old = before.get(domain)
        if old is not None and (kind := event_since(old.verdict, new.verdict)) is not None:
            events.append(Event(domain, kind, old.verdict, new.verdict, date, display_of(domain)))
    return sort_events(events)


class _Period(Protocol):
    """A run of days with one verdict, as history.Period is (``to`` None while current)."""

    @property
    def verdict(self) -> str: ...
    @property
    def start(self) -> str: ...
    @property
    def to(self) -> str | None: ...


class _History(Protocol):
    """A domain's periods, oldest first, as history.DomainHistory is."""

    @property
    def domain(self) -> str: ...
    @property
    def periods(self) -> Sequence[_Period]: ...


def derive_events(histories: Iterable[_History], dates: Sequence[str]) -> list[Event]:
    """Return the events the periods imply, as ``run`` raised them (for the report and the
    export): each conclusive verdict against the last conclusive one; a name watched again after
    a gap starts afresh.

    Oldest day first; within a day, worst kind first, then by name.
    """
    following = {dates[i]: dates[i + 1] for i in range(len(dates) - 1)}
    events: list[Event] = []
    for h in histories:
        last: str | None = None
        previous: _Period | None = None
        for period in h.periods:
            if previous is not None and (
                previous.to is None or following.get(previous.to) != period.start
            ):
                last = None  # dropped from the watchlist and added again: new, raises nothing
            previous = period
            if last is not None and (kind := event_since(last, period.verdict)) is not None:
                shown = display_of(h.domain)
                events.append(Event(h.domain, kind, last, period.verdict, period.start, shown))
            if conclusive(period.verdict):
                last = period.verdict
    events.sort(key=lambda e: (e.date, EVENT_ORDER.index(e.event), e.domain))
    return events


def display_of(domain: str) -> str:
    """Return the Unicode form of an A-label read from a snapshot (itself if it does not decode)."""
    try:
        return to_display(domain)
    except ValueError:
        return domain


def sort_events(events: Iterable[Event]) -> list[Event]:
    """Return events in the order people read them: by kind (worst first), then as given.

    ``advance`` gives them in watchlist order, so the names a watchlist puts first lead.
    """
    return sorted(events, key=lambda e: EVENT_ORDER.index(e.event))


def event_counts(events: Iterable[Event]) -> list[str]:
    """Return "2 disappeared"-style counts, worst kind first, for the kinds present."""
    events = list(events)
    counts = [(kind, sum(e.event == kind for e in events)) for kind in EVENT_ORDER]
    return [f"{n} {kind}" for kind, n in counts if n]


def commit_message(
    vantage: str, date: str, events: Sequence[Event], entries: Sequence[Entry]
) -> str:
    """Return the commit message of DESIGN.md: a subject line, one line per event, trailers."""
    if events:
        counts = event_counts(events)
        names = [e.shown for e in events[:NAMES_IN_SUBJECT]]
        if len(events) > NAMES_IN_SUBJECT:
            names.append(f"and {len(events) - NAMES_IN_SUBJECT} more")
        subject = f"{vantage}: {', '.join(counts)}: {', '.join(names)} ({date})"
        body = "\n".join(e.line for e in events)
        body += "\n\n"
    else:
        missing = sum(e.verdict == "missing" for e in entries)
        subject = f"{vantage}: no change, {missing} missing of {len(entries)} ({date})"
        body = ""
    return f"{subject}\n\n{body}Monitor-Date: {date}\nMonitor-Vantage: {vantage}\n"
