"""The verdict table and the group rules, case by case."""

from __future__ import annotations

import ipaddress
from collections.abc import Collection

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.probe import Observation
from monitor.verdict import (
    NOT_ASKED,
    STATUS_CODE,
    SUSPICIOUS,
    Panel,
    State,
    code_of,
    decide,
    is_bogon,
    is_suspicious,
    judge,
    judge_controls,
    judge_nationals,
    most_telling,
    most_telling_code,
    resolver_state,
    state_of,
)
from monitor.vocabulary import ControlJudgement, NationalJudgement, Status, Verdict

E, A, F, T = State.EXISTS, State.ABSENT, State.FAILED, State.TAMPERED


def obs(resolver: str, status: str, *answers: str, rdtype: str = "A") -> Observation:
    return Observation(resolver, "example.org", rdtype, Status(status), tuple(answers))


@pytest.mark.parametrize(
    ("controls", "nationals", "verdict"),
    [
        ("exists", "exists", "present"),
        ("exists", "absent", "missing"),
        ("exists", "failed", "failing"),
        ("exists", "tampered", "tampered"),
        ("exists", "split", "partial"),
        ("absent", "exists", "national-only"),
        ("absent", "absent", "gone"),
        ("absent", "failed", "gone"),
        ("absent", "tampered", "tampered"),
        ("absent", "split", "gone"),
        *[("unstable", n, "unstable") for n in ("exists", "absent", "failed", "tampered", "split")],
        *[
            ("inconclusive", n, "inconclusive")
            for n in ("exists", "absent", "failed", "tampered", "split")
        ],
    ],
)
def test_every_cell_of_the_table(controls: str, nationals: str, verdict: str) -> None:
    assert decide(ControlJudgement(controls), NationalJudgement(nationals)) == Verdict(verdict)


@pytest.mark.parametrize(
    ("statuses", "authoritative", "state"),
    [
        (["ok", "nxdomain"], False, E),
        (["nodata", "nodata"], False, E),
        (["nxdomain", "nodata"], False, E),
        (["nxdomain", "nxdomain"], False, A),
        (["nxdomain", "timeout"], False, A),
        (["servfail", "nxdomain"], False, A),
        (["servfail", "refused"], False, F),
        (["timeout", "error"], False, F),
        (["referral", "referral"], False, F),
        (["referral", "referral"], True, E),
        (["referral", "nxdomain"], True, E),
    ],
)
def test_resolver_state(statuses: list[str], authoritative: bool, state: State) -> None:
    observations = [obs("r", s, rdtype=t) for s, t in zip(statuses, ["A", "AAAA"], strict=True)]
    assert resolver_state(observations, authoritative=authoritative) is state


def test_a_resolver_is_recursive_unless_told() -> None:
    """A referral from a resolver not known to be authoritative is no answer."""
    referral = STATUS_CODE[Status.REFERRAL]
    assert resolver_state([obs("r", "referral"), obs("r", "referral", rdtype="AAAA")]) is F
    assert state_of([referral, referral]) is F
    assert state_of([referral, referral], authoritative=True) is E


@pytest.mark.parametrize(
    ("codes", "state"),
    [
        ([STATUS_CODE[Status.OK] | SUSPICIOUS], E),  # the flag never hides the status under it
        ([STATUS_CODE[Status.NODATA] | SUSPICIOUS, STATUS_CODE[Status.NXDOMAIN]], E),
        ([STATUS_CODE[Status.NXDOMAIN], STATUS_CODE[Status.TIMEOUT]], A),
        ([STATUS_CODE[Status.SERVFAIL] | SUSPICIOUS], F),
        ([], F),
    ],
)
def test_state_of_codes(codes: list[int], state: State) -> None:
    assert state_of(codes) is state


@pytest.mark.parametrize(
    ("rdtype", "status", "answers", "bogons", "stubs", "code"),
    [
        ("A", "ok", ("93.184.216.34",), True, set(), STATUS_CODE[Status.OK]),
        (
            "A",
            "ok",
            ("93.184.216.34", "10.0.0.1"),
            True,
            set(),
            STATUS_CODE[Status.OK] | SUSPICIOUS,
        ),
        ("A", "ok", ("10.0.0.1",), False, set(), STATUS_CODE[Status.OK]),
        ("A", "ok", ("95.213.4.1",), False, {"95.213.4.1"}, STATUS_CODE[Status.OK] | SUSPICIOUS),
        ("AAAA", "ok", ("2a00:1450:4001:82a::200e",), True, set(), STATUS_CODE[Status.OK]),
        ("AAAA", "ok", ("fe80::1",), True, set(), STATUS_CODE[Status.OK] | SUSPICIOUS),
        ("AAAA", "ok", ("2001:db8::5",), False, {"2001:db8::5"}, SUSPICIOUS),
        # only addresses are judged as addresses
        ("MX", "ok", ("10.0.0.1",), True, {"10.0.0.1"}, STATUS_CODE[Status.OK]),
        ("TXT", "ok", ("127.0.0.1",), True, set(), STATUS_CODE[Status.OK]),
        # the flag is added to the status, never put in its place
        ("A", "nodata", ("10.0.0.1",), True, set(), STATUS_CODE[Status.NODATA] | SUSPICIOUS),
        ("AAAA", "referral", ("::1",), True, set(), STATUS_CODE[Status.REFERRAL] | SUSPICIOUS),
        ("A", "nxdomain", (), True, set(), STATUS_CODE[Status.NXDOMAIN]),
    ],
)
def test_code_of_an_observation(
    rdtype: str, status: str, answers: tuple[str, ...], bogons: bool, stubs: set[str], code: int
) -> None:
    observation = Observation("r", "example.org", rdtype, Status(status), answers)
    assert code_of(observation, bogons=bogons, stub_addresses=stubs) == code


@pytest.mark.parametrize(
    ("states", "min_controls", "judgement"),
    [
        ([E, E, E], 1, "exists"),
        ([A, A], 1, "absent"),
        ([E, A], 1, "unstable"),
        ([E, F, F], 1, "exists"),  # failed controls are left out
        ([E, F, F], 2, "inconclusive"),  # ... and then too few answered
        ([F, F], 1, "inconclusive"),
        ([], 1, "inconclusive"),
        ([A, F, A], 2, "absent"),
        ([T, E], 1, "exists"),  # a control's odd answer is still an answer: the name exists
        ([T], 1, "exists"),
        ([T, A], 1, "unstable"),
    ],
)
def test_control_group(states: list[State], min_controls: int, judgement: str) -> None:
    assert judge_controls(states, min_controls) == judgement


@pytest.mark.parametrize(
    ("states", "judgement"),
    [
        ([E, E], "exists"),
        ([A, A], "absent"),
        ([F, F], "failed"),
        ([], "failed"),
        ([E, F], "exists"),  # a failed national is left out
        ([A, F], "absent"),
        ([E, A], "split"),
        ([T, E], "tampered"),
        ([T, A], "tampered"),
        ([T, F], "tampered"),
    ],
)
def test_national_group(states: list[State], judgement: str) -> None:
    assert judge_nationals(states) == judgement


@pytest.mark.parametrize(
    ("address", "bogons", "stubs", "suspicious"),
    [
        ("93.184.216.34", True, set(), False),
        ("10.1.2.3", True, set(), True),
        ("127.0.0.1", True, set(), True),
        ("100.64.0.1", True, set(), True),
        ("0.0.0.0", True, set(), True),
        ("224.0.0.1", True, set(), True),
        ("10.1.2.3", False, set(), False),
        ("::1", True, set(), True),
        ("fe80::1", True, set(), True),
        ("::ffff:10.0.0.1", True, set(), True),
        ("2a00:1450:4001:82a::200e", True, set(), False),
        ("95.213.4.1", True, {"95.213.4.1"}, True),
        ("95.213.4.1", False, {"95.213.4.1"}, True),
        ("not-an-address", True, set(), False),
    ],
)
def test_suspicious_addresses(
    address: str, bogons: bool, stubs: set[str], suspicious: bool
) -> None:
    assert is_suspicious(address, bogons=bogons, stub_addresses=stubs) is suspicious


PANEL = Panel(national=("n1", "n2"), control=("c1", "c2"))


def verdict_of(
    by_resolver: dict[str, list[Observation]],
    *,
    min_controls: int = 1,
    bogons: bool = True,
    stub_addresses: Collection[str] = frozenset(),
) -> Verdict:
    return judge(
        by_resolver,
        PANEL,
        min_controls=min_controls,
        bogons=bogons,
        stub_addresses=stub_addresses,
    )


GOOD = ["93.184.216.34"]


@pytest.mark.parametrize(
    ("n1", "n2", "c1", "c2", "verdict"),
    [
        (["ok", *GOOD], ["ok", *GOOD], ["ok", *GOOD], ["ok", *GOOD], "present"),
        (["nxdomain"], ["nxdomain"], ["ok", *GOOD], ["ok", *GOOD], "missing"),
        (["refused"], ["servfail"], ["ok", *GOOD], ["ok", *GOOD], "failing"),
        (["ok", "10.10.34.34"], ["ok", *GOOD], ["ok", *GOOD], ["ok", *GOOD], "tampered"),
        (["nxdomain"], ["ok", *GOOD], ["ok", *GOOD], ["ok", *GOOD], "partial"),
        (["ok", *GOOD], ["ok", *GOOD], ["nxdomain"], ["nxdomain"], "national-only"),
        (["nxdomain"], ["nxdomain"], ["nxdomain"], ["nxdomain"], "gone"),
        (["nxdomain"], ["nxdomain"], ["ok", *GOOD], ["nxdomain"], "unstable"),
        (["nxdomain"], ["nxdomain"], ["timeout"], ["servfail"], "inconclusive"),
        (["timeout"], ["nxdomain"], ["ok", *GOOD], ["ok", *GOOD], "missing"),
        # a name that legitimately points at private space is not tampered with
        (["ok", "10.0.0.5"], ["ok", "10.0.0.5"], ["ok", "10.0.0.5"], ["ok", *GOOD], "present"),
    ],
)
def test_judge_whole_domain(
    n1: list[str], n2: list[str], c1: list[str], c2: list[str], verdict: str
) -> None:
    by_resolver = {
        name: [obs(name, spec[0], *spec[1:])]
        for name, spec in zip(PANEL.national + PANEL.control, [n1, n2, c1, c2], strict=True)
    }
    assert verdict_of(by_resolver) == Verdict(verdict)


def test_resolvers_left_out_of_the_panel_do_not_count() -> None:
    by_resolver = {
        "n1": [obs("n1", "nxdomain")],
        "c1": [obs("c1", "ok", *GOOD)],
    }
    assert verdict_of(by_resolver) is Verdict.MISSING
    assert verdict_of(by_resolver, min_controls=2) is Verdict.INCONCLUSIVE


# One authoritative server on each side (NSDI's auth-nsdi servers answer without recursion).
AUTH_PANEL = Panel(
    national=("n1", "n2", "auth-n"),
    control=("c1", "c2", "auth-c"),
    authoritative=frozenset({"auth-n", "auth-c"}),
)


@pytest.mark.parametrize(
    ("statuses", "verdict"),
    [
        # a down resolver (missing from the map) is left out; the ones after it still count
        ({"c2": "ok", "n1": "nxdomain", "n2": "nxdomain"}, "missing"),
        ({"c1": "ok", "n2": "nxdomain"}, "missing"),
        ({"auth-c": "ok", "n2": "nxdomain"}, "missing"),
        ({"c1": "ok", "auth-n": "nxdomain"}, "missing"),
        # a referral from an authoritative server says the name is delegated: it exists
        ({"auth-c": "referral", "n1": "nxdomain"}, "missing"),
        ({"c1": "ok", "auth-n": "referral"}, "present"),
        ({"c1": "ok", "auth-n": "referral", "n1": "nxdomain"}, "partial"),
        # ... from a recursive resolver it is no answer
        ({"c1": "referral", "auth-c": "nxdomain", "n1": "nxdomain"}, "gone"),
        ({"c1": "referral", "n1": "nxdomain"}, "inconclusive"),
        ({"c1": "ok", "n1": "referral", "auth-n": "nxdomain"}, "missing"),
        ({"c1": "ok", "n1": "referral"}, "failing"),
    ],
)
def test_judge_with_down_and_authoritative_resolvers(
    statuses: dict[str, str], verdict: str
) -> None:
    by_resolver = {
        name: [obs(name, status, *(GOOD if status == "ok" else []))]
        for name, status in statuses.items()
    }
    judged = judge(by_resolver, AUTH_PANEL, min_controls=1, bogons=True, stub_addresses=set())
    assert judged is Verdict(verdict)


def test_stub_address_is_tampering_even_without_bogons() -> None:
    by_resolver = {
        "n1": [obs("n1", "ok", "95.213.4.1")],
        "n2": [obs("n2", "ok", *GOOD)],
        "c1": [obs("c1", "ok", *GOOD)],
    }
    assert verdict_of(by_resolver, bogons=False, stub_addresses={"95.213.4.1"}) is Verdict.TAMPERED
    assert verdict_of(by_resolver, bogons=False) is Verdict.PRESENT


@pytest.mark.parametrize(
    ("statuses", "shown"),
    [
        (["ok", "nxdomain"], "ok"),
        (["nxdomain", "ok"], "ok"),
        (["nxdomain", "nodata"], "nodata"),
        (["timeout", "nxdomain"], "nxdomain"),
        (["timeout", "servfail"], "timeout"),
        (["refused"], "refused"),
        ([], "error"),
    ],
)
def test_most_telling_status(statuses: list[str], shown: str) -> None:
    assert most_telling([Status(s) for s in statuses]) == shown


@pytest.mark.parametrize(
    ("codes", "shown"),
    [
        ([STATUS_CODE[Status.OK] | SUSPICIOUS, STATUS_CODE[Status.NXDOMAIN]], "ok"),
        ([STATUS_CODE[Status.NXDOMAIN], STATUS_CODE[Status.NODATA] | SUSPICIOUS], "nodata"),
        ([STATUS_CODE[Status.TIMEOUT], STATUS_CODE[Status.NXDOMAIN]], "nxdomain"),
        ([STATUS_CODE[Status.REFUSED], STATUS_CODE[Status.SERVFAIL]], "refused"),
        ([NOT_ASKED, STATUS_CODE[Status.SERVFAIL]], "servfail"),  # a type not asked is left out
        ([STATUS_CODE[Status.TIMEOUT], NOT_ASKED], "timeout"),
        ([NOT_ASKED, NOT_ASKED], "error"),
    ],
)
def test_most_telling_code(codes: list[int], shown: str) -> None:
    assert most_telling_code(codes) == shown


def _reference_bogon(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not ip.is_global or ip.is_multicast


# ipaddress makes single-address exceptions inside these special-purpose blocks (for example
# 192.0.0.9, 2001:1::1) and, in some versions, misses RFC 8215 local-use NAT64; the monitor
# treats the whole blocks as not globally routable.
WHOLE_BLOCKS = [ipaddress.ip_network(n) for n in ("192.0.0.0/24", "2001::/23", "64:ff9b:1::/48")]


@settings(max_examples=3000, deadline=None)
@given(st.ip_addresses())
def test_bogon_ranges_agree_with_ipaddress(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address,
) -> None:
    if any(address.version == net.version and address in net for net in WHOLE_BLOCKS):
        assert is_bogon(str(address))
        return
    assert is_bogon(str(address)) is _reference_bogon(str(address))
