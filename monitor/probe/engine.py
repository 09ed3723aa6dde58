"""The probe engine: ask resolvers about names over UDP, TCP, DoT or DoH, many queries in flight.

Every query ends as an :class:`Observation` whose ``status`` says what happened; a timeout or a
malformed reply is a status, never an exception. Each resolver's queries go over its transport's
client (see ``transport``), or, for a transport the bulk pass carries, in one UdpPass.
"""

from __future__ import annotations

import asyncio
import itertools
import random
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING

from monitor.probe.bulk import UdpPass
from monitor.probe.matching import Failure, Timeout
from monitor.probe.observation import Job, Observation
from monitor.probe.pacing import Pacer
from monitor.probe.transport import TRANSPORTS
from monitor.probe.wire import Question, query_wire, rdtype_code
from monitor.vocabulary import Status

if TYPE_CHECKING:
    from monitor.config import Resolver


class ResolverClient:
    """Asks one resolver, with its transport, mode, rate, timeout and attempts.

    It is also the resolver's send slot (see ``transport.SendSlot``): its transport's client
    takes a slot from it for each query, and every query that takes one is counted in ``sent``.
    """

    def __init__(
        self, resolver: Resolver, *, timeout: float, attempts: int, rng: random.Random
    ) -> None:
        self.resolver = resolver
        self.timeout = timeout
        self.attempts = attempts
        self.pacer = Pacer(resolver.rate)
        self.sent = 0
        self.recursion = resolver.mode != "authoritative"
        transport = TRANSPORTS[resolver.transport]
        self.bulk = transport.bulk  # a UdpPass carries the queries that ask() does not
        self._client = transport.open(resolver, rng)

    async def ask(self, domain: str, rdtype_text: str) -> Observation:
        """Return the observation for one name and type, after up to ``attempts`` tries.

        A ``udp`` resolver is asked over TCP here: for its truncated replies, and for re-queries
        of a disagreement, which an off-path forger or a box that injects answers into UDP
        cannot then produce again. Its other queries go in a bulk pass (:class:`UdpPass`).
        """
        question = Question.of(domain, rdtype_code(rdtype_text))
        template = query_wire(question, recursion=self.recursion)
        status, detail = Status.TIMEOUT, None
        for _ in range(self.attempts):
            try:
                reading = await self._client.exchange(template, question, self.timeout, self)
            except Timeout:
                status, detail = Status.TIMEOUT, None
                continue
            except Failure as exc:
                status, detail = Status.ERROR, str(exc)
                continue
            if reading.status == "truncated":
                status, detail = Status.ERROR, "truncated reply over a stream"
                continue
            return Observation(
                self.resolver.name,
                domain,
                rdtype_text,
                reading.status,
                reading.answers,
                reading.detail,
                reading.evidence,
            )
        return Observation(self.resolver.name, domain, rdtype_text, status, (), detail)

    async def take(self) -> None:
        """Wait for a send slot and count the query that takes it."""
        await self.pacer.wait()
        self.sent += 1

    def moved_to(self, when: float) -> None:
        """Note that the query that took the last slot left only at ``when``."""
        self.pacer.sent_at(when)

    async def close(self) -> None:
        await self._client.close()


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
                finish(index, await client.ask(domain, rdtype))

        async def over_udp(client: ResolverClient) -> None:
            resolver = client.resolver
            assert resolver.address is not None
            queue = enumerate(itertools.product(domains, rdtypes))
            job = UdpPass(
                client, resolver.address, resolver.port, self.rng, queue, finish, self.concurrency
            )
            try:
                job.open()
            except OSError as exc:
                # No socket (no route for the address family, no file descriptor left): nothing
                # can be sent, so every job ends at once with the system's reason.
                detail = f"network error: {exc.strerror or exc}"
                for index, (domain, rdtype) in queue:
                    finish(
                        index, Observation(resolver.name, domain, rdtype, Status.ERROR, (), detail)
                    )
                return
            await job.run()

        tasks = []
        for name in resolvers:
            client = self.clients[name]
            if client.bulk and not stream:
                tasks.append(asyncio.create_task(over_udp(client)))
                continue
            queue = enumerate(itertools.product(domains, rdtypes))
            for _ in range(min(self.concurrency, size)):
                tasks.append(asyncio.create_task(worker(client, queue)))
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
