"""The probe engine: ask resolvers about names over UDP, TCP, DoT or DoH, many queries in flight.

Every query ends as an :class:`Observation` whose ``status`` says what happened; a timeout or a
malformed reply is a status, never an exception. Replies are matched to their query by ID *and*
question: a reply for another question, or one that does not parse, is not believed.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import ssl
import struct
import urllib.parse
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence, Sized
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype

if TYPE_CHECKING:
    import httpx

    from monitor.config import Resolver

STATUSES = ("ok", "nodata", "nxdomain", "servfail", "refused", "referral", "timeout", "error")

# Big enough for answers with a few dozen addresses, small enough to avoid fragmentation.
EDNS_PAYLOAD = 1232
MAX_CNAME_CHAIN = 16


@dataclass(frozen=True, slots=True)
class Observation:
    """What one resolver said about one name and record type."""

    resolver: str
    domain: str
    rdtype: str
    status: str
    answers: tuple[str, ...] = ()
    detail: str | None = None


def classify(
    reply: dns.message.Message, qname: dns.name.Name, rdtype: int
) -> tuple[str, tuple[str, ...], str | None]:
    """Return (status, answers, detail) for a reply already matched to its question."""
    rcode = reply.rcode()
    if rcode == dns.rcode.NXDOMAIN:
        return "nxdomain", (), None
    if rcode == dns.rcode.SERVFAIL:
        return "servfail", (), None
    if rcode == dns.rcode.REFUSED:
        return "refused", (), None
    if rcode != dns.rcode.NOERROR:
        return "error", (), f"rcode {dns.rcode.to_text(rcode)}"
    name = qname
    seen = {name}
    for _ in range(MAX_CNAME_CHAIN):
        rrset = reply.get_rrset(
            reply.answer, name, dns.rdataclass.IN, dns.rdatatype.RdataType.make(rdtype)
        )
        if rrset:
            return "ok", tuple(sorted({rr.to_text() for rr in rrset})), None
        cname = reply.get_rrset(reply.answer, name, dns.rdataclass.IN, dns.rdatatype.CNAME)
        if not cname or rdtype == dns.rdatatype.CNAME:
            break
        name = cname[0].target
        if name in seen:
            return "error", (), "CNAME loop"
        seen.add(name)
    authority = {rrset.rdtype for rrset in reply.authority}
    if (
        not reply.answer
        and dns.rdatatype.NS in authority
        and dns.rdatatype.SOA not in authority
        and not reply.flags & dns.flags.AA
    ):
        return "referral", (), None
    return "nodata", (), None


class _Timeout(Exception):
    """No believable reply came within the attempt's time."""


class _Failure(Exception):
    """The attempt failed for a reason worth reporting (network error, malformed reply)."""


class _Pending:
    __slots__ = ("future", "malformed", "qname", "rdtype")

    def __init__(
        self, qname: dns.name.Name, rdtype: int, future: asyncio.Future[dns.message.Message]
    ):
        self.qname = qname
        self.rdtype = rdtype
        self.future = future
        self.malformed: str | None = None


def _matches(reply: dns.message.Message, qname: dns.name.Name, rdtype: int) -> bool:
    if not reply.flags & dns.flags.QR or len(reply.question) != 1:
        return False
    q = reply.question[0]
    return q.name == qname and q.rdtype == rdtype and q.rdclass == dns.rdataclass.IN


class _Matcher:
    """Queries in flight on one socket or connection, keyed by DNS ID."""

    def __init__(self, rng: random.Random) -> None:
        self.pending: dict[int, _Pending] = {}
        self._rng = rng

    def __len__(self) -> int:
        return len(self.pending)

    def register(self, qname: dns.name.Name, rdtype: int) -> tuple[int, _Pending]:
        while True:
            qid = self._rng.getrandbits(16)
            if qid not in self.pending:
                break
        pending = _Pending(qname, rdtype, asyncio.get_running_loop().create_future())
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
            reply = dns.message.from_wire(data)
        except Exception as exc:  # dnspython raises many kinds on hostile input
            # Keep waiting: a forged or broken datagram must not hide the real answer.
            pending.malformed = f"malformed reply: {type(exc).__name__}"
            return
        if not _matches(reply, pending.qname, pending.rdtype):
            return
        del self.pending[qid]
        pending.future.set_result(reply)

    def fail_all(self, reason: str) -> None:
        for pending in self.pending.values():
            if not pending.future.done():
                pending.future.set_exception(_Failure(reason))
        self.pending.clear()


async def _await_reply(
    matcher: _Matcher, qid: int, pending: _Pending, timeout: float
) -> dns.message.Message:
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

    def __init__(self, address: str, port: int, rng: random.Random) -> None:
        self.address = address
        self.port = port
        self._rng = rng
        self._sockets: list[_UdpProtocol] = []
        self._next = 0

    async def _open(self) -> None:
        loop = asyncio.get_running_loop()
        for _ in range(self.SOCKETS):
            _, protocol = await loop.create_datagram_endpoint(
                lambda: _UdpProtocol(_Matcher(self._rng)), remote_addr=(self.address, self.port)
            )
            self._sockets.append(protocol)

    async def exchange(
        self, template: bytes, qname: dns.name.Name, rdtype: int, timeout: float
    ) -> dns.message.Message:
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
        qid, pending = matcher.register(qname, rdtype)
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

    async def exchange(
        self, template: bytes, qname: dns.name.Name, rdtype: int, timeout: float
    ) -> dns.message.Message:
        writer = await self._connect(timeout)
        qid, pending = self._matcher.register(qname, rdtype)
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

    async def exchange(
        self, template: bytes, qname: dns.name.Name, rdtype: int, timeout: float
    ) -> dns.message.Message:
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
            reply = dns.message.from_wire(response.content)
        except Exception as exc:
            raise _Failure(f"malformed reply: {type(exc).__name__}") from None
        if not _matches(reply, qname, rdtype):
            raise _Failure("reply for another question")
        return reply

    async def close(self) -> None:
        await self._client.aclose()


class Pacer:
    """Spaces sends to one resolver so that they never exceed its rate (queries a second)."""

    def __init__(self, rate: float) -> None:
        self._interval = 1.0 / rate if rate > 0 else 0.0
        self._next = 0.0

    async def wait(self) -> None:
        if not self._interval:
            return
        loop = asyncio.get_running_loop()
        now = loop.time()
        slot = max(now, self._next)
        self._next = slot + self._interval
        if slot > now:
            await asyncio.sleep(slot - now)


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

    def template(self, qname: dns.name.Name, rdtype: int) -> bytes:
        """Return the query's wire form with ID 0 (DoH sends it so; the others patch an ID in)."""
        query = dns.message.make_query(
            qname, dns.rdatatype.RdataType.make(rdtype), use_edns=0, payload=EDNS_PAYLOAD
        )
        query.id = 0
        if not self._rd:
            query.flags &= ~dns.flags.RD
        return query.to_wire()

    async def ask(self, domain: str, rdtype_text: str) -> Observation:
        """Return the observation for one name and type, after up to ``attempts`` tries."""
        qname = dns.name.from_text(domain)
        rdtype = dns.rdatatype.from_text(rdtype_text)
        template = self.template(qname, rdtype)
        status, detail = "timeout", None
        for _ in range(self.attempts):
            await self.pacer.wait()
            self.sent += 1
            try:
                reply = await self._exchange(template, qname, rdtype)
            except _Timeout:
                status, detail = "timeout", None
                continue
            except _Failure as exc:
                status, detail = "error", str(exc)
                continue
            status, answers, detail = classify(reply, qname, rdtype)
            return Observation(self.resolver.name, domain, rdtype_text, status, answers, detail)
        return Observation(self.resolver.name, domain, rdtype_text, status, (), detail)

    async def _exchange(
        self, template: bytes, qname: dns.name.Name, rdtype: int
    ) -> dns.message.Message:
        if self._doh is not None:
            return await self._doh.exchange(template, qname, rdtype, self.timeout)
        assert self._stream is not None
        if self._udp is None:
            return await self._stream.exchange(template, qname, rdtype, self.timeout)
        reply = await self._udp.exchange(template, qname, rdtype, self.timeout)
        if reply.flags & dns.flags.TC:
            await self.pacer.wait()
            self.sent += 1
            reply = await self._stream.exchange(template, qname, rdtype, self.timeout)
        return reply

    async def close(self) -> None:
        for client in (self._udp, self._stream, self._doh):
            if client is not None:
                await client.close()


Job = tuple[str, str]  # (domain as A-label, record type)


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
        jobs: Mapping[str, Iterable[Job]],
        sink: Callable[[Observation], None],
    ) -> None:
        """Ask each named resolver its jobs, many in flight at once; results go to ``sink``."""

        async def worker(client: ResolverClient, queue: Iterator[Job]) -> None:
            for domain, rdtype in queue:
                sink(await client.ask(domain, rdtype))

        tasks = []
        for name, resolver_jobs in jobs.items():
            client = self.clients[name]
            workers = self.concurrency
            if isinstance(resolver_jobs, Sized):
                workers = min(workers, len(resolver_jobs))
            queue = iter(resolver_jobs)
            for _ in range(workers):
                tasks.append(asyncio.create_task(worker(client, queue)))
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
