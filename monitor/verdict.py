"""Verdicts: what the observations of one domain at every resolver say about it (pure functions)."""

from __future__ import annotations

import bisect
import ipaddress
import socket
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from monitor.probe import Observation
from monitor.vocabulary import STATUSES, ControlJudgement, NationalJudgement, Status, Verdict


class State(StrEnum):
    """What one resolver says about one domain, over the record types."""

    EXISTS = "EXISTS"
    ABSENT = "ABSENT"
    FAILED = "FAILED"
    TAMPERED = "TAMPERED"


# Verdicts believed at once; a domain with any other verdict is asked again `confirm` times.
SETTLED = frozenset({Verdict.PRESENT, Verdict.GONE})

_C, _N = ControlJudgement, NationalJudgement
# DESIGN.md's table; unstable and inconclusive controls give their own verdict.
_TABLE: dict[tuple[ControlJudgement, NationalJudgement], Verdict] = {
    (_C.EXISTS, _N.EXISTS): Verdict.PRESENT,
    (_C.EXISTS, _N.ABSENT): Verdict.MISSING,
    (_C.EXISTS, _N.FAILED): Verdict.FAILING,
    (_C.EXISTS, _N.TAMPERED): Verdict.TAMPERED,
    (_C.EXISTS, _N.SPLIT): Verdict.PARTIAL,
    (_C.ABSENT, _N.EXISTS): Verdict.NATIONAL_ONLY,
    (_C.ABSENT, _N.ABSENT): Verdict.GONE,
    (_C.ABSENT, _N.FAILED): Verdict.GONE,
    (_C.ABSENT, _N.TAMPERED): Verdict.TAMPERED,
    (_C.ABSENT, _N.SPLIT): Verdict.GONE,
}

# A reply, compacted for a million names: the status's index in STATUSES, plus a flag when an
# answer address looks like tampering (a bogon or a stub address).
STATUS_CODE = {status: code for code, status in enumerate(STATUSES)}
SUSPICIOUS = 0x10
NOT_ASKED = 0xFF
_EXISTS_CODES = frozenset({STATUS_CODE[Status.OK], STATUS_CODE[Status.NODATA]})
_EXISTS_AUTHORITATIVE = _EXISTS_CODES | {STATUS_CODE[Status.REFERRAL]}
_NXDOMAIN = STATUS_CODE[Status.NXDOMAIN]


def code_of(observation: Observation, *, bogons: bool, stub_addresses: Collection[str]) -> int:
    """Return an observation's compact code: its status, flagged when an answer is suspicious."""
    code = STATUS_CODE[observation.status]
    if observation.rdtype in ("A", "AAAA") and any(
        is_suspicious(a, bogons=bogons, stub_addresses=stub_addresses) for a in observation.answers
    ):
        code |= SUSPICIOUS
    return code


def state_of(codes: Sequence[int], *, authoritative: bool = False) -> State:
    """Return EXISTS, ABSENT or FAILED for one resolver's codes (one per record type)."""
    exists = _EXISTS_AUTHORITATIVE if authoritative else _EXISTS_CODES
    statuses = {c & 0x0F for c in codes}
    if statuses & exists:
        return State.EXISTS
    if _NXDOMAIN in statuses:
        return State.ABSENT
    return State.FAILED


def resolver_state(observations: Sequence[Observation], *, authoritative: bool = False) -> State:
    """Return EXISTS, ABSENT or FAILED for one resolver's observations of one domain.

    Tampering is decided separately, because it needs the controls' answers.
    """
    return state_of([STATUS_CODE[o.status] for o in observations], authoritative=authoritative)


def is_suspicious(address: str, *, bogons: bool, stub_addresses: Collection[str]) -> bool:
    """Return whether an answer address looks like tampering: a stub, or (if asked) a bogon."""
    if address in stub_addresses:
        return True
    return bogons and is_bogon(address)


def is_bogon(address: str) -> bool:
    """Return whether an address is outside globally routable unicast space."""
    try:
        if ":" not in address:
            value = int.from_bytes(socket.inet_pton(socket.AF_INET, address), "big")
            return _in_ranges(value, _BOGONS_V4)
        value = int.from_bytes(socket.inet_pton(socket.AF_INET6, address), "big")
    except OSError:
        return False
    if value >> 32 == 0xFFFF:  # IPv4-mapped
        return _in_ranges(value & 0xFFFFFFFF, _BOGONS_V4)
    return _in_ranges(value, _BOGONS_V6)


def _ranges(networks: list[str]) -> tuple[list[int], list[int]]:
    """Return sorted (starts, ends) of the networks, for bisection."""
    nets = sorted(ipaddress.ip_network(n) for n in networks)
    return [int(n.network_address) for n in nets], [int(n.broadcast_address) for n in nets]


def _in_ranges(value: int, ranges: tuple[list[int], list[int]]) -> bool:
    starts, ends = ranges
    i = bisect.bisect_right(starts, value) - 1
    return i >= 0 and value <= ends[i]


# What Python's ipaddress calls not global, plus multicast (RFC 6890 and its updates); checked
# against ipaddress in the tests. Looked up by bisection: at a million names, every answer is.
_BOGONS_V4 = _ranges(
    [
        "0.0.0.0/8",
        "10.0.0.0/8",
        "100.64.0.0/10",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "172.16.0.0/12",
        "192.0.0.0/24",
        "192.0.2.0/24",
        "192.168.0.0/16",
        "198.18.0.0/15",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "224.0.0.0/3",
    ]
)
_BOGONS_V6 = _ranges(
    [
        "::/127",
        "::ffff:0:0/96",
        "64:ff9b:1::/48",
        "100::/64",
        "2001::/23",
        "2001:db8::/32",
        "fc00::/7",
        "fe80::/10",
        "ff00::/8",
    ]
)


def judge_controls(states: Sequence[State], min_controls: int) -> ControlJudgement:
    """Return the control group's judgement: exists, absent, unstable or inconclusive.

    ``states`` holds one entry per control that is up; FAILED ones are left out here.
    """
    answered = [State.EXISTS if s is State.TAMPERED else s for s in states if s is not State.FAILED]
    if len(answered) < min_controls or not answered:
        return _C.INCONCLUSIVE
    if len(set(answered)) > 1:
        return _C.UNSTABLE
    return _C.EXISTS if answered[0] is State.EXISTS else _C.ABSENT


def judge_nationals(states: Sequence[State]) -> NationalJudgement:
    """Return the national group's judgement: exists, absent, failed, tampered or split."""
    answered = [s for s in states if s is not State.FAILED]
    if not answered:
        return _N.FAILED
    if State.TAMPERED in answered:
        return _N.TAMPERED
    if len(set(answered)) > 1:
        return _N.SPLIT
    return _N.EXISTS if answered[0] is State.EXISTS else _N.ABSENT


def decide(controls: ControlJudgement, nationals: NationalJudgement) -> Verdict:
    """Return the verdict for a pair of group judgements (DESIGN.md's table)."""
    if controls == _C.UNSTABLE:
        return Verdict.UNSTABLE
    if controls == _C.INCONCLUSIVE:
        return Verdict.INCONCLUSIVE
    return _TABLE[(controls, nationals)]


@dataclass(frozen=True)
class Panel:
    """The resolvers whose observations count this run, split by group."""

    national: tuple[str, ...]
    control: tuple[str, ...]
    authoritative: frozenset[str] = frozenset()


def judge_codes(
    by_resolver: Mapping[str, Sequence[int]], panel: Panel, *, min_controls: int
) -> Verdict:
    """Return the verdict on one domain from its codes (one per record type), keyed by resolver.

    Resolvers missing from ``by_resolver`` (down, or not asked) are left out of their group. A
    national resolver that EXISTS with a suspicious answer is TAMPERED, unless some control's
    answer is suspicious too (then the name really points there).
    """
    control_states = []
    controls_suspicious = False
    for name in panel.control:
        codes = by_resolver.get(name)
        if codes is None:
            continue
        control_states.append(state_of(codes, authoritative=name in panel.authoritative))
        controls_suspicious = controls_suspicious or any(c & SUSPICIOUS for c in codes)
    national_states = []
    for name in panel.national:
        codes = by_resolver.get(name)
        if codes is None:
            continue
        state = state_of(codes, authoritative=name in panel.authoritative)
        if (
            state is State.EXISTS
            and not controls_suspicious
            and any(c & SUSPICIOUS and c & 0x0F == 0 for c in codes)
        ):
            state = State.TAMPERED
        national_states.append(state)
    return decide(judge_controls(control_states, min_controls), judge_nationals(national_states))


def judge(
    by_resolver: Mapping[str, Sequence[Observation]],
    panel: Panel,
    *,
    min_controls: int,
    bogons: bool,
    stub_addresses: Collection[str],
) -> Verdict:
    """Return the verdict on one domain from its observations, keyed by resolver name."""
    codes = {
        name: [code_of(o, bogons=bogons, stub_addresses=stub_addresses) for o in observations]
        for name, observations in by_resolver.items()
    }
    return judge_codes(codes, panel, min_controls=min_controls)


def most_telling_code(codes: Sequence[int]) -> Status:
    """Return the status shown in a snapshot line, from a resolver's codes."""
    return most_telling([STATUSES[c & 0x0F] for c in codes if c != NOT_ASKED])


# Most telling first; bound once, as the snapshot asks for every name at every resolver.
_TELLING = (Status.OK, Status.NODATA, Status.NXDOMAIN)
_ERROR = Status.ERROR


def most_telling(statuses: Sequence[Status]) -> Status:
    """Return the status shown for a resolver in a snapshot line, from its per-type statuses."""
    for wanted in _TELLING:
        if wanted in statuses:
            return wanted
    return statuses[0] if statuses else _ERROR
