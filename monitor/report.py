"""Reports: a static HTML page of every vantage point's verdicts over time, read from git history.

The numbers come from :func:`monitor.history.collect` (only the changed lines of the snapshot
files), so three years of nightly runs over a thousand names build in a few seconds. This
module turns them into plain values (``Section``, ``NameView``...) and the Jinja2 templates in
``monitor/templates/`` turn those into markup, with autoescaping on for everything: a string
from a snapshot can never become markup. The page loads nothing from the network: styles and
script are inline and pinned by a Content Security Policy.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import git
import jinja2
from markupsafe import Markup

from monitor import __version__, gitstore
from monitor.changes import Event, display_of, event_counts
from monitor.charts import (
    COLOURS,
    OTHER_COLOUR,
    UNWATCHED_COLOUR,
    Chart,
    Scale,
    Steps,
    Strip,
    Tick,
    chart,
    coord,
    ink,
    layers,
    number,
    order,
    strip,
)
from monitor.escape import escape_text
from monitor.files import file_error, write_atomically
from monitor.history import DomainHistory, LineChange, VantageReport, collect, line_changes
from monitor.links import resolve_link
from monitor.snapshot import FEED_FILE, Entry
from monitor.vocabulary import EventKind, Verdict

__all__ = ["EXPORT", "INDEX", "MEANINGS", "Site", "build_site", "name_anchor", "render_html"]

INDEX = "index.html"
EXPORT = "history.sqlite"  # the nightly workflow publishes the export beside the page
_OPEN_DAYS = 10  # event days shown unfolded

# What each verdict means, in the README's words (tests/test_report.py holds them equal).
MEANINGS: dict[str, str] = {
    Verdict.PRESENT: "the controls and the national resolvers all find the name.",
    Verdict.MISSING: "the controls find it, every national resolver that answered says "
    "NXDOMAIN: it was deleted from the national system.",
    Verdict.FAILING: "the controls find it, no national resolver gives an answer (SERVFAIL, "
    "REFUSED, timeouts); a refusal that declares a block (EDE 15-18) is shown with it.",
    Verdict.TAMPERED: "a national resolver finds the name but its answer is not the name's "
    "own, and no control's answer shows the same: a bogon, a listed block-page address or "
    "host, an emptied answer, or an answer the resolver itself labels as forged or blocked "
    "(EDE 4, 15, 16, 17).",
    Verdict.PARTIAL: "the controls find it; some national resolvers do and others say NXDOMAIN.",
    Verdict.NATIONAL_ONLY: "the controls say NXDOMAIN but the national system has the name.",
    Verdict.GONE: "nobody has it any more (the domain itself is gone).",
    Verdict.UNSTABLE: "the controls disagree with each other, or a re-query gave another verdict.",
    Verdict.INCONCLUSIVE: "too few controls answered (min_controls).",
}
# What each event means (DESIGN.md): the move between two conclusive verdicts that raises it.
EVENT_MEANINGS: dict[str, str] = {
    EventKind.DISAPPEARED: "into missing.",
    EventKind.DEGRADED: "into failing, tampered or partial.",
    EventKind.RESTORED: "from missing, failing, tampered or partial back to present.",
    EventKind.APPEARED: "into national-only.",
    EventKind.GONE: "into gone.",
}
_EVENT_COLOURS: dict[str, str] = {
    EventKind.DISAPPEARED: COLOURS[Verdict.MISSING],
    EventKind.DEGRADED: COLOURS[Verdict.FAILING],
    EventKind.RESTORED: COLOURS[Verdict.PRESENT],
    EventKind.APPEARED: COLOURS[Verdict.NATIONAL_ONLY],
    EventKind.GONE: COLOURS[Verdict.GONE],
}


@dataclass(frozen=True)
class Site:
    """What :func:`build_site` wrote."""

    index: Path
    vantages: tuple[str, ...]
    runs: int
    events: int
    link: str | None


def build_site(
    repo: git.Repo,
    out: Path,
    *,
    vantages: Sequence[str] = (),
    link: str | None = None,
    labels: Mapping[str, str] | None = None,
    rev: str = "HEAD",
    now: datetime.datetime | None = None,
) -> Site:
    """Write the report to ``out``/index.html (atomically) and return what was written.

    ``link`` is the repository's web page for commit links (default: from the origin remote
    when it is on GitHub); ``labels`` maps A-labels to the watchlist's labels; ``now`` is when
    the page says it was generated (default: the current time). Raises what :func:`collect`
    and :func:`resolve_link` raise, and FileError when ``out`` cannot be written.
    """
    base = resolve_link(repo, link)
    reports = collect(repo, vantages, rev)
    head = gitstore.resolve_commit(repo, rev) or ""
    lines = {r.vantage: line_changes(repo, r.vantage, rev) for r in reports}
    root = Path(repo.working_tree_dir or ".")
    feeds = {r.vantage: _feed_link(base, r.vantage, root, out) for r in reports}
    page = render_html(
        reports, link=base, labels=labels or {}, head=head, lines=lines, feeds=feeds, now=now
    )
    index = out / INDEX
    try:
        write_atomically(index, page.encode("utf-8"))
    except OSError as exc:
        raise file_error(exc, index) from exc
    return Site(
        index,
        tuple(r.vantage for r in reports),
        sum(len(r.runs) for r in reports),
        sum(len(r.events) for r in reports),
        base,
    )


def name_anchor(vantage: str, domain: str) -> str:
    """Return the id of a name's view on the page (``#`` + it is its permalink):
    ``VANTAGE/A-LABEL``, any character outside letters, digits and ``_.-~`` percent-encoded,
    so that it is stable, unique and safe for any name a snapshot holds."""
    return f"{vantage}/{quote(domain, safe='')}"


def _feed_link(base: str | None, vantage: str, root: Path, out: Path) -> Link:
    path = f"snapshots/{vantage}/{FEED_FILE}"
    if base is not None:
        return Link(path, f"{base}/raw/HEAD/{path}")
    target = root / path
    if target.is_file() and out.resolve().is_relative_to(root.resolve()):
        return Link(path, Path(os.path.relpath(target.resolve(), out.resolve())).as_posix())
    return Link(path)


# --------------------------------------------------------------------------- what is shown


@dataclass(frozen=True)
class Link:
    """A link, or only its text when there is nowhere to link to."""

    text: str
    href: str | None = None


@dataclass(frozen=True)
class Name:
    """How a name is shown: Unicode form, the label beside it, the A-label in a tooltip."""

    domain: str
    shown: str
    label: str | None
    key: str  # what the filter box matches, lowercase
    anchor: str | None  # the id of its view; None for a name that was always present


@dataclass(frozen=True)
class Row:
    """A row of a name's view: a period (its verdict, dates and the snapshot line that began
    it), or a time off the watchlist (``verdict`` None)."""

    verdict: str | None
    start: str
    to: str | None
    statuses: str
    commit: Link | None
    line: Link | None


@dataclass(frozen=True)
class NameView:
    """A name that was ever anything but present: its timeline strip and its view."""

    name: Name
    verdict: str | None  # now; None when it is no longer watched
    since: str
    changes: int
    strip: Strip
    rows: tuple[Row, ...]


@dataclass(frozen=True)
class Flag:
    """A name not present at the latest run."""

    name: Name
    verdict: str
    last_conclusive: str | None  # when the latest run's verdict was not conclusive
    since: str
    statuses: str


@dataclass(frozen=True)
class DayEvent:
    kind: str
    name: Name
    before: str
    after: str


@dataclass(frozen=True)
class Day:
    date: str
    counts: str
    commit: Link | None
    events: tuple[DayEvent, ...]
    open: bool


@dataclass(frozen=True)
class Section:
    """One vantage point's part of the page."""

    vantage: str
    runs: int
    first: str
    latest: str
    latest_commit: Link | None
    watched: int
    events: int
    event_days: int
    feed: Link
    charts: tuple[tuple[str, Chart], ...]  # (heading, chart)
    ticks: tuple[Tick, ...]  # of the timelines' axis, the charts' own
    flags: tuple[Flag, ...]
    views: tuple[NameView, ...]
    quiet: tuple[Name, ...]
    days: tuple[Day, ...]


@dataclass(frozen=True)
class Overview:
    vantage: str
    date: str
    commit: Link
    watched: int
    counts: tuple[int, ...]
    last_event: str


def _statuses(entry: Entry) -> str:
    return " · ".join(f"{r} {s}" for r, s in entry.statuses)


class _Builder:
    """Turns one vantage point's report into a Section."""

    def __init__(
        self,
        report: VantageReport,
        base: str | None,
        labels: Mapping[str, str],
        lines: Mapping[str, Sequence[LineChange]],
        feed: Link,
    ) -> None:
        self.report = report
        self.base = base
        self.labels = labels
        self.lines = lines
        self.feed = feed
        present = Verdict.PRESENT
        self.eventful = {
            h.domain for h in report.histories if any(p.verdict != present for p in h.periods)
        }
        self._names: dict[str, Name] = {}

    def commit(self, sha: str) -> Link:
        return Link(sha[:7], None if self.base is None else f"{self.base}/commit/{sha}")

    def name(self, domain: str) -> Name:
        found = self._names.get(domain)
        if found is None:
            shown = display_of(domain)
            label = self.labels.get(domain) or None
            key = " ".join(p for p in dict.fromkeys([shown, domain, label or ""]) if p).lower()
            anchor = name_anchor(self.report.vantage, domain) if domain in self.eventful else None
            found = self._names[domain] = Name(domain, shown, label, key, anchor)
        return found

    def section(self) -> Section:
        report = self.report
        vantage = report.vantage
        if not report.runs:
            return Section(vantage, 0, "", "", None, 0, 0, 0, self.feed, (), (), (), (), (), ())
        scale = Scale.of([r.date for r in report.runs])
        latest = report.runs[-1]
        span = f"per run from {report.runs[0].date} to {latest.date}"
        every = layers(report.runs, False)
        charts = [("Names by verdict, per run", chart(report.runs, scale, every, f"Names {span}"))]
        flagged_layers = layers(report.runs, True)
        if flagged_layers and any(r.counts.get(Verdict.PRESENT) for r in report.runs):
            caption = f"Names not present {span}"
            charts.append(
                (
                    "Names not present, on their own scale",
                    chart(report.runs, scale, flagged_layers, caption),
                )
            )
        return Section(
            vantage,
            len(report.runs),
            report.runs[0].date,
            latest.date,
            self.commit(latest.sha),
            latest.watched,
            len(report.events),
            len({e.date for e in report.events}),
            self.feed,
            tuple(charts),
            tuple(scale.ticks()),
            self.flags(),
            self.views(Steps(report.runs, scale)),
            tuple(self.name(h.domain) for h in report.histories if h.domain not in self.eventful),
            self.days(),
        )

    def flags(self) -> tuple[Flag, ...]:
        flagged = sorted(
            (e for e in self.report.current.values() if e.current != Verdict.PRESENT),
            key=lambda e: (order(e.current), e.domain),
        )
        return tuple(
            Flag(
                self.name(e.domain),
                e.current,
                e.verdict if e.today is not None else None,
                e.since,
                _statuses(e),
            )
            for e in flagged
        )

    def views(self, steps: Steps) -> tuple[NameView, ...]:
        histories = [h for h in self.report.histories if h.domain in self.eventful]
        histories.sort(key=lambda h: h.domain)
        histories.sort(key=lambda h: h.periods[-1].start, reverse=True)  # latest change first
        histories.sort(key=_flagged_first)
        return tuple(self.view(h, steps) for h in histories)

    def view(self, h: DomainHistory, steps: Steps) -> NameView:
        name = self.name(h.domain)
        now = h.periods[-1]
        watched = now.to is None
        rows = []
        changes = self.lines.get(h.domain, ())
        j = -1
        previous_to: str | None = None
        for period in h.periods:
            if previous_to is not None:
                gap_from = steps.after(previous_to)
                if gap_from is not None and gap_from != period.start:
                    rows.append(Row(None, gap_from, steps.before(period.start), "", None, None))
            while j + 1 < len(changes) and changes[j + 1].date <= period.start:
                j += 1
            line = changes[j] if j >= 0 else None
            rows.append(
                Row(
                    period.verdict,
                    period.start,
                    period.to,
                    "" if line is None else _statuses(line.entry),
                    None if line is None else self.commit(line.sha),
                    None if line is None else self.line_link(line),
                )
            )
            previous_to = period.to
        if not watched:
            after = steps.after(now.to or "")
            if after is not None:
                rows.append(Row(None, after, None, "", None, None))
        return NameView(
            name,
            now.verdict if watched else None,
            now.start if watched else (steps.after(now.to or "") or now.to or ""),
            len(h.periods) - 1,
            strip(h, steps, name.shown),
            tuple(rows),
        )

    def line_link(self, line: LineChange) -> Link:
        text = f"{line.path}:{line.line}"
        if self.base is None:
            return Link(text)
        return Link(text, f"{self.base}/blob/{line.sha}/{line.path}#L{line.line}")

    def days(self) -> tuple[Day, ...]:
        by_date: dict[str, list[Event]] = {}
        for event in self.report.events:
            by_date.setdefault(event.date, []).append(event)
        days = []
        for n, date in enumerate(sorted(by_date, reverse=True)):
            events = by_date[date]
            sha = self.report.sha_on(date)
            days.append(
                Day(
                    date,
                    ", ".join(event_counts(events)),
                    None if sha is None else self.commit(sha),
                    tuple(
                        DayEvent(e.event, self.name(e.domain), e.before, e.after) for e in events
                    ),
                    n < _OPEN_DAYS,
                )
            )
        return tuple(days)


def _flagged_first(h: DomainHistory) -> tuple[int, tuple[int, str]]:
    now = h.periods[-1]
    if now.to is None and now.verdict != Verdict.PRESENT:
        return (0, order(now.verdict))
    return (1, (0, ""))


# --------------------------------------------------------------------------- the page


def _finalize(value: object) -> object:
    """Show control characters of outside text escaped (``\\x1b``, ``\\u202e``): autoescaping
    makes markup inert, and this keeps ANSI, bidi overrides and newlines from a snapshot from
    reordering or breaking what people read. The page's own markup (Markup) is left alone."""
    if not isinstance(value, str) or isinstance(value, Markup):
        return value
    if value.isascii() and value.isprintable() and "\\" not in value:
        return value  # nothing to escape: the common case, and escape_text's loop is slow
    return escape_text(value)


_ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("monitor", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    finalize=_finalize,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
)
_ENV.filters["number"] = number
_ENV.filters["coord"] = coord


def _csp_hash(text: str) -> str:
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return "'sha256-" + base64.b64encode(digest).decode("ascii") + "'"


def _style() -> str:
    badges = [("v", v, c) for v, c in COLOURS.items()]
    badges += [("e", k, c) for k, c in _EVENT_COLOURS.items()]
    return _ENV.get_template("report.css.j2").render(
        other=OTHER_COLOUR,
        other_ink=ink(OTHER_COLOUR),
        unwatched=UNWATCHED_COLOUR,
        badges=[(attribute, value, c, ink(c)) for attribute, value, c in badges],
    )


def _overview(
    reports: Iterable[VantageReport], verdicts: Sequence[str], base: str | None
) -> list[Overview]:
    rows = []
    for r in reports:
        if not r.runs:
            continue
        latest = r.runs[-1]
        commit = Link(latest.sha[:7], None if base is None else f"{base}/commit/{latest.sha}")
        rows.append(
            Overview(
                r.vantage,
                latest.date,
                commit,
                latest.watched,
                tuple(latest.counts.get(v, 0) for v in verdicts),
                r.events[-1].date if r.events else "none",
            )
        )
    return rows


def render_html(
    reports: Sequence[VantageReport],
    *,
    link: str | None = None,
    labels: Mapping[str, str] | None = None,
    head: str = "",
    lines: Mapping[str, Mapping[str, Sequence[LineChange]]] | None = None,
    feeds: Mapping[str, Link] | None = None,
    now: datetime.datetime | None = None,
) -> str:
    """Return the report page: an overview, the legend, then one section per vantage point
    (charts, the names not present now, a timeline per name that was ever not present, events
    by day, and each such name's view with its periods and the snapshot lines behind them).

    ``head`` is the sha the report was built from; ``lines`` each vantage point's
    :func:`line_changes`; ``feeds`` where each vantage point's feed is; ``now`` when the page
    was generated (default: the current time).
    """
    generated = (now or datetime.datetime.now(datetime.UTC)).astimezone(datetime.UTC)
    sections = []
    for r in reports:
        feed = (feeds or {}).get(r.vantage) or Link(f"snapshots/{r.vantage}/{FEED_FILE}")
        builder = _Builder(r, link, labels or {}, (lines or {}).get(r.vantage, {}), feed)
        sections.append(builder.section())
    verdicts = sorted({v for r in reports if r.runs for v in r.runs[-1].counts}, key=order)
    css = _style()
    script = _ENV.get_template("report.js").render()
    csp = (
        f"default-src 'none'; style-src {_csp_hash(css)}; script-src {_csp_hash(script)}; "
        "img-src 'none'; base-uri 'none'; form-action 'none'"
    )
    head_link = Link(head[:7], None if link is None else f"{link}/commit/{head}") if head else None
    return _ENV.get_template("report.html.j2").render(
        csp=csp,
        css=Markup(css),  # the page's own style and script, hashed into the CSP above
        script=Markup(script),
        version=__version__,
        watched=len({d for r in reports for d in r.current}),
        vantages=[r.vantage for r in reports],
        head=head_link,
        generated=generated.strftime("%Y-%m-%d %H:%M UTC"),
        generated_iso=generated.strftime("%Y-%m-%dT%H:%M:%SZ"),
        export=EXPORT,
        verdicts=verdicts,
        overview=_overview(reports, verdicts, link),
        meanings=[(v, MEANINGS[v]) for v in sorted(MEANINGS, key=order)],
        event_meanings=list(EVENT_MEANINGS.items()),
        sections=sections,
    )
