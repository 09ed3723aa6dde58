"""Transports: the one interface a query's transport offers, and the registry of transports.

A client asks one question at a time (many may be in flight): ``exchange`` takes a send slot
when the query can leave, and returns the reply's reading or raises Timeout or Failure. The
registry holds what config.yaml needs to know of each transport and how to open its client:
adding a transport is one module with its client and one line in TRANSPORTS.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from monitor.probe import doh, stream
from monitor.probe.wire import Question, Reading

if TYPE_CHECKING:
    from monitor.config import Resolver


class SendSlot(Protocol):
    """One resolver's pacing, as its transport sees it."""

    async def take(self) -> None:
        """Wait for the next send slot; the query must leave in the same loop step."""

    def moved_to(self, when: float) -> None:
        """Note that the query that took the last slot left only at ``when``."""


class Client(Protocol):
    """One resolver's connection (or session) for single queries."""

    async def exchange(
        self, template: bytes, question: Question, timeout: float, slot: SendSlot
    ) -> Reading:
        """Send the query ``template`` (ID 0) once ``slot`` is granted; return the reading of
        its reply. Raises Timeout or Failure."""

    async def close(self) -> None:
        """Close the connection; the client is not used again."""


@dataclass(frozen=True)
class Transport:
    """A transport as config.yaml names it, and how to open its client.

    ``tls``: the keys ``server_name`` and ``ca_file`` apply; ``by_url``: the resolver is given
    by a url (its address is optional); ``bulk``: the engine's bulk UDP pass carries the
    resolver's queries, and the client that ``open`` returns carries only the rest (truncated
    replies, and re-queries that must not go over UDP).
    """

    name: str
    default_port: int
    open: Callable[[Resolver, random.Random], Client]
    tls: bool = False
    by_url: bool = False
    bulk: bool = False


TRANSPORTS: Mapping[str, Transport] = {
    t.name: t
    for t in (
        Transport("udp", 53, stream.open_tcp, bulk=True),
        Transport("tcp", 53, stream.open_tcp),
        Transport("dot", 853, stream.open_dot, tls=True),
        Transport("doh", 443, doh.open_doh, tls=True, by_url=True),
    )
}
