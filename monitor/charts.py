"""The report's charts as geometry: stacked counts per run, a timeline strip per name, time axes.

Pure data for the templates to draw (``templates/macros.html.j2``): nothing here writes markup.
Every chart and strip of a vantage point's section shares one calendar ``Scale`` onto
``PLOT_W`` user units, which the page stretches to the width of the screen, so a day sits at
one x in every chart and strip.
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from monitor.history import DomainHistory, Period, Run
from monitor.vocabulary import WORST_FIRST, Verdict

# One colour per verdict, for the charts, the strips and the badges. Present is pale, so that
# every other verdict stands out from it by lightness as well as by hue (3:1 or more, WCAG's
# contrast for graphics); a badge's text is dark or white, whichever contrasts more (see ink).
COLOURS: dict[str, str] = {
    Verdict.PRESENT: "#c8e6c9",
    Verdict.MISSING: "#c62828",
    Verdict.FAILING: "#b45309",
    Verdict.TAMPERED: "#6a1b9a",
    Verdict.PARTIAL: "#ad1457",
    Verdict.NATIONAL_ONLY: "#1565c0",
    Verdict.GONE: "#455a64",
    Verdict.UNSTABLE: "#757575",
    Verdict.INCONCLUSIVE: "#8d6e63",
}
OTHER_COLOUR = "#212121"  # a verdict this version does not know (a hand edit, a newer tool)
UNWATCHED_COLOUR = "#ffffff"  # a strip is blank where the name was not on the watchlist
DARK_INK = "#1b1b1b"
LIGHT_INK = "#ffffff"

PLOT_W = 1000.0  # the user units of a plot's width; the page scales them to the screen
CHART_H = 150  # the height of a chart's plot, in pixels (and user units)
STRIP_H = 14


def order(verdict: str) -> tuple[int, str]:
    """Return the sort key of a verdict: worst first (the order of tables, legends and the
    stacked chart, bottom to top). A verdict this version does not know (a hand edit, a newer
    tool) goes just before present."""
    known = WORST_FIRST.index(verdict) if verdict in WORST_FIRST else len(WORST_FIRST) - 1.5
    return (int(2 * known), verdict)


def colour(verdict: str) -> str:
    """Return a verdict's colour (one for every verdict this version does not know)."""
    return COLOURS.get(verdict, OTHER_COLOUR)


def _luminance(rgb: str) -> float:
    def channel(hex2: str) -> float:
        c = int(hex2, 16) / 255
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(rgb[i : i + 2]) for i in (1, 3, 5))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(a: str, b: str) -> float:
    """Return the WCAG 2.1 contrast ratio of two ``#rrggbb`` colours (1 to 21)."""
    high, low = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def ink(fill: str) -> str:
    """Return the text colour for a badge on ``fill``: white or near-black, whichever
    contrasts more."""
    return LIGHT_INK if contrast(fill, LIGHT_INK) >= contrast(fill, DARK_INK) else DARK_INK


def number(n: int) -> str:
    """Return a count as people read it: 12,345."""
    return f"{n:,}"


def coord(value: float) -> str:
    """Return a coordinate for SVG: at most two decimals, no trailing zeros."""
    return f"{value:.2f}".rstrip("0").rstrip(".")


@dataclass(frozen=True)
class Tick:
    """A label on a time axis, at ``x`` percent of the plot's width."""

    x: float
    label: str
    anchor: Literal["start", "middle", "end"]
    minor: bool  # left out at phone width, where every label would not fit


@dataclass(frozen=True)
class Scale:
    """Calendar days from the first run to the day after the last, onto ``width`` user units."""

    first: datetime.date
    days: int
    width: float = PLOT_W

    @classmethod
    def of(cls, dates: Sequence[str], width: float = PLOT_W) -> Scale:
        first = datetime.date.fromisoformat(dates[0])
        last = datetime.date.fromisoformat(dates[-1])
        return cls(first, max(1, (last - first).days + 1), width)

    def x(self, date: str | datetime.date) -> float:
        day = datetime.date.fromisoformat(date) if isinstance(date, str) else date
        return min(max((day - self.first).days / self.days, 0.0), 1.0) * self.width

    def ticks(self) -> list[Tick]:
        """The axis labels: days for a short span, else months or years. Every label carries
        its year: a day's label is the whole date where the year is first seen or changes,
        else MM-DD; a month's is YYYY-MM."""
        end = self.first + datetime.timedelta(days=self.days)
        days: list[datetime.date] = []
        if self.days <= 45:
            step = max(1, math.ceil(self.days / 8))
            days = [self.first + datetime.timedelta(days=n) for n in range(0, self.days, step)]
            labels, year = [], 0
            for day in days:
                labels.append(day.isoformat() if day.year != year else day.isoformat()[5:])
                year = day.year
        else:
            months = self.days / 30.4
            step = next((s for s in (1, 2, 3, 6, 12, 24, 60) if months / s <= 9), 120)
            index = self.first.year * 12 + self.first.month  # the month after the first day's
            index += -index % step
            while (day := datetime.date(index // 12, index % 12 + 1, 1)) < end:
                days.append(day)
                index += step
            labels = [str(d.year) if step >= 12 else d.isoformat()[:7] for d in days]
        ticks = []
        for n, (day, label) in enumerate(zip(days, labels, strict=True)):
            x = self.x(day) / self.width * 100
            edge = 12 if len(label) > 7 else 6  # a label that centred there would stick out
            anchor: Literal["start", "middle", "end"] = (
                "start" if x < edge else "end" if x > 100 - edge else "middle"
            )
            # At phone width every other label, and never the first (it names the year).
            ticks.append(Tick(x, label, anchor, minor=len(days) > 4 and n % 2 == 1))
        return ticks


def _band(
    x0: Sequence[float], x1: Sequence[float], lower: Sequence[float], upper: Sequence[float]
) -> str:
    """An SVG path of a stepped band between two y series (one step per run)."""
    n = len(x0)
    d = [f"M{coord(x0[0])},{coord(upper[0])}"]
    for i in range(n):
        if i == n - 1 or upper[i + 1] != upper[i]:
            d.append(f"H{coord(x1[i])}")
            if i < n - 1:
                d.append(f"V{coord(upper[i + 1])}")
    d.append(f"V{coord(lower[n - 1])}")
    for i in range(n - 1, -1, -1):
        if i == 0 or lower[i - 1] != lower[i]:
            d.append(f"H{coord(x0[i])}")
            if i > 0:
                d.append(f"V{coord(lower[i - 1])}")
    d.append("Z")
    return "".join(d)


def _nice(top: int) -> int:
    """A round number at or above ``top`` (at least 1) for the top of a chart's scale."""
    if top <= 1:
        return 1
    power = int("1" + "0" * (len(str(top)) - 1))
    steps = (1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0)
    return next(math.ceil(m * power) for m in steps if m * power >= top)


def layers(runs: Sequence[Run], only_flagged: bool) -> list[str]:
    """Return the verdicts a chart stacks, worst (bottom) first."""
    seen: set[str] = set()
    for run in runs:
        seen.update(run.counts)
    if only_flagged:
        seen.discard(Verdict.PRESENT)
    return sorted(seen, key=order)


@dataclass(frozen=True)
class Band:
    """One verdict's layer of a stacked chart."""

    verdict: str
    colour: str
    path: str


@dataclass(frozen=True)
class Stretch:
    """Runs whose counts did not change, with a tooltip of the dates and counts."""

    x: float
    width: float
    title: str


@dataclass(frozen=True)
class LegendItem:
    verdict: str
    colour: str
    count: int  # at the latest run


@dataclass(frozen=True)
class Chart:
    """A stacked step chart of the counts per run, in user units of ``PLOT_W`` x ``CHART_H``."""

    caption: str  # its text alternative
    latest: str  # the latest run's date, which the legend's counts are of
    legend: tuple[LegendItem, ...]
    bands: tuple[Band, ...]
    gridlines: tuple[tuple[float, str], ...]  # (y, label), top first
    stretches: tuple[Stretch, ...]
    ticks: tuple[Tick, ...]


def chart(runs: Sequence[Run], scale: Scale, layers: Sequence[str], caption: str) -> Chart:
    """Return a stacked step chart of the counts of ``layers``, one step per run, with a
    tooltip over each stretch of runs whose counts did not change."""
    n = len(runs)
    x0 = [scale.x(r.date) for r in runs]
    x1 = [*x0[1:], scale.width]
    totals = [sum(r.counts.get(v, 0) for v in layers) for r in runs]
    ymax = _nice(max(totals, default=0))

    def y(value: float) -> float:
        return CHART_H - value / ymax * CHART_H

    values = sorted({0, ymax // 2, ymax} if ymax % 2 == 0 else {0, ymax}, reverse=True)
    gridlines = tuple((y(v), number(v)) for v in values)
    latest = runs[-1].counts
    legend, bands = [], []
    cumulative = [0] * n
    for verdict in layers:
        counts = [r.counts.get(verdict, 0) for r in runs]
        if not any(counts):
            continue
        upper = [a + b for a, b in zip(cumulative, counts, strict=True)]
        path = _band(x0, x1, [y(v) for v in cumulative], [y(v) for v in upper])
        bands.append(Band(verdict, colour(verdict), path))
        legend.append(LegendItem(verdict, colour(verdict), latest.get(verdict, 0)))
        cumulative = upper
    # One tooltip per stretch of unchanged counts keeps the page small over years of runs.
    stretches = []
    start = 0
    for i in range(n):
        if i < n - 1 and runs[i + 1].counts == runs[i].counts:
            continue
        first, last = runs[start].date, runs[i].date
        when = first if start == i else f"{first} – {last} ({i - start + 1} runs)"
        counts_text = ", ".join(
            f"{v} {number(c)}" for v, c in sorted(runs[i].counts.items(), key=lambda k: order(k[0]))
        )
        width = max(x1[i] - x0[start], 0.5)
        stretches.append(Stretch(x0[start], width, f"{when}: {counts_text or 'no names'}"))
        start = i + 1
    return Chart(
        caption,
        runs[-1].date,
        tuple(legend),
        tuple(bands),
        gridlines,
        tuple(stretches),
        tuple(scale.ticks()),
    )


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


@dataclass(frozen=True)
class Span:
    """A stretch of a strip: a period's verdict, or a time off the watchlist."""

    x: float
    width: float
    colour: str
    title: str


@dataclass(frozen=True)
class Strip:
    """A name's timeline: present is the background, every other verdict a span."""

    label: str  # the text alternative: every period and every time off the watchlist, in words
    background: str  # present's colour
    title: str
    spans: tuple[Span, ...]


def when(start: str, to: str | None) -> str:
    """Return a period's dates in words: "on D", "from D to E", "since D" (still current)."""
    if to is None:
        return f"since {start}"
    return f"on {start}" if start == to else f"from {start} to {to}"


def _span(x0: float, x1: float, colour: str, title: str) -> Span:
    return Span(x0, max(x1 - x0, 1.0), colour, title)  # a one-day span of years still shows


def strip(h: DomainHistory, steps: Steps, shown: str) -> Strip:
    """Return a name's timeline: present is the background, every other verdict a span, blank
    where the name was not watched; the tooltips give the dates, and the label says it all."""
    spans: list[Span] = []
    words: list[str] = []

    def unwatched(x0: float, x1: float, first: str, last: str | None, title: str) -> None:
        spans.append(_span(x0, x1, UNWATCHED_COLOUR, title))
        words.append(f"not watched {when(first, last)}" if last else f"not watched from {first}")

    first = h.periods[0].start
    start_index = steps.index.get(first, 0)
    if start_index > 0:
        before = steps.before(first) or first
        unwatched(0, steps.x0[start_index], steps.dates[0], before, f"not watched before {first}")
    previous: Period | None = None
    for period in h.periods:
        if previous is not None and previous.to is not None:
            gap_from = steps.after(previous.to)
            if gap_from is not None and gap_from != period.start:
                x0 = steps.x0[steps.index[gap_from]]
                x1 = steps.x0[steps.index.get(period.start, len(steps.dates) - 1)]
                gap_to = steps.before(period.start)
                unwatched(x0, x1, gap_from, gap_to, f"not watched {gap_from} → {gap_to}")
        i = steps.index.get(period.start, 0)
        j = steps.index.get(period.to or "", len(steps.dates) - 1)
        words.append(f"{period.verdict} {when(period.start, period.to)}")
        if period.verdict != Verdict.PRESENT:
            until = period.to or "now"
            span = period.start if period.to == period.start else f"{period.start} → {until}"
            spans.append(
                _span(steps.x0[i], steps.x1[j], colour(period.verdict), f"{period.verdict} {span}")
            )
        previous = period
    last = h.periods[-1].to
    after = None if last is None else steps.after(last)
    if after is not None:
        x0 = steps.x0[steps.index[after]]
        unwatched(x0, steps.x1[-1], after, None, f"not watched from {after}")
    return Strip(
        f"{shown}: {'; '.join(words)}",
        COLOURS[Verdict.PRESENT],
        f"{shown}: present on the runs not marked",
        tuple(spans),
    )
