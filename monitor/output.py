"""How results are shown to people and programs: escaping, text tables and the JSON document."""

from __future__ import annotations

import csv
import io
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from monitor.changes import display_of, event_counts
from monitor.config import SkippedLine
from monitor.escape import escape_markdown, escape_text
from monitor.evidence import ede_said, said
from monitor.history import Diff, DomainHistory, Period
from monitor.measure import DomainResult, Measurement
from monitor.probe import Observation
from monitor.run import RunResult
from monitor.vocabulary import Group, Health, Verdict

SCHEMA = 1


def shown_name(result: DomainResult) -> str:
    """Return the name as people read it: Unicode where it differs from the A-label."""
    return escape_text(result.name.display)


def format_table(rows: Sequence[Sequence[str]]) -> str:
    """Return rows as left-aligned, space-padded columns (the first row is the header)."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
    return "\n".join(lines)


def check_table(measurement: Measurement, resolver_names: Sequence[str]) -> str:
    """Return the ``check`` command's table: domain, verdict and each resolver's status; under
    it, for each flagged name, what the national resolvers (and any control that sent an EDE)
    said in full, evidence included (all escaped), and the suspected block pages."""
    rows: list[list[str]] = [["domain", "verdict", *resolver_names]]
    for result in measurement.domains:
        rows.append(
            [shown_name(result), result.verdict.value, *(result.status(n) for n in resolver_names)]
        )
    lines = [format_table(rows)]
    groups = {r.name: r.group for r in measurement.resolvers}
    flagged = [
        r
        for r in measurement.domains
        if r.verdict not in (Verdict.PRESENT, Verdict.GONE) and r.observations
    ]
    if flagged:
        lines += ["", "What the national resolvers said (and any control that sent an EDE):"]
    for result in flagged:
        lines.append(f"{shown_name(result)}:")
        for resolver, observations in result.observations.items():
            if groups.get(resolver) == Group.NATIONAL or any(o.evidence.ede for o in observations):
                each = "; ".join(f"{o.rdtype} {said(o)}" for o in observations)
                lines.append(f"  {resolver}: {escape_text(each)}")
    lines.extend(block_page_lines(measurement))
    return "\n".join(lines)


def block_page_lines(measurement: Measurement) -> list[str]:
    """Return the suspected block pages as lines (escaped), or none."""
    if not measurement.block_pages:
        return []
    lines = [
        "suspected block pages (no control gives these; list them in stub_addresses or "
        "stub_names if they are):"
    ]
    for page in measurement.block_pages:
        names = ", ".join(page.domains[:PAGE_NAMES_SHOWN])
        more = len(page.domains) - PAGE_NAMES_SHOWN
        lines.append(
            escape_text(
                f"  {page.address} from {', '.join(page.resolvers)} for {len(page.domains)} "
                f"names: {names}" + (f" and {more} more" if more > 0 else "")
            )
        )
    return lines


PAGE_NAMES_SHOWN = 5


def health_lines(measurement: Measurement) -> Iterable[str]:
    """Yield one line per resolver that is not simply up, or not asked over TCP."""
    for r in measurement.resolvers:
        if r.health != Health.UP:
            detail = f" ({escape_text(r.detail)})" if r.detail else ""
            yield f"{r.name} ({r.group}) is {r.health}{detail}"
        if r.tcp is not None:
            yield (
                f"{r.name} ({r.group}) gave no answer over TCP (tcp: {r.tcp}): "
                "it is re-asked over UDP"
            )


def measurement_document(
    measurement: Measurement, date: str, events: Sequence[dict[str, str]] = ()
) -> dict[str, Any]:
    """Return the JSON document of DESIGN.md for a measurement (``check``, ``run`` with --json)."""
    doc: dict[str, Any] = {
        "schema": SCHEMA,
        "vantage": measurement.vantage,
        "date": date,
        "resolvers": {
            r.name: {"group": r.group, "health": r.health}
            | ({"detail": r.detail} if r.detail else {})
            | ({"tcp": r.tcp} if r.tcp else {})
            for r in measurement.resolvers
        },
        "domains": [_domain_document(result) for result in measurement.domains],
        "events": list(events),
        "suspected_block_pages": [page.document() for page in measurement.block_pages],
    }
    if measurement.inconclusive:
        doc["inconclusive"] = measurement.inconclusive
    return doc


def _domain_document(result: DomainResult) -> dict[str, Any]:
    doc: dict[str, Any] = {"domain": result.name.domain}
    if result.name.display != result.name.domain:
        doc["display"] = result.name.display
    if result.name.label:
        doc["label"] = result.name.label
    doc["verdict"] = result.verdict.value
    doc["resolvers"] = {
        resolver: {o.rdtype: _observation_document(o) for o in observations}
        for resolver, observations in result.observations.items()
    }
    return doc


def _observation_document(o: Observation) -> dict[str, Any]:
    evidence = o.evidence
    return (
        {"status": o.status, "answers": list(o.answers)}
        | ({"detail": o.detail} if o.detail else {})
        | {
            "ede": [{"code": code, "text": text} for code, text in evidence.ede],
            "cname": list(evidence.cname),
            "soa": evidence.soa,
            "aa": evidence.aa,
        }
    )


def history_table(
    histories: Sequence[DomainHistory], labels: Mapping[str, str] | None = None
) -> str:
    """Return ``history`` as a table: one row per period, each name as people read it (Unicode)
    with its label when the watchlist gives one. A period still current ends on the latest run's
    date, marked ``(last run)``: the record says nothing of the days since."""
    labels = labels or {}
    labelled = any(h.domain in labels for h in histories)
    rows = [["domain", *(["label"] if labelled else []), "verdict", "period"]]
    for h in histories:
        label = [escape_text(labels.get(h.domain, ""))] if labelled else []
        for p in h.periods:
            rows.append(
                [escape_text(display_of(h.domain)), *label, escape_text(p.verdict), _span(p)]
            )
    return format_table(rows)


def _span(period: Period) -> str:
    if period.to is not None:
        return f"{period.start} → {period.to}"
    if period.through is None:  # a period made by hand, not read from git
        return f"{period.start} →"
    return f"{period.start} → {period.through} (last run)"


def history_csv(histories: Sequence[DomainHistory], labels: Mapping[str, str] | None = None) -> str:
    """Return ``history`` as CSV with a header: domain,display,label,verdict,from,to (``domain``
    the A-label, ``display`` the Unicode form, ``label`` empty when the watchlist gives none,
    ``to`` empty while current)."""
    labels = labels or {}
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["domain", "display", "label", "verdict", "from", "to"])
    for h in histories:
        name = [_csv_safe(h.domain), _csv_safe(display_of(h.domain))]
        label = _csv_safe(labels.get(h.domain, ""))
        for p in h.periods:
            writer.writerow([*name, label, _csv_safe(p.verdict), p.start, p.to or ""])
    return buffer.getvalue()


def _csv_safe(text: str) -> str:
    # Control characters would break a row; a cell starting with = + - @ is a formula to a
    # spreadsheet.
    text = escape_text(text)
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text


def _name_fields(domain: str, labels: Mapping[str, str]) -> dict[str, str]:
    """``display`` where the Unicode form differs and ``label`` where the watchlist gives one,
    as in DESIGN.md's documents."""
    fields = {}
    display = display_of(domain)
    if display != domain:
        fields["display"] = display
    if domain in labels:
        fields["label"] = labels[domain]
    return fields


def history_document(
    histories: Sequence[DomainHistory], labels: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """Return ``history --format json`` as DESIGN.md gives it, each name with ``display`` and
    ``label`` beside ``domain`` where they apply."""
    labels = labels or {}
    return {
        "schema": SCHEMA,
        "domains": [
            {
                "domain": h.domain,
                **_name_fields(h.domain, labels),
                "periods": [{"verdict": p.verdict, "from": p.start, "to": p.to} for p in h.periods],
            }
            for h in histories
        ],
    }


def diff_lines(
    result: Diff, between: tuple[str, str], labels: Mapping[str, str] | None = None
) -> list[str]:
    """Return ``diff`` for people: one line per event, dated by its run, the name in Unicode with
    its label ("2026-02-10 disappeared: youtube.com [YouTube] (present → missing)"), or one line
    saying there was nothing between the revisions ``between`` names (as the user typed them)."""
    labels = labels or {}
    if not result.events:
        what = "no events" if result.dates else "no runs"
        start, end = (escape_text(rev) for rev in between)
        return [f"{result.vantage}: {what} between {start} and {end}"]
    lines = []
    for e in result.events:
        label = f" [{escape_text(labels[e.domain])}]" if e.domain in labels else ""
        move = f"{escape_text(e.before)} → {escape_text(e.after)}"
        lines.append(f"{e.date} {e.event}: {e.shown}{label} ({move})")
    return lines


def diff_document(result: Diff, labels: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Return ``diff --json`` as DESIGN.md gives it: ``from`` and ``to`` the commits' full shas,
    each event with its run's ``date`` (and ``label`` where the watchlist gives one)."""
    labels = labels or {}
    events = []
    for e in result.events:
        doc: dict[str, Any] = e.document()
        if e.domain in labels:
            name: dict[str, Any] = {k: doc.pop(k) for k in ("domain", "display") if k in doc}
            doc = {**name, "label": labels[e.domain], **doc}
        events.append(doc)
    return {"schema": SCHEMA, "from": result.start, "to": result.end, "events": events}


def run_summary(result: RunResult) -> str:
    """Return a run as Markdown for a GitHub step summary or an alert issue (all data escaped)."""
    m = result.measurement
    counts = event_counts(result.events)
    lines = [
        f"## registry-monitor: {escape_markdown(m.vantage)}, {result.date}",
        "",
        f"**{', '.join(counts)}**" if counts else "**No change.**",
        "",
        "| verdict | names |",
        "|---|---:|",
    ]
    tally = Counter(e.verdict for e in result.entries)
    lines += [f"| {verdict} | {tally[verdict]} |" for verdict in sorted(tally, key=_verdict_order)]
    doubtful = Counter(e.today for e in result.entries if e.today)
    if doubtful:
        lines += ["", "Not conclusive today: " + ", ".join(f"{n} {v}" for v, n in doubtful.items())]
    if result.events:
        by_domain = {d.domain: d for d in m.domains}
        nationals = [r.name for r in m.resolvers if r.group == Group.NATIONAL]
        lines += [
            "",
            "### Events",
            "",
            "| event | domain | from | to | the national resolvers said |",
            "|---|---|---|---|---|",
        ]
        lines += [
            f"| {e.event} | {escape_markdown(e.display or e.domain)} | {escape_markdown(e.before)} "
            f"| {escape_markdown(e.after)} | "
            f"{escape_markdown(_nationals_said(by_domain.get(e.domain), nationals))} |"
            for e in result.events
        ]
    troubled = [r for r in m.resolvers if r.health != Health.UP]
    if troubled:
        lines += ["", "### Resolvers not up", ""]
        lines += [
            f"- {escape_markdown(r.name)} ({r.group}): {r.health}"
            + (f": {escape_markdown(r.detail)}" if r.detail else "")
            for r in troubled
        ]
    no_tcp = [r for r in m.resolvers if r.tcp is not None]
    if no_tcp:
        lines += ["", "### Resolvers that gave no answer over TCP", ""]
        lines += [
            f"- {escape_markdown(r.name)} ({r.group}): tcp: {r.tcp}; its re-queries went over UDP"
            for r in no_tcp
        ]
    if m.block_pages:
        lines += [
            "",
            "### Suspected block pages",
            "",
            "Given by the national resolvers for names of several registered domains, and by no "
            "control for any name. Not a flag by itself (CDN edges differ by country): list one "
            "in `stub_addresses` or `stub_names` if it is a block page.",
            "",
            "| address or host | from | names |",
            "|---|---|---|",
        ]
        for page in m.block_pages[:SUMMARY_PAGES]:
            shown = ", ".join(page.domains[:PAGE_NAMES_SHOWN])
            more = len(page.domains) - PAGE_NAMES_SHOWN
            lines.append(
                f"| {escape_markdown(page.address)} | {escape_markdown(', '.join(page.resolvers))}"
                f" | {escape_markdown(shown)}" + (f" and {more} more" if more > 0 else "") + " |"
            )
        if len(m.block_pages) > SUMMARY_PAGES:
            lines.append(f"\nand {len(m.block_pages) - SUMMARY_PAGES} more in run.yaml")
    if result.commit:
        lines += ["", f"Commit `{result.commit[:12]}`."]
    return "\n".join(lines) + "\n"


SUMMARY_PAGES = 20


def _nationals_said(result: DomainResult | None, nationals: Sequence[str]) -> str:
    """What each national resolver said about a name, with the EDEs it sent (texts raw)."""
    if result is None:
        return ""
    errors = dict(result.ede)
    parts = []
    for name in nationals:
        status = result.status(name) if name in result.resolvers else ""
        if not status:
            continue
        declared = [ede_said(code, text) for code, text in errors.get(name, ())]
        parts.append(f"{name}: " + ", ".join([status, *declared]))
    return "; ".join(parts)


def _verdict_order(verdict: str) -> int:
    order = [v.value for v in Verdict]
    return order.index(verdict) if verdict in order else len(order)


# How many skipped lines of each kind `validate` shows; the rest it counts.
SKIPPED_SHOWN = 5


def skipped_lines(skipped: Sequence[SkippedLine], shown: int = SKIPPED_SHOWN) -> list[str]:
    """Return what ``validate`` says about the watchlist files' lines that added no name.

    For the IP addresses skipped, then the repeats merged: a count, the first *shown* lines as
    FILE:LINE: TEXT (a repeat with its name and where it came first), and how many more.
    """
    lines: list[str] = []
    kinds = (
        ("address", "skipped {n} IP address{es} (a watchlist is for names):", "es"),
        ("repeat", "merged {n} repeated name{es} (each name is watched once):", "s"),
    )
    for reason, heading, plural in kinds:
        of_kind = [s for s in skipped if s.reason == reason]
        if not of_kind:
            continue
        lines.append(heading.format(n=len(of_kind), es=plural if len(of_kind) > 1 else ""))
        for s in of_kind[:shown]:
            line = f"  {s.file}:{s.line}: {escape_text(s.text)}"
            if s.reason == "repeat":
                name = "" if s.display == s.text else f"{escape_text(s.display or '')}, "
                line += f" ({name}first on {s.first})"
            lines.append(line)
        if len(of_kind) > shown:
            lines.append(f"  and {len(of_kind) - shown} more")
    return lines
