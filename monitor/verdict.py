"""Verdicts: what the observations of one domain at every resolver say about it (pure functions)."""

from __future__ import annotations

import bisect
import functools
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

# A reply, compacted for a million names: the status's index in STATUSES, and flags: an answer
# looks like tampering (a bogon, a listed block-page address or walled-garden name), the reply
# carries an Extended DNS Error that labels a block or a forgery, or carries any EDE.
STATUS_CODE = {status: code for code, status in enumerate(STATUSES)}
STATUS_MASK = 0x0F
SUSPICIOUS = 0x10
LABELLED = 0x20
NOTED = 0x40
NOT_ASKED = 0xFF
# RFC 8914: 4 Forged Answer, 15 Blocked, 16 Censored, 17 Filtered. On an answer that shares no
# address with the controls', tampering; an answer the controls agree with stays present.
BLOCKING_EDE = frozenset({4, 15, 16, 17})
_EXISTS_CODES = frozenset({STATUS_CODE[Status.OK], STATUS_CODE[Status.NODATA]})
_EXISTS_AUTHORITATIVE = _EXISTS_CODES | {STATUS_CODE[Status.REFERRAL]}
_NXDOMAIN = STATUS_CODE[Status.NXDOMAIN]
_OK_CODE = STATUS_CODE[Status.OK]
_NODATA_CODE = STATUS_CODE[Status.NODATA]
_ANSWERED = frozenset({_OK_CODE, _NODATA_CODE, _NXDOMAIN})


class Suspicion:
    """What makes an answer look like tampering: a bogon (when ``bogons``), an address in
    ``stub_addresses`` (addresses or CIDR ranges), or a CNAME chain through a name in
    ``stub_names``. Built once per run: every answer is looked up here."""

    def __init__(
        self,
        *,
        bogons: bool = True,
        stub_addresses: Collection[str] = (),
        stub_names: Collection[str] = (),
    ) -> None:
        networks = [ipaddress.ip_network(a, strict=False) for a in stub_addresses]
        v4 = [str(n) for n in networks if n.version == 4]
        v6 = [str(n) for n in networks if n.version == 6]
        self._v4 = _ranges((_BOGON_V4_LIST if bogons else []) + v4)
        self._v6 = _ranges((_BOGON_V6_LIST if bogons else []) + v6)
        self._mapped = bogons or bool(v4)
        self.names = frozenset(stub_names)

    def address(self, address: str) -> bool:
        """Return whether an answer address looks like tampering."""
        try:
            if ":" not in address:
                value = int.from_bytes(socket.inet_pton(socket.AF_INET, address))
                return _in_ranges(value, self._v4)
            value = int.from_bytes(socket.inet_pton(socket.AF_INET6, address))
        except OSError:
            return False
        if value >> 32 == 0xFFFF and self._mapped:  # IPv4-mapped
            return _in_ranges(value & 0xFFFFFFFF, self._v4)
        return _in_ranges(value, self._v6)

    def observation(self, observation: Observation) -> bool:
        """Return whether an answer looks like tampering (an address, or its CNAME chain)."""
        rdtype = observation.rdtype
        if rdtype == "A":  # every answer comes here: an A's addresses are looked up inline
            starts, ends = self._v4
            for a in observation.answers:
                try:
                    value = int.from_bytes(socket.inet_pton(socket.AF_INET, a))
                except OSError:
                    continue
                i = bisect.bisect_right(starts, value) - 1
                if i >= 0 and value <= ends[i]:
                    return True
        elif rdtype == "AAAA":
            for a in observation.answers:
                if self.address(a):
                    return True
        chain = observation.evidence.cname
        return bool(chain) and not self.names.isdisjoint(chain)

    def code_of(self, observation: Observation) -> int:
        """Return an observation's compact code: its status and its flags."""
        code = STATUS_CODE[observation.status]
        if self.observation(observation):
            code |= SUSPICIOUS
        ede = observation.evidence.ede
        if ede:
            code |= NOTED
            if any(c in BLOCKING_EDE for c, _ in ede):
                code |= LABELLED
        return code


@functools.lru_cache(maxsize=64)
def _suspicion(bogons: bool, stubs: frozenset[str], names: frozenset[str]) -> Suspicion:
    return Suspicion(bogons=bogons, stub_addresses=stubs, stub_names=names)


def code_of(
    observation: Observation,
    *,
    bogons: bool,
    stub_addresses: Collection[str],
    stub_names: Collection[str] = (),
) -> int:
    """Return an observation's compact code: its status, and its flags (SUSPICIOUS, LABELLED,
    NOTED)."""
    return _suspicion(bogons, frozenset(stub_addresses), frozenset(stub_names)).code_of(observation)


def state_of(codes: Sequence[int], *, authoritative: bool = False) -> State:
    """Return EXISTS, ABSENT or FAILED for one resolver's codes (one per record type)."""
    exists = _EXISTS_AUTHORITATIVE if authoritative else _EXISTS_CODES
    statuses = {c & STATUS_MASK for c in codes}
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
    """Return whether an answer address looks like tampering: a stub (an address or a range),
    or (if asked) a bogon."""
    return _suspicion(bogons, frozenset(stub_addresses), frozenset()).address(address)


def is_bogon(address: str) -> bool:
    """Return whether an address is outside globally routable unicast space."""
    return _BOGONS.address(address)


def _ranges(networks: list[str]) -> tuple[list[int], list[int]]:
    """Return sorted, merged (starts, ends) of the networks, for bisection (a listed range may
    lie inside a bogon range, or overlap another)."""
    spans = sorted(
        (int(n.network_address), int(n.broadcast_address))
        for n in (ipaddress.ip_network(text) for text in networks)
    )
    starts: list[int] = []
    ends: list[int] = []
    for start, end in spans:
        if ends and start <= ends[-1] + 1:
            ends[-1] = max(ends[-1], end)
        else:
            starts.append(start)
            ends.append(end)
    return starts, ends


def _in_ranges(value: int, ranges: tuple[list[int], list[int]]) -> bool:
    starts, ends = ranges
    i = bisect.bisect_right(starts, value) - 1
    return i >= 0 and value <= ends[i]


# What Python's ipaddress calls not global, plus multicast (RFC 6890 and its updates); checked
# against ipaddress in the tests. Looked up by bisection: at a million names, every answer is.
_BOGON_V4_LIST = [
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
_BOGON_V6_LIST = [
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
_BOGONS = Suspicion()


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
    by_resolver: Mapping[str, Sequence[int]],
    panel: Panel,
    *,
    min_controls: int,
    apart: Collection[str] = (),
) -> Verdict:
    """Return the verdict on one domain from its codes (one per record type), keyed by resolver.

    Resolvers missing from ``by_resolver`` (down, or not asked) are left out of their group. A
    national resolver that EXISTS is TAMPERED (DESIGN.md) when, while no control shows the
    same thing, its answer is suspicious (unless some control's is too: then the name really
    points there), or it is emptied (no type ok, and NODATA for a type on which the controls
    that answered say ok), or it is in ``apart``: its answer carries a blocking EDE and shares
    no address with the controls' (the caller compares the addresses; see :func:`apart_from`).
    """
    control_states = []
    controls_suspicious = False
    control_codes = []
    for name in panel.control:
        codes = by_resolver.get(name)
        if codes is None:
            continue
        control_codes.append(codes)
        control_states.append(state_of(codes, authoritative=name in panel.authoritative))
        controls_suspicious = controls_suspicious or any(c & SUSPICIOUS for c in codes)
    national_states = []
    for name in panel.national:
        codes = by_resolver.get(name)
        if codes is None:
            continue
        state = state_of(codes, authoritative=name in panel.authoritative)
        if state is State.EXISTS and (
            name in apart
            or (not controls_suspicious and suspicious(codes))
            or emptied(codes, control_codes)
        ):
            state = State.TAMPERED
        national_states.append(state)
    return decide(judge_controls(control_states, min_controls), judge_nationals(national_states))


def suspicious(codes: Sequence[int]) -> bool:
    """Return whether an ``ok`` type of these codes has a suspicious answer."""
    return any(c & SUSPICIOUS and c & STATUS_MASK == _OK_CODE for c in codes)


def emptied(codes: Sequence[int], control_codes: Sequence[Sequence[int]]) -> bool:
    """Return whether a resolver's answer is emptied: no type ``ok``, and ``nodata`` for a type
    on which every control that answered it (ok, nodata or nxdomain) says ``ok`` (RPZ's NODATA
    action; a name with no A anywhere stays present)."""
    if any(c & STATUS_MASK == _OK_CODE for c in codes):
        return False
    for column, code in enumerate(codes):
        if code & STATUS_MASK != _NODATA_CODE:
            continue
        said = [
            c[column] & STATUS_MASK
            for c in control_codes
            if column < len(c) and c[column] & STATUS_MASK in _ANSWERED
        ]
        if said and all(x == _OK_CODE for x in said):
            return True
    return False


def labelled(codes: Sequence[int]) -> bool:
    """Return whether an ``ok`` type of these codes carries a blocking EDE (4, 15, 16, 17)."""
    return any(c & LABELLED and c & STATUS_MASK == _OK_CODE for c in codes)


def apart_from(
    national: Mapping[str, Mapping[int, Sequence[str]]],
    controls: Sequence[Mapping[int, Sequence[str]]],
) -> frozenset[str]:
    """Return the national resolvers whose labelled answers share no address with the controls'.

    ``national`` maps each national resolver with a labelled ``ok`` answer to its addresses by
    record type (column); ``controls`` holds each control's addresses by column.
    """
    found = set()
    for name, by_column in national.items():
        for column, addresses in by_column.items():
            theirs = {a for c in controls for a in c.get(column, ())}
            if addresses and theirs.isdisjoint(addresses):
                found.add(name)
    return frozenset(found)


def judge(
    by_resolver: Mapping[str, Sequence[Observation]],
    panel: Panel,
    *,
    min_controls: int,
    bogons: bool,
    stub_addresses: Collection[str],
    stub_names: Collection[str] = (),
) -> Verdict:
    """Return the verdict on one domain from its observations, keyed by resolver name (the
    observations of one resolver in the same order of record types for every resolver)."""
    suspicion = _suspicion(bogons, frozenset(stub_addresses), frozenset(stub_names))
    codes = {name: [suspicion.code_of(o) for o in obs] for name, obs in by_resolver.items()}
    addresses = {
        name: {i: o.answers for i, o in enumerate(obs) if o.status == Status.OK}
        for name, obs in by_resolver.items()
    }
    national = {n: addresses[n] for n in panel.national if n in codes and labelled(codes[n])}
    controls = [addresses[n] for n in panel.control if n in addresses]
    return judge_codes(
        codes, panel, min_controls=min_controls, apart=apart_from(national, controls)
    )


def most_telling_code(codes: Sequence[int]) -> Status:
    """Return the status shown in a snapshot line, from a resolver's codes."""
    return most_telling([STATUSES[c & STATUS_MASK] for c in codes if c != NOT_ASKED])


# Most telling first; bound once, as the snapshot asks for every name at every resolver.
_TELLING = (Status.OK, Status.NODATA, Status.NXDOMAIN)
_ERROR = Status.ERROR


def most_telling(statuses: Sequence[Status]) -> Status:
    """Return the status shown for a resolver in a snapshot line, from its per-type statuses."""
    for wanted in _TELLING:
        if wanted in statuses:
            return wanted
    return statuses[0] if statuses else _ERROR
