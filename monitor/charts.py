"""The report's SVG: stacked charts of the counts per run, and a timeline strip per name.

Both share one calendar scale (``Scale``), so a day sits at one x in every chart and strip of a
vantage point's section; every string in them is escaped.
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Sequence
from dataclasses import dataclass

from monitor.escape import escape_html as _e
from monitor.history import DomainHistory, Period, Run
from monitor.vocabulary import WORST_FIRST, Verdict

COLOURS: dict[str, str] = {
    Verdict.PRESENT: "#43a047",
    Verdict.MISSING: "#d32f2f",
    Verdict.FAILING: "#ef6c00",
    Verdict.TAMPERED: "#8e24aa",
    Verdict.PARTIAL: "#f9a825",
    Verdict.NATIONAL_ONLY: "#1e88e5",
    Verdict.GONE: "#546e7a",
    Verdict.UNSTABLE: "#9e9e9e",
    Verdict.INCONCLUSIVE: "#d7ccc8",
}
OTHER_COLOUR = "#212121"
_UNWATCHED = "#e8eaed"

# Geometry shared by the charts and the timeline strips, so that a day sits at one x in both.
_NAME_W = 200
PLOT_W = 680
_STRIP_H = 14
_CHART_H = 150
_CHART_TOP = 8
_AXIS_H = 20


def order(verdict: str) -> tuple[int, str]:
    """Return the sort key of a verdict: worst first (the order of tables, legends and the
    stacked chart, bottom to top). A verdict this version does not know (a hand edit, a newer
    tool) goes just before present."""
    known = WORST_FIRST.index(verdict) if verdict in WORST_FIRST else len(WORST_FIRST) - 1.5
    return (int(2 * known), verdict)


def colour(verdict: str) -> str:
    """Return a verdict's colour (one for every verdict this version does not know)."""
    return COLOURS.get(verdict, OTHER_COLOUR)


def number(n: int) -> str:
    """Return a count as people read it: 12,345."""
    return f"{n:,}"


@dataclass(frozen=True)
class Scale:
    """Calendar days from the first run to the day after the last, onto ``width`` pixels."""

    first: datetime.date
    days: int
    width: float

    @classmethod
    def of(cls, dates: Sequence[str], width: float) -> Scale:
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


def layers(runs: Sequence[Run], only_flagged: bool) -> list[str]:
    seen: set[str] = set()
    for run in runs:
        seen.update(run.counts)
    if only_flagged:
        seen.discard(Verdict.PRESENT)
    return sorted(seen, key=order)


def chart(runs: Sequence[Run], scale: Scale, layers: Sequence[str], caption: str) -> str:
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
        f'<svg class="chart" width="{_NAME_W + PLOT_W}" height="{top + height + _AXIS_H}" '
        f'role="img" aria-label="{_e(caption)}">'
    ]
    for value in sorted({0, ymax // 2, ymax} if ymax % 2 == 0 else {0, ymax}):
        parts.append(
            f'<line x1="{left}" x2="{left + PLOT_W}" y1="{_f(y(value))}" y2="{_f(y(value))}" '
            f'stroke="#e0e0e0"/><text x="{left - 6}" y="{_f(y(value) + 4)}" '
            f'text-anchor="end">{number(value)}</text>'
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
        parts.append(f'<path d="{path}" fill="{colour(verdict)}"/>')
        cumulative = upper
        parts.append(
            f'<rect x="0" y="{legend_y - 9}" width="10" height="10" fill="{colour(verdict)}"/>'
            f'<text x="16" y="{legend_y}">{_e(verdict)} {number(latest.get(verdict, 0))}</text>'
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
            f"{_e(v)} {number(c)}"
            for v, c in sorted(runs[i].counts.items(), key=lambda k: order(k[0]))
        )
        parts.append(
            f'<rect class="hover" x="{_f(x0[start])}" y="{top}" '
            f'width="{_f(max(x1[i] - x0[start], 0.5))}" height="{height}" fill="transparent">'
            f"<title>{_e(when)}: {counts or 'no names'}</title></rect>"
        )
        start = i + 1
    parts.append("</svg>")
    return "".join(parts)


def axis(scale: Scale) -> str:
    parts = [f'<svg width="{PLOT_W}" height="{_AXIS_H}" aria-hidden="true">']
    for x, label in scale.ticks():
        anchor = "start" if x < 20 else "end" if x > PLOT_W - 20 else "middle"
        parts.append(
            f'<line x1="{_f(x)}" x2="{_f(x)}" y1="{_AXIS_H - 5}" y2="{_AXIS_H}" stroke="#9e9e9e"/>'
            f'<text x="{_f(x)}" y="{_AXIS_H - 8}" text-anchor="{anchor}">{label}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


class Steps:
    """Where each run's step begins and ends on the x axis, shared by a section's strips."""

    def __init__(self, runs: Sequence[Run], scale: Scale) -> None:
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


def strip(h: DomainHistory, steps: Steps, shown: str) -> str:
    """A name's timeline: present is the background, every other verdict a coloured span (a
    sub-pixel one still shows), grey where the name was not watched; tooltips give the dates."""
    parts = [
        f'<svg width="{PLOT_W}" height="{_STRIP_H}" role="img" aria-label="{_e(shown)}">'
        f'<rect width="{PLOT_W}" height="{_STRIP_H}" fill="{COLOURS[Verdict.PRESENT]}">'
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
        if period.verdict != Verdict.PRESENT:
            until = period.to or "now"
            when = period.start if period.to == period.start else f"{period.start} → {until}"
            parts.append(
                _span(steps.x0[i], steps.x1[j], colour(period.verdict), f"{period.verdict} {when}")
            )
        previous = period
    last = h.periods[-1].to
    after = None if last is None else steps.after(last)
    if after is not None:
        x0 = steps.x0[steps.index[after]]
        parts.append(_span(x0, steps.x1[-1], unwatched, f"not watched from {after}"))
    parts.append("</svg>")
    return "".join(parts)
