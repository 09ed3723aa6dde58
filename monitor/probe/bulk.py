"""The bulk UDP pass: one resolver's jobs over a few connected sockets, driven by callbacks.

At a million names this is where the time goes; it owns its sockets, its table of attempts in
flight and its deadline queue, and reads replies with the hand-written reader of ``wire``.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import random
import socket
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from monitor.probe.matching import take_answered
from monitor.probe.observation import Job, Observation
from monitor.probe.wire import (
    EDNS_PAYLOAD,
    NO_EVIDENCE,
    Evidence,
    Question,
    query_head,
    query_tail,
    rdtype_code,
)
from monitor.vocabulary import Status

if TYPE_CHECKING:
    from monitor.probe.engine import ResolverClient

# Bound once: the pass runs these for every attempt (see monitor.vocabulary).
_TIMEOUT = Status.TIMEOUT
_ERROR = Status.ERROR


class Flight:
    """One job of a UDP pass: its question, and where its current attempt stands."""

    __slots__ = (
        "attempt",
        "body",
        "domain",
        "index",
        "malformed",
        "qid",
        "question",
        "rdtype",
        "slot",
        "ticket",
    )

    def __init__(self, index: int, domain: str, rdtype: str, question: Question, body: bytes):
        self.index = index
        self.domain = domain
        self.rdtype = rdtype
        self.question = question
        self.body = body  # the query after its ID
        self.attempt = 0
        self.malformed: str | None = None  # a reply to this attempt did not parse
        self.qid = 0
        self.slot = 0  # which socket the attempt went out on
        self.ticket = 0  # the attempt's place in the deadline queue


class UdpPass:
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
    SOCKETS = 4
    MAX_IN_FLIGHT = 16384  # per socket, well under the 65,536 IDs
    BUFFER = 4 << 20
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
        self.flying: list[dict[int, Flight]] = []  # per socket: the attempts in flight, by ID
        self.waiting: dict[int, Flight] = {}  # the attempts in flight, by ticket
        self.tickets = itertools.count(1)
        self.ready: collections.deque[Flight] = collections.deque()  # to send (again) first
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

    def new_flight(self, job: tuple[int, Job]) -> Flight:
        index, (domain, rdtype) = job
        known = self.tails.get(rdtype)
        if known is None:
            code = rdtype_code(rdtype)
            known = self.tails[rdtype] = (code, query_tail(code, payload=EDNS_PAYLOAD))
        code, tail = known
        # Jobs come domain by domain, a type after another: build each name's wire form once.
        if domain != self.last_domain:
            self.last_wire = Question.of(domain, code).wire
            self.last_domain = domain
        wire = self.last_wire
        return Flight(index, domain, rdtype, Question(wire, code), self.head + wire + tail)

    def send(self, flight: Flight) -> bool:
        """Send the flight's next attempt; return False when the send buffer is full."""
        slot = self.next_slot = (self.next_slot + 1) % len(self.sockets)
        flying = self.flying[slot]
        if len(flying) >= self.MAX_IN_FLIGHT:
            flight.attempt += 1
            self.attempt_failed(flight, _ERROR, "too many queries in flight")
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
            self.attempt_failed(flight, _ERROR, f"network error: {exc.strerror or exc}")
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
                answered = take_answered(flying, data)
                if answered is None:
                    continue
                flight, reading = answered
                del waiting[flight.ticket]
                status = reading.status
                if status == "truncated":
                    task = self.loop.create_task(self.over_tcp(flight))
                    self.fallbacks.add(task)
                    task.add_done_callback(self.fallbacks.discard)
                else:
                    self.done(flight, status, reading.answers, reading.detail, reading.evidence)
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
            self.attempt_failed(flight, _ERROR, reason)

    async def over_tcp(self, flight: Flight) -> None:
        try:
            observation = await self.client.ask(flight.domain, flight.rdtype)
            self.done(
                flight,
                observation.status,
                observation.answers,
                observation.detail,
                observation.evidence,
            )
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
                    self.attempt_failed(flight, _ERROR, flight.malformed)
                else:
                    self.attempt_failed(flight, _TIMEOUT, None)
        except Exception as exc:
            self.fail(exc)
            return
        if not self.finished.done():
            self.ticking = self.loop.call_later(self.TICK, self.tick)

    def attempt_failed(self, flight: Flight, status: Status, detail: str | None) -> None:
        if flight.attempt < self.client.attempts:
            self.ready.append(flight)
        else:
            self.done(flight, status, (), detail)
        if self.wake is None:
            self.wake = self.loop.call_soon(self.fill)

    def done(
        self,
        flight: Flight,
        status: Status,
        answers: tuple[str, ...],
        detail: str | None,
        evidence: Evidence = NO_EVIDENCE,
    ) -> None:
        self.finish_job(
            flight.index,
            Observation(self.name, flight.domain, flight.rdtype, status, answers, detail, evidence),
        )
        self.in_flight -= 1

    def check_done(self) -> None:
        if self.exhausted and self.in_flight == 0 and not self.finished.done():
            self.finished.set_result(None)

    def fail(self, exc: Exception) -> None:
        if not self.finished.done():
            self.finished.set_exception(exc)
