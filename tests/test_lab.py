"""Tests for monitor.lab: the loopback responder and the scripted World, queried by dnspython."""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
from collections.abc import Iterator

import dns.asyncquery
import dns.exception
import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import pytest

from monitor.lab import (
    Delayed,
    Handler,
    Lab,
    QueryRecord,
    Reply,
    Request,
    Responder,
    World,
    name_text,
)

TIMEOUT = 2.0
SHORT = 0.2

RECORDS = {
    ("youtube.com", "A"): ["142.250.74.14"],
    ("youtube.com", "AAAA"): ["2a00:1450:4001:82b::200e"],
    ("www.youtube.com", "CNAME"): ["youtube-ui.l.google.com"],
    ("youtube-ui.l.google.com", "CNAME"): ["wide-youtube.l.google.com"],
    ("wide-youtube.l.google.com", "A"): ["142.250.185.78", "142.250.185.110"],
    ("bbc.com", "A"): ["151.101.0.81"],
    ("www.bbc.com", "CNAME"): ["bbc.com"],
    ("www.bbc.co.uk", "CNAME"): ["www.bbc.com"],
    ("dw.com", "A"): ["18.66.102.28"],
    ("meduza.io", "A"): ["104.18.32.1"],
    ("big.example", "A"): [f"192.0.2.{i}" for i in range(1, 61)],
    ("ns1.nic.example", "A"): ["192.0.2.53"],
    ("loop-a.example", "CNAME"): ["loop-b.example"],
    ("loop-b.example", "CNAME"): ["loop-a.example"],
}


def national(world: World) -> World:
    """The national resolver's view of the same table: deletions, refusals, a block page."""
    return world.variant(
        nxdomain={"bbc.com", "www.youtube.com"},
        refuse={"dw.com"},
        servfail={"meduza.io"},
        redirect={"youtube.com": "95.167.13.50"},
    )


def query(responder: Responder, name: str, rdtype: str, transport: str) -> dns.message.Message:
    q = dns.message.make_query(name, rdtype)
    if transport == "udp":
        return dns.query.udp(q, responder.address, timeout=TIMEOUT, port=responder.port)
    return dns.query.tcp(q, responder.address, timeout=TIMEOUT, port=responder.port)


def texts(message: dns.message.Message) -> list[str]:
    """Every answer record as 'owner TYPE rdata', sorted; owners lowercased, as compression
    may echo the qname's case."""
    return sorted(
        f"{name_text(rrset.name)} {dns.rdatatype.to_text(rrset.rdtype)} {str(rd).lower()}"
        for rrset in message.answer
        for rd in rrset
    )


def authority_types(message: dns.message.Message) -> list[str]:
    return [dns.rdatatype.to_text(rrset.rdtype) for rrset in message.authority]


@pytest.fixture(scope="module")
def world() -> World:
    return World(RECORDS)


@pytest.fixture(scope="module")
def lab(world: World) -> Iterator[Lab]:
    handlers = {
        "control": world,
        "national": national(world),
        "auth": world.variant(authoritative=True),
        "auth-deleg": World(
            RECORDS, authoritative=True, delegations={"youtube.com": ["ns1.nic.example"]}
        ),
    }
    with Lab(handlers) as lab:
        yield lab
        for responder in lab.responders.values():
            assert responder.errors == []


@pytest.mark.parametrize("transport", ["udp", "tcp"])
@pytest.mark.parametrize(
    ("resolver", "name", "rdtype", "rcode", "answers", "authority"),
    [
        ("control", "youtube.com", "A", "NOERROR", ["youtube.com A 142.250.74.14"], []),
        (
            "control",
            "www.youtube.com",
            "A",
            "NOERROR",
            [
                "wide-youtube.l.google.com A 142.250.185.110",
                "wide-youtube.l.google.com A 142.250.185.78",
                "www.youtube.com CNAME youtube-ui.l.google.com.",
                "youtube-ui.l.google.com CNAME wide-youtube.l.google.com.",
            ],
            [],
        ),
        (
            "control",
            "WWW.BBC.com",
            "A",
            "NOERROR",
            ["bbc.com A 151.101.0.81", "www.bbc.com CNAME bbc.com."],
            [],
        ),
        ("control", "nothing-here.com", "A", "NXDOMAIN", [], ["SOA"]),
        ("control", "bbc.com", "AAAA", "NODATA", [], ["SOA"]),
        # An empty non-terminal exists: NODATA, not NXDOMAIN.
        ("control", "l.google.com", "A", "NODATA", [], ["SOA"]),
        ("control", "loop-a.example", "A", "SERVFAIL", [], []),
        ("national", "dw.com", "A", "REFUSED", [], []),
        ("national", "meduza.io", "A", "SERVFAIL", [], []),
        ("national", "bbc.com", "A", "NXDOMAIN", [], ["SOA"]),
        ("national", "news.bbc.com", "A", "NXDOMAIN", [], ["SOA"]),
        # The chain from www.bbc.com reaches a deleted name: NXDOMAIN with the chain.
        ("control", "www.bbc.com", "AAAA", "NODATA", ["www.bbc.com CNAME bbc.com."], ["SOA"]),
        ("national", "www.bbc.com", "A", "NXDOMAIN", [], ["SOA"]),
        (
            "national",
            "www.bbc.co.uk",
            "A",
            "NXDOMAIN",
            ["www.bbc.co.uk CNAME www.bbc.com."],
            ["SOA"],
        ),
        ("national", "youtube.com", "A", "NOERROR", ["youtube.com A 95.167.13.50"], []),
        ("national", "m.youtube.com", "A", "NOERROR", ["m.youtube.com A 95.167.13.50"], []),
        ("national", "youtube.com", "AAAA", "NODATA", [], ["SOA"]),
        # The more specific name wins: www.youtube.com is deleted, not redirected.
        ("national", "www.youtube.com", "A", "NXDOMAIN", [], ["SOA"]),
        ("auth", "youtube.com", "A", "NOERROR", ["youtube.com A 142.250.74.14"], []),
        ("auth-deleg", "youtube.com", "A", "REFERRAL", [], ["NS"]),
        ("auth-deleg", "www.youtube.com", "AAAA", "REFERRAL", [], ["NS"]),
        ("auth-deleg", "nothing-here.com", "A", "NXDOMAIN", [], ["SOA"]),
    ],
)
def test_world_answers(
    lab: Lab,
    transport: str,
    resolver: str,
    name: str,
    rdtype: str,
    rcode: str,
    answers: list[str],
    authority: list[str],
) -> None:
    reply = query(lab[resolver], name, rdtype, transport)
    expected_rcode = "NOERROR" if rcode in ("NODATA", "REFERRAL") else rcode
    assert dns.rcode.to_text(reply.rcode()) == expected_rcode
    assert texts(reply) == answers
    assert authority_types(reply) == authority
    authoritative = resolver.startswith("auth")
    assert bool(reply.flags & dns.flags.RA) is not authoritative
    if authoritative:
        # RFC 1034: a referral is not an authoritative answer.
        assert bool(reply.flags & dns.flags.AA) is (rcode != "REFERRAL")


def test_referral_carries_glue(lab: Lab) -> None:
    reply = query(lab["auth-deleg"], "www.youtube.com", "A", "udp")
    assert [str(rd) for rd in reply.authority[0]] == ["ns1.nic.example."]
    assert [f"{rrset.name} {rd}" for rrset in reply.additional for rd in rrset] == [
        "ns1.nic.example. 192.0.2.53"
    ]


def test_update_changes_overrides_between_days() -> None:
    world = World(RECORDS)
    with Responder(world) as responder:
        assert query(responder, "bbc.com", "A", "udp").rcode() == dns.rcode.NOERROR
        world.update(nxdomain={"bbc.com"}, drop={"dw.com"})
        assert query(responder, "bbc.com", "A", "udp").rcode() == dns.rcode.NXDOMAIN
        with pytest.raises(dns.exception.Timeout):
            dns.query.udp(
                dns.message.make_query("dw.com", "A"), responder.address, SHORT, responder.port
            )
        world.update(nxdomain=())
        assert world.overrides.nxdomain == frozenset()
        assert world.overrides.drop == frozenset({"dw.com"})
        assert query(responder, "bbc.com", "A", "udp").rcode() == dns.rcode.NOERROR


def test_world_rejects_bad_records() -> None:
    with pytest.raises(ValueError, match="not-an-address"):
        World({("a.example", "A"): ["not-an-address"]})
    with pytest.raises(ValueError, match="not an IP address"):
        World(RECORDS, redirect={"a.example": "block-page"})


def test_world_answers_formerr_to_garbage() -> None:
    with (
        Responder(World(RECORDS)) as responder,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s,
    ):
        s.settimeout(TIMEOUT)
        s.sendto(b"\xab\xcdnot dns", (responder.address, responder.port))
        wire, _ = s.recvfrom(512)
        reply = dns.message.from_wire(wire)
        assert reply.id == 0xABCD
        assert reply.rcode() == dns.rcode.FORMERR
        assert responder.queries == [QueryRecord("udp", None, None)]


def test_none_is_a_timeout() -> None:
    with Responder(lambda request: None) as responder:
        with pytest.raises(dns.exception.Timeout):
            dns.query.udp(
                dns.message.make_query("a.example", "A"), responder.address, SHORT, responder.port
            )
        assert responder.queries == [QueryRecord("udp", "a.example", "A")]


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_raw_bytes_are_sent_verbatim(transport: str) -> None:
    raw = b"\x00\x01 this is not a DNS message \xff"
    with Responder(lambda request: raw) as responder:
        q = dns.message.make_query("a.example", "A")
        target = (responder.address, responder.port)
        if transport == "udp":
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.settimeout(TIMEOUT)
                dns.query.send_udp(s, q, target)
                received, _ = s.recvfrom(65535)
        else:
            with socket.create_connection(target, timeout=TIMEOUT) as s:
                dns.query.send_tcp(s, q)
                received = s.recv(65535)
            received = received[2:] if received[:2] == len(raw).to_bytes(2, "big") else b""
        assert received == raw


def test_list_sends_several_datagrams() -> None:
    def forged_then_real(request: Request) -> Reply:
        assert request.message is not None
        forged = dns.message.make_response(request.message)
        forged.id ^= 0xFFFF
        forged.set_rcode(dns.rcode.NXDOMAIN)
        return [forged.to_wire(), World(RECORDS)(request)]

    with Responder(forged_then_real) as responder:
        q = dns.message.make_query("youtube.com", "A")
        reply = dns.query.udp(q, responder.address, TIMEOUT, responder.port, ignore_errors=True)
        assert reply.id == q.id
        assert texts(reply) == ["youtube.com A 142.250.74.14"]


def test_large_answer_truncated_over_udp_complete_over_tcp(lab: Lab) -> None:
    over_udp = query(lab["control"], "big.example", "A", "udp")
    assert over_udp.flags & dns.flags.TC
    assert over_udp.answer == []
    assert str(over_udp.question[0].name) == "big.example."
    over_tcp = query(lab["control"], "big.example", "A", "tcp")
    assert not over_tcp.flags & dns.flags.TC
    assert len(texts(over_tcp)) == 60
    # EDNS lets a client take more than 512 bytes over UDP.
    q = dns.message.make_query("big.example", "A", use_edns=0, payload=4096)
    with_edns = dns.query.udp(q, lab["control"].address, TIMEOUT, lab["control"].port)
    assert not with_edns.flags & dns.flags.TC
    assert len(texts(with_edns)) == 60


def _tcp_socket(responder: Responder) -> socket.socket:
    s = socket.create_connection((responder.address, responder.port), timeout=TIMEOUT)
    s.setblocking(False)
    return s


def test_pipelined_tcp_queries_on_one_connection(lab: Lab) -> None:
    with _tcp_socket(lab["control"]) as s:
        first = dns.message.make_query("youtube.com", "A")
        second = dns.message.make_query("dw.com", "A")
        expiration = time.time() + TIMEOUT
        # Both queries in one write: the responder must split the frames itself.
        s.sendall(first.to_wire(prepend_length=True) + second.to_wire(prepend_length=True))
        replies = [dns.query.receive_tcp(s, expiration)[0] for _ in range(2)]
        by_id = {reply.id: texts(reply) for reply in replies}
        assert by_id == {
            first.id: ["youtube.com A 142.250.74.14"],
            second.id: ["dw.com A 18.66.102.28"],
        }


def _slow_world(delay: float) -> Handler:
    world = World(RECORDS)

    def handler(request: Request) -> Reply:
        reply = world(request)
        if request.message is not None and str(request.message.question[0].name) == "bbc.com.":
            return Delayed(delay, reply)
        return reply

    return handler


def test_delayed_reply_does_not_block_udp() -> None:
    # The fast query comes second and is answered first: the responder went on serving while
    # the slow reply waited (a second is ample time for the fast one, however loaded).
    with (
        Responder(_slow_world(1.0)) as responder,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s,
    ):
        s.settimeout(TIMEOUT + 1.0)
        target = (responder.address, responder.port)
        slow = dns.message.make_query("bbc.com", "A")
        fast = dns.message.make_query("dw.com", "A")
        started = time.monotonic()
        dns.query.send_udp(s, slow, target)
        dns.query.send_udp(s, fast, target)
        first = dns.message.from_wire(s.recvfrom(65535)[0])
        assert first.id == fast.id
        second = dns.message.from_wire(s.recvfrom(65535)[0])
        assert second.id == slow.id
        assert time.monotonic() - started >= 0.95  # not before its delay


def test_delayed_reply_comes_out_of_order_over_tcp() -> None:
    with Responder(_slow_world(1.0)) as responder, _tcp_socket(responder) as s:
        slow = dns.message.make_query("bbc.com", "A")
        fast = dns.message.make_query("dw.com", "A")
        expiration = time.time() + TIMEOUT
        dns.query.send_tcp(s, slow, expiration)
        dns.query.send_tcp(s, fast, expiration)
        order = [dns.query.receive_tcp(s, expiration)[0].id for _ in range(2)]
        assert order == [fast.id, slow.id]
        assert [record.transport for record in responder.queries] == ["tcp", "tcp"]


def test_delayed_reply_survives_client_half_close() -> None:
    with Responder(_slow_world(0.2)) as responder, _tcp_socket(responder) as s:
        slow = dns.message.make_query("bbc.com", "A")
        dns.query.send_tcp(s, slow, time.time() + TIMEOUT)
        s.shutdown(socket.SHUT_WR)
        reply, _ = dns.query.receive_tcp(s, time.time() + TIMEOUT)
        assert reply.id == slow.id


def test_handler_exception_is_recorded_and_gets_no_reply() -> None:
    def broken(request: Request) -> Reply:
        raise RuntimeError("handler bug")

    with Responder(broken) as responder:
        with pytest.raises(dns.exception.Timeout):
            dns.query.udp(
                dns.message.make_query("a.example", "A"), responder.address, SHORT, responder.port
            )
        assert [str(exc) for exc in responder.errors] == ["handler bug"]


def test_stop_frees_the_port() -> None:
    responder = Responder(World(RECORDS))
    port = responder.port
    query(responder, "youtube.com", "A", "tcp")
    with _tcp_socket(responder):
        # A connection still open at stop() must not keep the port busy.
        responder.stop()
    for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
        with socket.socket(socket.AF_INET, kind) as s:
            s.bind(("127.0.0.1", port))
    responder.stop()  # a second stop is harmless


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_five_responders_start_and_stop_quickly_leaving_nothing() -> None:
    world = World(RECORDS)
    threads, fds = threading.active_count(), _open_fds()
    started = time.monotonic()
    names = ["nsdi-a", "nsdi-b", "google", "cloudflare", "quad9"]
    with Lab({name: world for name in names}) as lab:
        ports = {lab[name].port for name in names}
        assert len(ports) == 5
        for name in names:
            assert texts(query(lab[name], "dw.com", "A", "udp")) == ["dw.com A 18.66.102.28"]
    assert time.monotonic() - started < 5.0  # no start or stop waited out its 5 s timeout
    assert threading.active_count() == threads
    assert _open_fds() == fds


def test_main_thread_asyncio_loop_is_untouched() -> None:
    async def ask(responder: Responder) -> dns.message.Message:
        q = dns.message.make_query("dw.com", "A")
        return await dns.asyncquery.udp(q, responder.address, TIMEOUT, responder.port)

    with Responder(World(RECORDS)) as responder:
        reply = asyncio.run(ask(responder))
        assert texts(reply) == ["dw.com A 18.66.102.28"]
