"""One measurement of a watchlist: canaries, queries at every resolver, confirmation, verdicts.

The answers are folded into a :class:`~monitor.tally.Tally` as they arrive, one byte each, so a
million names fit in a few tens of megabytes; the full observations are kept only on request
(``detail``: for ``check`` and ``--json``).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import random
import secrets
from collections import Counter
from collections.abc import AsyncIterator, Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from monitor.blockpages import BlockPage, Sightings, candidates, suspected
from monitor.config import Config, Resolver, WatchedName
from monitor.probe import Engine, Observation
from monitor.tally import NO_ANSWER, Tally
from monitor.verdict import (
    NOTED,
    SETTLED,
    STATUS_CODE,
    STATUS_MASK,
    SUSPICIOUS,
    Panel,
    State,
    Suspicion,
    apart_from,
    judge_codes,
    labelled,
    most_telling_code,
    state_of,
)
from monitor.vocabulary import USABLE, Group, Health, Status, TcpHealth, Verdict

# Seconds between confirmation rounds: long enough for a flapping answer or a lost packet to
# change, short enough for a nightly run.
CONFIRM_SPACING = 1.0
# The economical strategy also asks the controls about this share of the names the national
# resolvers resolve cleanly (at least this many), a fresh sample each run.
ECONOMICAL_SAMPLE = 0.01
ECONOMICAL_SAMPLE_MIN = 100
MAX_JUDGED = 1 << 16  # sets of codes whose verdict is kept while judging (a few are usual)
YOUNG_THRESHOLD = 50_000  # new objects between two young collections, during the pass
# Names of a candidate block page the economical strategy asks the controls about first: if a
# control gives the same value for one of them, the value is the name's own, not a page.
PAGE_SAMPLE = 3


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
    """How one resolver fared this run; ``tcp`` says why a udp resolver was not asked over TCP
    (None: it answered over TCP, or it is not a udp resolver)."""

    name: str
    group: Group
    health: Health
    detail: str | None = None
    tcp: TcpHealth | None = None


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
    # The Extended DNS Errors (code, text) each resolver sent about the name, over the types.
    ede: tuple[tuple[str, tuple[tuple[int, str], ...]], ...] = ()
    # For a tampered name: the addresses each national resolver gave that made it so.
    answers: tuple[tuple[str, tuple[str, ...]], ...] = ()

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
    block_pages: tuple[BlockPage, ...] = ()


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
    with _frozen():
        return asyncio.run(
            _measure(config, names, confirm_spacing, detail, progress, previous or {})
        )


@contextlib.contextmanager
def _frozen() -> Iterator[None]:
    """Spare the pass the garbage collector's work, which found nothing to collect there.

    What is alive before the pass (the config and its million names, the last snapshot) lives
    through it, so it is frozen out of the full collections. A query's objects are freed by
    reference counting as soon as it is answered, yet they count towards the next young
    collection: at a million names there were 18,000 of them, about 4 % of the pass, and
    they collected 600 objects in all. So a young collection waits for YOUNG_THRESHOLD new
    objects instead of 700 while the pass runs. Both are undone after it.
    """
    thresholds = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, *thresholds[1:])
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()


async def _measure(
    config: Config,
    names: Sequence[WatchedName],
    confirm_spacing: float,
    detail: bool,
    progress: Callable[[Progress], None] | None,
    previous: Mapping[str, str],
) -> Measurement:
    suspicion = Suspicion(
        bogons=config.bogons, stub_addresses=config.stub_addresses, stub_names=config.stub_names
    )
    async with Engine(config.resolvers, timeout=config.timeout, attempts=config.attempts) as engine:
        health, rewrites = await _canaries(engine, config, config.resolvers, tcp=True)
        up = _usable(config, health)
        reason = _why_inconclusive(config, up, "")
        if reason is not None:
            healths = tuple(health[r.name] for r in config.resolvers)
            return Measurement(config.vantage, healths, (), reason, engine.sent)

        domains = [n.domain for n in names]
        sightings = Sightings(len(domains) * len(config.record_types))
        tally = Tally(
            config,
            domains,
            suspicion=suspicion,
            rewrites=rewrites,
            detail=detail,
            sightings=sightings,
        )
        economical = config.strategy == "economical"
        nationals = [r for r in up if r.group == Group.NATIONAL]
        controls = [r for r in up if r.group == Group.CONTROL]
        first = nationals if economical else up
        total = len(first) * len(domains) * len(config.record_types)
        async with _reporting(engine, total, progress) as meter:
            await _observe(engine, config, first, tally)
            asked: Sequence[int] = range(len(domains))
            if economical:
                # The controls' answers to a labelled answer are compared with it: keep them.
                tally.keep = set(tally.labelled_positions(r.name for r in nationals))
                # A value the nationals give for many names may be a block page: ask the
                # controls about a few of its names first, which clears a value of their own.
                found = candidates(sightings, domains)
                sample = sorted({p for _, _, where in found for p in where[:PAGE_SAMPLE]})
                meter.total += len(controls) * len(sample) * len(config.record_types)
                await _observe(engine, config, controls, tally, sample)
                paged = {p for _, _, where in candidates(sightings, domains) for p in where}
                asked = _controls_needed(tally, _panel(up), domains, previous, paged, sample)
                rest = sorted(set(asked) - set(sample))
                meter.total += len(controls) * len(rest) * len(config.record_types)
                await _observe(engine, config, controls, tally, rest)

        # Canaries again: a resolver that broke during the pass must not speak for it.
        after, _ = await _canaries(engine, config, up)
        for r in up:
            if after[r.name].health == Health.DOWN:
                health[r.name] = ResolverHealth(
                    r.name,
                    r.group,
                    Health.DOWN,
                    f"after the main pass, {after[r.name].detail}",
                    health[r.name].tcp,
                )
                tally.forget(r.name)
        up = _usable(config, health)
        healths = tuple(health[r.name] for r in config.resolvers)
        reason = _why_inconclusive(config, up, " after the main pass")
        if reason is not None:
            return Measurement(config.vantage, healths, (), reason, engine.sent)

        panel = _panel(up)
        controls = [r for r in up if r.group == Group.CONTROL]
        labelled_at = tally.labelled_positions(panel.national)
        if labelled_at and not economical:
            # A labelled answer is tampering only if it shares no address with the controls':
            # ask them again about those names, keeping their answers.
            tally.keep = set(labelled_at)
            await _observe(engine, config, controls, tally, labelled_at)

        # A verdict follows from the codes alone unless a national's answer is labelled (then
        # its addresses count too), and a million names share a few sets of codes: judge each
        # set once.
        judged: dict[bytes, Verdict] = {}

        def judge_at(t: Tally, position: int) -> Verdict:
            key = t.key_of(position)
            verdict = judged.get(key)
            if verdict is not None:
                return verdict
            codes = t.codes_of(position)
            apart = t.apart(position, panel.national, panel.control, codes)
            verdict = judge_codes(codes, panel, min_controls=config.min_controls, apart=apart)
            if len(judged) < MAX_JUDGED and not any(
                labelled(codes[n]) for n in panel.national if n in codes
            ):
                judged[key] = verdict
            return verdict

        # Economical: a name the nationals resolve cleanly and no control was asked about is
        # taken as present (the controls are asked about every name that is not clean).
        verdicts = [Verdict.PRESENT] * len(domains)
        for i in asked:
            verdicts[i] = judge_at(tally, i)

        over_tcp = [r for r in up if r.transport == "udp" and health[r.name].tcp is None]
        doubtful = [i for i, v in enumerate(verdicts) if v not in SETTLED]
        for _ in range(config.confirm):
            if not doubtful:
                break
            await asyncio.sleep(confirm_spacing)
            again = Tally(
                config,
                [domains[i] for i in doubtful],
                suspicion=suspicion,
                rewrites=rewrites,
                detail=detail,
                keep=True,
            )
            await _confirm_round(engine, config, up, over_tcp, again)
            for position, i in enumerate(doubtful):
                # Only an answer contradicts: a resolver that gave none before (every
                # attempt lost, say) and answers now gives its first answer, which stands.
                for r in up:
                    if again.answered(r.name, position) and not tally.answered(r.name, i):
                        tally.adopt(i, again, position, r.name)
                standing = judge_at(tally, i)
                said = _round_says(again, position, tally, i, panel, config)
                verdicts[i] = standing if said == standing else Verdict.UNSTABLE
            doubtful = [i for i in doubtful if verdicts[i] is not Verdict.UNSTABLE]

        order = tuple(r.name for r in config.resolvers)
        # Economical: control statuses go on a line only when the name is not present, so
        # the daily sample does not churn the lines of present names.
        hidden = frozenset(panel.control) if economical else frozenset()
        shown = _status_shower(order, frozenset(r.name for r in up), tally, hidden, verdicts)
        results = tuple(
            DomainResult(
                name,
                verdicts[i],
                order,
                shown(i),
                tally.observations_of(i),
                tuple(tally.errors_of(i).items()),
                tuple(tally.gave(i, panel.national).items())
                if verdicts[i] is Verdict.TAMPERED
                else (),
            )
            for i, name in enumerate(names)
        )
        counts = Counter(v.value for v in verdicts)
        sent = {name: client.sent for name, client in engine.clients.items()}
        pages = suspected(sightings, domains, [r.name for r in config.national])
        return Measurement(
            config.vantage, healths, results, None, engine.sent, dict(counts), sent, pages
        )


async def _confirm_round(
    engine: Engine,
    config: Config,
    up: Sequence[Resolver],
    over_tcp: Sequence[Resolver],
    again: Tally,
) -> None:
    """Ask every resolver about the doubtful names again: a udp resolver over TCP where it
    answers over TCP (an off-path forger or a box that injects answers into UDP cannot then
    produce the same answer again), and over UDP where TCP failed, name by name."""
    streamed = {r.name for r in over_tcp}
    rest = [r for r in up if r.name not in streamed]
    await asyncio.gather(
        _observe(engine, config, over_tcp, again, stream=True),
        _observe(engine, config, rest, again),
    )
    for resolver in over_tcp:
        silent = [
            p
            for p in range(len(again.domains))
            if all(c & STATUS_MASK in NO_ANSWER for c in again.codes_of(p).get(resolver.name, b""))
        ]
        if silent:
            await _observe(engine, config, [resolver], again, silent)


def _round_says(
    again: Tally, position: int, tally: Tally, i: int, panel: Panel, config: Config
) -> Verdict:
    """Return a confirmation round's verdict on one name. Only an answer contradicts: a
    resolver that gave no answer this round (it timed out, or failed) keeps its answer from
    the main pass, so a round in which a group got no answer at all changes nothing."""
    fresh, before = again.codes_of(position), tally.codes_of(i)
    codes: dict[str, bytes] = {}
    source: dict[str, tuple[Tally, int]] = {}
    for name in (*panel.national, *panel.control):
        mine = fresh.get(name)
        if mine is not None and not all(c & STATUS_MASK in NO_ANSWER for c in mine):
            codes[name], source[name] = mine, (again, position)
        elif name in before:
            codes[name], source[name] = before[name], (tally, i)
    apart = _apart(codes, source, panel)
    return judge_codes(codes, panel, min_controls=config.min_controls, apart=apart)


def _apart(
    codes: Mapping[str, bytes], source: Mapping[str, tuple[Tally, int]], panel: Panel
) -> frozenset[str]:
    """The nationals whose labelled answers share no address with the controls' answers, each
    resolver's answers taken from the tally its codes came from."""
    national = {
        n: source[n][0].answers_of(n, source[n][1])
        for n in panel.national
        if n in codes and labelled(codes[n])
    }
    if not national:
        return frozenset()
    controls = [source[c][0].answers_of(c, source[c][1]) for c in panel.control if c in codes]
    return apart_from(national, controls)


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
    tally: Tally,
    panel: Panel,
    domains: Sequence[str],
    previous: Mapping[str, str],
    paged: Collection[int],
    asked: Collection[int],
) -> list[int]:
    """Return the positions the controls must be asked about in the economical strategy (with
    ``asked``, those they were asked about already).

    Every name the national resolvers do not resolve cleanly: a resolver does not say it exists,
    an answer is suspicious (a bogon, a listed block page), carries an Extended DNS Error, is
    empty where the name exists (NODATA for every type), or gives a value of a suspected block
    page (``paged``). Every name not present last time, and a fresh random sample of the rest,
    so that names that exist only nationally are found over the days.
    """
    needed = set(asked) | set(paged)
    rest = []
    for i, domain in enumerate(domains):
        if i in needed:
            continue
        codes = tally.codes_of(i)
        clean = all(
            state_of(c, authoritative=n in panel.authoritative) is State.EXISTS
            and not any(x & (SUSPICIOUS | NOTED) for x in c)
            # empty for every type: perhaps emptied (RPZ's NODATA)
            and (n in panel.authoritative or any(x & STATUS_MASK == _OK_CODE for x in c))
            for n, c in codes.items()
        )
        if not clean or previous.get(domain, "present") != "present":
            needed.add(i)
        else:
            rest.append(i)
    size = min(len(rest), max(ECONOMICAL_SAMPLE_MIN, int(len(rest) * ECONOMICAL_SAMPLE)))
    needed.update(random.sample(rest, size))
    return sorted(needed)


_OK_CODE = STATUS_CODE[Status.OK]


def _status_shower(
    order: tuple[str, ...],
    asked: frozenset[str],
    tally: Tally,
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
    engine: Engine, config: Config, resolvers: Sequence[Resolver], *, tcp: bool = False
) -> tuple[dict[str, ResolverHealth], dict[str, frozenset[str]]]:
    """Ask ``resolvers`` the canaries, and a name that cannot exist; with ``tcp``, ask each
    udp resolver the first canary over TCP too.

    A resolver that resolves none of the canaries, in two rounds at least a timeout apart, is
    down for the run. One that answers the impossible name with addresses rewrites NXDOMAIN: it
    stays in use, but answers with those addresses count as NXDOMAIN. A udp resolver that gives
    no answer over TCP is re-asked over UDP when confirming (its ``tcp`` says why). Returns the
    health of each resolver and the rewrite addresses.
    """
    tld = config.canaries[0].rsplit(".", 1)[-1]
    impossible = f"rm-nx-{secrets.token_hex(8)}.{tld}"
    seen: dict[str, list[Observation]] = {r.name: [] for r in resolvers}
    probes: dict[str, list[Observation]] = {r.name: [] for r in resolvers}
    streamed: dict[str, Observation] = {}
    names = [r.name for r in resolvers]
    udp = [r.name for r in resolvers if r.transport == "udp"] if tcp else []
    began = asyncio.get_running_loop().time()
    await asyncio.gather(
        engine.observe(names, config.canaries, ("A",), lambda _, o: seen[o.resolver].append(o)),
        engine.observe(
            names, [impossible], ("A", "AAAA"), lambda _, o: probes[o.resolver].append(o)
        ),
        engine.observe(
            udp,
            config.canaries[:1],
            ("A",),
            lambda _, o: streamed.__setitem__(o.resolver, o),
            stream=True,
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
        over_tcp = _tcp_health(streamed[r.name]) if r.name in streamed else None
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
            health[r.name] = ResolverHealth(
                r.name, r.group, Health.NXDOMAIN_REWRITING, detail, over_tcp
            )
        else:
            health[r.name] = ResolverHealth(r.name, r.group, Health.UP, None, over_tcp)
    return health, rewrites


def _tcp_health(observation: Observation) -> TcpHealth | None:
    """Return why a canary asked over TCP got no answer, or None when it got one."""
    if observation.status == Status.TIMEOUT:
        return TcpHealth.TIMEOUT
    if observation.status != Status.ERROR:
        return None  # an answer, whatever it says: TCP works
    if "refused" in (observation.detail or "").lower():
        return TcpHealth.REFUSED
    return TcpHealth.ERROR


async def _observe(
    engine: Engine,
    config: Config,
    resolvers: Sequence[Resolver],
    tally: Tally,
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
