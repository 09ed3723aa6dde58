"""Reports: a static HTML page of every vantage point's verdicts over time, read from git history.

The numbers come from :func:`monitor.history.collect` (only the changed lines of the snapshot
files), so three years of nightly runs over a thousand names build in a few seconds. The page
loads nothing from the network: styles and script are inline and pinned by a Content Security
Policy, and every string that came from a snapshot is escaped.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import git

from monitor import __version__, gitstore
from monitor.changes import Event, display_of, event_counts
from monitor.errors import ReportError, UsageError
from monitor.escape import escape_html
from monitor.files import write_atomically
from monitor.history import DomainHistory, Period, Run, VantageReport, collect
from monitor.vocabulary import WORST_FIRST

__all__ = [
    "INDEX",
    "Site",
    "build_site",
    "commit_link",
    "github_base",
    "render_html",
    "resolve_link",
]

INDEX = "index.html"

_COLOURS = {
    "present": "#43a047",
    "missing": "#d32f2f",
    "failing": "#ef6c00",
    "tampered": "#8e24aa",
    "partial": "#f9a825",
    "national-only": "#1e88e5",
    "gone": "#546e7a",
    "unstable": "#9e9e9e",
    "inconclusive": "#d7ccc8",
}
_OTHER_COLOUR = "#212121"
_UNWATCHED = "#e8eaed"
_EVENT_COLOURS = {
    "disappeared": "#d32f2f",
    "degraded": "#ef6c00",
    "restored": "#43a047",
    "appeared": "#1e88e5",
    "gone": "#546e7a",
}
# Light colours get dark text on a badge.
_DARK_TEXT = frozenset({"partial", "unstable", "inconclusive"})

# Geometry shared by the charts and the timeline strips, so that a day sits at one x in both.
_NAME_W = 200
_PLOT_W = 680
_STRIP_H = 14
_CHART_H = 150
_CHART_TOP = 8
_AXIS_H = 20
_OPEN_DAYS = 10  # event days shown unfolded


@dataclass(frozen=True)
class Site:
    """What :func:`build_site` wrote."""

    index: Path
    vantages: tuple[str, ...]
    runs: int
    events: int
    link: str | None


# --------------------------------------------------------------------------- commit links

_OWNER_REPO = re.compile(r"/?([A-Za-z0-9_.-]+)/([A-Za-z0-9_.-]+?)(?:\.git)?/?")
_SCP_GITHUB = re.compile(r"(?:[A-Za-z0-9_.-]+@)?github\.com:(.+)")


def github_base(remote_url: str) -> str | None:
    """Return ``https://github.com/OWNER/REPO`` for a GitHub remote URL (https, ssh or
    ``git@github.com:OWNER/REPO.git``), else None. Credentials in the URL are dropped."""
    text = remote_url.strip()
    scp = _SCP_GITHUB.fullmatch(text)
    if scp is not None:
        path = scp.group(1)
    else:
        try:
            parts = urlsplit(text)
            host = (parts.hostname or "").lower()
        except ValueError:
            return None
        if parts.scheme not in ("https", "http", "ssh", "git") or host != "github.com":
            return None
        path = parts.path
    match = _OWNER_REPO.fullmatch(path)
    if match is None or {".", ".."} & set(match.groups()):
        return None
    return f"https://github.com/{match.group(1)}/{match.group(2)}"


def resolve_link(repo: git.Repo, link: str | None) -> str | None:
    """Return the base URL that commit links start with: ``link`` when given (checked), else the
    GitHub page of the ``origin`` remote, else None (the page shows short shas).

    Raises UsageError for a ``link`` that is not an http(s) URL.
    """
    if link is not None:
        try:
            parts = urlsplit(link)
            ok = parts.scheme in ("http", "https") and bool(parts.hostname)
            ok = ok and not parts.query and not parts.fragment
        except ValueError:
            ok = False
        if not ok:
            raise UsageError(
                f"--link must be an http(s) URL like https://github.com/OWNER/REPO, not {link!r}"
            )
        return link.rstrip("/")
    try:
        remote = repo.git.remote("get-url", "origin")
    except git.GitCommandError:
        return None
    return github_base(str(remote))


def commit_link(base: str | None, sha: str) -> str:
    """Return the HTML for a commit: a link under ``base`` when there is one, else the short sha."""
    short = escape_html(sha[:7])
    if base is None:
        return f'<code class="sha">{short}</code>'
    href = escape_html(f"{base}/commit/{sha}")
    return f'<a class="sha" href="{href}">{short}</a>'


# --------------------------------------------------------------------------- site


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
    :func:`collect` and :func:`resolve_link` raise, and ReportError when ``out`` cannot be
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
        raise ReportError(f"cannot write {index}: {exc.strerror or exc}") from exc
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


def _order(verdict: str) -> tuple[int, str]:
    # A verdict this version does not know (a hand edit, a newer tool) goes just before present.
    # Worst first: the order of tables, legends and the stacked chart (bottom to top).
    known = WORST_FIRST.index(verdict) if verdict in WORST_FIRST else len(WORST_FIRST) - 1.5
    return (int(2 * known), verdict)


def _colour(verdict: str) -> str:
    return _COLOURS.get(verdict, _OTHER_COLOUR)


def _badge(verdict: str) -> str:
    classes = "badge dark" if verdict in _DARK_TEXT else "badge"
    return f'<span class="{classes}" data-v="{_e(verdict)}">{_e(verdict)}</span>'


def _event_badge(kind: str) -> str:
    return f'<span class="badge ev-{_e(kind)}">{_e(kind)}</span>'


def _number(n: int) -> str:
    return f"{n:,}"


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


@dataclass(frozen=True)
class _Scale:
    """Calendar days from the first run to the day after the last, onto ``width`` pixels."""

    first: datetime.date
    days: int
    width: float

    @classmethod
    def of(cls, dates: Sequence[str], width: float) -> _Scale:
        first = datetime.date.fromisoformat(dates[0])
        last = datetime.date.fromisoformat(dates[-1])
        return cls(first, max(1, (last - first).days + 1), width)

    def x(self, date: str | datetime.date) -> float:
        day = datetime.date.fromisoformat(date) if isinstance(date, str) else date
        return min(max((day - self.first).days / self.days, 0.0), 1.0) * self.width

    def ticks(self) -> list[tuple[float, str]]:
        """Tick positions and labels: days for a short span, else months or years."""
        end = self.first + datetime.timedelta(days=self.days)
        if self.days <= 45:
            step = max(1, math.ceil(self.days / 8))
            return [
                (self.x(day), day.isoformat()[5:])
                for n in range(0, self.days, step)
                for day in [self.first + datetime.timedelta(days=n)]
            ]
        months = self.days / 30.4
        step = next((s for s in (1, 2, 3, 6, 12, 24, 60) if months / s <= 9), 120)
        index = self.first.year * 12 + self.first.month  # the month after the first day's
        index += -index % step
        ticks: list[tuple[float, str]] = []
        while True:
            day = datetime.date(index // 12, index % 12 + 1, 1)
            if day >= end:
                return ticks
            label = str(day.year) if step >= 12 else day.isoformat()[:7]
            ticks.append((self.x(day), label))
            index += step


def _f(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def _nice(top: int) -> int:
    """A round number at or above ``top`` (at least 1) for the top of a chart's scale."""
    if top <= 1:
        return 1
    power = int("1" + "0" * (len(str(top)) - 1))
    steps = (1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0)
    return next(math.ceil(m * power) for m in steps if m * power >= top)


def _band(
    x0: Sequence[float], x1: Sequence[float], lower: Sequence[float], upper: Sequence[float]
) -> str:
    """An SVG path of a stepped band between two y series (one step per run)."""
    n = len(x0)
    d = [f"M{_f(x0[0])},{_f(upper[0])}"]
    for i in range(n):
        if i == n - 1 or upper[i + 1] != upper[i]:
            d.append(f"H{_f(x1[i])}")
            if i < n - 1:
                d.append(f"V{_f(upper[i + 1])}")
    d.append(f"V{_f(lower[n - 1])}")
    for i in range(n - 1, -1, -1):
        if i == 0 or lower[i - 1] != lower[i]:
            d.append(f"H{_f(x0[i])}")
            if i > 0:
                d.append(f"V{_f(lower[i - 1])}")
    d.append("Z")
    return "".join(d)


def _layers(runs: Sequence[Run], only_flagged: bool) -> list[str]:
    seen: set[str] = set()
    for run in runs:
        seen.update(run.counts)
    if only_flagged:
        seen.discard("present")
    return sorted(seen, key=_order)


def _chart(runs: Sequence[Run], scale: _Scale, layers: Sequence[str], caption: str) -> str:
    """A stacked step chart of the counts of ``layers``, one step per run, with a legend on the
    left and a tooltip over each stretch of runs whose counts did not change."""
    left, top, height = _NAME_W, _CHART_TOP, _CHART_H
    n = len(runs)
    x0 = [left + scale.x(r.date) for r in runs]
    x1 = [*x0[1:], left + scale.width]
    totals = [sum(r.counts.get(v, 0) for v in layers) for r in runs]
    ymax = _nice(max(totals, default=0))

    def y(value: float) -> float:
        return top + height - value / ymax * height

    parts = [
        f'<svg class="chart" width="{_NAME_W + _PLOT_W}" height="{top + height + _AXIS_H}" '
        f'role="img" aria-label="{_e(caption)}">'
    ]
    for value in sorted({0, ymax // 2, ymax} if ymax % 2 == 0 else {0, ymax}):
        parts.append(
            f'<line x1="{left}" x2="{left + _PLOT_W}" y1="{_f(y(value))}" y2="{_f(y(value))}" '
            f'stroke="#e0e0e0"/><text x="{left - 6}" y="{_f(y(value) + 4)}" '
            f'text-anchor="end">{_number(value)}</text>'
        )
    cumulative = [0] * n
    latest = runs[-1].counts
    parts.append(
        f'<text x="0" y="{top + 8}" font-weight="600">latest run ({_e(runs[-1].date)})</text>'
    )
    legend_y = top + 26
    for verdict in layers:
        values = [r.counts.get(verdict, 0) for r in runs]
        if not any(values):
            continue
        upper = [a + b for a, b in zip(cumulative, values, strict=True)]
        path = _band(x0, x1, [y(v) for v in cumulative], [y(v) for v in upper])
        parts.append(f'<path d="{path}" fill="{_colour(verdict)}"/>')
        cumulative = upper
        parts.append(
            f'<rect x="0" y="{legend_y - 9}" width="10" height="10" fill="{_colour(verdict)}"/>'
            f'<text x="16" y="{legend_y}">{_e(verdict)} {_number(latest.get(verdict, 0))}</text>'
        )
        legend_y += 16
    for x, label in scale.ticks():
        parts.append(
            f'<line x1="{_f(left + x)}" x2="{_f(left + x)}" y1="{top + height}" '
            f'y2="{top + height + 4}" stroke="#9e9e9e"/><text x="{_f(left + x)}" '
            f'y="{top + height + 16}" text-anchor="middle">{label}</text>'
        )
    # One tooltip per stretch of unchanged counts keeps the page small over years of runs.
    start = 0
    for i in range(n):
        if i < n - 1 and runs[i + 1].counts == runs[i].counts:
            continue
        first, last = runs[start].date, runs[i].date
        when = first if start == i else f"{first} – {last} ({i - start + 1} runs)"
        counts = ", ".join(
            f"{_e(v)} {_number(c)}"
            for v, c in sorted(runs[i].counts.items(), key=lambda k: _order(k[0]))
        )
        parts.append(
            f'<rect class="hover" x="{_f(x0[start])}" y="{top}" '
            f'width="{_f(max(x1[i] - x0[start], 0.5))}" height="{height}" fill="transparent">'
            f"<title>{_e(when)}: {counts or 'no names'}</title></rect>"
        )
        start = i + 1
    parts.append("</svg>")
    return "".join(parts)


def _axis(scale: _Scale) -> str:
    parts = [f'<svg width="{_PLOT_W}" height="{_AXIS_H}" aria-hidden="true">']
    for x, label in scale.ticks():
        anchor = "start" if x < 20 else "end" if x > _PLOT_W - 20 else "middle"
        parts.append(
            f'<line x1="{_f(x)}" x2="{_f(x)}" y1="{_AXIS_H - 5}" y2="{_AXIS_H}" stroke="#9e9e9e"/>'
            f'<text x="{_f(x)}" y="{_AXIS_H - 8}" text-anchor="{anchor}">{label}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


class _Steps:
    """Where each run's step begins and ends on the x axis, shared by a section's strips."""

    def __init__(self, runs: Sequence[Run], scale: _Scale) -> None:
        self.dates = [r.date for r in runs]
        self.index = {date: i for i, date in enumerate(self.dates)}
        self.x0 = [scale.x(date) for date in self.dates]
        self.x1 = [*self.x0[1:], scale.width]

    def after(self, date: str) -> str | None:
        """The run date that follows ``date``."""
        i = self.index.get(date, len(self.dates)) + 1
        return self.dates[i] if i < len(self.dates) else None

    def before(self, date: str) -> str | None:
        """The run date that precedes ``date``."""
        i = self.index.get(date, 0) - 1
        return self.dates[i] if i >= 0 else None


def _span(x0: float, x1: float, colour: str, title: str) -> str:
    return (
        f'<rect x="{_f(x0)}" width="{_f(max(x1 - x0, 0.8))}" height="{_STRIP_H}" '
        f'fill="{colour}"><title>{_e(title)}</title></rect>'
    )


def _strip(h: DomainHistory, steps: _Steps, shown: str) -> str:
    """A name's timeline: present is the background, every other verdict a coloured span (a
    sub-pixel one still shows), grey where the name was not watched; tooltips give the dates."""
    parts = [
        f'<svg width="{_PLOT_W}" height="{_STRIP_H}" role="img" aria-label="{_e(shown)}">'
        f'<rect width="{_PLOT_W}" height="{_STRIP_H}" fill="{_COLOURS["present"]}">'
        f"<title>{_e(shown)}: present on the runs not marked</title></rect>"
    ]
    unwatched = _UNWATCHED
    first = h.periods[0].start
    if steps.index.get(first, 0) > 0:
        parts.append(
            _span(0, steps.x0[steps.index[first]], unwatched, f"not watched before {first}")
        )
    previous: Period | None = None
    for period in h.periods:
        if previous is not None and previous.to is not None:
            gap_from = steps.after(previous.to)
            if gap_from is not None and gap_from != period.start:
                x0 = steps.x0[steps.index[gap_from]]
                x1 = steps.x0[steps.index.get(period.start, len(steps.dates) - 1)]
                title = f"not watched {gap_from} → {steps.before(period.start)}"
                parts.append(_span(x0, x1, unwatched, title))
        i = steps.index.get(period.start, 0)
        j = steps.index.get(period.to or "", len(steps.dates) - 1)
        if period.verdict != "present":
            until = period.to or "now"
            when = period.start if period.to == period.start else f"{period.start} → {until}"
            parts.append(
                _span(steps.x0[i], steps.x1[j], _colour(period.verdict), f"{period.verdict} {when}")
            )
        previous = period
    last = h.periods[-1].to
    after = None if last is None else steps.after(last)
    if after is not None:
        x0 = steps.x0[steps.index[after]]
        parts.append(_span(x0, steps.x1[-1], unwatched, f"not watched from {after}"))
    parts.append("</svg>")
    return "".join(parts)


def _strip_state(h: DomainHistory, steps: _Steps) -> str:
    now = h.periods[-1]
    changes = len(h.periods) - 1
    count = f" · {changes} change{'s' if changes != 1 else ''}" if changes else ""
    if now.to is None:
        return f"{_badge(now.verdict)} since {_e(now.start)}{count}"
    after = steps.after(now.to) or now.to
    return f'<span class="muted">not watched since {_e(after)}</span>{count}'


def _flagged_first(h: DomainHistory) -> tuple[int, tuple[int, str]]:
    now = h.periods[-1]
    if now.to is None and now.verdict != "present":
        return (0, _order(now.verdict))
    return (1, (0, ""))


def _timelines(report: VantageReport, scale: _Scale, names: _Names) -> str:
    eventful = [h for h in report.histories if any(p.verdict != "present" for p in h.periods)]
    shown_apart = {h.domain for h in eventful}
    quiet = [h.domain for h in report.histories if h.domain not in shown_apart]
    steps = _Steps(report.runs, scale)

    rows = [
        f'<div class="grid"><div class="muted">{_number(len(eventful))} names</div>'
        f"<div>{_axis(scale)}</div><div></div></div>"
    ]
    ordered = sorted(eventful, key=lambda h: h.domain)
    ordered.sort(key=lambda h: h.periods[-1].start, reverse=True)  # latest change first
    ordered.sort(key=_flagged_first)
    for h in ordered:
        shown = names.display(h.domain)
        rows.append(
            f'<div class="grid row" data-name="{names.key(h.domain)}">'
            f"<div>{names.html(h.domain)}</div><div>{_strip(h, steps, shown)}</div>"
            f"<div>{_strip_state(h, steps)}</div></div>"
        )
    if quiet:
        listed = ", ".join(names.html(d) for d in quiet)
        noun = "name was" if len(quiet) == 1 else "names were"
        rows.append(
            f"<details><summary>{_number(len(quiet))} {noun} present on every run</summary>"
            f'<p class="names">{listed}</p></details>'
        )
    if not eventful:
        rows.append('<p class="muted">No name was ever anything but present.</p>')
    return '<div class="scroll">' + "".join(rows) + "</div>"


def _flag_table(report: VantageReport, names: _Names) -> str:
    flagged = sorted(
        (e for e in report.current.values() if e.current != "present"),
        key=lambda e: (_order(e.current), e.domain),
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
    scale = _Scale.of([r.date for r in report.runs], _PLOT_W)
    event_days = len({e.date for e in report.events})
    summary = (
        f"<p>{_number(len(report.runs))} runs from {_e(first.date)} to {_e(latest.date)} "
        f"(latest: commit {commit_link(link, latest.sha)}); {_number(latest.watched)} names "
        f"watched at the latest run; {_number(len(report.events))} events on "
        f"{_number(event_days)} days.</p>"
    )
    charts = [_chart(report.runs, scale, _layers(report.runs, False), "names by verdict")]
    flagged_layers = _layers(report.runs, True)
    if flagged_layers and any(r.counts.get("present") for r in report.runs):
        charts.append("<h3>Names not present, on their own scale</h3>")
        charts.append(_chart(report.runs, scale, flagged_layers, "names not present"))
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
    verdicts = sorted({v for r in reports if r.runs for v in r.runs[-1].counts}, key=_order)
    head = "".join(f'<th class="n">{_badge(v)}</th>' for v in verdicts)
    rows = []
    for r in reports:
        if not r.runs:
            continue
        latest = r.runs[-1]
        cells = "".join(f'<td class="n">{_number(latest.counts.get(v, 0))}</td>' for v in verdicts)
        last_event = r.events[-1].date if r.events else "none"
        rows.append(
            f'<tr><td><a href="#v-{_e(r.vantage)}">{_e(r.vantage)}</a></td>'
            f"<td>{_e(latest.date)}</td><td>{commit_link(link, latest.sha)}</td>"
            f'<td class="n">{_number(latest.watched)}</td>{cells}<td>{_e(last_event)}</td></tr>'
        )
    return (
        '<div class="scroll"><table class="overview"><thead><tr><th>vantage</th>'
        f'<th>latest run</th><th>commit</th><th class="n">watched</th>{head}'
        "<th>last event</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table></div>"
    )


def _badge_css() -> str:
    # Selectors of equal weight: the fallback for unknown verdicts must come first.
    rules = [f".badge[data-v]{{background:{_OTHER_COLOUR}}}"]
    rules += [f'.badge[data-v="{v}"]{{background:{c}}}' for v, c in _COLOURS.items()]
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
        f'<p class="muted">{_number(len(watched))} names watched from {len(reports)} vantage '
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
