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
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, NamedTuple, cast

import dns.rdatatype

from monitor.wire import MalformedReply, Question, Reading, query_wire, read_reply

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


class _Pending:
    __slots__ = ("future", "malformed", "question")

    def __init__(self, question: Question, future: asyncio.Future[Reading]):
        self.question = question
        self.future = future
        self.malformed: str | None = None


class _Matcher:
    """Queries in flight on one socket or connection, keyed by DNS ID."""

    def __init__(self, rng: random.Random) -> None:
        self.pending: dict[int, _Pending] = {}
        self._rng = rng

    def __len__(self) -> int:
        return len(self.pending)

    def register(self, question: Question) -> tuple[int, _Pending]:
        while True:
            qid = self._rng.getrandbits(16)
            if qid not in self.pending:
                break
        pending = _Pending(question, asyncio.get_running_loop().create_future())
        self.pending[qid] = pending
        return qid, pending

    def release(self, qid: int, pending: _Pending) -> None:
        if self.pending.get(qid) is pending:
            del self.pending[qid]

    def feed(self, data: bytes) -> None:
        """Hand a received message to the query it answers; anything else is dropped."""
        if len(data) < 12:
            return
        qid = (data[0] << 8) | data[1]
        pending = self.pending.get(qid)
        if pending is None or pending.future.done():
            return
        try:
            reading = read_reply(data, pending.question)
        except MalformedReply as exc:
            # Keep waiting: a forged or broken datagram must not hide the real answer.
            pending.malformed = f"malformed reply: {exc}"
            return
        if reading is None:
            return
        del self.pending[qid]
        pending.future.set_result(reading)

    def fail_all(self, reason: str) -> None:
        for pending in self.pending.values():
            if not pending.future.done():
                pending.future.set_exception(_Failure(reason))
        self.pending.clear()


async def _await_reply(matcher: _Matcher, qid: int, pending: _Pending, timeout: float) -> Reading:
    loop = asyncio.get_running_loop()

    def expire() -> None:
        if not pending.future.done():
            if pending.malformed:
                pending.future.set_exception(_Failure(pending.malformed))
            else:
                pending.future.set_exception(_Timeout())

    handle = loop.call_later(timeout, expire)
    try:
        return await pending.future
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

    async def exchange(self, template: bytes, question: Question, timeout: float) -> Reading:
        if not self._sockets:
            try:
                await self._open()
            except OSError as exc:
                raise _Failure(f"network error: {exc.strerror or exc}") from None
        self._next = (self._next + 1) % len(self._sockets)
        protocol = self._sockets[self._next]
        matcher = protocol.matcher
        if len(matcher) >= self.MAX_IN_FLIGHT:
            raise _Failure("too many queries in flight")
        qid, pending = matcher.register(question)
        assert protocol.transport is not None
        protocol.transport.sendto(_with_id(template, qid))
        return await _await_reply(matcher, qid, pending, timeout)

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

    async def exchange(self, template: bytes, question: Question, timeout: float) -> Reading:
        writer = await self._connect(timeout)
        qid, pending = self._matcher.register(question)
        wire = _with_id(template, qid)
        writer.write(struct.pack("!H", len(wire)) + wire)
        return await _await_reply(self._matcher, qid, pending, timeout)

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

    async def exchange(self, template: bytes, question: Question, timeout: float) -> Reading:
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

    def __init__(self, rate: float) -> None:
        self._interval = 1.0 / rate if rate > 0 else 0.0
        self._next = 0.0
        self._recent: collections.deque[float] = collections.deque(maxlen=max(1, int(rate)))

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
        while len(recent) == recent.maxlen and (now := loop.time()) < recent[0] + 1.0:
            await asyncio.sleep(recent[0] + 1.0 - now)
        recent.append(loop.time())


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
        self._rd = resolver.mode != "authoritative"
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
        template = query_wire(question, recursion=self._rd, payload=EDNS_PAYLOAD)
        status, detail = "timeout", None
        for _ in range(self.attempts):
            await self.pacer.wait()
            self.sent += 1
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
            return await self._doh.exchange(template, question, self.timeout)
        assert self._stream is not None
        if self._udp is None or stream:
            return await self._stream.exchange(template, question, self.timeout)
        reading = await self._udp.exchange(template, question, self.timeout)
        if reading.truncated:
            await self.pacer.wait()
            self.sent += 1
            reading = await self._stream.exchange(template, question, self.timeout)
        return reading

    async def close(self) -> None:
        for client in (self._udp, self._stream, self._doh):
            if client is not None:
                await client.close()


Job = tuple[str, str]  # (domain as A-label, record type)


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
        rng = random.Random()  # seeded from os.urandom: IDs an off-path forger cannot guess
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

        async def worker(client: ResolverClient, queue: Iterator[tuple[int, Job]]) -> None:
            for index, (domain, rdtype) in queue:
                sink(index, await client.ask(domain, rdtype, stream=stream))
                self.done += 1

        tasks = []
        for name in resolvers:
            client = self.clients[name]
            queue = enumerate(itertools.product(domains, rdtypes))
            for _ in range(min(self.concurrency, size)):
                tasks.append(asyncio.create_task(worker(client, queue)))
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
