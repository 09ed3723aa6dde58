"""In-process DNS responders on loopback: a handler's exact replies, over UDP and TCP."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import socket
import struct
import threading
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, NamedTuple, Self, TypeAlias, cast

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


class _Stops:
    """Stopped when its ``with`` block ends."""

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class Responder(_Stops):
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


class Lab(_Stops):
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

    def stop(self) -> None:
        """Stop every responder; they wind down in parallel."""
        for responder in self.responders.values():
            responder._request_stop()
        for responder in self.responders.values():
            responder._join()
