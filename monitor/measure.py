"""One measurement of a watchlist: canaries, queries at every resolver, confirmation, verdicts."""

from __future__ import annotations

import asyncio
import itertools
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from monitor.config import Config, Resolver, WatchedName
from monitor.probe import Engine, Observation
from monitor.verdict import SETTLED, Panel, Verdict, judge, most_telling

# Seconds between confirmation rounds: long enough for a flapping answer or a lost packet to
# change, short enough for a nightly run.
CONFIRM_SPACING = 1.0


@dataclass(frozen=True)
class ResolverHealth:
    """How one resolver fared this run."""

    name: str
    group: str
    health: str  # up | down | nxdomain-rewriting
    detail: str | None = None


@dataclass(frozen=True)
class DomainResult:
    """The verdict on one watched name, with what each resolver said (types in config order)."""

    name: WatchedName
    verdict: Verdict
    observations: Mapping[str, tuple[Observation, ...]]

    @property
    def domain(self) -> str:
        return self.name.domain

    def status(self, resolver: str) -> str:
        """Return the resolver's most telling status for the snapshot line, or ``down``."""
        obs = self.observations.get(resolver)
        if obs is None:
            return "down"
        return most_telling([o.status for o in obs])


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
) -> Measurement:
    """Resolve ``names`` (default: the watchlist) as ``config`` says and return the measurement.

    Network trouble never raises: it shows as statuses, resolver health and verdicts.
    """
    return asyncio.run(
        _measure(config, config.watchlist if names is None else names, confirm_spacing)
    )


async def _measure(
    config: Config, names: Sequence[WatchedName], confirm_spacing: float
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

        def decide(by_resolver: Mapping[str, Sequence[Observation]]) -> Verdict:
            return judge(
                by_resolver,
                panel,
                min_controls=config.min_controls,
                bogons=config.bogons,
                stub_addresses=config.stub_addresses,
            )

        domains = [n.domain for n in names]
        observed = await _observe(engine, up, domains, config.record_types)
        verdicts = {d: decide(observed[d]) for d in domains}

        doubtful = [d for d in domains if verdicts[d] not in SETTLED]
        for _ in range(config.confirm):
            if not doubtful:
                break
            await asyncio.sleep(confirm_spacing)
            again = await _observe(engine, up, doubtful, config.record_types)
            for d in doubtful:
                if decide(again[d]) != verdicts[d]:
                    verdicts[d] = Verdict.UNSTABLE
            doubtful = [d for d in doubtful if verdicts[d] is not Verdict.UNSTABLE]

        results = tuple(
            DomainResult(name, verdicts[name.domain], _ordered(observed[name.domain], config))
            for name in names
        )
        counts: dict[str, int] = defaultdict(int)
        for result in results:
            counts[result.verdict.value] += 1
        return Measurement(config.vantage, healths, results, None, engine.sent, dict(counts))


async def _canaries(engine: Engine, config: Config) -> dict[str, ResolverHealth]:
    """Ask every resolver the canaries; one that resolves none of them is down for the run."""
    seen: dict[str, list[Observation]] = defaultdict(list)
    jobs = {r.name: [(c, "A") for c in config.canaries] for r in config.resolvers}
    await engine.observe(jobs, lambda o: seen[o.resolver].append(o))
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
    engine: Engine, resolvers: Sequence[Resolver], domains: Sequence[str], rdtypes: Sequence[str]
) -> dict[str, dict[str, list[Observation]]]:
    """Return observations keyed by domain, then resolver."""
    observed: dict[str, dict[str, list[Observation]]] = {d: {} for d in domains}

    def sink(o: Observation) -> None:
        observed[o.domain].setdefault(o.resolver, []).append(o)

    jobs = {r.name: list(itertools.product(domains, rdtypes)) for r in resolvers}
    await engine.observe(jobs, sink)
    return observed


def _ordered(
    by_resolver: Mapping[str, Sequence[Observation]], config: Config
) -> dict[str, tuple[Observation, ...]]:
    order: Callable[[Observation], int] = lambda o: config.record_types.index(o.rdtype)  # noqa: E731
    return {
        r.name: tuple(sorted(by_resolver[r.name], key=order))
        for r in config.resolvers
        if r.name in by_resolver
    }
