"""Pacing: never more queries to one resolver in any second than its ``rate``."""

from __future__ import annotations

import asyncio
import collections


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
