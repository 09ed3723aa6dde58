"""Reports: a static HTML page of every vantage point's verdicts over time, read from git history.

The numbers come from :func:`monitor.history.collect` (only the changed lines of the snapshot
files), so three years of nightly runs over a thousand names build in a few seconds. The page
loads nothing from the network: styles and script are inline and pinned by a Content Security
Policy, and every string that came from a snapshot is escaped.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import git

from monitor import __version__, gitstore
from monitor.changes import Event, display_of, event_counts
from monitor.charts import (
    COLOURS,
    OTHER_COLOUR,
    PLOT_W,
    Scale,
    Steps,
    axis,
    chart,
    layers,
    number,
    order,
    strip,
)
from monitor.escape import escape_html
from monitor.files import file_error, write_atomically
from monitor.history import DomainHistory, VantageReport, collect
from monitor.links import commit_link, resolve_link
from monitor.vocabulary import EventKind, Verdict

__all__ = ["INDEX", "Site", "build_site", "render_html"]

INDEX = "index.html"
_EVENT_COLOURS: dict[str, str] = {
    EventKind.DISAPPEARED: "#d32f2f",
    EventKind.DEGRADED: "#ef6c00",
    EventKind.RESTORED: "#43a047",
    EventKind.APPEARED: "#1e88e5",
    EventKind.GONE: "#546e7a",
}
# Light colours get dark text on a badge.
_DARK_TEXT: frozenset[str] = frozenset({Verdict.PARTIAL, Verdict.UNSTABLE, Verdict.INCONCLUSIVE})
_OPEN_DAYS = 10  # event days shown unfolded


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
) -> Site:
    """Write the report to ``out``/index.html (atomically) and return what was written.

    ``link`` is the repository's web page for commit links (default: from the origin remote
    when it is on GitHub); ``labels`` maps A-labels to the watchlist's labels. Raises what
    :func:`collect` and :func:`resolve_link` raise, and FileError when ``out`` cannot be
    written.
    """
    base = resolve_link(repo, link)
    reports = collect(repo, vantages, rev)
    head = gitstore.resolve_commit(repo, rev) or ""
    page = render_html(reports, link=base, labels=labels or {}, head=head)
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


# --------------------------------------------------------------------------- HTML

_CSS = """
:root{--fg:#1b1b1b;--muted:#5f6368;--line:#dadce0;--band:#f1f3f4;--link:#1a5fb4}
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Noto Sans",sans-serif;
color:var(--fg);background:#fff}
main{max-width:1240px;margin:0 auto;padding:12px 24px 48px}
h1{font-size:22px;margin:8px 0 2px}
h2{font-size:19px;margin:28px 0 6px;padding-top:10px;border-top:2px solid var(--line)}
h3{font-size:15px;margin:18px 0 6px}
a{color:var(--link)}
.muted,.label{color:var(--muted)}
.label{margin-left:6px;font-size:12.5px}
code,.sha{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12.5px}
nav{margin:6px 0}
nav a{margin-right:14px}
table{border-collapse:collapse;margin:4px 0}
th,td{padding:3px 10px 3px 0;text-align:left;border-bottom:1px solid var(--line);
vertical-align:top}
th{font-weight:600}
td.n,th.n{text-align:right;padding-left:10px;font-variant-numeric:tabular-nums}
.badge{display:inline-block;padding:0 6px;border-radius:3px;color:#fff;font-size:12px;
line-height:18px;white-space:nowrap}
.dark{color:#1b1b1b}
.scroll{overflow-x:auto}
.grid{display:grid;grid-template-columns:200px 680px minmax(0,1fr);align-items:center}
.grid>div:first-child{padding-right:8px;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
.grid>div:last-child{padding-left:10px;font-size:12.5px;white-space:nowrap;overflow:hidden;
text-overflow:ellipsis}
.row:hover{background:var(--band)}
svg{display:block}
svg text{font:11px system-ui,sans-serif;fill:#5f6368}
.status{font-size:12.5px;color:var(--muted)}
details{margin:2px 0}
summary{cursor:pointer}
ul.events{margin:2px 0 10px;padding-left:22px}
ul.events li{margin:1px 0}
.tall{max-height:36em;overflow:auto}
.overview td{white-space:nowrap}
.names{font-size:12.5px;color:var(--muted);max-height:12em;overflow:auto}
#filter{font:inherit;padding:4px 8px;width:280px;border:1px solid var(--line);border-radius:4px}
[hidden]{display:none!important}
footer{margin-top:40px;font-size:12.5px;color:var(--muted)}
"""


_JS = """
(function () {
  var box = document.getElementById("filter");
  var rows = document.querySelectorAll("[data-name]");
  box.addEventListener("input", function () {
    var q = box.value.trim().toLowerCase();
    for (var i = 0; i < rows.length; i++) {
      rows[i].hidden = q !== "" && rows[i].getAttribute("data-name").indexOf(q) < 0;
    }
  });
  document.body.setAttribute("data-ready", "1");
})();
"""


def _csp_hash(text: str) -> str:
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return "'sha256-" + base64.b64encode(digest).decode("ascii") + "'"


def _e(text: str) -> str:
    return escape_html(text)


def _badge(verdict: str) -> str:
    classes = "badge dark" if verdict in _DARK_TEXT else "badge"
    return f'<span class="{classes}" data-v="{_e(verdict)}">{_e(verdict)}</span>'


def _event_badge(kind: str) -> str:
    return f'<span class="badge ev-{_e(kind)}">{_e(kind)}</span>'


class _Names:
    """How a name is shown: Unicode form, label beside it, A-label in the tooltip."""

    def __init__(self, labels: Mapping[str, str]) -> None:
        self.labels = labels
        self._display: dict[str, str] = {}

    def display(self, domain: str) -> str:
        shown = self._display.get(domain)
        if shown is None:
            shown = self._display[domain] = display_of(domain)
        return shown

    def html(self, domain: str) -> str:
        shown = self.display(domain)
        title = f' title="{_e(domain)}"' if shown != domain else ""
        label = self.labels.get(domain)
        extra = f'<span class="label">{_e(label)}</span>' if label else ""
        return f"<span{title}>{_e(shown)}</span>{extra}"

    def key(self, domain: str) -> str:
        """The text the filter box matches, lowercase."""
        parts = dict.fromkeys([self.display(domain), domain, self.labels.get(domain, "")])
        return _e(" ".join(p for p in parts if p).lower())


def _strip_state(h: DomainHistory, steps: Steps) -> str:
    now = h.periods[-1]
    changes = len(h.periods) - 1
    count = f" · {changes} change{'s' if changes != 1 else ''}" if changes else ""
    if now.to is None:
        return f"{_badge(now.verdict)} since {_e(now.start)}{count}"
    after = steps.after(now.to) or now.to
    return f'<span class="muted">not watched since {_e(after)}</span>{count}'


def _flagged_first(h: DomainHistory) -> tuple[int, tuple[int, str]]:
    now = h.periods[-1]
    if now.to is None and now.verdict != Verdict.PRESENT:
        return (0, order(now.verdict))
    return (1, (0, ""))


def _timelines(report: VantageReport, scale: Scale, names: _Names) -> str:
    present = Verdict.PRESENT
    eventful = [h for h in report.histories if any(p.verdict != present for p in h.periods)]
    shown_apart = {h.domain for h in eventful}
    quiet = [h.domain for h in report.histories if h.domain not in shown_apart]
    steps = Steps(report.runs, scale)

    rows = [
        f'<div class="grid"><div class="muted">{number(len(eventful))} names</div>'
        f"<div>{axis(scale)}</div><div></div></div>"
    ]
    ordered = sorted(eventful, key=lambda h: h.domain)
    ordered.sort(key=lambda h: h.periods[-1].start, reverse=True)  # latest change first
    ordered.sort(key=_flagged_first)
    for h in ordered:
        shown = names.display(h.domain)
        rows.append(
            f'<div class="grid row" data-name="{names.key(h.domain)}">'
            f"<div>{names.html(h.domain)}</div><div>{strip(h, steps, shown)}</div>"
            f"<div>{_strip_state(h, steps)}</div></div>"
        )
    if quiet:
        listed = ", ".join(names.html(d) for d in quiet)
        noun = "name was" if len(quiet) == 1 else "names were"
        rows.append(
            f"<details><summary>{number(len(quiet))} {noun} present on every run</summary>"
            f'<p class="names">{listed}</p></details>'
        )
    if not eventful:
        rows.append('<p class="muted">No name was ever anything but present.</p>')
    return '<div class="scroll">' + "".join(rows) + "</div>"


def _flag_table(report: VantageReport, names: _Names) -> str:
    present = Verdict.PRESENT
    flagged = sorted(
        (e for e in report.current.values() if e.current != present),
        key=lambda e: (order(e.current), e.domain),
    )
    if not flagged:
        return '<p class="muted">Every watched name is present.</p>'
    rows = []
    for entry in flagged:
        verdict = _badge(entry.current)
        if entry.today is not None:
            verdict += f' <span class="status">today; last conclusive: {_e(entry.verdict)}</span>'
        statuses = " · ".join(f"{_e(r)} {_e(s)}" for r, s in entry.statuses)
        rows.append(
            f'<tr data-name="{names.key(entry.domain)}"><td>{names.html(entry.domain)}</td>'
            f"<td>{verdict}</td><td>{_e(entry.since)}</td>"
            f'<td class="status">{statuses}</td></tr>'
        )
    return (
        '<div class="scroll tall"><table class="flags"><thead><tr><th>name</th><th>verdict</th>'
        "<th>since</th><th>resolvers</th></tr></thead><tbody>"
        + "".join(rows)
        + "</tbody></table></div>"
    )


def _event_days(report: VantageReport, link: str | None, names: _Names) -> str:
    days: dict[str, list[Event]] = {}
    for event in report.events:
        days.setdefault(event.date, []).append(event)
    if not days:
        return '<p class="muted">No events yet.</p>'
    parts = []
    for n, date in enumerate(sorted(days, reverse=True)):
        events = days[date]
        sha = report.sha_on(date)
        commit = f" · commit {commit_link(link, sha)}" if sha else ""
        items = "".join(
            f'<li data-name="{names.key(e.domain)}">{_event_badge(e.event)} '
            f'{names.html(e.domain)} <span class="status">({_e(e.before)} → {_e(e.after)})'
            "</span></li>"
            for e in events
        )
        opened = " open" if n < _OPEN_DAYS else ""
        parts.append(
            f'<details class="day"{opened}><summary><time>{_e(date)}</time> · '
            f"{_e(', '.join(event_counts(events)))}{commit}</summary>"
            f'<ul class="events">{items}</ul></details>'
        )
    return "".join(parts)


def _section(report: VantageReport, link: str | None, names: _Names) -> str:
    anchor = f"v-{report.vantage}"
    head = f'<section id="{_e(anchor)}" class="vantage"><h2>{_e(report.vantage)}</h2>'
    if not report.runs:
        return head + '<p class="muted">No dated runs yet.</p></section>'
    first, latest = report.runs[0], report.runs[-1]
    scale = Scale.of([r.date for r in report.runs], PLOT_W)
    event_days = len({e.date for e in report.events})
    summary = (
        f"<p>{number(len(report.runs))} runs from {_e(first.date)} to {_e(latest.date)} "
        f"(latest: commit {commit_link(link, latest.sha)}); {number(latest.watched)} names "
        f"watched at the latest run; {number(len(report.events))} events on "
        f"{number(event_days)} days.</p>"
    )
    charts = [chart(report.runs, scale, layers(report.runs, False), "names by verdict")]
    flagged_layers = layers(report.runs, True)
    if flagged_layers and any(r.counts.get(Verdict.PRESENT) for r in report.runs):
        charts.append("<h3>Names not present, on their own scale</h3>")
        charts.append(chart(report.runs, scale, flagged_layers, "names not present"))
    return (
        head
        + summary
        + f'<h3 id="{_e(anchor)}-chart">Names by verdict, per run</h3>'
        + '<div class="scroll">'
        + "".join(charts)
        + "</div>"
        + f'<h3 id="{_e(anchor)}-now">Not present at the latest run</h3>'
        + _flag_table(report, names)
        + f'<h3 id="{_e(anchor)}-timelines">Timeline of every name that was ever not present</h3>'
        + _timelines(report, scale, names)
        + f'<h3 id="{_e(anchor)}-days">Changes by day</h3>'
        + _event_days(report, link, names)
        + "</section>"
    )


def _overview(reports: Sequence[VantageReport], link: str | None) -> str:
    verdicts = sorted({v for r in reports if r.runs for v in r.runs[-1].counts}, key=order)
    head = "".join(f'<th class="n">{_badge(v)}</th>' for v in verdicts)
    rows = []
    for r in reports:
        if not r.runs:
            continue
        latest = r.runs[-1]
        cells = "".join(f'<td class="n">{number(latest.counts.get(v, 0))}</td>' for v in verdicts)
        last_event = r.events[-1].date if r.events else "none"
        rows.append(
            f'<tr><td><a href="#v-{_e(r.vantage)}">{_e(r.vantage)}</a></td>'
            f"<td>{_e(latest.date)}</td><td>{commit_link(link, latest.sha)}</td>"
            f'<td class="n">{number(latest.watched)}</td>{cells}<td>{_e(last_event)}</td></tr>'
        )
    return (
        '<div class="scroll"><table class="overview"><thead><tr><th>vantage</th>'
        f'<th>latest run</th><th>commit</th><th class="n">watched</th>{head}'
        "<th>last event</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table></div>"
    )


def _badge_css() -> str:
    # Selectors of equal weight: the fallback for unknown verdicts must come first.
    rules = [f".badge[data-v]{{background:{OTHER_COLOUR}}}"]
    rules += [f'.badge[data-v="{v}"]{{background:{c}}}' for v, c in COLOURS.items()]
    rules += [f".badge.ev-{k}{{background:{c}}}" for k, c in _EVENT_COLOURS.items()]
    return "\n".join(rules)


def render_html(
    reports: Sequence[VantageReport],
    *,
    link: str | None = None,
    labels: Mapping[str, str] | None = None,
    head: str = "",
) -> str:
    """Return the report page: an overview, then one section per vantage point (charts, the
    names not present now, a timeline per name that was ever not present, events by day).

    ``head`` is the sha the report was built from; every string from a snapshot is escaped.
    """
    names = _Names(labels or {})
    css = _CSS + _badge_css() + "\n"
    csp = (
        f"default-src 'none'; style-src {_csp_hash(css)}; script-src {_csp_hash(_JS)}; "
        "img-src 'none'; base-uri 'none'; form-action 'none'"
    )
    watched = {d for r in reports for d in r.current}
    built = f"commit {commit_link(link, head)}" if head else "an empty history"
    nav = " ".join(f'<a href="#v-{_e(r.vantage)}">{_e(r.vantage)}</a>' for r in reports)
    return (
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<meta http-equiv="Content-Security-Policy" content="{csp}">'
        '<meta name="referrer" content="no-referrer">'
        "<title>registry-monitor report</title>"
        f"<style>{css}</style></head>\n<body><main>"
        "<h1>registry-monitor report</h1>"
        f'<p class="muted">{number(len(watched))} names watched from {len(reports)} vantage '
        f"point{'s' if len(reports) != 1 else ''}, from the git history of snapshots/ up to "
        f"{built}.</p>"
        f"<nav>{nav}</nav>"
        '<p><input id="filter" type="search" placeholder="Filter names (needs JavaScript)" '
        'aria-label="Filter names"></p>'
        "<h2>Latest run</h2>"
        + _overview(reports, link)
        + "".join(_section(r, link, names) for r in reports)
        + f"<footer>Built by registry-monitor {_e(__version__)}. This page loads nothing from "
        "the network; hover over a chart or a timeline for dates and counts.</footer>"
        f"</main>\n<script>{_JS}</script></body></html>\n"
    )
