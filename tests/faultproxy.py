"""A fault-injecting DNS proxy for tests: it sits between a client and a real server on loopback.

One :class:`FaultProxy` listens on UDP and TCP (the same port) and relays to an upstream server.
Per transport and direction, a :class:`Faults` plan says what share of the messages it drops,
delays, duplicates, reorders, corrupts or truncates (TC), and what forged replies it sends
before the genuine one: a wrong ID, another question, another source port, or a forged NXDOMAIN
with the right ID and question racing the real answer. It can also answer queries itself with
SERVFAIL or REFUSED bursts. Plans can be changed while it runs; ``counts`` says what it did.
Randomness comes from one seeded ``random.Random``, used only in the proxy's thread.

A proxy can also serve UDP only: with ``tcp="refuse"`` its TCP port is bound but never
listens, so the kernel answers every connection attempt with a reset (ECONNREFUSED); with
``tcp="drop"`` the port listens with a backlog of 0 that a connection of the proxy's own
fills, so the kernel silently drops every further SYN and connecting times out (Linux drops
a SYN to a listener whose accept queue is full). No firewall rule is needed for either.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import errno
import random
import socket
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Literal

_QR = 0x8000
_TC = 0x0200
_RD = 0x0100
_RA = 0x0080
NXDOMAIN, SERVFAIL, REFUSED = 3, 2, 5
_HEADER = struct.Struct("!HHHHHH")
_MAX_FLOWS = 1024  # UDP clients remembered; the oldest flow is forgotten beyond this
_MAX_CONNECTIONS = 256  # TCP connections relayed at once; more are closed at once
_MAX_PENDING = 10_000  # delayed or held messages at once; beyond this, new ones are dropped
_REORDER_WAIT = 0.05  # a held message goes out after this long when nothing overtakes it
_START_TIMEOUT = 5.0
_STOP_TIMEOUT = 5.0
_BUFFER = 4 << 20

TRANSPORTS = ("udp", "tcp")
DIRECTIONS = ("query", "reply")
TcpMode = Literal["relay", "refuse", "drop"]


@dataclass(frozen=True)
class Faults:
    """What happens to the messages going one way on one transport; shares are probabilities.

    Both directions: ``drop``, ``delay`` (held ``uniform(0, delay_max)`` seconds),
    ``duplicate``, ``reorder`` (held until the next message on the same flow overtakes it),
    ``corrupt`` (one to three bytes changed). Replies only: ``truncate`` (UDP: TC set, only the
    question kept) and four forgeries, each an NXDOMAIN sent just before the genuine reply (which
    still follows unless dropped), so that a forgery the client believed would show:
    ``wrong_id`` (another ID), ``wrong_question`` (the right ID, another name), ``other_port``
    (UDP: right ID and question, from a second socket, so another source port) and
    ``forge_nxdomain`` (right ID, question and port: an off-path forger who guessed right).
    Queries only: ``servfail`` and ``refused`` start a burst of ``burst`` queries that the proxy
    answers itself with that rcode instead of forwarding them. ``qnames`` limits the plan to
    those names (lowercase, no final dot); other messages pass untouched.
    """

    drop: float = 0.0
    delay: float = 0.0
    delay_max: float = 0.2
    duplicate: float = 0.0
    reorder: float = 0.0
    corrupt: float = 0.0
    truncate: float = 0.0
    wrong_id: float = 0.0
    wrong_question: float = 0.0
    other_port: float = 0.0
    forge_nxdomain: float = 0.0
    servfail: float = 0.0
    refused: float = 0.0
    burst: int = 1
    qnames: frozenset[str] | None = None

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, float) and f.name != "delay_max" and not 0.0 <= value <= 1.0:
                raise ValueError(f"Faults.{f.name} must be a share between 0 and 1, got {value}")
        if self.burst < 1 or self.delay_max < 0:
            raise ValueError("Faults.burst must be at least 1 and delay_max not negative")


CLEAN = Faults()


def loss(share: float) -> Faults:
    """Return a plan that drops ``share`` of the messages and does nothing else."""
    return Faults(drop=share)


# ------------------------------------------------------------------------------ DNS bytes


def question_end(wire: bytes) -> int | None:
    """Return the offset just after the (single, uncompressed) question, or None."""
    if len(wire) < 12:
        return None
    offset = 12
    while offset < len(wire):
        length = wire[offset]
        if length == 0:
            end = offset + 1 + 4
            return end if end <= len(wire) else None
        if length > 63:
            return None
        offset += 1 + length
    return None


def qname_of(wire: bytes) -> str | None:
    """Return the question's name in lowercase without the final dot ("." for the root)."""
    end = question_end(wire)
    if end is None:
        return None
    labels = []
    offset = 12
    while wire[offset]:
        length = wire[offset]
        labels.append(wire[offset + 1 : offset + 1 + length].decode("ascii", "replace").lower())
        offset += 1 + length
    return ".".join(labels) or "."


def synthesise(wire: bytes, rcode: int) -> bytes | None:
    """Return a reply to the query (or reply) ``wire`` with ``rcode``, nothing but the question."""
    end = question_end(wire)
    if end is None:
        return None
    qid, flags = struct.unpack_from("!HH", wire)
    flags = _QR | (flags & _RD) | _RA | rcode
    return _HEADER.pack(qid, flags, 1, 0, 0, 0) + wire[12:end]


def truncated(wire: bytes) -> bytes:
    """Return the reply with TC set and only its question kept (just TC when it does not parse)."""
    end = question_end(wire)
    if end is None:
        if len(wire) < 4:
            return wire
        return wire[:2] + struct.pack("!H", struct.unpack_from("!H", wire, 2)[0] | _TC) + wire[4:]
    qid, flags = struct.unpack_from("!HH", wire)
    return _HEADER.pack(qid, flags | _TC, 1, 0, 0, 0) + wire[12:end]


# ------------------------------------------------------------------------------ the proxy


class _Channel:
    """One way of one flow: where messages are sent, and the message held back for reordering."""

    def __init__(self, send: Callable[[bytes], None]) -> None:
        self.send = send
        self.held: bytes | None = None
        self.timer: asyncio.TimerHandle | None = None


class FaultProxy:
    """A UDP and TCP DNS proxy with faults, serving from a daemon thread with its own loop.

    It binds and starts at once; ``stop()`` (or leaving the ``with`` block) ends it and closes
    every socket. ``address`` and ``port`` are where clients send; ``upstream`` is the server.
    """

    def __init__(
        self,
        upstream: tuple[str, int],
        *,
        host: str = "127.0.0.1",
        seed: int = 0,
        udp_queries: Faults = CLEAN,
        udp_replies: Faults = CLEAN,
        tcp_queries: Faults = CLEAN,
        tcp_replies: Faults = CLEAN,
        tcp: TcpMode = "relay",
    ) -> None:
        """Bind ``host`` (a port free for UDP and TCP) and start relaying to ``upstream``.

        ``tcp`` says what the TCP port does: ``relay`` (to the upstream's TCP), ``refuse``
        (connections are reset) or ``drop`` (connection attempts go unanswered). Raises
        OSError when no port can be bound, RuntimeError when the thread does not start.
        """
        self.upstream = upstream
        self.address = host
        self.tcp = tcp
        self._rng = random.Random(seed)
        self._plans = {
            ("udp", "query"): udp_queries,
            ("udp", "reply"): udp_replies,
            ("tcp", "query"): tcp_queries,
            ("tcp", "reply"): tcp_replies,
        }
        self._lock = threading.Lock()
        self._counts: collections.Counter[str] = collections.Counter()
        self._burst: dict[str, tuple[int, int]] = {}  # transport -> (rcode, queries left)
        self._flows: collections.OrderedDict[tuple[str, int], tuple[socket.socket, _Channel]]
        self._flows = collections.OrderedDict()
        self._client_channels: dict[tuple[str, int], _Channel] = {}
        self._pending = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._stopped = False
        self._ready = threading.Event()
        self._failure: BaseException | None = None
        self._udp, self._tcp = _bind_pair(host, tcp)
        # In drop mode, the one connection the backlog holds, so that it is full.
        self._filler: socket.socket | None = None
        if tcp == "drop":
            try:
                self._filler = socket.create_connection(self._tcp.getsockname()[:2], timeout=5)
            except OSError:
                self._udp.close()
                self._tcp.close()
                raise
        self._other = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._other.bind((host, 0))
        self._other.setblocking(False)
        self.port = int(self._udp.getsockname()[1])
        self._thread = threading.Thread(
            target=self._run, name=f"fault-proxy-{self.port}", daemon=True
        )
        self._thread.start()
        if not self._ready.wait(_START_TIMEOUT) or self._failure is not None:
            self.stop()
            raise RuntimeError(f"fault proxy on {host} port {self.port} did not start") from (
                self._failure
            )

    def __repr__(self) -> str:
        return f"FaultProxy({self.address}:{self.port} -> {self.upstream[0]}:{self.upstream[1]})"

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # --- control, from any thread --------------------------------------------------------

    def set(
        self,
        *,
        udp_queries: Faults | None = None,
        udp_replies: Faults | None = None,
        tcp_queries: Faults | None = None,
        tcp_replies: Faults | None = None,
    ) -> None:
        """Replace the plans given (the others stay); messages from now on follow them."""
        plans = dict(self._plans)
        for key, plan in (
            (("udp", "query"), udp_queries),
            (("udp", "reply"), udp_replies),
            (("tcp", "query"), tcp_queries),
            (("tcp", "reply"), tcp_replies),
        ):
            if plan is not None:
                plans[key] = plan
        self._plans = plans  # one assignment: the proxy's thread sees the old set or the new
        with self._lock:
            self._burst.clear()

    def everywhere(self, plan_queries: Faults, plan_replies: Faults) -> None:
        """Use the same plans on UDP and TCP (TCP ignores truncate and other_port)."""
        self.set(
            udp_queries=plan_queries,
            udp_replies=plan_replies,
            tcp_queries=plan_queries,
            tcp_replies=plan_replies,
        )

    def clear(self) -> None:
        """Stop injecting faults: every message is relayed as it is."""
        self.everywhere(CLEAN, CLEAN)

    @property
    def counts(self) -> collections.Counter[str]:
        """Return a copy of what the proxy did so far, e.g. ``counts["udp.reply.drop"]``."""
        with self._lock:
            return collections.Counter(self._counts)

    def reset_counts(self) -> None:
        """Forget the counts so far."""
        with self._lock:
            self._counts.clear()

    def stop(self) -> None:
        """Stop relaying and close every socket; return once the thread has ended."""
        with self._lock:
            already, self._stopped = self._stopped, True
            loop, stopping = self._loop, self._stopping
        if not already and loop is not None and stopping is not None:
            with contextlib.suppress(RuntimeError):  # the loop already ended
                loop.call_soon_threadsafe(stopping.set)
        if threading.current_thread() is not self._thread and self._thread.is_alive():
            self._thread.join(_STOP_TIMEOUT)
        for sock in (self._udp, self._tcp, self._other, self._filler):
            if sock is not None:
                sock.close()

    # --- the proxy's thread --------------------------------------------------------------

    def _count(self, transport: str, direction: str, what: str, n: int = 1) -> None:
        with self._lock:
            self._counts[f"{transport}.{direction}.{what}"] += n

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(self._serve())
        except BaseException as exc:
            self._failure = exc
        finally:
            loop.close()
            self._ready.set()

    async def _serve(self) -> None:
        loop = asyncio.get_running_loop()
        stopping = asyncio.Event()
        with self._lock:
            self._loop, self._stopping = loop, stopping
            if self._stopped:
                stopping.set()
        loop.add_reader(self._udp.fileno(), self._read_clients)
        server = None
        if self.tcp == "relay":
            server = await asyncio.start_server(self._relay_tcp, sock=self._tcp)
        self._ready.set()
        try:
            await stopping.wait()
        finally:
            loop.remove_reader(self._udp.fileno())
            if server is not None:
                server.close()
            for writer in list(self._writers):
                writer.transport.abort()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            for sock, _ in self._flows.values():
                loop.remove_reader(sock.fileno())
                sock.close()
            self._flows.clear()
            if server is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(server.wait_closed(), 1.0)

    # UDP ---------------------------------------------------------------------------------

    def _read_clients(self) -> None:
        while True:
            try:
                data, peer = self._udp.recvfrom(65535)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            client = (str(peer[0]), int(peer[1]))
            _, channel = self._flow(client)
            self._on_query("udp", data, channel, self._client_channel(client))

    def _client_channel(self, client: tuple[str, int]) -> _Channel:
        channel = self._client_channels.get(client)
        if channel is None:

            def send(wire: bytes) -> None:
                with contextlib.suppress(OSError):
                    self._udp.sendto(wire, client)

            channel = self._client_channels[client] = _Channel(send)
        return channel

    def _flow(self, client: tuple[str, int]) -> tuple[socket.socket, _Channel]:
        """Return the upstream socket for one client (and the channel that sends on it)."""
        found = self._flows.get(client)
        if found is not None:
            self._flows.move_to_end(client)
            return found
        assert self._loop is not None
        if len(self._flows) >= _MAX_FLOWS:
            _, (old, _) = self._flows.popitem(last=False)
            self._loop.remove_reader(old.fileno())
            old.close()
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _BUFFER)
        sock.setblocking(False)
        sock.connect(self.upstream)

        def send(wire: bytes) -> None:
            with contextlib.suppress(OSError):
                sock.send(wire)

        channel = _Channel(send)
        self._flows[client] = (sock, channel)
        self._loop.add_reader(sock.fileno(), self._read_upstream, sock, client)
        return sock, channel

    def _read_upstream(self, sock: socket.socket, client: tuple[str, int]) -> None:
        while True:
            try:
                data = sock.recv(65535)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return  # an ICMP error from upstream: nothing to relay
            channel = self._client_channel(client)

            def from_other_port(wire: bytes, client: tuple[str, int] = client) -> None:
                with contextlib.suppress(OSError):
                    self._other.sendto(wire, client)

            self._on_reply("udp", data, channel, from_other_port)

    # TCP ---------------------------------------------------------------------------------

    async def _relay_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # asyncio logs a connection callback that ends cancelled; stop() cancels them all.
        with contextlib.suppress(asyncio.CancelledError):
            await self._relay_connection(reader, writer)

    async def _relay_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        if len(self._writers) >= 2 * _MAX_CONNECTIONS:
            writer.transport.abort()
            return
        self._tasks.add(task)
        self._writers.add(writer)
        up_writer: asyncio.StreamWriter | None = None
        try:
            try:
                up_reader, up_writer = await asyncio.open_connection(*self.upstream)
            except OSError:
                return
            self._writers.add(up_writer)
            to_client = _Channel(_framed(writer))
            to_server = _Channel(_framed(up_writer))
            upward = asyncio.create_task(
                self._pump(reader, lambda m: self._on_query("tcp", m, to_server, to_client))
            )
            downward = asyncio.create_task(
                self._pump(up_reader, lambda m: self._on_reply("tcp", m, to_client, None))
            )
            self._tasks.update((upward, downward))
            try:
                await asyncio.wait((upward, downward), return_when=asyncio.FIRST_COMPLETED)
            finally:
                for t in (upward, downward):
                    t.cancel()
                    self._tasks.discard(t)
                await asyncio.gather(upward, downward, return_exceptions=True)
        finally:
            for w in (writer, up_writer):
                if w is not None:
                    self._writers.discard(w)
                    w.transport.abort()
            self._tasks.discard(task)

    @staticmethod
    async def _pump(reader: asyncio.StreamReader, handle: Callable[[bytes], None]) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError, OSError):
            while True:
                (size,) = struct.unpack("!H", await reader.readexactly(2))
                handle(await reader.readexactly(size))

    # faults ------------------------------------------------------------------------------

    def _plan(self, transport: str, direction: str, wire: bytes) -> Faults | None:
        plan = self._plans[(transport, direction)]
        if plan == CLEAN:
            return None
        if plan.qnames is not None and qname_of(wire) not in plan.qnames:
            return None
        return plan

    def _on_query(self, transport: str, wire: bytes, upstream: _Channel, back: _Channel) -> None:
        self._count(transport, "query", "in")
        plan = self._plan(transport, "query", wire)
        if plan is None:
            upstream.send(wire)
            return
        rng = self._rng
        with self._lock:
            rcode, left = self._burst.get(transport, (0, 0))
        if not left:
            if rng.random() < plan.servfail:
                rcode, left = SERVFAIL, plan.burst
            elif rng.random() < plan.refused:
                rcode, left = REFUSED, plan.burst
        if left:
            with self._lock:
                self._burst[transport] = (rcode, left - 1)
            answer = synthesise(wire, rcode)
            if answer is not None:
                self._count(transport, "query", "servfail" if rcode == SERVFAIL else "refused")
                back.send(answer)
                return
        self._deliver(transport, "query", wire, plan, upstream)

    def _on_reply(
        self,
        transport: str,
        wire: bytes,
        client: _Channel,
        other_port: Callable[[bytes], None] | None,
    ) -> None:
        self._count(transport, "reply", "in")
        plan = self._plan(transport, "reply", wire)
        if plan is None:
            client.send(wire)
            return
        rng = self._rng
        forged = synthesise(wire, NXDOMAIN)
        if forged is not None:
            if rng.random() < plan.wrong_id:
                qid = struct.unpack_from("!H", forged)[0] ^ rng.randrange(1, 0x10000)
                self._count(transport, "reply", "wrong_id")
                client.send(struct.pack("!H", qid) + forged[2:])
            if rng.random() < plan.wrong_question:
                # The same ID and type, for a name one label longer: another question.
                self._count(transport, "reply", "wrong_question")
                client.send(forged[:12] + b"\x07spoofed" + forged[12:])
            if other_port is not None and rng.random() < plan.other_port:
                self._count(transport, "reply", "other_port")
                other_port(forged)
            if rng.random() < plan.forge_nxdomain:
                self._count(transport, "reply", "forge_nxdomain")
                client.send(forged)
        if transport == "udp" and rng.random() < plan.truncate:
            self._count(transport, "reply", "truncate")
            wire = truncated(wire)
        self._deliver(transport, "reply", wire, plan, client)

    def _deliver(
        self, transport: str, direction: str, wire: bytes, plan: Faults, channel: _Channel
    ) -> None:
        """Drop, corrupt, duplicate, delay or hold back one message, then send it."""
        rng = self._rng
        if rng.random() < plan.drop:
            self._count(transport, direction, "drop")
            return
        if wire and rng.random() < plan.corrupt:
            self._count(transport, direction, "corrupt")
            data = bytearray(wire)
            for _ in range(rng.randint(1, 3)):
                data[rng.randrange(len(data))] ^= rng.randrange(1, 256)
            wire = bytes(data)
        copies = 1
        if rng.random() < plan.duplicate:
            self._count(transport, direction, "duplicate")
            copies = 2
        delay = 0.0
        if rng.random() < plan.delay:
            self._count(transport, direction, "delay")
            delay = rng.uniform(0.0, plan.delay_max)
        hold = rng.random() < plan.reorder
        if hold:
            self._count(transport, direction, "reorder")
        for _ in range(copies):
            if delay > 0:
                if self._pending >= _MAX_PENDING:
                    self._count(transport, direction, "overflow")
                    continue
                self._pending += 1
                assert self._loop is not None
                self._loop.call_later(delay, self._send_later, channel, wire, hold)
            else:
                self._send(channel, wire, hold)

    def _send_later(self, channel: _Channel, wire: bytes, hold: bool) -> None:
        self._pending -= 1
        self._send(channel, wire, hold)

    def _send(self, channel: _Channel, wire: bytes, hold: bool) -> None:
        """Send now; a held message goes out after the next one on the channel (or a wait)."""
        held, channel.held = channel.held, None
        if channel.timer is not None:
            channel.timer.cancel()
            channel.timer = None
        if hold and held is None:
            assert self._loop is not None
            channel.held = wire
            channel.timer = self._loop.call_later(_REORDER_WAIT, self._release, channel)
            return
        channel.send(wire)
        if held is not None:
            channel.send(held)

    @staticmethod
    def _release(channel: _Channel) -> None:
        held, channel.held, channel.timer = channel.held, None, None
        if held is not None:
            channel.send(held)


def _framed(writer: asyncio.StreamWriter) -> Callable[[bytes], None]:
    def send(wire: bytes) -> None:
        if not writer.transport.is_closing() and len(wire) <= 0xFFFF:
            writer.write(struct.pack("!H", len(wire)) + wire)

    return send


def _bind_pair(host: str, tcp_mode: TcpMode = "relay") -> tuple[socket.socket, socket.socket]:
    """Return a UDP socket and a TCP socket bound to one free port on ``host``.

    The TCP socket listens (backlog 256 to relay, 0 to drop) unless ``tcp_mode`` is refuse.
    """
    last: OSError | None = None
    for _ in range(50):
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            udp.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _BUFFER)
            udp.bind((host, 0))
            if tcp_mode != "refuse":
                # Without it, and not listening, the port stays ours: nobody can bind it too.
                tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            tcp.bind((host, udp.getsockname()[1]))
            if tcp_mode != "refuse":
                tcp.listen(256 if tcp_mode == "relay" else 0)
        except OSError as exc:
            udp.close()
            tcp.close()
            last = exc
            if exc.errno != errno.EADDRINUSE:
                break
            continue
        udp.setblocking(False)
        tcp.setblocking(False)
        return udp, tcp
    raise OSError(f"fault proxy: no port free for UDP and TCP on {host}: {last}")
