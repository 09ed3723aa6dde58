"""The verdict table and the group rules, case by case."""

from __future__ import annotations

import ipaddress
from collections.abc import Collection

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor import verdict
from monitor.probe import Observation
from monitor.probe.wire import Evidence
from monitor.verdict import (
    LABELLED,
    NOT_ASKED,
    NOTED,
    STATUS_CODE,
    SUSPICIOUS,
    Panel,
    State,
    Suspicion,
    apart_from,
    code_of,
    decide,
    emptied,
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


@pytest.fixture(autouse=True)
def fresh_suspicions() -> None:
    """Each test builds its own Suspicion: the cache of them (filled by earlier tests, or by a
    mutation run's parent process) must not answer for the code under test."""
    verdict._suspicion.cache_clear()


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


# ----------------------------------------------------------------------------- DESIGN's rules


def said(
    resolver: str,
    status: str,
    *answers: str,
    rdtype: str = "A",
    ede: tuple[tuple[int, str], ...] = (),
    cname: tuple[str, ...] = (),
) -> Observation:
    """An observation with evidence."""
    evidence = Evidence(ede=ede, cname=cname)
    return Observation(
        resolver, "example.org", rdtype, Status(status), tuple(answers), None, evidence
    )


def two_types(a: Observation, aaaa: Observation) -> list[Observation]:
    return [a, aaaa._replace(rdtype="AAAA")]


FORGED = "95.213.158.62"  # routable, and no control's answer


@pytest.mark.parametrize(
    ("national", "controls", "verdict"),
    [
        # RPZ's NODATA action: empty for every type where the controls have addresses
        (["nodata", "nodata"], [["ok", "ok"], ["ok", "ok"]], "tampered"),
        # emptied for one type is enough, when no type is ok
        (["nodata", "nodata"], [["nodata", "ok"], ["nodata", "ok"]], "tampered"),
        # a name with no A anywhere stays present
        (["nodata", "nodata"], [["nodata", "nodata"], ["nodata", "nodata"]], "present"),
        # an ok type: not emptied (a resolver without IPv6 answers NODATA for AAAA)
        (["ok", "nodata"], [["ok", "ok"], ["ok", "ok"]], "present"),
        # the controls that answered the type must all say ok
        (["nodata", "nodata"], [["ok", "nodata"], ["nodata", "nodata"]], "present"),
        # a control that gave no answer for the type does not count either way
        (["nodata", "nodata"], [["ok", "timeout"], ["timeout", "timeout"]], "tampered"),
    ],
)
def test_an_emptied_answer_is_tampering(
    national: list[str], controls: list[list[str]], verdict: str
) -> None:
    def obs_of(name: str, statuses: list[str]) -> list[Observation]:
        return two_types(
            said(name, statuses[0], *(GOOD if statuses[0] == "ok" else [])),
            said(name, statuses[1], *(["2001:db8:1::1"] if statuses[1] == "ok" else [])),
        )

    by_resolver = {"n1": obs_of("n1", national), "n2": obs_of("n2", national)}
    by_resolver |= {f"c{i + 1}": obs_of(f"c{i + 1}", s) for i, s in enumerate(controls)}
    assert verdict_of(by_resolver) is Verdict(verdict)


@pytest.mark.parametrize("code", [4, 15, 16, 17])
def test_a_routable_answer_labelled_blocked_or_forged_is_tampering(code: int) -> None:
    by_resolver = {
        "n1": [said("n1", "ok", FORGED, ede=((code, "blocked"),))],
        "n2": [said("n2", "ok", FORGED)],
        "c1": [said("c1", "ok", *GOOD)],
        "c2": [said("c2", "ok", *GOOD)],
    }
    assert verdict_of(by_resolver) is Verdict.TAMPERED
    # ... unlabelled, the same answer is present (a CDN edge differs by country)
    by_resolver["n1"] = [said("n1", "ok", FORGED)]
    assert verdict_of(by_resolver) is Verdict.PRESENT


@pytest.mark.parametrize("code", [4, 15, 16, 17, 18, 0, 3])
def test_an_answer_the_controls_share_is_never_tampering_whatever_its_label(code: int) -> None:
    # Some resolvers label the answers they let through: the label alone is no flag.
    by_resolver = {
        "n1": [said("n1", "ok", *GOOD, "95.213.158.1", ede=((code, "checked"),))],
        "n2": [said("n2", "ok", *GOOD)],
        "c1": [said("c1", "ok", *GOOD)],
        "c2": [said("c2", "ok", *GOOD)],
    }
    assert verdict_of(by_resolver) is Verdict.PRESENT


@pytest.mark.parametrize("code", [18, 0, 3, 19])
def test_other_codes_on_a_routable_answer_are_no_flag(code: int) -> None:
    by_resolver = {
        "n1": [said("n1", "ok", FORGED, ede=((code, "prohibited"),))],
        "c1": [said("c1", "ok", *GOOD)],
    }
    assert verdict_of(by_resolver) is Verdict.PRESENT


def test_a_refusal_declared_prohibited_is_failing() -> None:
    by_resolver = {
        "n1": [said("n1", "refused", ede=((18, "EIM4"),))],
        "n2": [said("n2", "servfail", ede=((18, "U5KL"),))],
        "c1": [said("c1", "ok", *GOOD)],
    }
    assert verdict_of(by_resolver) is Verdict.FAILING


@pytest.mark.parametrize(
    ("stubs", "address", "verdict"),
    [
        (["95.213.158.0/24"], FORGED, "tampered"),
        (["95.213.158.62"], FORGED, "tampered"),
        (["95.213.0.0/16", "95.213.158.0/24"], FORGED, "tampered"),  # overlapping ranges
        (["95.213.159.0/24"], FORGED, "present"),
        (["2a02:6b8::/32"], "2a02:6b8::2:242", "tampered"),
        # a range inside a bogon range, and bogons off: the range alone counts
        (["10.10.0.0/16"], "10.11.0.1", "present"),
        (["10.10.0.0/16"], "10.10.34.34", "tampered"),
    ],
)
def test_stub_addresses_take_cidr_ranges(stubs: list[str], address: str, verdict: str) -> None:
    rdtype = "AAAA" if ":" in address else "A"
    control = "2001:4860::8888" if rdtype == "AAAA" else GOOD[0]
    by_resolver = {
        "n1": [said("n1", "ok", address, rdtype=rdtype)],
        "c1": [said("c1", "ok", control, rdtype=rdtype)],
    }
    assert verdict_of(by_resolver, bogons=False, stub_addresses=stubs) is Verdict(verdict)


def test_a_range_inside_a_bogon_range_keeps_the_bogons() -> None:
    suspicion = Suspicion(bogons=True, stub_addresses=["10.10.0.0/16"])
    assert suspicion.address("10.200.0.1")  # the bogon range still holds past the stub's end
    assert suspicion.address("10.10.0.1")
    assert not suspicion.address("93.184.216.34")


def test_a_chain_through_a_walled_garden_is_tampering() -> None:
    garden = "warning.isp.example"
    by_resolver = {
        "n1": [said("n1", "ok", "192.0.2.80", cname=("blocked.isp.example", garden))],
        "c1": [said("c1", "ok", *GOOD)],
    }
    assert verdict_of(by_resolver) is Verdict.TAMPERED  # 192.0.2.80 is a bogon too
    routable = {
        "n1": [said("n1", "ok", FORGED, cname=(garden,))],
        "c1": [said("c1", "ok", *GOOD)],
    }
    assert verdict_of(routable) is Verdict.PRESENT
    assert (
        judge(
            routable,
            PANEL,
            min_controls=1,
            bogons=True,
            stub_addresses=(),
            stub_names=[garden],
        )
        is Verdict.TAMPERED
    )


@pytest.mark.parametrize(
    ("ede", "flags"),
    [
        ((), 0),
        (((15, ""),), LABELLED | NOTED),
        (((4, "5DO5"),), LABELLED | NOTED),
        (((18, "EIM4"),), NOTED),
        (((3, "stale"), (16, "")), LABELLED | NOTED),
    ],
)
def test_codes_carry_the_eds_flags(ede: tuple[tuple[int, str], ...], flags: int) -> None:
    code = code_of(said("n1", "ok", *GOOD, ede=ede), bogons=True, stub_addresses=())
    assert code == STATUS_CODE[Status.OK] | flags


@pytest.mark.parametrize(
    ("codes", "controls", "expected"),
    [
        ([Status.NODATA, Status.NODATA], [[Status.OK, Status.OK]], True),
        ([Status.NODATA], [[Status.NXDOMAIN]], False),
        ([Status.NODATA], [[Status.OK], [Status.NXDOMAIN]], False),
        ([Status.OK, Status.NODATA], [[Status.OK, Status.OK]], False),
        ([Status.SERVFAIL, Status.NODATA], [[Status.OK, Status.OK]], True),
        ([Status.NODATA], [], False),
        ([Status.NODATA], [[Status.TIMEOUT]], False),
    ],
)
def test_emptied(codes: list[Status], controls: list[list[Status]], expected: bool) -> None:
    def coded(statuses: list[Status]) -> list[int]:
        return [STATUS_CODE[s] for s in statuses]

    assert emptied(coded(codes), [coded(c) for c in controls]) is expected


def test_apart_from_compares_each_type_with_the_controls() -> None:
    national = {"n1": {0: ("95.213.158.62",)}, "n2": {0: ("93.184.216.34",)}}
    controls = [{0: ("93.184.216.34",)}, {1: ("2001:db8::1",)}]
    assert apart_from(national, controls) == {"n1"}
    # no control gave an address of that type: nothing to share, the labelled one is apart
    assert apart_from({"n1": {1: ("2001:db8::9",)}}, [{0: ("93.184.216.34",)}]) == {"n1"}
    assert apart_from({"n1": {0: ()}}, controls) == frozenset()


def test_a_mapped_address_is_judged_by_the_ipv4_stubs() -> None:
    suspicion = Suspicion(bogons=False, stub_addresses=["10.0.34.0/24"])
    assert suspicion.address("::ffff:10.0.34.34") and suspicion.address("10.0.34.34")
    assert not suspicion.address("::ffff:10.0.35.1")
    assert not Suspicion(bogons=False).address("::ffff:10.0.34.34")  # nothing listed, no bogons


@pytest.mark.parametrize(
    ("stubs", "inside", "outside"),
    [
        # a one-address gap between two ranges is not merged away
        (["10.0.0.0/31", "10.0.0.3/32"], ["10.0.0.0", "10.0.0.1", "10.0.0.3"], ["10.0.0.2"]),
        # a range inside an earlier one, then one beyond both
        (
            ["95.0.0.0/16", "95.0.1.0/24", "95.2.0.0/16"],
            ["95.0.200.1", "95.2.0.1"],
            ["95.1.0.1", "95.3.0.0"],
        ),
        # adjacent ranges read as one
        (["95.0.0.0/24", "95.0.1.0/24"], ["95.0.0.255", "95.0.1.0"], ["95.0.2.0"]),
    ],
)
def test_listed_ranges_hold_exactly_their_addresses(
    stubs: list[str], inside: list[str], outside: list[str]
) -> None:
    suspicion = Suspicion(bogons=False, stub_addresses=stubs)
    assert [suspicion.address(a) for a in inside] == [True] * len(inside)
    assert [suspicion.address(a) for a in outside] == [False] * len(outside)


def test_a_suspicion_looks_for_bogons_unless_told_not_to() -> None:
    assert Suspicion().address("10.0.0.1")
    assert not Suspicion(bogons=False).address("10.0.0.1")


def test_a_stub_range_may_be_written_with_host_bits() -> None:
    # As people copy a block page's address with its prefix: 95.213.158.62/24 is the /24.
    suspicion = Suspicion(bogons=False, stub_addresses=["95.213.158.62/24"])
    assert suspicion.address("95.213.158.1") and not suspicion.address("95.213.159.1")


def test_an_address_that_cannot_be_read_does_not_hide_the_next_one() -> None:
    observation = Observation("isp", "a.example", "A", Status.OK, ("not an address", "10.0.0.1"))
    assert Suspicion().observation(observation)
