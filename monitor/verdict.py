"""Verdicts: what the observations of one domain at every resolver say about it (pure functions)."""

from __future__ import annotations

import ipaddress
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from monitor.probe import Observation


class State(StrEnum):
    """What one resolver says about one domain, over the record types."""

    EXISTS = "EXISTS"
    ABSENT = "ABSENT"
    FAILED = "FAILED"
    TAMPERED = "TAMPERED"


class Verdict(StrEnum):
    """The verdict on one domain for one run (DESIGN.md's table)."""

    PRESENT = "present"
    MISSING = "missing"
    FAILING = "failing"
    TAMPERED = "tampered"
    PARTIAL = "partial"
    NATIONAL_ONLY = "national-only"
    GONE = "gone"
    UNSTABLE = "unstable"
    INCONCLUSIVE = "inconclusive"

    @property
    def conclusive(self) -> bool:
        """Whether this verdict may raise or clear a flag."""
        return self not in (Verdict.UNSTABLE, Verdict.INCONCLUSIVE)


# A domain with one of these verdicts is asked again before the verdict is believed.
SETTLED = frozenset({Verdict.PRESENT, Verdict.GONE})

# What a group of resolvers says, once its failed and down members are left out.
CONTROL_JUDGEMENTS = ("exists", "absent", "unstable", "inconclusive")
NATIONAL_JUDGEMENTS = ("exists", "absent", "failed", "tampered", "split")

_TABLE: dict[tuple[str, str], Verdict] = {
    ("exists", "exists"): Verdict.PRESENT,
    ("exists", "absent"): Verdict.MISSING,
    ("exists", "failed"): Verdict.FAILING,
    ("exists", "tampered"): Verdict.TAMPERED,
    ("exists", "split"): Verdict.PARTIAL,
    ("absent", "exists"): Verdict.NATIONAL_ONLY,
    ("absent", "absent"): Verdict.GONE,
    ("absent", "failed"): Verdict.GONE,
    ("absent", "tampered"): Verdict.TAMPERED,
    ("absent", "split"): Verdict.GONE,
}

_EXISTS_STATUSES = frozenset({"ok", "nodata"})


def resolver_state(observations: Sequence[Observation], *, authoritative: bool = False) -> State:
    """Return EXISTS, ABSENT or FAILED for one resolver's observations of one domain.

    Tampering is decided separately (:func:`is_tampered`), because it needs the controls' answers.
    """
    exists = _EXISTS_STATUSES | {"referral"} if authoritative else _EXISTS_STATUSES
    statuses = {o.status for o in observations}
    if statuses & exists:
        return State.EXISTS
    if "nxdomain" in statuses:
        return State.ABSENT
    return State.FAILED


def is_suspicious(address: str, *, bogons: bool, stub_addresses: Collection[str]) -> bool:
    """Return whether an answer address looks like tampering: a stub, or (if asked) a bogon."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if str(ip) in stub_addresses:
        return True
    if not bogons:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not ip.is_global or ip.is_multicast


def is_tampered(
    observations: Sequence[Observation],
    control_observations: Sequence[Observation],
    *,
    bogons: bool,
    stub_addresses: Collection[str],
) -> bool:
    """Return whether a national resolver's answers hold a bogon or stub address no control gave.

    Only addresses count (A and AAAA answers); when any control answer is itself suspicious the
    name legitimately points there and nothing is tampered.
    """

    def suspicious(obs: Sequence[Observation]) -> bool:
        return any(
            is_suspicious(a, bogons=bogons, stub_addresses=stub_addresses)
            for o in obs
            if o.status == "ok" and o.rdtype in ("A", "AAAA")
            for a in o.answers
        )

    return suspicious(observations) and not suspicious(control_observations)


def judge_controls(states: Sequence[State], min_controls: int) -> str:
    """Return the control group's judgement: exists, absent, unstable or inconclusive.

    ``states`` holds one entry per control that is up; FAILED ones are left out here.
    """
    answered = [State.EXISTS if s is State.TAMPERED else s for s in states if s is not State.FAILED]
    if len(answered) < min_controls or not answered:
        return "inconclusive"
    if all(s is State.EXISTS for s in answered):
        return "exists"
    if all(s is State.ABSENT for s in answered):
        return "absent"
    return "unstable"


def judge_nationals(states: Sequence[State]) -> str:
    """Return the national group's judgement: exists, absent, failed, tampered or split."""
    answered = [s for s in states if s is not State.FAILED]
    if not answered:
        return "failed"
    if State.TAMPERED in answered:
        return "tampered"
    if all(s is State.EXISTS for s in answered):
        return "exists"
    if all(s is State.ABSENT for s in answered):
        return "absent"
    return "split"


def decide(controls: str, nationals: str) -> Verdict:
    """Return the verdict for a pair of group judgements (DESIGN.md's table)."""
    if controls == "unstable":
        return Verdict.UNSTABLE
    if controls == "inconclusive":
        return Verdict.INCONCLUSIVE
    return _TABLE[(controls, nationals)]


@dataclass(frozen=True)
class Panel:
    """The resolvers whose observations count this run, split by group."""

    national: tuple[str, ...]
    control: tuple[str, ...]
    authoritative: frozenset[str] = frozenset()


def judge(
    by_resolver: Mapping[str, Sequence[Observation]],
    panel: Panel,
    *,
    min_controls: int,
    bogons: bool,
    stub_addresses: Collection[str],
) -> Verdict:
    """Return the verdict on one domain from its observations, keyed by resolver name.

    Resolvers missing from ``by_resolver`` (down, or not asked) are left out of their group.
    """
    control_obs = [o for name in panel.control for o in by_resolver.get(name, ())]
    control_states = [
        resolver_state(by_resolver[name], authoritative=name in panel.authoritative)
        for name in panel.control
        if name in by_resolver
    ]
    national_states = []
    for name in panel.national:
        if name not in by_resolver:
            continue
        obs = by_resolver[name]
        state = resolver_state(obs, authoritative=name in panel.authoritative)
        if state is State.EXISTS and is_tampered(
            obs, control_obs, bogons=bogons, stub_addresses=stub_addresses
        ):
            state = State.TAMPERED
        national_states.append(state)
    return decide(judge_controls(control_states, min_controls), judge_nationals(national_states))


def most_telling(statuses: Sequence[str]) -> str:
    """Return the status shown for a resolver in a snapshot line, from its per-type statuses."""
    for wanted in ("ok", "nodata", "nxdomain"):
        if wanted in statuses:
            return wanted
    return statuses[0] if statuses else "error"
