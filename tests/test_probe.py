"""The probe engine at packet level, against an in-process responder on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest

from monitor.config import Mode, Resolver
from monitor.lab import Changes, Delayed, Handler, Reply, Request, Responder, World
from monitor.probe import Engine, Observation, Pacer, bulk
from monitor.probe.wire import classify
from monitor.vocabulary import Group

RECORDS = {
    ("example.org", "A"): ["93.184.216.34"],
    ("alias.example.org", "CNAME"): ["example.org"],
    ("dangling.example.org", "CNAME"): ["nowhere.example.org"],
    ("many.example.org", "A"): [f"93.184.{i // 250}.{i % 250 + 1}" for i in range(120)],
}


def resolver(
    responder: Responder, transport: str = "udp", mode: Mode = "recursive", rate: float = 0
) -> Resolver:
    return Resolver(
        name="r",
        group=Group.NATIONAL,
        address=responder.address,
        port=responder.port,
        transport=transport,
        mode=mode,
        rate=rate,
        server_name=None,
        url=None,
        ca_file=None,
    )


def ask(
    res: Resolver,
    domains: list[str],
    rdtypes: tuple[str, ...] = ("A",),
    timeout: float = 0.5,
    attempts: int = 2,
) -> list[Observation]:
    async def go() -> list[Observation]:
        seen: dict[int, Observation] = {}
        async with Engine([res], timeout=timeout, attempts=attempts) as engine:
            await engine.observe([res.name], domains, rdtypes, seen.__setitem__)
        return [seen[i] for i in sorted(seen)]

    return asyncio.run(go())


def one(
    res: Resolver, name: str, rdtype: str = "A", timeout: float = 0.5, attempts: int = 2
) -> Observation:
    (observation,) = ask(res, [name], (rdtype,), timeout=timeout, attempts=attempts)
    return observation


@pytest.fixture
def serve() -> Iterator[Callable[[Handler], Responder]]:
    started: list[Responder] = []

    def start(handler: Handler) -> Responder:
        responder = Responder(handler)
        started.append(responder)
        return responder

    yield start
    for responder in started:
        responder.stop()


def answer(request: Request, rcode: dns.rcode.Rcode = dns.rcode.NOERROR) -> dns.message.Message:
    assert request.message is not None
    response = dns.message.make_response(request.message)
    response.set_rcode(rcode)
    return response


@pytest.mark.parametrize(
    ("name", "rdtype", "status", "answers"),
    [
        ("example.org", "A", "ok", ("93.184.216.34",)),
        ("example.org", "AAAA", "nodata", ()),
        ("alias.example.org", "A", "ok", ("93.184.216.34",)),
        ("dangling.example.org", "A", "nxdomain", ()),
        ("missing.example.org", "A", "nxdomain", ()),
    ],
)
@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_statuses_from_a_resolver_like_world(
    serve: Callable[..., Responder],
    transport: str,
    name: str,
    rdtype: str,
    status: str,
    answers: tuple[str, ...],
) -> None:
    res = resolver(serve(World(RECORDS)), transport)
    observation = one(res, name, rdtype)
    assert (observation.status, observation.answers) == (status, answers)


@pytest.mark.parametrize(
    ("overrides", "status"),
    [({"refuse": ["example.org"]}, "refused"), ({"servfail": ["example.org"]}, "servfail")],
)
def test_refused_and_servfail(
    serve: Callable[..., Responder], overrides: Changes, status: str
) -> None:
    res = resolver(serve(World(RECORDS, **overrides)))
    assert one(res, "example.org").status == status


def test_truncated_udp_reply_is_asked_again_over_tcp(serve: Callable[..., Responder]) -> None:
    responder = serve(World(RECORDS))
    observation = one(resolver(responder), "many.example.org")
    assert observation.status == "ok" and len(observation.answers) == 120
    assert [q.transport for q in responder.queries] == ["udp", "tcp"]


def test_silence_gives_timeout_after_every_attempt(serve: Callable[..., Responder]) -> None:
    responder = serve(lambda request: None)
    started = time.monotonic()
    observation = one(resolver(responder), "example.org", timeout=0.2, attempts=3)
    assert observation.status == "timeout"
    assert len(responder.queries) == 3
    # Three timeouts of 0.2 s cannot pass sooner (a loaded machine only makes them longer),
    # and took far less than three of the default 2 s.
    assert 0.55 < time.monotonic() - started < 6.0


def test_a_late_reply_within_the_timeout_is_taken(serve: Callable[..., Responder]) -> None:
    world = World(RECORDS)
    responder = serve(lambda request: Delayed(0.15, world(request)))
    assert one(resolver(responder), "example.org", timeout=5.0).status == "ok"
    assert len(responder.queries) == 1  # taken when it came, not after a second attempt


def test_malformed_reply_is_an_error_with_detail(serve: Callable[..., Responder]) -> None:
    def garbage(request: Request) -> bytes:
        return request.wire[:2] + b"\x81\x80\x00\x01\x00\x01\x00\x00\x00\x00\x07broken"

    observation = one(resolver(serve(garbage)), "example.org", timeout=0.2, attempts=2)
    assert observation.status == "error"
    assert observation.detail is not None and observation.detail.startswith("malformed reply")


def test_malformed_datagram_does_not_hide_the_real_answer(serve: Callable[..., Responder]) -> None:
    world = World(RECORDS)

    def forged_then_real(request: Request) -> list[object]:
        return [request.wire[:2] + b"\x81\x83junk", world(request)]

    assert one(resolver(serve(forged_then_real)), "example.org").status == "ok"


@pytest.mark.parametrize("forgery", ["wrong id", "wrong question", "not a response"])
def test_replies_that_do_not_match_are_ignored(
    serve: Callable[..., Responder], forgery: str
) -> None:
    """A forged NXDOMAIN that does not match the query is not believed; the real answer is."""
    world = World(RECORDS)

    def handler(request: Request) -> list[object]:
        assert request.message is not None
        forged = dns.message.make_response(request.message)
        forged.set_rcode(dns.rcode.NXDOMAIN)
        if forgery == "wrong id":
            forged.id = (request.message.id + 1) % 65536
        elif forgery == "wrong question":
            other = dns.message.make_query("other.example.org", "A")
            forged = dns.message.make_response(other)
            forged.id = request.message.id
            forged.set_rcode(dns.rcode.NXDOMAIN)
        else:
            forged.flags &= ~dns.flags.QR
        return [forged, Delayed(0.05, world(request))]

    assert one(resolver(serve(handler)), "example.org").status == "ok"


def test_only_forgeries_end_in_timeout(serve: Callable[..., Responder]) -> None:
    def handler(request: Request) -> dns.message.Message:
        response = answer(request, dns.rcode.NXDOMAIN)
        response.id ^= 0x5555
        return response

    assert one(resolver(serve(handler)), "example.org", timeout=0.2).status == "timeout"


def test_other_rcode_is_an_error(serve: Callable[..., Responder]) -> None:
    observation = one(resolver(serve(lambda r: answer(r, dns.rcode.NOTIMP))), "example.org")
    assert (observation.status, observation.detail) == ("error", "rcode NOTIMP")


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_a_reply_the_fast_reader_leaves_is_read_by_dnspython(
    serve: Callable[..., Responder], transport: str
) -> None:
    def compressed(request: Request) -> bytes:
        # The question's name ends in a pointer to a zero byte of the header (qdcount's high
        # byte), not in the root label: valid, and for dnspython to read.
        end = request.wire.index(b"\0", 12)
        header = request.wire[:2] + b"\x81\x80\x00\x01\x00\x01\x00\x00\x00\x00"
        question = request.wire[12:end] + b"\xc0\x04" + request.wire[end + 1 : end + 5]
        record = b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x04" + bytes((192, 0, 2, 7))
        return header + question + record

    observation = one(resolver(serve(compressed), transport), "example.org")
    assert (observation.status, observation.answers) == ("ok", ("192.0.2.7",))


def test_referral_and_authoritative_mode(serve: Callable[..., Responder]) -> None:
    world = World(
        {("ns.example.net", "A"): ["93.184.216.53"]},
        authoritative=True,
        delegations={"example.org": ["ns.example.net"]},
    )
    responder = serve(world)
    assert one(resolver(responder, mode="authoritative"), "www.example.org").status == "referral"
    assert [q for q in responder.queries]  # asked
    # recursion is not desired in authoritative mode
    seen: list[bool] = []

    def spy(request: Request) -> Reply:
        assert request.message is not None
        seen.append(bool(request.message.flags & dns.flags.RD))
        return world(request)

    responder.handler = spy
    one(resolver(responder, mode="authoritative"), "www.example.org")
    one(resolver(responder, mode="recursive"), "www.example.org")
    assert seen == [False, True]


def observe_within(res: Resolver, names: list[str], rdtypes: tuple[str, ...]) -> list[Observation]:
    """Observe as `ask` does, with a long timeout and one attempt, failing after 30 s."""

    async def go() -> list[Observation]:
        seen: dict[int, Observation] = {}
        async with Engine([res], timeout=20.0, attempts=1) as engine:
            await asyncio.wait_for(engine.observe([res.name], names, rdtypes, seen.__setitem__), 30)
        return [seen[i] for i in sorted(seen)]

    return asyncio.run(go())


def test_many_queries_are_in_flight_at_once() -> None:
    # The server answers nothing until every query has come: an engine that waited for each
    # answer before it sent the next query would get none.
    server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server.bind(("127.0.0.1", 0))
    server.settimeout(30)
    names = [f"n{i}.example.org" for i in range(200)]
    held: dict[str, tuple[dns.message.Message, tuple[str, int]]] = {}

    def hold_then_answer() -> None:
        with contextlib.suppress(OSError):
            while len(held) < len(names):
                wire, peer = server.recvfrom(2000)
                query = dns.message.from_wire(wire)
                held[query.question[0].name.to_text()] = (query, peer)
            for query, peer in held.values():
                reply = dns.message.make_response(query)
                reply.set_rcode(dns.rcode.NXDOMAIN)
                server.sendto(reply.to_wire(), peer)

    thread = threading.Thread(target=hold_then_answer, daemon=True)
    thread.start()
    try:
        observations = observe_within(udp_resolver(server.getsockname()[1]), names, ("A",))
    finally:
        server.close()
        thread.join(5)
    assert len(held) == 200
    assert len(observations) == 200 and {o.status for o in observations} == {"nxdomain"}


def test_udp_queries_leave_from_several_source_ports(serve: Callable[..., Responder]) -> None:
    world = World(RECORDS)
    ports: list[int] = []

    def handler(request: Request) -> object:
        ports.append(request.peer[1])
        return world(request)

    responder = serve(handler)
    observations = ask(resolver(responder), [f"n{i}.example.org" for i in range(40)])
    assert {o.status for o in observations} == {"nxdomain"}
    assert len(set(ports)) == 4  # round robin over the pass's sockets
    assert max(ports.count(port) for port in set(ports)) == 10


def test_answered_queries_are_let_go_at_once(serve: Callable[..., Responder]) -> None:
    # At a million names the garbage collector, walking answered queries that were kept until
    # their deadline, cost more than the queries did: an answered query must be freed at once.
    world = World(RECORDS)
    responder = serve(lambda request: None if b"silent" in request.wire else world(request))
    names = ["silent.example.org"] + [f"n{i}.example.org" for i in range(300)]
    seen: list[Observation] = []
    alive: list[int] = []

    def sink(index: int, observation: Observation) -> None:
        seen.append(observation)
        if len(seen) == len(names) - 1:  # every name answered; the silent one still waits
            alive.append(sum(isinstance(o, bulk.Flight) for o in gc.get_objects()))

    async def go() -> None:
        res = resolver(responder)
        async with Engine([res], timeout=1.0, attempts=1) as engine:
            await engine.observe([res.name], names, ("A",), sink)

    gc.collect()  # what earlier tests left
    asyncio.run(go())
    assert seen[-1].domain == "silent.example.org" and seen[-1].status == "timeout"
    # Left: the silent name's query, and the one whose answer is being handed over.
    assert alive and alive[0] <= 2


def test_tcp_pipelines_on_one_connection() -> None:
    # The server reads the first connection only, and answers nothing until every query has
    # come on it: queries sent one after another's answer, or over a second connection, would
    # get none.
    world = World(RECORDS)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.settimeout(30)
    names = ["example.org", "alias.example.org"] * 10
    held: list[Request] = []

    def hold_then_answer() -> None:
        with contextlib.suppress(OSError):
            conn, peer = listener.accept()
            with conn, conn.makefile("rb") as stream:
                while len(held) < 2 * len(names) and len(head := stream.read(2)) == 2:
                    wire = stream.read(int.from_bytes(head, "big"))
                    held.append(Request(dns.message.from_wire(wire), wire, "tcp", peer))
                for request in held:
                    reply = world(request)
                    assert isinstance(reply, dns.message.Message)
                    conn.sendall(reply.to_wire(prepend_length=True))
                while stream.read(2):  # until the client closes
                    pass

    thread = threading.Thread(target=hold_then_answer, daemon=True)
    thread.start()
    port = listener.getsockname()[1]
    tcp = Resolver("r", Group.NATIONAL, "127.0.0.1", port, "tcp", "recursive", 0, None, None, None)
    try:
        observations = observe_within(tcp, names, ("A", "AAAA"))
        listener.setblocking(False)
        with pytest.raises(BlockingIOError):
            listener.accept()  # no second connection waits
    finally:
        listener.close()
        thread.join(5)
    assert len(held) == 40
    assert len(observations) == 40
    assert [o.status for o in observations[:4]] == ["ok", "nodata", "ok", "nodata"]


def test_pacer_spaces_sends_to_the_rate(serve: Callable[..., Responder]) -> None:
    responder = serve(World(RECORDS))
    started = time.monotonic()
    ask(resolver(responder, rate=100), ["example.org"] * 40)
    elapsed = time.monotonic() - started
    assert elapsed >= 0.38  # 40 queries at 100 a second: the first at once, the last at 0.39 s


def test_pacer_without_rate_does_not_wait() -> None:
    # Not even for one turn of the event loop: a task that counts the turns counts none.
    async def go() -> int:
        pacer = Pacer(0)
        assert not pacer.paced
        turns = 0

        async def count() -> None:
            nonlocal turns
            while True:
                turns += 1
                await asyncio.sleep(0)

        counter = asyncio.ensure_future(count())
        await asyncio.sleep(0)
        before = turns
        for _ in range(1000):
            await pacer.wait()
        waited = turns - before
        counter.cancel()
        return waited

    assert asyncio.run(go()) == 0


def test_classify_cname_loop_and_answers_for_other_names() -> None:
    qname = dns.name.from_text("loop.example.")
    query = dns.message.make_query(qname, "A")
    reply = dns.message.make_response(query)
    reply.answer.append(dns.rrset.from_text("loop.example.", 60, "IN", "CNAME", "loop2.example."))
    reply.answer.append(dns.rrset.from_text("loop2.example.", 60, "IN", "CNAME", "loop.example."))
    reply = dns.message.from_wire(reply.to_wire())  # as received: parsed, with its index
    assert classify(reply, qname, dns.rdatatype.A) == ("error", (), "CNAME loop")
    other = dns.message.make_response(query)
    other.answer.append(dns.rrset.from_text("elsewhere.example.", 60, "IN", "A", "93.184.216.34"))
    assert classify(dns.message.from_wire(other.to_wire()), qname, dns.rdatatype.A)[0] == "nodata"


def test_unreachable_resolver_is_an_error_not_a_crash() -> None:
    # Nothing listens on port 9: the kernel's ICMP refusal fails the attempts at once.
    res = Resolver("r", Group.NATIONAL, "127.0.0.1", 9, "udp", "recursive", 0, None, None, None)
    started = time.monotonic()
    observations = ask(res, ["example.org", "example.net"], timeout=30.0, attempts=2)
    assert [o.status for o in observations] == ["error", "error"]
    assert all(o.detail == "network error: Connection refused" for o in observations)
    assert time.monotonic() - started < 30.0  # before the first attempt's timeout could fire
    res_tcp = Resolver("r", Group.NATIONAL, "127.0.0.1", 9, "tcp", "recursive", 0, None, None, None)
    observation = one(res_tcp, "example.org", timeout=0.2, attempts=1)
    # Said as the errno says it (asyncio's own words name no reason): a canary's TCP health
    # reads "refused" in it.
    assert (observation.status, observation.detail) == (
        "error",
        "connection failed: Connection refused",
    )


def test_udp_sockets_that_cannot_open_end_every_job_as_an_error() -> None:
    # A link-local IPv6 address needs a scope: connect() refuses it without one, so the UDP
    # pass cannot open its sockets. Every job must end as an error with the system's reason,
    # without waiting for timeouts and without counting queries that never left.
    with (
        socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as sock,
        pytest.raises(OSError) as refused,
    ):
        sock.connect(("fe80::1", 53))
    reason = f"network error: {refused.value.strerror}"
    res = Resolver("r", Group.NATIONAL, "fe80::1", 53, "udp", "recursive", 0, None, None, None)

    async def go() -> tuple[dict[int, Observation], int]:
        seen: dict[int, Observation] = {}
        async with Engine([res], timeout=30.0, attempts=3) as engine:
            await asyncio.wait_for(
                engine.observe(
                    ["r"], ["example.org", "example.net"], ("A", "AAAA"), seen.__setitem__
                ),
                10,
            )
            return seen, engine.sent

    seen, sent = asyncio.run(go())
    assert sorted(seen) == [0, 1, 2, 3]
    assert [(o.domain, o.rdtype, o.status, o.detail) for _, o in sorted(seen.items())] == [
        ("example.org", "A", "error", reason),
        ("example.org", "AAAA", "error", reason),
        ("example.net", "A", "error", reason),
        ("example.net", "AAAA", "error", reason),
    ]
    assert sent == 0


def udp_resolver(port: int, rate: float = 0) -> Resolver:
    return Resolver(
        "r", Group.NATIONAL, "127.0.0.1", port, "udp", "recursive", rate, None, None, None
    )


def test_a_reply_behind_an_icmp_error_does_not_break_the_pass() -> None:
    # The resolver restarts: a datagram meets a closed port (the kernel queues an ICMP error on
    # the socket), then the answer to a query sent before arrives behind it. The error fails
    # the query's attempt; the late answer must find nothing, and the retry is answered.
    async def go() -> tuple[dict[int, Observation], int]:
        server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        server.bind(("127.0.0.1", 0))
        port = server.getsockname()[1]
        seen: dict[int, Observation] = {}
        async with Engine([udp_resolver(port)], timeout=1.0, attempts=2) as engine:
            client = engine.clients["r"]
            jobs = iter(enumerate([("a.example.org", "A")]))
            job = bulk.UdpPass(client, "127.0.0.1", port, engine.rng, jobs, seen.__setitem__, 10)
            job.open()
            running = asyncio.ensure_future(job.run())
            await asyncio.sleep(0)  # the query goes out
            query, _ = server.recvfrom(2000)
            slot = next(i for i, flying in enumerate(job.flying) if flying)
            server.close()
            job.sockets[slot].send(b"xx")  # to the closed port: ICMP port unreachable
            time.sleep(0.05)
            server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            server.bind(("127.0.0.1", port))
            late = dns.message.make_response(dns.message.from_wire(query)).to_wire()
            server.sendto(late, job.sockets[slot].getsockname())
            await asyncio.sleep(0.1)
            retry, peer = server.recvfrom(2000)  # the second attempt
            server.sendto(dns.message.make_response(dns.message.from_wire(retry)).to_wire(), peer)
            await asyncio.wait_for(running, 3)
            server.close()
            return seen, client.sent

    seen, sent = asyncio.run(go())
    assert sent == 2
    assert [(o.domain, o.status) for o in seen.values()] == [("a.example.org", "nodata")]


class _RefusingSocket:
    """A socket whose sends fail, as behind a firewall that rejects them."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def fileno(self) -> int:
        return self.sock.fileno()

    def close(self) -> None:
        self.sock.close()

    def recv(self, size: int) -> bytes:
        return self.sock.recv(size)

    def send(self, data: bytes) -> int:
        raise PermissionError(1, "Operation not permitted")


def test_failed_sends_while_paced_keep_one_chain_of_fills() -> None:
    names = [(f"n{i}.example.org", "A") for i in range(30)]
    fills: list[float] = []

    async def go() -> dict[int, Observation]:
        seen: dict[int, Observation] = {}
        async with Engine([udp_resolver(9, rate=100)], timeout=1.0, attempts=3) as engine:
            client = engine.clients["r"]
            job = bulk.UdpPass(
                client, "127.0.0.1", 9, engine.rng, iter(enumerate(names)), seen.__setitem__, 512
            )
            job.open()
            job.sockets[:] = [_RefusingSocket(s) for s in job.sockets]  # type: ignore[misc]
            fill = job.fill

            def counted() -> None:
                fills.append(time.monotonic())
                fill()

            job.fill = counted  # type: ignore[method-assign]
            await asyncio.wait_for(job.run(), 10)
        return seen

    seen = asyncio.run(go())
    assert len(seen) == 30
    assert {(o.status, o.detail) for o in seen.values()} == {
        ("error", "network error: Operation not permitted")
    }
    # 90 sends at 100 a second: about one fill each, not chains that multiply.
    assert len(fills) < 300, len(fills)


def _answer_over_tcp(conn: socket.socket, arrivals: list[float]) -> None:
    """Answer each length-prefixed query on ``conn`` with one A record; note when it came."""
    with conn, conn.makefile("rb") as stream:
        while (head := stream.read(2)) and len(head) == 2:
            query = dns.message.from_wire(stream.read(int.from_bytes(head, "big")))
            arrivals.append(time.monotonic())
            reply = dns.message.make_response(query)
            reply.answer.append(
                dns.rrset.from_text(query.question[0].name, 60, "IN", "A", "93.184.216.34")
            )
            wire = reply.to_wire()
            conn.sendall(len(wire).to_bytes(2, "big") + wire)


def _syn_sent_to(port: int) -> bool:
    """Whether a socket here is sending its SYN to ``port`` on 127.0.0.1 (state SYN_SENT)."""
    rows = [line.split() for line in Path("/proc/net/tcp").read_text().splitlines()[1:]]
    return any(row[2] == f"0100007F:{port:04X}" and row[3] == "02" for row in rows)


def test_queries_paced_while_a_connection_opens_keep_the_rate() -> None:
    # A listener whose accept queue (backlog 0) is held by another connection drops the
    # client's SYN; the kernel sends it again a second later, and the connection opens then.
    # The queries that were paced meanwhile must not all leave at once when it opens.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    filler = socket.create_connection(("127.0.0.1", port))
    arrivals: list[float] = []

    def serve() -> None:
        deadline = time.monotonic() + 30
        while not _syn_sent_to(port) and time.monotonic() < deadline:
            time.sleep(0.005)
        # Loopback handles (drops) the SYN within the connect() that sent it; this is margin.
        time.sleep(0.1)
        listener.accept()[0].close()  # the filler
        conn, _ = listener.accept()
        _answer_over_tcp(conn, arrivals)

    rate = 20
    names = [f"n{i}.example.org" for i in range(60)]
    resolver = Resolver(
        "r", Group.CONTROL, "127.0.0.1", port, "tcp", "recursive", rate, None, None, None
    )
    server = threading.Thread(target=serve, daemon=True)
    server.start()
    seen: list[Observation] = []

    async def go() -> float:
        started = time.monotonic()
        async with Engine([resolver], timeout=5.0, attempts=1) as engine:
            await engine.observe(["r"], names, ["A"], lambda _, o: seen.append(o))
        return started

    try:
        started = asyncio.run(go())
    finally:
        filler.close()
        listener.close()
        server.join(5)
    assert [o.status for o in seen] == ["ok"] * len(names)
    assert arrivals[0] - started > 0.9  # the connection did open late
    # Arrivals are noted by a thread a loaded machine can hold up, which bunches them; the
    # paced queries leaving at once when the connection opens would put twice the rate into
    # its first second.
    worst = max(sum(1 for t in arrivals if s <= t < s + 1.0) for s in arrivals)
    assert worst <= rate * 3 // 2, worst
