"""The probe engine: ask resolvers about names over UDP, TCP, DoT or DoH, many queries in flight.

Every query ends as an :class:`Observation` whose ``status`` says what happened; a timeout or a
malformed reply is a status, never an exception. Replies are matched to their query by ID *and*
question: a reply for another question, or one that does not parse, is not believed.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import itertools
import random
import socket
import ssl
import struct
import urllib.parse
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import TYPE_CHECKING, NamedTuple, Protocol, TypeVar, cast

import dns.rdatatype

from monitor.wire import (
    UNREAD,
    MalformedReply,
    Question,
    Reading,
    query_head,
    query_tail,
    query_wire,
    read_fast,
    read_reply,
    read_with_dnspython,
)

if TYPE_CHECKING:
    import httpx

    from monitor.config import Resolver

STATUSES = ("ok", "nodata", "nxdomain", "servfail", "refused", "referral", "timeout", "error")

# Big enough for answers with a few dozen addresses, small enough to avoid fragmentation.
EDNS_PAYLOAD = 1232
MAX_CNAME_CHAIN = 16


class Observation(NamedTuple):
    """What one resolver said about one name and record type."""

    resolver: str
    domain: str
    rdtype: str
    status: str
    answers: tuple[str, ...] = ()
    detail: str | None = None


class _Timeout(Exception):
    """No believable reply came within the attempt's time."""


class _Failure(Exception):
    """The attempt failed for a reason worth reporting (network error, malformed reply)."""


Outcome = Reading | Exception  # what a query in flight ends with: a reading, or why not


class _Awaiting(Protocol):
    """A query in flight, as replies are matched to it."""

    question: Question
    malformed: str | None  # a reply to it did not parse


_Entry = TypeVar("_Entry", bound=_Awaiting)


def _take_answered(table: dict[int, _Entry], data: bytes) -> tuple[_Entry, Reading] | None:
    """Find the query in ``table`` (by DNS ID) that ``data`` answers, remove it and return it
    with the reply's reading; None for anything else.

    A reply is believed only if its ID *and* question match. One that does not parse is noted
    on its query, which keeps waiting: a forged or broken datagram must not hide the real
    answer.
    """
    if len(data) < 12:
        return None
    qid = (data[0] << 8) | data[1]
    entry = table.get(qid)
    if entry is None:
        return None
    try:
        # read_reply, spelled out: this runs for every reply, and a call less counts here.
        reading = read_fast(data, entry.question)
        if reading is UNREAD:
            reading = read_with_dnspython(data, entry.question)
    except MalformedReply as exc:
        entry.malformed = f"malformed reply: {exc}"
        return None
    if reading is None:
        return None
    del table[qid]
    return entry, reading


class _Pending:
    __slots__ = ("done", "malformed", "question")

    def __init__(self, question: Question, done: Callable[[Outcome], None]):
        self.question = question
        self.done = done  # called once, with the reading or the failure
        self.malformed: str | None = None


class _Matcher:
    """Queries in flight on one socket or connection, keyed by DNS ID."""

    def __init__(self, rng: random.Random) -> None:
        self.pending: dict[int, _Pending] = {}
        self._rng = rng

    def __len__(self) -> int:
        return len(self.pending)

    def register(self, question: Question, done: Callable[[Outcome], None]) -> tuple[int, _Pending]:
        while True:
            qid = self._rng.getrandbits(16)
            if qid not in self.pending:
                break
        pending = _Pending(question, done)
        self.pending[qid] = pending
        return qid, pending

    def release(self, qid: int, pending: _Pending) -> None:
        if self.pending.get(qid) is pending:
            del self.pending[qid]

    def feed(self, data: bytes) -> None:
        """Hand a received message to the query it answers; anything else is dropped."""
        answered = _take_answered(self.pending, data)
        if answered is not None:
            pending, reading = answered
            pending.done(reading)

    def fail_all(self, reason: str) -> None:
        pending, self.pending = self.pending, {}
        for one in pending.values():
            one.done(_Failure(reason))


def _settle(future: asyncio.Future[Reading], outcome: Outcome) -> None:
    if future.done():
        return
    if isinstance(outcome, Exception):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)


async def _exchange_on(
    matcher: _Matcher, send: Callable[[int], None], question: Question, timeout: float
) -> Reading:
    """Register a query on ``matcher``, ``send`` it with its ID, and await its reading."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[Reading] = loop.create_future()
    qid, pending = matcher.register(question, functools.partial(_settle, future))

    def expire() -> None:
        _settle(future, _Failure(pending.malformed) if pending.malformed else _Timeout())

    handle = loop.call_later(timeout, expire)
    try:
        send(qid)
        return await future
    finally:
        handle.cancel()
        matcher.release(qid, pending)


def _with_id(template: bytes, qid: int) -> bytes:
    return struct.pack("!H", qid) + template[2:]


class _UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, matcher: _Matcher) -> None:
        self.matcher = matcher
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        self.matcher.feed(data)

    def error_received(self, exc: Exception) -> None:
        # On a connected socket this is an ICMP error from the resolver: nothing there answers.
        self.matcher.fail_all(f"network error: {getattr(exc, 'strerror', None) or exc}")


class _UdpClient:
    """A few connected UDP sockets to one resolver; the kernel drops datagrams from other peers."""

    SOCKETS = 4
    MAX_IN_FLIGHT = 16384  # per socket, well under the 65,536 IDs
    BUFFER = 4 << 20

    def __init__(self, address: str, port: int, rng: random.Random) -> None:
        self.address = address
        self.port = port
        self._rng = rng
        self._sockets: list[_UdpProtocol] = []
        self._next = 0

    async def _open(self) -> None:
        loop = asyncio.get_running_loop()
        for _ in range(self.SOCKETS):
            transport, protocol = await loop.create_datagram_endpoint(
                lambda: _UdpProtocol(_Matcher(self._rng)), remote_addr=(self.address, self.port)
            )
            # Replies to hundreds of queries in flight arrive in bursts; the default buffer
            # (about 200 small datagrams) would drop some and cost a retry each.
            sock = transport.get_extra_info("socket")
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.BUFFER)
            self._sockets.append(protocol)

    async def ready(self) -> None:
        """Open the sockets if they are not open yet. Raises _Failure."""
        if not self._sockets:
            try:
                await self._open()
            except OSError as exc:
                raise _Failure(f"network error: {exc.strerror or exc}") from None

    def pick(self) -> _UdpProtocol:
        """Return the next socket, round robin, so the source ports vary. Raises _Failure."""
        self._next = (self._next + 1) % len(self._sockets)
        protocol = self._sockets[self._next]
        if len(protocol.matcher) >= self.MAX_IN_FLIGHT:
            raise _Failure("too many queries in flight")
        return protocol

    async def exchange(self, template: bytes, question: Question, timeout: float) -> Reading:
        await self.ready()
        protocol = self.pick()
        transport = protocol.transport
        assert transport is not None

        def send(qid: int) -> None:
            transport.sendto(_with_id(template, qid))

        return await _exchange_on(protocol.matcher, send, question, timeout)

    async def close(self) -> None:
        for protocol in self._sockets:
            if protocol.transport is not None:
                protocol.transport.close()
        self._sockets.clear()


class _StreamClient:
    """One persistent TCP (or TLS, for DoT) connection with pipelined queries (RFC 7766)."""

    def __init__(
        self,
        address: str,
        port: int,
        rng: random.Random,
        ssl_context: ssl.SSLContext | None = None,
        server_name: str | None = None,
    ) -> None:
        self.address = address
        self.port = port
        self._ssl = ssl_context
        self._server_name = server_name
        self._matcher = _Matcher(rng)
        self._writer: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    async def _connect(self, timeout: float) -> asyncio.StreamWriter:
        async with self._lock:
            if self._writer is not None and not self._writer.is_closing():
                return self._writer
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection(
                        self.address,
                        self.port,
                        ssl=self._ssl,
                        server_hostname=(self._server_name or self.address) if self._ssl else None,
                    ),
                    timeout,
                )
            except TimeoutError:
                raise _Timeout() from None
            except (OSError, ssl.SSLError) as exc:
                raise _Failure(f"connection failed: {exc.strerror or exc}") from None
            self._writer = writer
            self._reader_task = asyncio.create_task(self._read(reader, writer))
            return writer

    async def _read(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        reason = "connection closed by resolver"
        try:
            while True:
                size = struct.unpack("!H", await reader.readexactly(2))[0]
                self._matcher.feed(await reader.readexactly(size))
        except asyncio.IncompleteReadError:
            pass
        except (OSError, ssl.SSLError) as exc:
            reason = f"connection error: {exc}"
        finally:
            if self._writer is writer:
                self._writer = None
            writer.close()
            self._matcher.fail_all(reason)

    async def exchange(
        self,
        template: bytes,
        question: Question,
        timeout: float,
        paced: Callable[[], Awaitable[None]],
    ) -> Reading:
        """Ask over the connection (opened first, if need be) once ``paced`` gives a slot.

        The slot is taken once the connection is up: queries paced while it was being set up
        would all leave at once when it opened, more than the rate in that second.
        """
        await self._connect(timeout)
        await paced()
        writer = await self._connect(timeout)  # the same one, unless it closed meanwhile

        def send(qid: int) -> None:
            wire = _with_id(template, qid)
            writer.write(struct.pack("!H", len(wire)) + wire)

        return await _exchange_on(self._matcher, send, question, timeout)

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(Exception):
                await self._writer.wait_closed()
        if self._reader_task is not None:
            self._reader_task.cancel()
            with contextlib.suppress(BaseException):
                await self._reader_task


class _DohClient:
    """DNS over HTTPS (RFC 8484): POSTs over one HTTP/2 session, pinned to the address."""

    def __init__(
        self, url: str, address: str | None, port: int, ssl_context: ssl.SSLContext
    ) -> None:
        import httpx  # imported here: only DoH users pay for it

        parsed = urllib.parse.urlsplit(url)
        host = parsed.hostname or ""
        self._extensions: dict[str, str] = {}
        self._headers = {
            "accept": "application/dns-message",
            "content-type": "application/dns-message",
        }
        if address is not None and address != host:
            target = f"[{address}]" if ":" in address else address
            self._url = urllib.parse.urlunsplit(
                ("https", f"{target}:{parsed.port or port}", parsed.path or "/", parsed.query, "")
            )
            self._headers["host"] = parsed.netloc
            self._extensions["sni_hostname"] = host
        else:
            self._url = url
        self._client: httpx.AsyncClient = httpx.AsyncClient(
            http1=True, http2=True, verify=ssl_context, timeout=None
        )
        self._errors: tuple[type[Exception], ...] = (httpx.HTTPError, OSError, ssl.SSLError)
        self._opening = False
        self._opened = asyncio.Event()

    async def exchange(
        self,
        template: bytes,
        question: Question,
        timeout: float,
        paced: Callable[[], Awaitable[None]],
        left_at: Callable[[float], None],
    ) -> Reading:
        """POST one query once ``paced`` gives a slot.

        The first query opens the session; the others wait for it to be answered (or to fail)
        before they take their slots, or the queries paced while the session was being set up
        would all leave at once when it opened. The first one left only once the session was
        open: ``left_at`` moves its send time to when it was answered, later still and so safe
        for the rate.
        """
        if not self._opened.is_set():
            if self._opening:
                await self._opened.wait()
            else:
                self._opening = True
                try:
                    await paced()
                    return await self._post(template, question, timeout)
                finally:
                    left_at(asyncio.get_running_loop().time())
                    self._opened.set()
        await paced()
        return await self._post(template, question, timeout)

    async def _post(self, template: bytes, question: Question, timeout: float) -> Reading:
        try:
            response = await asyncio.wait_for(
                self._client.post(
                    self._url, content=template, headers=self._headers, extensions=self._extensions
                ),
                timeout,
            )
        except TimeoutError:
            raise _Timeout() from None
        except self._errors as exc:
            raise _Failure(f"HTTPS error: {type(exc).__name__}: {exc}") from None
        if response.status_code != 200:
            raise _Failure(f"HTTP status {response.status_code}")
        try:
            reading = read_reply(response.content, question)
        except MalformedReply as exc:
            raise _Failure(f"malformed reply: {exc}") from None
        if reading is None:
            raise _Failure("reply for another question")
        return reading

    async def close(self) -> None:
        await self._client.aclose()


class Pacer:
    """Paces sends to one resolver: never more than ``rate`` in any one-second window.

    Each send reserves the next slot (1/rate apart, first come first served) and sleeps until
    it. When the event loop runs late, woken senders could bunch up, so the times of the last
    ``rate`` sends are kept too and a send waits until the oldest is a second old. A send
    happens in the same loop step as :meth:`wait` returns, so these times are the send times.
    """

    CATCH_UP = 0.02
    # A second, and a little more: a datagram can leave the host a moment after its send
    # time was noted, and the limit must hold for any second as the resolver sees it.
    WINDOW = 1.003

    def __init__(self, rate: float) -> None:
        self._interval = 1.0 / rate if rate > 0 else 0.0
        self._next = 0.0
        self._recent: collections.deque[float] = collections.deque(maxlen=max(1, int(rate)))

    @property
    def paced(self) -> bool:
        """Whether there is a rate to keep (``rate: 0`` means none)."""
        return bool(self._interval)

    async def wait(self) -> None:
        if not self._interval:
            return
        loop = asyncio.get_running_loop()
        now = loop.time()
        slot = max(now, self._next)
        self._next = slot + self._interval
        if slot > now:
            await asyncio.sleep(slot - now)
        recent = self._recent
        while len(recent) == recent.maxlen and (now := loop.time()) < recent[0] + self.WINDOW:
            await asyncio.sleep(recent[0] + self.WINDOW - now)
        recent.append(loop.time())

    def try_now(self, now: float) -> float:
        """Take a send slot at ``now`` and return 0, or return how long to wait for one.

        For callers that cannot sleep (callbacks). A timer that fires a little late may send
        the slots it missed at once (up to CATCH_UP seconds' worth), so the rate is reached;
        the one-second window still holds.
        """
        if not self._interval:
            return 0.0
        if not self._next:
            self._next = now  # no catching up on slots before the first send
        if now < self._next:
            return self._next - now
        recent = self._recent
        if len(recent) == recent.maxlen and now < recent[0] + self.WINDOW:
            return recent[0] + self.WINDOW - now
        self._next = max(self._next, now - self.CATCH_UP) + self._interval
        recent.append(now)
        return 0.0

    def sent_at(self, when: float) -> None:
        """Note when the send just allowed by :meth:`try_now` actually left: the window counts
        from there, so a send delayed on its way cannot let the next ones crowd it."""
        if self._interval:
            self._recent[-1] = when


def ssl_context_for(resolver: Resolver) -> ssl.SSLContext:
    """Return the TLS context for a DoT or DoH resolver: its ``ca_file``, else the system's CAs."""
    context = ssl.create_default_context(
        cafile=str(resolver.ca_file) if resolver.ca_file is not None else None
    )
    if resolver.transport == "dot":
        context.set_alpn_protocols(["dot"])
    return context


class ResolverClient:
    """Asks one resolver, with its transport, mode, rate, timeout and attempts."""

    def __init__(
        self, resolver: Resolver, *, timeout: float, attempts: int, rng: random.Random
    ) -> None:
        self.resolver = resolver
        self.timeout = timeout
        self.attempts = attempts
        self.pacer = Pacer(resolver.rate)
        self.sent = 0
        self.recursion = resolver.mode != "authoritative"
        self._udp: _UdpClient | None = None
        self._stream: _StreamClient | None = None
        self._doh: _DohClient | None = None
        address = resolver.address
        if resolver.transport == "doh":
            assert resolver.url is not None
            self._doh = _DohClient(resolver.url, address, resolver.port, ssl_context_for(resolver))
            return
        assert address is not None
        if resolver.transport == "udp":
            self._udp = _UdpClient(address, resolver.port, rng)
            tcp_port = resolver.port
            self._stream = _StreamClient(address, tcp_port, rng)
        elif resolver.transport == "tcp":
            self._stream = _StreamClient(address, resolver.port, rng)
        else:
            self._stream = _StreamClient(
                address, resolver.port, rng, ssl_context_for(resolver), resolver.server_name
            )

    async def ask(self, domain: str, rdtype_text: str, *, stream: bool = False) -> Observation:
        """Return the observation for one name and type, after up to ``attempts`` tries.

        ``stream`` asks a ``udp`` resolver over TCP: for re-queries of a disagreement, which an
        off-path forger or a box that injects answers into UDP cannot then produce again.
        """
        question = Question.of(domain, _rdtype_code(rdtype_text))
        template = query_wire(question, recursion=self.recursion, payload=EDNS_PAYLOAD)
        status, detail = "timeout", None
        for _ in range(self.attempts):
            try:
                reading = await self._exchange(template, question, stream)
            except _Timeout:
                status, detail = "timeout", None
                continue
            except _Failure as exc:
                status, detail = "error", str(exc)
                continue
            if reading.truncated:
                status, detail = "error", "truncated reply over a stream"
                continue
            return Observation(
                self.resolver.name,
                domain,
                rdtype_text,
                reading.status,
                reading.answers,
                reading.detail,
            )
        return Observation(self.resolver.name, domain, rdtype_text, status, (), detail)

    async def _exchange(self, template: bytes, question: Question, stream: bool) -> Reading:
        if self._doh is not None:
            return await self._doh.exchange(
                template, question, self.timeout, self._paced, self.pacer.sent_at
            )
        assert self._stream is not None
        if self._udp is None or stream:
            return await self._stream.exchange(template, question, self.timeout, self._paced)
        await self._paced()
        reading = await self._udp.exchange(template, question, self.timeout)
        if reading.truncated:
            reading = await self._stream.exchange(template, question, self.timeout, self._paced)
        return reading

    async def _paced(self) -> None:
        """Wait for a send slot and count the query that takes it."""
        await self.pacer.wait()
        self.sent += 1

    @property
    def udp(self) -> _UdpClient | None:
        """The UDP client, for a resolver whose transport is udp."""
        return self._udp

    async def close(self) -> None:
        for client in (self._udp, self._stream, self._doh):
            if client is not None:
                await client.close()


Job = tuple[str, str]  # (domain as A-label, record type)


class _Flight:
    """One job of a UDP pass: its question, and where its current attempt stands."""

    __slots__ = (
        "attempt",
        "body",
        "detail",
        "domain",
        "index",
        "malformed",
        "qid",
        "question",
        "rdtype",
        "slot",
        "status",
        "ticket",
    )

    def __init__(self, index: int, domain: str, rdtype: str, question: Question, body: bytes):
        self.index = index
        self.domain = domain
        self.rdtype = rdtype
        self.question = question
        self.body = body  # the query after its ID
        self.attempt = 0
        self.status = "timeout"
        self.detail: str | None = None
        self.malformed: str | None = None  # a reply to this attempt did not parse
        self.qid = 0
        self.slot = 0  # which socket the attempt went out on
        self.ticket = 0  # the attempt's place in the deadline queue


class _UdpPass:
    """One resolver's jobs over UDP, driven by callbacks instead of a coroutine per query.

    At a million names the coroutine, future and timer of each query cost more than reading
    its reply, so the pass owns a few connected non-blocking sockets: when one is readable it
    drains every datagram waiting there, finishes the jobs they answer, then sends as many new
    ones as the window lets out. One periodic tick expires the oldest attempts (they all share
    one timeout, so a FIFO queue ordered by deadline is enough). Truncated replies are asked
    again over TCP.

    Nothing a query leaves behind refers back to itself, so a finished job is freed at once by
    reference counting: the deadline queue holds only numbers, and the tables of attempts in
    flight let go of an attempt as soon as it is answered.
    """

    TICK = 0.05
    SOCKETS = _UdpClient.SOCKETS
    MAX_IN_FLIGHT = _UdpClient.MAX_IN_FLIGHT
    BUFFER = _UdpClient.BUFFER
    DRAIN = 512  # datagrams read per wake-up, so that timers and other passes get their turn
    BACKOFF = 0.002  # how long to wait when the kernel's send buffer is full

    def __init__(
        self,
        client: ResolverClient,
        address: str,
        port: int,
        rng: random.Random,
        jobs: Iterator[tuple[int, Job]],
        finish: Callable[[int, Observation], None],
        window: int,
    ) -> None:
        self.loop = asyncio.get_running_loop()
        self.client = client
        self.address = address
        self.port = port
        self.rng = rng
        self.jobs = jobs
        self.finish_job = finish
        self.window = window
        self.in_flight = 0
        self.exhausted = False
        self.sockets: list[socket.socket] = []
        self.flying: list[dict[int, _Flight]] = []  # per socket: the attempts in flight, by ID
        self.waiting: dict[int, _Flight] = {}  # the attempts in flight, by ticket
        self.tickets = itertools.count(1)
        self.ready: collections.deque[_Flight] = collections.deque()  # to send (again) first
        self.deadlines: collections.deque[tuple[float, int]] = collections.deque()
        self.finished: asyncio.Future[None] = self.loop.create_future()
        self.wake: asyncio.Handle | None = None  # a fill() already scheduled
        self.ticking: asyncio.TimerHandle | None = None
        self.fallbacks: set[asyncio.Task[None]] = set()
        self.next_slot = 0  # round robin over the sockets, so the source ports vary
        self.name = client.resolver.name
        self.paced = client.pacer.paced
        self.head = query_head(recursion=client.recursion)
        self.tails: dict[str, tuple[int, bytes]] = {}  # by type: its code, and the query's tail
        self.last_domain = ""
        self.last_wire = b""

    def open(self) -> None:
        """Open the sockets. Raises OSError."""
        family, kind, proto, _, sockaddr = socket.getaddrinfo(
            self.address, self.port, type=socket.SOCK_DGRAM, flags=socket.AI_NUMERICHOST
        )[0]
        try:
            for slot in range(self.SOCKETS):
                sock = socket.socket(family, kind, proto)
                self.sockets.append(sock)
                sock.setblocking(False)
                # Replies to hundreds of queries in flight arrive in bursts; the default buffer
                # (about 200 small datagrams) would drop some and cost a retry each.
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.BUFFER)
                # Connected: the kernel drops datagrams from anyone but the resolver.
                sock.connect(sockaddr)
                self.flying.append({})
                self.loop.add_reader(sock.fileno(), self.readable, slot)
        except OSError:
            self.close()
            raise

    def close(self) -> None:
        for sock in self.sockets:
            with contextlib.suppress(Exception):
                self.loop.remove_reader(sock.fileno())
            sock.close()
        self.sockets.clear()

    async def run(self) -> None:
        self.fill()
        self.ticking = self.loop.call_later(self.TICK, self.tick)
        try:
            await self.finished
        finally:
            self.ticking.cancel()
            if self.wake is not None:
                self.wake.cancel()
            for task in self.fallbacks:
                task.cancel()
            self.close()

    def fill(self) -> None:
        """Send what may be sent now: retries first, then new jobs while the window has room."""
        self.wake = None
        try:
            while True:
                if self.ready:
                    flight = self.ready.popleft()
                elif self.in_flight < self.window and not self.exhausted:
                    job = next(self.jobs, None)
                    if job is None:
                        self.exhausted = True
                        break
                    flight = self.new_flight(job)
                    self.in_flight += 1
                else:
                    break
                if self.paced:
                    delay = self.client.pacer.try_now(self.loop.time())
                    if delay > 0:
                        self.ready.appendleft(flight)
                        self.wake_in(delay)
                        return
                if not self.send(flight):
                    self.ready.appendleft(flight)
                    self.wake_in(self.BACKOFF)
                    return
        except Exception as exc:  # a bug must end the pass, not vanish in a callback
            self.fail(exc)
            return
        self.check_done()

    def wake_in(self, delay: float) -> None:
        """Fill again after ``delay``, and only then: a failed send during this fill may have
        asked for one already, and two chains of fills would each keep scheduling the next."""
        if self.wake is not None:
            self.wake.cancel()
        self.wake = self.loop.call_later(delay, self.fill)

    def refill(self) -> None:
        """Fill the window, unless a fill is already scheduled (pacing, or a full buffer)."""
        if self.wake is None:
            self.fill()
        else:
            self.check_done()

    def new_flight(self, job: tuple[int, Job]) -> _Flight:
        index, (domain, rdtype) = job
        known = self.tails.get(rdtype)
        if known is None:
            code = _rdtype_code(rdtype)
            known = self.tails[rdtype] = (code, query_tail(code, payload=EDNS_PAYLOAD))
        code, tail = known
        # Jobs come domain by domain, a type after another: build each name's wire form once.
        if domain != self.last_domain:
            self.last_wire = Question.of(domain, code).wire
            self.last_domain = domain
        wire = self.last_wire
        return _Flight(index, domain, rdtype, Question(wire, code), self.head + wire + tail)

    def send(self, flight: _Flight) -> bool:
        """Send the flight's next attempt; return False when the send buffer is full."""
        slot = self.next_slot = (self.next_slot + 1) % len(self.sockets)
        flying = self.flying[slot]
        if len(flying) >= self.MAX_IN_FLIGHT:
            flight.attempt += 1
            self.attempt_failed(flight, "error", "too many queries in flight")
            return True
        getrandbits = self.rng.getrandbits
        while (qid := getrandbits(16)) in flying:
            pass
        try:
            self.sockets[slot].send(qid.to_bytes(2, "big") + flight.body)
        except (BlockingIOError, InterruptedError):
            return False
        except OSError as exc:
            flight.attempt += 1
            self.client.sent += 1
            self.attempt_failed(flight, "error", f"network error: {exc.strerror or exc}")
            return True
        now = self.loop.time()
        if self.paced:
            self.client.pacer.sent_at(now)
        flight.attempt += 1
        self.client.sent += 1
        flight.qid, flight.slot, flight.malformed = qid, slot, None
        flying[qid] = flight
        ticket = flight.ticket = next(self.tickets)
        self.waiting[ticket] = flight
        self.deadlines.append((now + self.client.timeout, ticket))
        return True

    def readable(self, slot: int) -> None:
        """Read every datagram waiting on one socket (up to DRAIN), then fill the window."""
        sock = self.sockets[slot]
        flying = self.flying[slot]
        waiting = self.waiting
        try:
            for _ in range(self.DRAIN):
                try:
                    data = sock.recv(65535)
                except (BlockingIOError, InterruptedError):
                    break
                except OSError as exc:
                    # On a connected socket this is an ICMP error: nothing there answers.
                    self.socket_failed(slot, f"network error: {exc.strerror or exc}")
                    continue
                answered = _take_answered(flying, data)
                if answered is None:
                    continue
                flight, reading = answered
                del waiting[flight.ticket]
                if reading.truncated:
                    task = self.loop.create_task(self.over_tcp(flight))
                    self.fallbacks.add(task)
                    task.add_done_callback(self.fallbacks.discard)
                else:
                    self.done(flight, reading.status, reading.answers, reading.detail)
        except Exception as exc:
            self.fail(exc)
            return
        self.refill()

    def socket_failed(self, slot: int, reason: str) -> None:
        # Emptied in place: a read loop holding this table must not find these attempts again
        # when their replies arrive behind the error.
        flying = self.flying[slot]
        failed = list(flying.values())
        flying.clear()
        for flight in failed:
            del self.waiting[flight.ticket]
            self.attempt_failed(flight, "error", reason)

    async def over_tcp(self, flight: _Flight) -> None:
        try:
            observation = await self.client.ask(flight.domain, flight.rdtype, stream=True)
            self.done(flight, observation.status, observation.answers, observation.detail)
            self.refill()
        except Exception as exc:
            self.fail(exc)

    def tick(self) -> None:
        if self.finished.done():
            return  # the pass failed; nothing more goes to the sink
        now = self.loop.time()
        deadlines = self.deadlines
        waiting = self.waiting
        try:
            while deadlines and deadlines[0][0] <= now:
                flight = waiting.pop(deadlines.popleft()[1], None)
                if flight is None:
                    continue  # answered, or failed otherwise
                del self.flying[flight.slot][flight.qid]
                if flight.malformed:
                    self.attempt_failed(flight, "error", flight.malformed)
                else:
                    self.attempt_failed(flight, "timeout", None)
        except Exception as exc:
            self.fail(exc)
            return
        if not self.finished.done():
            self.ticking = self.loop.call_later(self.TICK, self.tick)

    def attempt_failed(self, flight: _Flight, status: str, detail: str | None) -> None:
        flight.status, flight.detail = status, detail
        if flight.attempt < self.client.attempts:
            self.ready.append(flight)
            if self.wake is None:
                self.wake = self.loop.call_soon(self.fill)
        else:
            self.done(flight, status, (), detail)
            if self.wake is None:
                self.wake = self.loop.call_soon(self.fill)

    def done(
        self, flight: _Flight, status: str, answers: tuple[str, ...], detail: str | None
    ) -> None:
        self.finish_job(
            flight.index,
            Observation(self.name, flight.domain, flight.rdtype, status, answers, detail),
        )
        self.in_flight -= 1

    def check_done(self) -> None:
        if self.exhausted and self.in_flight == 0 and not self.finished.done():
            self.finished.set_result(None)

    def fail(self, exc: Exception) -> None:
        if not self.finished.done():
            self.finished.set_exception(exc)


@functools.cache
def _rdtype_code(text: str) -> int:
    return int(dns.rdatatype.from_text(text))


class Engine:
    """Clients for a set of resolvers, sharing one event loop; use as an async context manager."""

    def __init__(
        self,
        resolvers: Sequence[Resolver],
        *,
        timeout: float,
        attempts: int,
        concurrency: int = 512,
    ) -> None:
        # Seeded from os.urandom: IDs an off-path forger cannot guess.
        rng = self.rng = random.Random()
        self.clients = {
            r.name: ResolverClient(r, timeout=timeout, attempts=attempts, rng=rng)
            for r in resolvers
        }
        self.concurrency = concurrency
        self.done = 0  # observations completed, for progress reports

    async def __aenter__(self) -> Engine:
        return self

    async def __aexit__(self, *exc: object) -> None:
        for client in self.clients.values():
            await client.close()

    @property
    def sent(self) -> int:
        """Queries sent so far, retries included."""
        return sum(c.sent for c in self.clients.values())

    async def observe(
        self,
        resolvers: Sequence[str],
        domains: Sequence[str],
        rdtypes: Sequence[str],
        sink: Callable[[int, Observation], None],
        *,
        stream: bool = False,
    ) -> None:
        """Ask each resolver every domain for every type, many queries in flight at once.

        Each observation goes to ``sink`` with its index in the domain-major order
        (``domain_index * len(rdtypes) + type_index``), as soon as it is known. ``stream``
        asks udp resolvers over TCP.
        """
        size = len(domains) * len(rdtypes)

        def finish(index: int, observation: Observation) -> None:
            sink(index, observation)
            self.done += 1

        async def worker(client: ResolverClient, queue: Iterator[tuple[int, Job]]) -> None:
            for index, (domain, rdtype) in queue:
                finish(index, await client.ask(domain, rdtype, stream=stream))

        async def over_udp(client: ResolverClient, udp: _UdpClient) -> None:
            queue = enumerate(itertools.product(domains, rdtypes))
            job = _UdpPass(client, udp.address, udp.port, self.rng, queue, finish, self.concurrency)
            try:
                job.open()
            except OSError:
                # No socket: every job ends as the coroutine path would say it.
                await worker(client, queue)
                return
            await job.run()

        tasks = []
        for name in resolvers:
            client = self.clients[name]
            if client.udp is not None and not stream:
                tasks.append(asyncio.create_task(over_udp(client, client.udp)))
                continue
            queue = enumerate(itertools.product(domains, rdtypes))
            for _ in range(min(self.concurrency, size)):
                tasks.append(asyncio.create_task(worker(client, queue)))
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
