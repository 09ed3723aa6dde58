"""In-process DNS responders on loopback: exact packets for tests, a scripted world for the demo."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import socket
import struct
import threading
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType, TracebackType
from typing import Literal, NamedTuple, TypeAlias, cast

import dns.exception
import dns.flags
import dns.inet
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from monitor.errors import LabError

Transport = Literal["udp", "tcp"]

# A plain-UDP reply must fit 512 bytes unless the query's EDNS payload allows more (RFC 1035, 6891).
UDP_LIMIT = 512
TCP_LIMIT = 65535
_START_TIMEOUT = 5.0
_STOP_TIMEOUT = 5.0
# Ephemeral ports free for UDP are usually free for TCP too; a few retries cover the rare clash.
_BIND_ATTEMPTS = 50
_LINGER_ZERO = struct.pack("ii", 1, 0)
_UDP_BUFFER = 4 << 20


@dataclass(frozen=True)
class Request:
    """One query as the responder received it.

    ``message`` is None when the wire bytes did not parse as a DNS message.
    """

    message: dns.message.Message | None
    wire: bytes
    transport: Transport
    peer: tuple[str, int]


@dataclass(frozen=True)
class Delayed:
    """A reply sent ``seconds`` after the query arrived; other queries are served meanwhile."""

    seconds: float
    reply: Reply


# A message (truncated to fit on UDP), raw bytes (sent verbatim), None (silence), a delayed
# reply, or a sequence of these sent in order (several datagrams or TCP frames).
Reply: TypeAlias = "dns.message.Message | bytes | Delayed | Sequence[Reply] | None"
Handler: TypeAlias = Callable[[Request], Reply]


class QueryRecord(NamedTuple):
    """What a responder saw: the transport, the qname (lowercase, no final dot) and the qtype.

    ``qname`` and ``qtype`` are None for a query that did not parse or had no question.
    """

    transport: Transport
    qname: str | None
    qtype: str | None


def name_text(name: dns.name.Name) -> str:
    """Return ``name`` lowercased without its final dot ("." for the root)."""
    if name == dns.name.root:
        return "."
    return str(name.to_text(omit_final_dot=True)).lower()


def _record_of(message: dns.message.Message | None, transport: Transport) -> QueryRecord:
    if message is None or len(message.question) != 1:
        return QueryRecord(transport, None, None)
    question = message.question[0]
    return QueryRecord(transport, name_text(question.name), dns.rdatatype.to_text(question.rdtype))


def _truncated(message: dns.message.Message) -> dns.message.Message:
    """Return a copy of ``message`` with TC set and nothing but the question section."""
    trimmed = dns.message.Message(id=message.id)
    trimmed.flags = message.flags | dns.flags.TC
    trimmed.question = list(message.question)
    if message.edns >= 0:
        trimmed.use_edns(
            message.edns, message.ednsflags, message.payload, options=list(message.options)
        )
    trimmed.set_rcode(message.rcode())
    return trimmed


def encode(message: dns.message.Message, request: Request) -> bytes:
    """Return ``message`` as wire bytes that fit the request's transport.

    Over UDP the limit is 512 bytes, or the query's EDNS payload size when larger; a reply
    that does not fit is sent with TC set and empty answer, authority and additional sections.
    Raises dns.exception.TooBig for a TCP reply over 65535 bytes.
    """
    if request.transport == "tcp":
        return message.to_wire(max_size=TCP_LIMIT)
    limit = UDP_LIMIT
    if request.message is not None and request.message.edns >= 0:
        limit = max(UDP_LIMIT, min(request.message.payload, TCP_LIMIT))
    try:
        return message.to_wire(max_size=limit)
    except dns.exception.TooBig:
        return _truncated(message).to_wire(max_size=limit)


class _Sink:
    """Where the replies to one request go; `hold` and `release` bracket a pending delay."""

    def send(self, wire: bytes) -> None:
        raise NotImplementedError

    def hold(self) -> None:
        pass

    def release(self) -> None:
        pass


class _UdpSink(_Sink):
    def __init__(self, transport: asyncio.DatagramTransport, peer: tuple[str, int]) -> None:
        self._transport = transport
        self._peer = peer

    def send(self, wire: bytes) -> None:
        if not self._transport.is_closing():
            self._transport.sendto(wire, self._peer)


class _UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, responder: Responder) -> None:
        self._responder = responder
        self._transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # asyncio's selector datagram transport does not subclass DatagramTransport on 3.11.
        self._transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        assert self._transport is not None
        peer = (str(addr[0]), int(addr[1]))
        self._responder._dispatch(data, "udp", peer, _UdpSink(self._transport, peer))

    def error_received(self, exc: Exception) -> None:
        # An ICMP port-unreachable from a client that went away is no reason to stop serving.
        pass


class _TcpConnection(asyncio.Protocol, _Sink):
    """One client connection: 2-byte length framing, pipelined queries, replies in any order."""

    def __init__(self, responder: Responder) -> None:
        self._responder = responder
        self._transport: asyncio.Transport | None = None
        self._peer = ("", 0)
        self._buffer = bytearray()
        self._pending = 0
        self._eof = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername")
        self._peer = (str(peer[0]), int(peer[1]))
        self._responder._connections.add(self._transport)

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        while len(self._buffer) >= 2:
            (length,) = struct.unpack("!H", self._buffer[:2])
            if len(self._buffer) < 2 + length:
                break
            wire = bytes(self._buffer[2 : 2 + length])
            del self._buffer[: 2 + length]
            self._responder._dispatch(wire, "tcp", self._peer, self)

    def eof_received(self) -> bool:
        # A client that half-closed still gets the replies that are waiting on a delay.
        self._eof = True
        return self._pending > 0

    def connection_lost(self, exc: Exception | None) -> None:
        if self._transport is not None:
            self._responder._connections.discard(self._transport)

    def send(self, wire: bytes) -> None:
        if self._transport is None or self._transport.is_closing():
            return
        if len(wire) > TCP_LIMIT:
            raise ValueError(f"a {len(wire)}-byte reply cannot be framed for TCP")
        self._transport.write(struct.pack("!H", len(wire)) + wire)

    def hold(self) -> None:
        self._pending += 1

    def release(self) -> None:
        self._pending -= 1
        if self._eof and self._pending == 0 and self._transport is not None:
            self._transport.close()


def _bind_pair(host: str, port: int) -> tuple[socket.socket, socket.socket]:
    """Return a bound UDP socket and a listening TCP socket on the same ``host`` and port.

    Raises LabError when no such pair can be bound.
    """
    try:
        family = dns.inet.af_for_address(host)
    except ValueError as exc:
        raise LabError(f"lab responder: {host!r} is not an IP address") from exc
    last: OSError | None = None
    for _ in range(1 if port else _BIND_ATTEMPTS):
        udp = socket.socket(family, socket.SOCK_DGRAM)
        tcp = socket.socket(family, socket.SOCK_STREAM)
        try:
            # Room for bursts: a client may send hundreds of queries at once.
            udp.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _UDP_BUFFER)
            udp.bind((host, port))
            chosen = int(udp.getsockname()[1])
            tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            tcp.bind((host, chosen))
            tcp.listen(64)
        except OSError as exc:
            udp.close()
            tcp.close()
            last = exc
            if port or exc.errno != errno.EADDRINUSE:
                break
            continue
        return udp, tcp
    raise LabError(f"lab responder: cannot bind UDP and TCP on {host} port {port}: {last}")


class Responder:
    """A DNS responder on UDP and TCP, serving from a daemon thread with its own asyncio loop.

    It binds and starts at once; ``stop()`` (or leaving the ``with`` block) ends it and closes
    its sockets. ``handler`` may be replaced while it runs. A handler that raises is recorded
    in ``errors`` and the query gets no reply.
    """

    def __init__(self, handler: Handler, host: str = "127.0.0.1", port: int = 0) -> None:
        """Bind ``host``:``port`` (0: a port the OS picks, free for both UDP and TCP) and serve.

        Raises LabError when the port cannot be bound or the server does not start.
        """
        self.handler = handler
        self._lock = threading.Lock()
        self._queries: list[QueryRecord] = []
        self._errors: list[Exception] = []
        self._connections: set[asyncio.Transport] = set()
        self._accepted: set[socket.socket] = set()
        self._connecting: set[asyncio.Task[tuple[asyncio.Transport, asyncio.BaseProtocol]]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._stopped = False
        self._ready = threading.Event()
        self._failure: BaseException | None = None
        udp, tcp = _bind_pair(host, port)
        self.address = host
        self.port = int(udp.getsockname()[1])
        self._thread = threading.Thread(
            target=self._run, args=(udp, tcp), name=f"lab-responder-{self.port}", daemon=True
        )
        self._thread.start()
        if not self._ready.wait(_START_TIMEOUT) or self._failure is not None:
            self.stop()
            raise LabError(f"lab responder on {host} port {self.port} did not start") from (
                self._failure
            )

    def __repr__(self) -> str:
        return f"Responder({self.address}:{self.port})"

    def __enter__(self) -> Responder:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def queries(self) -> list[QueryRecord]:
        """Return a copy of the queries received so far, in arrival order."""
        with self._lock:
            return list(self._queries)

    @property
    def errors(self) -> list[Exception]:
        """Return a copy of the exceptions raised by the handler or by encoding its replies."""
        with self._lock:
            return list(self._errors)

    def clear_queries(self) -> None:
        """Forget the queries received so far."""
        with self._lock:
            self._queries.clear()

    def stop(self) -> None:
        """Stop serving and close the sockets; return once the thread has ended."""
        self._request_stop()
        self._join()

    def _request_stop(self) -> None:
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
            loop, stopping = self._loop, self._stopping
        if loop is not None and stopping is not None:
            # RuntimeError: the loop already ended on its own.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(stopping.set)

    def _join(self) -> None:
        if threading.current_thread() is not self._thread:
            self._thread.join(_STOP_TIMEOUT)

    def _run(self, udp: socket.socket, tcp: socket.socket) -> None:
        loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(self._serve(udp, tcp))
        except BaseException as exc:
            self._failure = exc
        finally:
            udp.close()
            tcp.close()
            loop.close()
            self._ready.set()

    async def _serve(self, udp: socket.socket, tcp: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        datagrams, _ = await loop.create_datagram_endpoint(lambda: _UdpProtocol(self), sock=udp)
        tcp.setblocking(False)
        loop.add_reader(tcp.fileno(), self._accept, tcp)
        stopping = asyncio.Event()
        with self._lock:
            self._loop, self._stopping = loop, stopping
            if self._stopped:
                stopping.set()
        self._ready.set()
        try:
            await stopping.wait()
        finally:
            loop.remove_reader(tcp.fileno())
            datagrams.close()
            # A zero linger makes close() send RST, so no TIME_WAIT holds the port after stop().
            for sock in self._accepted:
                if sock.fileno() != -1:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_ZERO)
            for task in self._connecting:
                task.cancel()
            await asyncio.gather(*self._connecting, return_exceptions=True)
            for connection in list(self._connections):
                connection.abort()
            # Transports close their sockets in callbacks scheduled by close() and abort().
            for _ in range(3):
                await asyncio.sleep(0)
            for sock in self._accepted:
                sock.close()

    def _accept(self, listener: socket.socket) -> None:
        """Accept the waiting TCP clients, keeping each socket so that stop() can close it.

        A server from ``loop.create_server`` holds a just-accepted socket out of reach until
        its transport exists, so stop() could leave it open.
        """
        assert self._loop is not None
        self._accepted = {sock for sock in self._accepted if sock.fileno() != -1}
        while True:
            try:
                sock, _ = listener.accept()
            except OSError:
                return  # nobody left waiting (EAGAIN), or a client that gave up meanwhile
            sock.setblocking(False)
            self._accepted.add(sock)
            task = self._loop.create_task(
                self._loop.connect_accepted_socket(lambda: _TcpConnection(self), sock)
            )
            self._connecting.add(task)
            task.add_done_callback(self._connecting.discard)

    def _dispatch(
        self, wire: bytes, transport: Transport, peer: tuple[str, int], sink: _Sink
    ) -> None:
        message: dns.message.Message | None
        try:
            message = dns.message.from_wire(wire)
        except Exception:
            message = None
        request = Request(message, wire, transport, peer)
        with self._lock:
            self._queries.append(_record_of(message, transport))
        try:
            reply = self.handler(request)
        except Exception as exc:
            with self._lock:
                self._errors.append(exc)
            return
        self._deliver([reply], request, sink)

    def _deliver(self, replies: Sequence[Reply], request: Request, sink: _Sink) -> None:
        queue: deque[Reply] = deque(replies)
        while queue:
            item = queue.popleft()
            try:
                if item is None:
                    continue
                if isinstance(item, Delayed):
                    sink.hold()
                    assert self._loop is not None
                    rest = [item.reply, *queue]
                    self._loop.call_later(max(0.0, item.seconds), self._resume, rest, request, sink)
                    return
                if isinstance(item, bytes | bytearray | memoryview):
                    sink.send(bytes(item))
                elif isinstance(item, dns.message.Message):
                    sink.send(encode(item, request))
                elif isinstance(item, list | tuple):
                    queue.extendleft(reversed(item))
                else:
                    raise TypeError(f"a handler returned {type(item).__name__}, not a reply")
            except Exception as exc:
                with self._lock:
                    self._errors.append(exc)

    def _resume(self, replies: Sequence[Reply], request: Request, sink: _Sink) -> None:
        try:
            self._deliver(replies, request, sink)
        finally:
            sink.release()


class Lab:
    """Several named responders started together and stopped together (the demo's resolvers)."""

    def __init__(self, handlers: Mapping[str, Handler], host: str = "127.0.0.1") -> None:
        """Start one responder on ``host`` (each on its own OS-chosen port) per handler.

        Raises LabError when one cannot start; those already started are stopped.
        """
        self.responders: dict[str, Responder] = {}
        try:
            for name, handler in handlers.items():
                self.responders[name] = Responder(handler, host=host)
        except BaseException:
            self.stop()
            raise

    def __getitem__(self, name: str) -> Responder:
        return self.responders[name]

    def __enter__(self) -> Lab:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop every responder; they wind down in parallel."""
        for responder in self.responders.values():
            responder._request_stop()
        for responder in self.responders.values():
            responder._join()


# ---------------------------------------------------------------------------------------------
# World: a table of records answered like a recursive resolver or an authoritative server.

_MAX_CHAIN = 16
_SOA_TEXT = "ns hostmaster 1 7200 3600 1209600 300"


def _name(text: str) -> dns.name.Name:
    """Return the absolute, lowercase name for ``text`` (with or without its final dot)."""
    text = text.strip()
    if text in ("", "."):
        return dns.name.root
    return dns.name.from_text(text.rstrip(".") + ".").canonicalize()


def _ancestors(name: dns.name.Name) -> Iterable[dns.name.Name]:
    """Yield ``name`` and each of its parents up to and including the root."""
    while True:
        yield name
        if name == dns.name.root:
            return
        name = name.parent()


@dataclass(frozen=True)
class Overrides:
    """How one resolver departs from the shared table; each name also covers its subdomains.

    When several apply to a query, the most specific name wins; on the same name the order is
    drop, refuse, servfail, nxdomain, redirect. ``nxdomain`` also applies to the names a CNAME
    chain reaches (the chain then ends in NXDOMAIN); the others apply to the qname only.
    ``redirect`` answers the A (or AAAA, for an IPv6 address) query with that address and
    gives NODATA to other types.
    """

    nxdomain: frozenset[str] = frozenset()
    refuse: frozenset[str] = frozenset()
    servfail: frozenset[str] = frozenset()
    redirect: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    drop: frozenset[str] = frozenset()


@dataclass(frozen=True)
class _Policy:
    """Overrides compiled to names and rdata, swapped whole so a query sees one consistent set."""

    public: Overrides
    nxdomain: frozenset[dns.name.Name]
    refuse: frozenset[dns.name.Name]
    servfail: frozenset[dns.name.Name]
    redirect: Mapping[dns.name.Name, dns.rdata.Rdata]
    drop: frozenset[dns.name.Name]

    @classmethod
    def compile(cls, overrides: Overrides) -> _Policy:
        redirect: dict[dns.name.Name, dns.rdata.Rdata] = {}
        for owner, address in overrides.redirect.items():
            try:
                family = dns.inet.af_for_address(address)
            except ValueError as exc:
                raise ValueError(f"redirect {owner!r}: {address!r} is not an IP address") from exc
            rdtype = dns.rdatatype.A if family == socket.AF_INET else dns.rdatatype.AAAA
            redirect[_name(owner)] = dns.rdata.from_text(dns.rdataclass.IN, rdtype, address)
        return cls(
            public=overrides,
            nxdomain=frozenset(map(_name, overrides.nxdomain)),
            refuse=frozenset(map(_name, overrides.refuse)),
            servfail=frozenset(map(_name, overrides.servfail)),
            redirect=MappingProxyType(redirect),
            drop=frozenset(map(_name, overrides.drop)),
        )

    def action(self, qname: dns.name.Name) -> tuple[str, dns.name.Name] | None:
        """Return the override that applies to ``qname`` and the name it was set on, if any."""
        for name in _ancestors(qname):
            for action, names in (
                ("drop", self.drop),
                ("refuse", self.refuse),
                ("servfail", self.servfail),
                ("nxdomain", self.nxdomain),
                ("redirect", self.redirect),
            ):
                if name in names:
                    return action, name
        return None

    def deleted(self, name: dns.name.Name) -> bool:
        return any(ancestor in self.nxdomain for ancestor in _ancestors(name))


@dataclass(frozen=True)
class _Table:
    """The shared records, parsed once: rrsets by (owner, rdtype), and what exists."""

    rrsets: Mapping[tuple[dns.name.Name, int], dns.rrset.RRset]
    delegations: Mapping[dns.name.Name, dns.rrset.RRset]
    existing: frozenset[dns.name.Name]
    zones: frozenset[dns.name.Name]

    @classmethod
    def build(
        cls,
        records: Mapping[tuple[str, str], Sequence[str]],
        delegations: Mapping[str, Sequence[str]],
        ttl: int,
    ) -> _Table:
        rrsets: dict[tuple[dns.name.Name, int], dns.rrset.RRset] = {}
        for (owner, type_text), values in records.items():
            name = _name(owner)
            try:
                rdtype = dns.rdatatype.from_text(type_text)
                texts = [values] if isinstance(values, str) else list(values)
                if rdtype == dns.rdatatype.CNAME and len(texts) != 1:
                    raise ValueError("a CNAME has exactly one target")
                rrset = dns.rrset.from_text_list(
                    name,
                    ttl,
                    dns.rdataclass.IN,
                    rdtype,
                    texts,
                    origin=dns.name.root,
                    relativize=False,
                )
            except (dns.exception.DNSException, ValueError) as exc:
                raise ValueError(f"record ({owner!r}, {type_text!r}) {values!r}: {exc}") from exc
            key = (name, rdtype)
            if key in rrsets:
                raise ValueError(f"record ({owner!r}, {type_text!r}) is given twice")
            rrsets[key] = rrset
        cuts: dict[dns.name.Name, dns.rrset.RRset] = {}
        for zone_text, servers in delegations.items():
            zone = _name(zone_text)
            cuts[zone] = dns.rrset.from_text_list(
                zone,
                ttl,
                dns.rdataclass.IN,
                dns.rdatatype.NS,
                list(servers),
                origin=dns.name.root,
                relativize=False,
            )
        # Parents of a known name exist too (empty non-terminals answer NODATA, not NXDOMAIN).
        existing = frozenset(
            ancestor for name in [*(n for n, _ in rrsets), *cuts] for ancestor in _ancestors(name)
        )
        soa_owners = {name for name, rdtype in rrsets if rdtype == dns.rdatatype.SOA}
        return cls(
            rrsets=MappingProxyType(rrsets),
            delegations=MappingProxyType(cuts),
            existing=existing,
            zones=frozenset(soa_owners | set(cuts)),
        )


class World:
    """A handler answering from a table of records, like a resolver or an authoritative server.

    ``records`` maps (owner, rdtype text) to rdata texts, e.g. ``("youtube.com", "A"):
    ["142.250.74.14"]`` or ``("www.youtube.com", "CNAME"): ["youtube-ui.l.google.com"]``.
    As a resolver (the default) it sets RA, follows CNAME chains inside the table (the chain
    goes in the answer section), and gives NXDOMAIN for unknown names and NODATA for known
    names without the type, both with an SOA in authority. With ``authoritative=True`` it sets
    AA instead of RA, and a name at or under a zone in ``delegations`` (zone -> NS names) gets
    a referral: no answer, the zone's NS in authority (glue from the table), NOERROR, no AA.
    Overrides (see ``Overrides``) make one table serve resolvers that differ; ``update``
    changes them while responders serve, and ``variant`` shares the table with new overrides.
    """

    def __init__(
        self,
        records: Mapping[tuple[str, str], Sequence[str]],
        *,
        nxdomain: Iterable[str] = (),
        refuse: Iterable[str] = (),
        servfail: Iterable[str] = (),
        redirect: Mapping[str, str] | None = None,
        drop: Iterable[str] = (),
        authoritative: bool = False,
        delegations: Mapping[str, Sequence[str]] | None = None,
        ttl: int = 300,
    ) -> None:
        """Parse the table and the overrides.

        Raises ValueError for a record, NS name or redirect address that does not parse.
        """
        self.authoritative = authoritative
        self.ttl = ttl
        self._table = _Table.build(records, delegations or {}, ttl)
        self._lock = threading.Lock()
        self._policy = _Policy.compile(
            Overrides(
                nxdomain=frozenset(nxdomain),
                refuse=frozenset(refuse),
                servfail=frozenset(servfail),
                redirect=MappingProxyType(dict(redirect or {})),
                drop=frozenset(drop),
            )
        )

    @property
    def overrides(self) -> Overrides:
        """Return the overrides in force now."""
        with self._lock:
            return self._policy.public

    def update(
        self,
        *,
        nxdomain: Iterable[str] | None = None,
        refuse: Iterable[str] | None = None,
        servfail: Iterable[str] | None = None,
        redirect: Mapping[str, str] | None = None,
        drop: Iterable[str] | None = None,
    ) -> Overrides:
        """Replace the overrides given (the others stay) and return the new set.

        Queries already being answered finish with the old set. Raises ValueError for a
        redirect address that does not parse.
        """
        with self._lock:
            now = self._policy.public
            policy = _Policy.compile(
                Overrides(
                    nxdomain=now.nxdomain if nxdomain is None else frozenset(nxdomain),
                    refuse=now.refuse if refuse is None else frozenset(refuse),
                    servfail=now.servfail if servfail is None else frozenset(servfail),
                    redirect=now.redirect if redirect is None else MappingProxyType(dict(redirect)),
                    drop=now.drop if drop is None else frozenset(drop),
                )
            )
            self._policy = policy
        return policy.public

    def variant(
        self,
        *,
        nxdomain: Iterable[str] | None = None,
        refuse: Iterable[str] | None = None,
        servfail: Iterable[str] | None = None,
        redirect: Mapping[str, str] | None = None,
        drop: Iterable[str] | None = None,
        authoritative: bool | None = None,
    ) -> World:
        """Return a World over the same table with this one's overrides, those given replaced.

        Raises ValueError for a redirect address that does not parse.
        """
        other = object.__new__(World)
        other.authoritative = self.authoritative if authoritative is None else authoritative
        other.ttl = self.ttl
        other._table = self._table
        other._lock = threading.Lock()
        other._policy = self._policy
        other.update(
            nxdomain=nxdomain, refuse=refuse, servfail=servfail, redirect=redirect, drop=drop
        )
        return other

    def __call__(self, request: Request) -> Reply:
        """Return the reply to ``request`` (None when the query's name is dropped)."""
        query = request.message
        if query is None:
            return _formerr_for(request.wire)
        response = dns.message.make_response(query, recursion_available=not self.authoritative)
        if query.opcode() != dns.opcode.QUERY:
            response.set_rcode(dns.rcode.NOTIMP)
            return response
        if len(query.question) != 1:
            response.set_rcode(dns.rcode.FORMERR)
            return response
        question = query.question[0]
        if question.rdclass != dns.rdataclass.IN:
            response.set_rcode(dns.rcode.REFUSED)
            return response
        with self._lock:
            policy = self._policy
        qname = question.name.canonicalize()
        match = policy.action(qname)
        if match is not None:
            action, owner = match
            if action == "drop":
                return None
            if action in ("refuse", "servfail"):
                response.set_rcode(dns.rcode.REFUSED if action == "refuse" else dns.rcode.SERVFAIL)
                return response
            if action == "redirect":
                self._set_aa(response)
                self._redirect(response, qname, question.rdtype, policy.redirect[owner])
                return response
        self._resolve(response, qname, question.rdtype, policy)
        return response

    def _set_aa(self, response: dns.message.Message) -> None:
        if self.authoritative:
            response.flags |= dns.flags.AA

    def _redirect(
        self,
        response: dns.message.Message,
        qname: dns.name.Name,
        rdtype: int,
        rdata: dns.rdata.Rdata,
    ) -> None:
        if rdtype == rdata.rdtype:
            response.answer.append(dns.rrset.from_rdata(qname, self.ttl, rdata))
        else:
            response.authority.append(self._soa(qname))

    def _resolve(
        self, response: dns.message.Message, qname: dns.name.Name, rdtype: int, policy: _Policy
    ) -> None:
        table = self._table
        self._set_aa(response)
        name = qname
        seen = {name}
        for _ in range(_MAX_CHAIN):
            if policy.deleted(name):
                response.set_rcode(dns.rcode.NXDOMAIN)
                response.authority.append(self._soa(name))
                return
            if self.authoritative and (cut := self._cut(name)) is not None:
                self._refer(response, cut)
                return
            rrset = table.rrsets.get((name, rdtype))
            if rrset is not None:
                response.answer.append(rrset)
                return
            cname = table.rrsets.get((name, dns.rdatatype.CNAME))
            if cname is None:
                if name not in table.existing:
                    response.set_rcode(dns.rcode.NXDOMAIN)
                response.authority.append(self._soa(name))
                return
            response.answer.append(cname)
            name = next(iter(cname)).target.canonicalize()
            if name in seen:
                break
            seen.add(name)
        # A CNAME loop or an overlong chain: what a resolver gives up with.
        response.answer.clear()
        response.authority.clear()
        response.flags &= ~dns.flags.AA
        response.set_rcode(dns.rcode.SERVFAIL)

    def _cut(self, name: dns.name.Name) -> dns.name.Name | None:
        for ancestor in _ancestors(name):
            if ancestor in self._table.delegations:
                return ancestor
        return None

    def _refer(self, response: dns.message.Message, zone: dns.name.Name) -> None:
        if not response.answer:
            response.flags &= ~dns.flags.AA
        ns = self._table.delegations[zone]
        response.authority.append(ns)
        for server in ns:
            for glue_type in (dns.rdatatype.A, dns.rdatatype.AAAA):
                glue = self._table.rrsets.get((server.target.canonicalize(), glue_type))
                if glue is not None:
                    response.additional.append(glue)

    def _soa(self, name: dns.name.Name) -> dns.rrset.RRset:
        """Return the SOA of the zone holding ``name``: a declared one, else its TLD or the root."""
        zone = next((a for a in _ancestors(name) if a in self._table.zones), None)
        if zone is None:
            tld = dns.name.Name(name.labels[-2:])
            zone = tld if len(name.labels) >= 2 and tld in self._table.existing else dns.name.root
        soa = self._table.rrsets.get((zone, dns.rdatatype.SOA))
        if soa is not None:
            return soa
        rrset = dns.rrset.RRset(zone, dns.rdataclass.IN, dns.rdatatype.SOA)
        rrset.add(
            dns.rdata.from_text(
                dns.rdataclass.IN, dns.rdatatype.SOA, _SOA_TEXT, origin=zone, relativize=False
            ),
            self.ttl,
        )
        return rrset


def _formerr_for(wire: bytes) -> bytes | None:
    """Return a FORMERR header echoing the ID of an unparsable query, or None without an ID."""
    if len(wire) < 2:
        return None
    return wire[:2] + struct.pack("!HHHHH", dns.flags.QR | dns.rcode.FORMERR, 0, 0, 0, 0)
