"""Tests of the censoring resolvers of tests/censors.py: what BIND, Knot Resolver, PowerDNS
Recursor, dnsmasq, unbound's local zones and a UDP-only path put on the wire per mechanism."""

from __future__ import annotations

import os
import pwd
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import censors
import dns.exception
import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest
import realdns
from censors import Knot, Rpz
from faultproxy import FaultProxy
from realdns import DNSLab, Endpoint, MissingBinaryError

# Addresses from globally routable space, so that only the bogon is a bogon.
GARDEN = "95.213.158.61"  # warning.isp.example., the walled garden's page
BIND_ADDRESS = "95.213.158.62"
KNOT_ADDRESS = "95.213.158.63"
PDNS_ADDRESS = "95.213.158.64"
BOGON = "10.10.34.35"
BLOCKED = [
    "nxdomain",
    "nodata",
    "drop",
    "tcp-only",
    "bogon",
    "routable",
    "garden",
    "passthru",
    "deny",
    "deny-msg",
    "refuse",
    "answer",
    "answer-nodata",
    "local-data",
    "zero",
    "dead",
    "always-nxdomain",
    "always-refuse",
    "redirect",
    "always-null",
]
OPEN = "open.example."  # in the world, blocked by nobody
MISSING = "missing.example."  # in no world: a genuine NXDOMAIN


def real_a(label: str) -> str:
    return f"93.184.216.{10 + BLOCKED.index(label)}"


def real_aaaa(label: str) -> str:
    return f"2606:2800:220:1::{10 + BLOCKED.index(label):x}"


RECORDS = [
    f"{OPEN} 300 IN A 93.184.216.200",
    f"{OPEN} 300 IN AAAA 2606:2800:220:1::200",
    f"warning.isp.example. 300 IN A {GARDEN}",
    *(f"{label}.example. 300 IN A {real_a(label)}" for label in BLOCKED),
    *(f"{label}.example. 300 IN AAAA {real_aaaa(label)}" for label in BLOCKED),
]
DENY_TEXT = "Blocked by the order of the registry"
PDNS_EDE = (15, "Blocked by the registry")
RPZ_SOA = "rpz.isp. SOA localhost. hostmaster.rpz.isp. 1 3600 600 86400 60"


# ----------------------------------------------------------------------------- what is seen


@dataclass(frozen=True)
class Seen:
    """What one reply says, in the terms the product reads: rcode (or what happened instead
    of a reply), answer records, the AA and TC flags, the owner of the SOA in the authority
    section and its other records, the additional records (OPT aside) and the Extended DNS
    Errors. TTLs are left out: the true answers come from a cache, where they count down."""

    rcode: str
    answers: frozenset[str] = frozenset()
    aa: bool = False
    tc: bool = False
    soa: str | None = None
    authority: frozenset[str] = frozenset()
    additional: frozenset[str] = frozenset()
    ede: tuple[tuple[int, str], ...] = ()


NO_REPLY = Seen("no reply")
CLOSED = Seen("connection closed")
CONNECTION_REFUSED = Seen("connection refused")
SILENCE = (NO_REPLY, CLOSED, CONNECTION_REFUSED)


def records(section: list[dns.rrset.RRset]) -> frozenset[str]:
    return frozenset(
        f"{rrset.name} {dns.rdatatype.to_text(rrset.rdtype)} {rdata}"
        for rrset in section
        for rdata in rrset
    )


def seen(reply: dns.message.Message) -> Seen:
    soa = [r.name for r in reply.authority if r.rdtype == dns.rdatatype.SOA]
    return Seen(
        rcode=dns.rcode.to_text(reply.rcode()),
        answers=records(reply.answer),
        aa=bool(reply.flags & dns.flags.AA),
        tc=bool(reply.flags & dns.flags.TC),
        soa=str(soa[0]) if soa else None,
        authority=records([r for r in reply.authority if r.rdtype != dns.rdatatype.SOA]),
        additional=records(reply.additional),
        ede=tuple((int(e.code), e.text or "") for e in reply.extended_errors()),
    )


def ask(
    server: Endpoint | FaultProxy,
    qname: str,
    rdtype: str = "A",
    transport: str = "udp",
    timeout: float = 5.0,
) -> Seen:
    """Query server with EDNS (1232 bytes) and return what came back, or NO_REPLY, CLOSED
    or CONNECTION_REFUSED."""
    query = dns.message.make_query(qname, rdtype, use_edns=0, payload=1232)
    exchange = dns.query.tcp if transport == "tcp" else dns.query.udp
    try:
        return seen(exchange(query, server.address, port=server.port, timeout=timeout))
    except dns.exception.Timeout:
        return NO_REPLY
    except EOFError:
        return CLOSED
    except ConnectionRefusedError:
        return CONNECTION_REFUSED


@dataclass(frozen=True)
class Case:
    qname: str
    expected: Seen
    rdtype: str = "A"
    transport: str = "udp"

    def __str__(self) -> str:
        return f"{self.qname.rstrip('.')}-{self.rdtype}-{self.transport}"


def check(server: Endpoint, case: Case) -> None:
    # Silence is proven by waiting; a reply, when there is one, comes in milliseconds.
    timeout = 1.5 if case.expected in SILENCE else 5.0
    assert ask(server, case.qname, case.rdtype, case.transport, timeout) == case.expected


def genuine(label: str, rdtype: str = "A") -> frozenset[str]:
    data = real_a(label) if rdtype == "A" else real_aaaa(label)
    return frozenset({f"{label}.example. {rdtype} {data}"})


OPEN_CASE = Case(OPEN, Seen("NOERROR", frozenset({f"{OPEN} A 93.184.216.200"})))
MISSING_CASE = Case(MISSING, Seen("NXDOMAIN", soa="."))  # the lab's root zone holds every name


# ----------------------------------------------------------------------------- the world


@dataclass(frozen=True)
class World:
    lab: DNSLab
    upstream: Endpoint  # the ISP's own recursive resolver, which the censors forward to


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """Yield the lab: NSD serving RECORDS as the root, and an unbound resolving from it."""
    realdns.fail_unless_installed()
    with DNSLab(tmp_path_factory.mktemp("censors")) as lab:
        lab.start_nsd(records=RECORDS)
        yield World(lab, lab.start_unbound("upstream"))


@pytest.fixture(scope="module")
def bind(world: World) -> Endpoint:
    censors.fail_unless_installed("named")
    return censors.start_named(
        world.lab,
        "bind",
        world.upstream,
        {
            "nxdomain.example.": Rpz.NXDOMAIN,
            "nodata.example.": Rpz.NODATA,
            "drop.example.": Rpz.DROP,
            "tcp-only.example.": Rpz.TCP_ONLY,
            "bogon.example.": Rpz.a(BOGON),
            "routable.example.": Rpz.a(BIND_ADDRESS),
            "garden.example.": Rpz.cname("warning.isp.example."),
            "passthru.example.": Rpz.PASSTHRU,
            "*.passthru.example.": Rpz.NXDOMAIN,
        },
    )


@pytest.fixture(scope="module")
def knot(world: World) -> Endpoint:
    censors.fail_unless_installed("kresd")
    return censors.start_kresd(
        world.lab,
        "knot",
        world.upstream,
        {
            "deny.example.": Knot.DENY,
            "deny-msg.example.": Knot.deny_msg(DENY_TEXT),
            "refuse.example.": Knot.REFUSE,
            "answer.example.": Knot.answer(KNOT_ADDRESS),
            "answer-nodata.example.": Knot.answer(KNOT_ADDRESS, nodata=True),
            "drop.example.": Knot.DROP,
        },
    )


@pytest.fixture(scope="module")
def pdns(world: World) -> Endpoint:
    censors.fail_unless_installed("pdns_recursor")
    return censors.start_pdns_recursor(
        world.lab,
        "pdns",
        world.upstream,
        {"nxdomain.example.": Rpz.NXDOMAIN, "local-data.example.": Rpz.a(PDNS_ADDRESS)},
        ede=PDNS_EDE,
    )


@pytest.fixture(scope="module")
def dead() -> Iterator[FaultProxy]:
    with censors.dead_server() as server:
        yield server


@pytest.fixture(scope="module")
def dnsmasq(world: World, dead: FaultProxy) -> Endpoint:
    censors.fail_unless_installed("dnsmasq")
    return censors.start_dnsmasq(
        world.lab,
        "dnsmasq",
        world.upstream,
        addresses={"zero.example.": "0.0.0.0", "nxdomain.example.": ""},
        servers={"dead.example.": (dead.address, dead.port)},
    )


@pytest.fixture(scope="module")
def unbound(world: World) -> Endpoint:
    # ede: yes, so that an EDE would show if unbound 1.17 gave one for a local zone.
    return world.lab.start_unbound(
        "unbound-censor",
        local_zones={
            "always-nxdomain.example.": "always_nxdomain",
            "always-refuse.example.": "always_refuse",
            "redirect.example.": "redirect",
            "always-null.example.": "always_null",
        },
        local_data=[f"redirect.example. A {BOGON}"],
        extra="ede: yes",
    )


# ----------------------------------------------------------------------------- BIND 9 RPZ

BIND_CASES = [
    OPEN_CASE,
    MISSING_CASE,
    # BIND names the policy zone with its SOA in the additional section, not the authority.
    Case("nxdomain.example.", Seen("NXDOMAIN", additional=frozenset({RPZ_SOA}))),
    Case("nodata.example.", Seen("NOERROR", additional=frozenset({RPZ_SOA}))),
    Case("nodata.example.", Seen("NOERROR", additional=frozenset({RPZ_SOA})), "AAAA"),
    Case("drop.example.", NO_REPLY),
    Case("drop.example.", NO_REPLY, transport="tcp"),  # the connection stays open, silent
    Case("tcp-only.example.", Seen("NOERROR", tc=True)),
    Case("tcp-only.example.", Seen("NOERROR", genuine("tcp-only")), transport="tcp"),
    Case(
        "bogon.example.",
        Seen("NOERROR", frozenset({f"bogon.example. A {BOGON}"}), additional=frozenset({RPZ_SOA})),
    ),
    Case("bogon.example.", Seen("NOERROR", additional=frozenset({RPZ_SOA})), "AAAA"),
    Case(
        "routable.example.",
        Seen(
            "NOERROR",
            frozenset({f"routable.example. A {BIND_ADDRESS}"}),
            additional=frozenset({RPZ_SOA}),
        ),
    ),
    Case(
        "garden.example.",
        Seen(
            "NOERROR",
            frozenset(
                {"garden.example. CNAME warning.isp.example.", f"warning.isp.example. A {GARDEN}"}
            ),
            additional=frozenset({RPZ_SOA}),
        ),
    ),
    # The walled garden has no AAAA: the chain ends in the world's NODATA, with its SOA.
    Case(
        "garden.example.",
        Seen(
            "NOERROR",
            frozenset({"garden.example. CNAME warning.isp.example."}),
            soa=".",
            additional=frozenset({RPZ_SOA}),
        ),
        "AAAA",
    ),
    Case("passthru.example.", Seen("NOERROR", genuine("passthru"))),
    # PASSTHRU on the name itself; the wildcard below it still applies to the names under it.
    Case("www.passthru.example.", Seen("NXDOMAIN", additional=frozenset({RPZ_SOA}))),
]


@pytest.mark.parametrize("case", BIND_CASES, ids=str)
def test_bind_rpz(bind: Endpoint, case: Case) -> None:
    check(bind, case)


# ----------------------------------------------------------------------------- Knot Resolver


KNOT_CASES = [
    OPEN_CASE,
    MISSING_CASE,
    # DENY: an authoritative NXDOMAIN whose made-up SOA is owned by the query name itself.
    Case("deny.example.", Seen("NXDOMAIN", aa=True, soa="deny.example.", ede=((15, "CR36"),))),
    Case(
        "www.deny.example.",
        Seen("NXDOMAIN", aa=True, soa="www.deny.example.", ede=((15, "CR36"),)),
    ),
    Case(
        "deny.example.",
        Seen("NXDOMAIN", aa=True, soa="deny.example.", ede=((15, "CR36"),)),
        "AAAA",
    ),
    # DENY_MSG: the message is a TXT record in the additional section, not the EDE text.
    Case(
        "deny-msg.example.",
        Seen(
            "NXDOMAIN",
            aa=True,
            soa="deny-msg.example.",
            additional=frozenset({f'explanation.invalid. TXT "{DENY_TEXT}"'}),
            ede=((15, "CR36"),),
        ),
    ),
    Case("refuse.example.", Seen("REFUSED", ede=((18, "EIM4"),))),
    Case(
        "answer.example.",
        Seen(
            "NOERROR", frozenset({f"answer.example. A {KNOT_ADDRESS}"}), aa=True, ede=((4, "5DO5"),)
        ),
    ),
    # ANSWER forges only the types it was given; AAAA goes through untouched, without EDE.
    Case("answer.example.", Seen("NOERROR", genuine("answer", "AAAA")), "AAAA"),
    Case(
        "answer-nodata.example.",
        Seen("NOERROR", aa=True, soa="answer-nodata.example.", ede=((4, "5DO5"),)),
        "AAAA",
    ),
    # DROP is no silence on 5.6: SERVFAIL with EDE 18 Prohibited, over UDP and TCP alike.
    Case("drop.example.", Seen("SERVFAIL", ede=((18, "U5KL"),))),
    Case("drop.example.", Seen("SERVFAIL", ede=((18, "U5KL"),)), transport="tcp"),
]


@pytest.mark.parametrize("case", KNOT_CASES, ids=str)
def test_knot_policy(knot: Endpoint, case: Case) -> None:
    check(knot, case)


# ----------------------------------------------------------------------------- PowerDNS

PDNS_EDE_SEEN = (PDNS_EDE,)
PDNS_CASES = [
    OPEN_CASE,
    MISSING_CASE,
    # No SOA at all, and the zone's EDE on every rewritten answer.
    Case("nxdomain.example.", Seen("NXDOMAIN", ede=PDNS_EDE_SEEN)),
    Case("nxdomain.example.", Seen("NXDOMAIN", ede=PDNS_EDE_SEEN), transport="tcp"),
    Case(
        "local-data.example.",
        Seen("NOERROR", frozenset({f"local-data.example. A {PDNS_ADDRESS}"}), ede=PDNS_EDE_SEEN),
    ),
    Case("local-data.example.", Seen("NOERROR", ede=PDNS_EDE_SEEN), "AAAA"),
]


@pytest.mark.parametrize("case", PDNS_CASES, ids=str)
def test_pdns_rpz_with_extended_error(pdns: Endpoint, case: Case) -> None:
    check(pdns, case)


# ----------------------------------------------------------------------------- dnsmasq

DNSMASQ_CASES = [
    OPEN_CASE,
    MISSING_CASE,
    # address=/name/0.0.0.0: an authoritative A of 0.0.0.0 (TTL 0), for the names below too...
    Case("zero.example.", Seen("NOERROR", frozenset({"zero.example. A 0.0.0.0"}), aa=True)),
    Case("www.zero.example.", Seen("NOERROR", frozenset({"www.zero.example. A 0.0.0.0"}), aa=True)),
    # ...while AAAA is forwarded and answered truly.
    Case("zero.example.", Seen("NOERROR", genuine("zero", "AAAA")), "AAAA"),
    # address=/name/: NXDOMAIN for every type, without SOA, not authoritative.
    Case("nxdomain.example.", Seen("NXDOMAIN")),
    Case("nxdomain.example.", Seen("NXDOMAIN"), "AAAA"),
    # server=/name/<dead>: no reply at all on UDP; TCP is closed without a reply.
    Case("dead.example.", NO_REPLY),
    Case("dead.example.", CLOSED, transport="tcp"),
]


@pytest.mark.parametrize("case", DNSMASQ_CASES, ids=str)
def test_dnsmasq(dnsmasq: Endpoint, case: Case) -> None:
    check(dnsmasq, case)


def test_dnsmasq_sent_the_dead_names_to_the_dead_server(
    dnsmasq: Endpoint, dead: FaultProxy
) -> None:
    before = dead.counts["udp.query.drop"]
    assert ask(dnsmasq, "www.dead.example.", timeout=1.5) == NO_REPLY
    assert dead.counts["udp.query.drop"] > before


def test_the_dead_server_refuses_tcp(dead: FaultProxy) -> None:
    assert ask(dead, OPEN, transport="tcp") == CONNECTION_REFUSED


# A forged record's TTL is the censor's own: fixed, where true answers count down in a cache.
FORGED_TTLS = [
    ("bind", "routable.example.", 5, 5),  # the policy zone says 60
    ("knot", "answer.example.", 300, 300),
    # The packet cache keeps the rewritten answer: its TTL counts down from the zone's 60.
    ("pdns", "local-data.example.", 1, 60),
    ("dnsmasq", "zero.example.", 0, 0),
    ("unbound", "redirect.example.", 3600, 3600),
]


@pytest.mark.parametrize(("program", "qname", "low", "high"), FORGED_TTLS)
def test_forged_ttl(
    request: pytest.FixtureRequest, program: str, qname: str, low: int, high: int
) -> None:
    server: Endpoint = request.getfixturevalue(program)
    query = dns.message.make_query(qname, "A", use_edns=0, payload=1232)
    reply = dns.query.udp(query, server.address, port=server.port, timeout=5)
    assert len(reply.answer) == 1 and low <= reply.answer[0].ttl <= high


# ----------------------------------------------------------------------------- unbound

UNBOUND_CASES = [
    OPEN_CASE,
    MISSING_CASE,
    # Local zones answer authoritatively, with no SOA and no EDE (even with ede: yes).
    Case("always-nxdomain.example.", Seen("NXDOMAIN", aa=True)),
    Case("www.always-nxdomain.example.", Seen("NXDOMAIN", aa=True)),
    Case("always-refuse.example.", Seen("REFUSED", aa=True)),
    Case(
        "redirect.example.", Seen("NOERROR", frozenset({f"redirect.example. A {BOGON}"}), aa=True)
    ),
    Case("redirect.example.", Seen("NOERROR", aa=True), "AAAA"),
    Case(
        "always-null.example.",
        Seen("NOERROR", frozenset({"always-null.example. A 0.0.0.0"}), aa=True),
    ),
    Case(
        "always-null.example.",
        Seen("NOERROR", frozenset({"always-null.example. AAAA ::"}), aa=True),
        "AAAA",
    ),
]


@pytest.mark.parametrize("case", UNBOUND_CASES, ids=str)
def test_unbound_local_zones(unbound: Endpoint, case: Case) -> None:
    check(unbound, case)


# ----------------------------------------------------------------------------- UDP only


def test_udp_only_relays_udp_and_refuses_tcp(world: World) -> None:
    with censors.udp_only(world.upstream) as relay:
        assert ask(relay, OPEN) == OPEN_CASE.expected
        assert ask(relay, OPEN, transport="tcp") == CONNECTION_REFUSED
        assert relay.counts["udp.query.in"] == 1


def test_udp_only_can_leave_tcp_unanswered(world: World) -> None:
    with censors.udp_only(world.upstream, tcp="drop") as relay:
        assert ask(relay, OPEN) == OPEN_CASE.expected
        assert ask(relay, OPEN, transport="tcp", timeout=1.5) == NO_REPLY
        # Not even the handshake: the SYN goes unanswered, as behind a dropping firewall.
        with pytest.raises(TimeoutError):
            socket.create_connection((relay.address, relay.port), timeout=1.5)


def ask_lossy(relay: FaultProxy, qname: str) -> Seen:
    """Query once through relay; return the reply, or NO_REPLY as soon as the relay's counts
    show it lost the query or the reply (so no time goes into waiting out a loss)."""
    before = relay.counts
    query = dns.message.make_query(qname, "A", use_edns=0, payload=1232)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setblocking(False)
        dns.query.send_udp(sock, query, (relay.address, relay.port))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                # dnspython's expirations are time.time() values.
                reply, _ = dns.query.receive_udp(
                    sock, (relay.address, relay.port), expiration=time.time() + 0.05
                )
                return seen(reply)
            except dns.exception.Timeout:
                now = relay.counts
                if any(now[k] > before[k] for k in ("udp.query.drop", "udp.reply.drop")):
                    return NO_REPLY
    return NO_REPLY


def test_udp_only_with_loss_loses_both_ways_and_still_answers(world: World) -> None:
    with censors.udp_only(world.upstream, loss_share=0.3, seed=7) as relay:
        replies = [ask_lossy(relay, OPEN) for _ in range(30)]
        counts = relay.counts
    # One query at a time, so the seeded losses fall the same way on every run.
    assert counts["udp.query.drop"] > 0 and counts["udp.reply.drop"] > 0
    assert replies.count(NO_REPLY) == counts["udp.query.drop"] + counts["udp.reply.drop"]
    assert set(replies) == {OPEN_CASE.expected, NO_REPLY}


# ----------------------------------------------------------------------------- the processes


@pytest.mark.parametrize("program", ["bind", "knot", "pdns", "dnsmasq"])
def test_runs_as_its_own_unprivileged_user(request: pytest.FixtureRequest, program: str) -> None:
    server: Endpoint = request.getfixturevalue(program)
    uid = int(Path(f"/proc/{server.pid}/status").read_text().split("Uid:")[1].split()[1])
    binary = {"bind": "named", "knot": "kresd", "pdns": "pdns_recursor", "dnsmasq": "dnsmasq"}
    user = censors.USERS[binary[program]]
    assert uid == (pwd.getpwnam(user).pw_uid if os.geteuid() == 0 else os.geteuid())


def test_stop_ends_the_server_and_brings_its_files_home(tmp_path: Path) -> None:
    realdns.fail_unless_installed()
    censors.fail_unless_installed("dnsmasq")
    with DNSLab(tmp_path / "lab") as lab:
        lab.start_nsd(records=RECORDS)
        upstream = lab.start_unbound("upstream")
        server = censors.start_dnsmasq(lab, "dnsmasq", upstream)
        assert ask(server, OPEN) == OPEN_CASE.expected
        directory = tmp_path / "lab" / "dnsmasq"
        staged = directory.resolve()
    assert not realdns._group_alive(server.pid)
    assert directory.is_dir() and not directory.is_symlink()
    assert "query[A] open.example" in server.log.read_text()
    if os.geteuid() == 0:
        assert staged != directory and not staged.parent.exists()


def test_a_missing_program_fails_with_the_package_to_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(censors, "find_binary", lambda name: None)
    with pytest.raises(MissingBinaryError, match=r"apt-get install -y bind9 dnsmasq-base"):
        censors.require("named", "dnsmasq")
    with pytest.raises(pytest.fail.Exception, match="knot-resolver"):
        censors.fail_unless_installed("kresd")
    with DNSLab(tmp_path) as lab, pytest.raises(MissingBinaryError, match="pdns-recursor"):
        censors.start_pdns_recursor(lab, "pdns", Endpoint("x", "127.0.0.1", 1, 0, tmp_path), {})
