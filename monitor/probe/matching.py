"""Matching replies to queries: by DNS ID *and* question, and what an attempt ends with.

A reply for another question, or one that does not parse, is not believed; a broken or forged
reply is noted on its query, which keeps waiting for the real one.
"""

from __future__ import annotations

import asyncio
import functools
import random
import struct
from collections.abc import Callable
from typing import Protocol, TypeVar

from monitor.probe.wire import (
    UNREAD,
    MalformedReply,
    Question,
    Reading,
    read_fast,
    read_with_dnspython,
)


class Timeout(Exception):
    """No believable reply came within the attempt's time."""


class Failure(Exception):
    """The attempt failed for a reason worth reporting (network error, malformed reply)."""


Outcome = Reading | Exception  # what a query in flight ends with: a reading, or why not


class _Awaiting(Protocol):
    """A query in flight, as replies are matched to it."""

    question: Question
    malformed: str | None  # a reply to it did not parse


_Entry = TypeVar("_Entry", bound=_Awaiting)


def take_answered(table: dict[int, _Entry], data: bytes) -> tuple[_Entry, Reading] | None:
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


class Matcher:
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
        answered = take_answered(self.pending, data)
        if answered is not None:
            pending, reading = answered
            pending.done(reading)

    def fail_all(self, reason: str) -> None:
        pending, self.pending = self.pending, {}
        for one in pending.values():
            one.done(Failure(reason))


def _settle(future: asyncio.Future[Reading], outcome: Outcome) -> None:
    if future.done():
        return
    if isinstance(outcome, Exception):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)


async def exchange_on(
    matcher: Matcher, send: Callable[[int], None], question: Question, timeout: float
) -> Reading:
    """Register a query on ``matcher``, ``send`` it with its ID, and await its reading."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[Reading] = loop.create_future()
    qid, pending = matcher.register(question, functools.partial(_settle, future))

    def expire() -> None:
        _settle(future, Failure(pending.malformed) if pending.malformed else Timeout())

    handle = loop.call_later(timeout, expire)
    try:
        send(qid)
        return await future
    finally:
        handle.cancel()
        matcher.release(qid, pending)


def with_id(template: bytes, qid: int) -> bytes:
    return struct.pack("!H", qid) + template[2:]
