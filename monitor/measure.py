"""One measurement of a watchlist: canaries, queries at every resolver, confirmation, verdicts.

Observations are folded into one byte per (resolver, domain, record type) as they arrive, so a
million names fit in a few tens of megabytes; the full observations are kept only on request
(``detail``: for ``check`` and ``--json``).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import secrets
from collections import Counter
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field

from monitor.config import Config, Resolver, WatchedName
from monitor.probe import Engine, Observation
from monitor.verdict import (
    NOT_ASKED,
    SETTLED,
    STATUS_CODE,
    SUSPICIOUS,
    Panel,
    State,
    code_of,
    judge_codes,
    most_telling_code,
    state_of,
)
from monitor.vocabulary import USABLE, Group, Health, Status, Verdict

# Seconds between confirmation rounds: long enough for a flapping answer or a lost packet to
# change, short enough for a nightly run.
CONFIRM_SPACING = 1.0
# The economical strategy also asks the controls about this share of the names the national
# resolvers resolve cleanly (at least this many), a fresh sample each run.
ECONOMICAL_SAMPLE = 0.01
ECONOMICAL_SAMPLE_MIN = 100


@dataclass(frozen=True)
class Progress:
    """How far the main pass of a measurement is: observations done of those planned."""

    done: int
    total: int
    elapsed: float

    @property
    def rate(self) -> float:
        """Observations a second so far."""
        return self.done / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def remaining(self) -> float | None:
        """Seconds left at the rate so far, or None before anything is done."""
        return (self.total - self.done) / self.rate if self.rate else None


@dataclass(frozen=True)
class ResolverHealth:
    """How one resolver fared this run."""

    name: str
    group: Group
    health: Health
    detail: str | None = None


@dataclass(frozen=True, slots=True)
class DomainResult:
    """The verdict on one watched name, with each resolver's most telling status.

    ``statuses`` follows ``resolvers`` (config order); ``observations`` holds what each resolver
    said per record type when the measurement kept detail, else it is empty.
    """

    name: WatchedName
    verdict: Verdict
    resolvers: tuple[str, ...]
    statuses: tuple[str, ...]
    observations: Mapping[str, tuple[Observation, ...]] = field(default_factory=dict)

    @property
    def domain(self) -> str:
        return self.name.domain

    def status(self, resolver: str) -> str:
        """Return the resolver's status for the snapshot line (``down`` when it was down)."""
        return self.statuses[self.resolvers.index(resolver)]


@dataclass(frozen=True)
class Measurement:
    """What one run saw: resolver health, and a verdict per watched name.

    ``inconclusive`` holds the reason when the run as a whole says nothing (every national
    resolver down, or too few controls up); ``domains`` is then empty.
    """

    vantage: str
    resolvers: tuple[ResolverHealth, ...]
    # asyncio may repr a task's result; a million names would take seconds.
    domains: tuple[DomainResult, ...] = field(repr=False)
    inconclusive: str | None = None
    queries: int = 0
    counts: Mapping[str, int] = field(default_factory=dict)
    queries_by_resolver: Mapping[str, int] = field(default_factory=dict)


def measure(
    config: Config,
    names: Sequence[WatchedName] | None = None,
    *,
    confirm_spacing: float = CONFIRM_SPACING,
    detail: bool = True,
    progress: Callable[[Progress], None] | None = None,
    previous: Mapping[str, str] | None = None,
) -> Measurement:
    """Resolve ``names`` (default: the watchlist) as ``config`` says and return the measurement.

    Network trouble never raises: it shows as statuses, resolver health and verdicts.
    ``progress`` is called about once a second during the main pass. ``previous`` maps
    domains to their verdict in the last snapshot (the economical strategy asks the controls
    about every name that was not present).
    """
    names = config.watchlist if names is None else names
    return asyncio.run(_measure(config, names, confirm_spacing, detail, progress, previous or {}))


# Bound once: the tally sees every observation (see monitor.vocabulary).
_OK = Status.OK
_NODATA = Status.NODATA
_NXDOMAIN_CODE = STATUS_CODE[Status.NXDOMAIN]


class _Tally:
    """Codes for a list of domains at a set of resolvers, filled in as observations arrive."""

    def __init__(
        self,
        config: Config,
        domains: Sequence[str],
        detail: bool,
        rewrites: Mapping[str, frozenset[str]],
    ) -> None:
        self.config = config
        self.domains = domains
        self.width = len(config.record_types)
        self.rewrites = rewrites
        size = len(domains) * self.width
        self.codes = {r.name: bytearray([NOT_ASKED]) * size for r in config.resolvers}
        self.positions: Sequence[int] | None = None  # the domains a subset pass asks about
        self.detail: dict[int, dict[str, list[Observation | None]]] | None = {} if detail else None

    def sink(self, index: int, observation: Observation) -> None:
        if self.positions is not None:
            row, column = divmod(index, self.width)
            index = self.positions[row] * self.width + column
        rewritten = self.rewrites.get(observation.resolver)
        if rewritten and (
            (observation.status == _OK and rewritten.issuperset(observation.answers))
            or (observation.status == _NODATA and f"nodata:{observation.rdtype}" in rewritten)
        ):
            code = _NXDOMAIN_CODE
        else:
            code = code_of(
                observation, bogons=self.config.bogons, stub_addresses=self.config.stub_addresses
            )
        self.codes[observation.resolver][index] = code
        if self.detail is not None:
            slots = self.detail.setdefault(index // self.width, {}).setdefault(
                observation.resolver, [None] * self.width
            )
            slots[index % self.width] = observation

    def codes_of(self, position: int) -> dict[str, bytes]:
        """Return each resolver's codes for one domain, leaving out resolvers not asked."""
        start = position * self.width
        found = {}
        for name, codes in self.codes.items():
            mine = bytes(codes[start : start + self.width])
            if mine[0] != NOT_ASKED:
                found[name] = mine
        return found

    def forget(self, resolver: str) -> None:
        """Leave a resolver's answers out, as if it had not been asked."""
        codes = self.codes[resolver]
        codes[:] = bytearray([NOT_ASKED]) * len(codes)
        if self.detail is not None:
            for per_resolver in self.detail.values():
                per_resolver.pop(resolver, None)

    def observations_of(self, position: int) -> dict[str, tuple[Observation, ...]]:
        """Return what each resolver said about one domain, resolvers in config order (not in
        the order their answers arrived, so that a document is the same from run to run)."""
        if self.detail is None:
            return {}
        said = self.detail.get(position, {})
        return {
            name: tuple(o for o in said[name] if o is not None)
            for name in self.codes
            if name in said
        }


async def _measure(
    config: Config,
    names: Sequence[WatchedName],
    confirm_spacing: float,
    detail: bool,
    progress: Callable[[Progress], None] | None,
    previous: Mapping[str, str],
) -> Measurement:
    async with Engine(config.resolvers, timeout=config.timeout, attempts=config.attempts) as engine:
        health, rewrites = await _canaries(engine, config, config.resolvers)
        up = _usable(config, health)
        reason = _why_inconclusive(config, up, "")
        if reason is not None:
            healths = tuple(health[r.name] for r in config.resolvers)
            return Measurement(config.vantage, healths, (), reason, engine.sent)

        domains = [n.domain for n in names]
        tally = _Tally(config, domains, detail, rewrites)
        economical = config.strategy == "economical"
        first = [r for r in up if r.group == Group.NATIONAL] if economical else up
        total = len(first) * len(domains) * len(config.record_types)
        async with _reporting(engine, total, progress) as meter:
            await _observe(engine, config, first, tally)
            asked: Sequence[int] = range(len(domains))
            if economical:
                asked = _controls_needed(tally, _panel(up), domains, previous)
                controls = [r for r in up if r.group == Group.CONTROL]
                meter.total += len(controls) * len(asked) * len(config.record_types)
                await _observe(engine, config, controls, tally, asked)

        # Canaries again: a resolver that broke during the pass must not speak for it.
        after, _ = await _canaries(engine, config, up)
        for r in up:
            if after[r.name].health == Health.DOWN:
                health[r.name] = ResolverHealth(
                    r.name, r.group, Health.DOWN, f"after the main pass, {after[r.name].detail}"
                )
                tally.forget(r.name)
        up = _usable(config, health)
        healths = tuple(health[r.name] for r in config.resolvers)
        reason = _why_inconclusive(config, up, " after the main pass")
        if reason is not None:
            return Measurement(config.vantage, healths, (), reason, engine.sent)

        panel = _panel(up)

        def judge_at(t: _Tally, position: int) -> Verdict:
            return judge_codes(t.codes_of(position), panel, min_controls=config.min_controls)

        # Economical: a name the nationals resolve cleanly and no control was asked about is
        # taken as present (the controls are asked about every name that is not clean).
        verdicts = [Verdict.PRESENT] * len(domains)
        for i in asked:
            verdicts[i] = judge_at(tally, i)

        doubtful = [i for i, v in enumerate(verdicts) if v not in SETTLED]
        for _ in range(config.confirm):
            if not doubtful:
                break
            await asyncio.sleep(confirm_spacing)
            again = _Tally(config, [domains[i] for i in doubtful], False, rewrites)
            await _observe(engine, config, up, again, stream=True)
            for position, i in enumerate(doubtful):
                if judge_at(again, position) != verdicts[i]:
                    verdicts[i] = Verdict.UNSTABLE
            doubtful = [i for i in doubtful if verdicts[i] is not Verdict.UNSTABLE]

        order = tuple(r.name for r in config.resolvers)
        # Economical: control statuses go on a line only when the name is not present, so
        # the daily sample does not churn the lines of present names.
        hidden = frozenset(panel.control) if economical else frozenset()
        shown = _status_shower(order, frozenset(r.name for r in up), tally, hidden, verdicts)
        results = tuple(
            DomainResult(name, verdicts[i], order, shown(i), tally.observations_of(i))
            for i, name in enumerate(names)
        )
        counts = Counter(v.value for v in verdicts)
        sent = {name: client.sent for name, client in engine.clients.items()}
        return Measurement(config.vantage, healths, results, None, engine.sent, dict(counts), sent)


def _usable(config: Config, health: Mapping[str, ResolverHealth]) -> list[Resolver]:
    return [r for r in config.resolvers if health[r.name].health in USABLE]


def _why_inconclusive(config: Config, up: Sequence[Resolver], when: str) -> str | None:
    """Return why the run as a whole cannot judge anything, or None when it can."""
    controls = sum(r.group == Group.CONTROL for r in up)
    if not any(r.group == Group.NATIONAL for r in up):
        return f"every national resolver is down{when} (no canary answered)"
    if controls < config.min_controls:
        return (
            f"{controls} control resolver(s) up{when}, fewer than min_controls "
            f"({config.min_controls})"
        )
    return None


def _panel(up: Sequence[Resolver]) -> Panel:
    return Panel(
        national=tuple(r.name for r in up if r.group == Group.NATIONAL),
        control=tuple(r.name for r in up if r.group == Group.CONTROL),
        authoritative=frozenset(r.name for r in up if r.mode == "authoritative"),
    )


def _controls_needed(
    tally: _Tally, panel: Panel, domains: Sequence[str], previous: Mapping[str, str]
) -> list[int]:
    """Return the positions the controls must be asked about in the economical strategy.

    Every name the national resolvers do not resolve cleanly (all of them EXISTS, no suspicious
    answer), every name not present last time, and a fresh random sample of the rest, so that
    names that exist only nationally are found over the days.
    """
    needed = []
    rest = []
    for i, domain in enumerate(domains):
        codes = tally.codes_of(i)
        clean = all(
            state_of(c, authoritative=n in panel.authoritative) is State.EXISTS
            and not any(x & SUSPICIOUS for x in c)
            for n, c in codes.items()
        )
        if not clean or previous.get(domain, "present") != "present":
            needed.append(i)
        else:
            rest.append(i)
    size = min(len(rest), max(ECONOMICAL_SAMPLE_MIN, int(len(rest) * ECONOMICAL_SAMPLE)))
    needed.extend(random.sample(rest, size))
    return sorted(needed)


def _status_shower(
    order: tuple[str, ...],
    asked: frozenset[str],
    tally: _Tally,
    hidden: frozenset[str],
    verdicts: Sequence[Verdict],
) -> Callable[[int], tuple[str, ...]]:
    """Return a function giving a domain's statuses in config order; equal tuples are shared.

    A resolver that was down (not in ``asked``) shows ``down``; one not asked about the name,
    or ``hidden`` while the name is present, shows "" (left off the line).
    """
    shared: dict[tuple[str, ...], tuple[str, ...]] = {}
    down = Health.DOWN  # bound once: this runs for every name at every resolver

    def status(name: str, codes: Mapping[str, bytes], present: bool) -> str:
        if name not in asked:
            return down
        if name not in codes or (present and name in hidden):
            return ""
        return most_telling_code(codes[name])

    def shown(position: int) -> tuple[str, ...]:
        codes = tally.codes_of(position)
        present = verdicts[position] is Verdict.PRESENT
        statuses = tuple(status(n, codes, present) for n in order)
        return shared.setdefault(statuses, statuses)

    return shown


@dataclass
class _Meter:
    """The queries a pass will ask; the body of :func:`_reporting` adds to it as it learns."""

    total: int


@contextlib.asynccontextmanager
async def _reporting(
    engine: Engine, total: int, progress: Callable[[Progress], None] | None
) -> AsyncIterator[_Meter]:
    """Call ``progress`` every second while the body runs, and once at the end."""
    meter = _Meter(total)
    if progress is None:
        yield meter
        return
    loop = asyncio.get_running_loop()
    start, base = loop.time(), engine.done

    async def tick() -> None:
        while True:
            await asyncio.sleep(1.0)
            progress(Progress(engine.done - base, meter.total, loop.time() - start))

    task = asyncio.create_task(tick())
    try:
        yield meter
    finally:
        task.cancel()
        progress(Progress(engine.done - base, meter.total, loop.time() - start))


async def _canaries(
    engine: Engine, config: Config, resolvers: Sequence[Resolver]
) -> tuple[dict[str, ResolverHealth], dict[str, frozenset[str]]]:
    """Ask ``resolvers`` the canaries, and a name that cannot exist.

    A resolver that resolves none of the canaries, in two rounds at least a timeout apart, is
    down for the run. One that answers the impossible name with addresses rewrites NXDOMAIN: it
    stays in use, but answers with those addresses count as NXDOMAIN. Returns the health of
    each resolver and the rewrite addresses.
    """
    tld = config.canaries[0].rsplit(".", 1)[-1]
    impossible = f"rm-nx-{secrets.token_hex(8)}.{tld}"
    seen: dict[str, list[Observation]] = {r.name: [] for r in resolvers}
    probes: dict[str, list[Observation]] = {r.name: [] for r in resolvers}
    names = [r.name for r in resolvers]
    began = asyncio.get_running_loop().time()
    await asyncio.gather(
        engine.observe(names, config.canaries, ("A",), lambda _, o: seen[o.resolver].append(o)),
        engine.observe(
            names, [impossible], ("A", "AAAA"), lambda _, o: probes[o.resolver].append(o)
        ),
    )

    def answered(r: Resolver) -> bool:
        fine = {Status.OK, Status.NODATA} | (
            {Status.REFERRAL} if r.mode == "authoritative" else set()
        )
        return any(o.status in fine for o in seen[r.name])

    # Bad luck on a lossy path can eat every attempt of one round (at 30 % loss each way, one
    # round in eight), and a resolver's upstream can fail for a moment: a resolver that answered
    # no canary is asked them once more before it is called down for the day, no sooner than
    # one timeout after the first round began (a silent resolver has already taken longer).
    again = [r.name for r in resolvers if not answered(r)]
    if again:
        waited = asyncio.get_running_loop().time() - began
        await asyncio.sleep(max(0.0, config.timeout - waited))
        await engine.observe(
            again, config.canaries, ("A",), lambda _, o: seen[o.resolver].append(o)
        )
    health: dict[str, ResolverHealth] = {}
    rewrites: dict[str, frozenset[str]] = {}
    for r in resolvers:
        obs = seen[r.name]
        rewritten = frozenset(a for o in probes[r.name] if o.status == Status.OK for a in o.answers)
        if rewritten:
            # Types it answered the impossible name with NOERROR and no records: that empty
            # answer is its NXDOMAIN too.
            rewritten |= {f"nodata:{o.rdtype}" for o in probes[r.name] if o.status == Status.NODATA}
        if not answered(r):
            said = ", ".join(
                sorted(
                    {f"{o.domain} {o.status}" + (f" ({o.detail})" if o.detail else "") for o in obs}
                )
            )
            health[r.name] = ResolverHealth(r.name, r.group, Health.DOWN, f"canaries: {said}")
        elif rewritten:
            rewrites[r.name] = rewritten
            addresses = sorted(a for a in rewritten if not a.startswith("nodata:"))
            detail = f"{impossible} answered {', '.join(addresses)}"
            health[r.name] = ResolverHealth(r.name, r.group, Health.NXDOMAIN_REWRITING, detail)
        else:
            health[r.name] = ResolverHealth(r.name, r.group, Health.UP)
    return health, rewrites


async def _observe(
    engine: Engine,
    config: Config,
    resolvers: Sequence[Resolver],
    tally: _Tally,
    positions: Sequence[int] | None = None,
    *,
    stream: bool = False,
) -> None:
    """Ask ``resolvers`` about the tally's domains (or only those at ``positions``)."""
    tally.positions = positions
    domains = tally.domains
    subset = domains if positions is None else [domains[i] for i in positions]
    names = [r.name for r in resolvers]
    try:
        await engine.observe(names, subset, config.record_types, tally.sink, stream=stream)
    finally:
        tally.positions = None
