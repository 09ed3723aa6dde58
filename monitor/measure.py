"""One measurement of a watchlist: canaries, queries at every resolver, confirmation, verdicts.

Observations are folded into one byte per (resolver, domain, record type) as they arrive, so a
million names fit in a few tens of megabytes; the full observations are kept only on request
(``detail``: for ``check`` and ``--json``).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from monitor.config import Config, Resolver, WatchedName
from monitor.probe import Engine, Observation
from monitor.verdict import (
    NOT_ASKED,
    SETTLED,
    Panel,
    Verdict,
    code_of,
    judge_codes,
    most_telling_code,
)

# Seconds between confirmation rounds: long enough for a flapping answer or a lost packet to
# change, short enough for a nightly run.
CONFIRM_SPACING = 1.0
DOWN = "down"


@dataclass(frozen=True)
class ResolverHealth:
    """How one resolver fared this run."""

    name: str
    group: str
    health: str  # up | down | nxdomain-rewriting
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
    domains: tuple[DomainResult, ...]
    inconclusive: str | None = None
    queries: int = 0
    counts: Mapping[str, int] = field(default_factory=dict)


def measure(
    config: Config,
    names: Sequence[WatchedName] | None = None,
    *,
    confirm_spacing: float = CONFIRM_SPACING,
    detail: bool = True,
) -> Measurement:
    """Resolve ``names`` (default: the watchlist) as ``config`` says and return the measurement.

    Network trouble never raises: it shows as statuses, resolver health and verdicts.
    """
    names = config.watchlist if names is None else names
    return asyncio.run(_measure(config, names, confirm_spacing, detail))


class _Tally:
    """Codes for a list of domains at a set of resolvers, filled in as observations arrive."""

    def __init__(
        self, config: Config, resolvers: Sequence[Resolver], domains: Sequence[str], detail: bool
    ) -> None:
        self.config = config
        self.domains = domains
        self.width = len(config.record_types)
        size = len(domains) * self.width
        self.codes = {r.name: bytearray([NOT_ASKED]) * size for r in resolvers}
        self.detail: dict[int, dict[str, list[Observation | None]]] | None = {} if detail else None

    def sink(self, index: int, observation: Observation) -> None:
        self.codes[observation.resolver][index] = code_of(
            observation, bogons=self.config.bogons, stub_addresses=self.config.stub_addresses
        )
        if self.detail is not None:
            slots = self.detail.setdefault(index // self.width, {}).setdefault(
                observation.resolver, [None] * self.width
            )
            slots[index % self.width] = observation

    def codes_of(self, position: int) -> dict[str, bytes]:
        start = position * self.width
        return {name: bytes(c[start : start + self.width]) for name, c in self.codes.items()}

    def observations_of(self, position: int) -> dict[str, tuple[Observation, ...]]:
        if self.detail is None:
            return {}
        return {
            name: tuple(o for o in slots if o is not None)
            for name, slots in self.detail.get(position, {}).items()
        }


async def _measure(
    config: Config, names: Sequence[WatchedName], confirm_spacing: float, detail: bool
) -> Measurement:
    async with Engine(config.resolvers, timeout=config.timeout, attempts=config.attempts) as engine:
        health = await _canaries(engine, config)
        up = [r for r in config.resolvers if health[r.name].health == "up"]
        national_up = [r for r in up if r.group == "national"]
        controls_up = [r for r in up if r.group == "control"]
        healths = tuple(health[r.name] for r in config.resolvers)
        reason = None
        if not national_up:
            reason = "every national resolver is down (no canary answered)"
        elif len(controls_up) < config.min_controls:
            reason = (
                f"{len(controls_up)} control resolver(s) up, fewer than min_controls "
                f"({config.min_controls})"
            )
        if reason is not None:
            return Measurement(config.vantage, healths, (), reason, engine.sent)

        panel = Panel(
            national=tuple(r.name for r in national_up),
            control=tuple(r.name for r in controls_up),
            authoritative=frozenset(r.name for r in up if r.mode == "authoritative"),
        )
        domains = [n.domain for n in names]
        tally = await _observe(engine, config, up, domains, detail)
        verdicts = [
            judge_codes(tally.codes_of(i), panel, min_controls=config.min_controls)
            for i in range(len(domains))
        ]

        doubtful = [i for i, v in enumerate(verdicts) if v not in SETTLED]
        for _ in range(config.confirm):
            if not doubtful:
                break
            await asyncio.sleep(confirm_spacing)
            again = await _observe(engine, config, up, [domains[i] for i in doubtful], False)
            for position, i in enumerate(doubtful):
                verdict = judge_codes(
                    again.codes_of(position), panel, min_controls=config.min_controls
                )
                if verdict != verdicts[i]:
                    verdicts[i] = Verdict.UNSTABLE
            doubtful = [i for i in doubtful if verdicts[i] is not Verdict.UNSTABLE]

        order = tuple(r.name for r in config.resolvers)
        shown = _status_shower(order, tally)
        results = tuple(
            DomainResult(name, verdicts[i], order, shown(i), tally.observations_of(i))
            for i, name in enumerate(names)
        )
        counts = Counter(v.value for v in verdicts)
        return Measurement(config.vantage, healths, results, None, engine.sent, dict(counts))


def _status_shower(order: tuple[str, ...], tally: _Tally) -> Callable[[int], tuple[str, ...]]:
    """Return a function giving a domain's statuses in config order; equal tuples are shared."""
    shared: dict[tuple[str, ...], tuple[str, ...]] = {}

    def shown(position: int) -> tuple[str, ...]:
        codes = tally.codes_of(position)
        statuses = tuple(most_telling_code(codes[n]) if n in codes else DOWN for n in order)
        return shared.setdefault(statuses, statuses)

    return shown


async def _canaries(engine: Engine, config: Config) -> dict[str, ResolverHealth]:
    """Ask every resolver the canaries; one that resolves none of them is down for the run."""
    seen: dict[str, list[Observation]] = {r.name: [] for r in config.resolvers}
    names = [r.name for r in config.resolvers]
    await engine.observe(names, config.canaries, ("A",), lambda _, o: seen[o.resolver].append(o))
    health = {}
    for r in config.resolvers:
        answered = {"ok", "nodata"} | ({"referral"} if r.mode == "authoritative" else set())
        obs = seen[r.name]
        if any(o.status in answered for o in obs):
            health[r.name] = ResolverHealth(r.name, r.group, "up")
        else:
            said = ", ".join(sorted({f"{o.domain} {o.status}" for o in obs}))
            health[r.name] = ResolverHealth(r.name, r.group, "down", f"canaries: {said}")
    return health


async def _observe(
    engine: Engine,
    config: Config,
    resolvers: Sequence[Resolver],
    domains: Sequence[str],
    detail: bool,
) -> _Tally:
    tally = _Tally(config, resolvers, domains, detail)
    await engine.observe([r.name for r in resolvers], domains, config.record_types, tally.sink)
    return tally
