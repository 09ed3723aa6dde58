"""DNS over HTTPS (RFC 8484): POSTs over one HTTP/2 session, pinned to the configured address."""

from __future__ import annotations

import asyncio
import random
import ssl
import urllib.parse
from typing import TYPE_CHECKING

from monitor.probe.matching import Failure, Timeout
from monitor.probe.stream import tls_context
from monitor.probe.wire import MalformedReply, Question, Reading, read_reply

if TYPE_CHECKING:
    import httpx

    from monitor.config import Resolver
    from monitor.probe.transport import SendSlot


def open_doh(resolver: Resolver, rng: random.Random) -> DohClient:
    """Return the client of a doh resolver (``rng`` is unused: HTTP carries the matching)."""
    assert resolver.url is not None
    return DohClient(resolver.url, resolver.address, resolver.port, tls_context(resolver))


class DohClient:
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
        self._opening = False
        self._opened = asyncio.Event()

    async def exchange(
        self, template: bytes, question: Question, timeout: float, slot: SendSlot
    ) -> Reading:
        """POST one query once ``slot`` is granted.

        The first query opens the session; the others wait for it to be answered (or to fail)
        before they take their slots, or the queries paced while the session was being set up
        would all leave at once when it opened. The first one left only once the session was
        open: its send time is moved to when it was answered, later still and so safe for the
        rate.
        """
        if not self._opened.is_set():
            if self._opening:
                await self._opened.wait()
            else:
                self._opening = True
                try:
                    await slot.take()
                    return await self._post(template, question, timeout)
                finally:
                    slot.moved_to(asyncio.get_running_loop().time())
                    self._opened.set()
        await slot.take()
        return await self._post(template, question, timeout)

    async def _post(self, template: bytes, question: Question, timeout: float) -> Reading:
        try:
            response = await asyncio.wait_for(
                self._client.post(
                    self._url, content=template, headers=self._headers, extensions=self._extensions
                ),
                timeout,
            )
        except TimeoutError:
            raise Timeout() from None
        except self._errors as exc:
            raise Failure(f"HTTPS error: {type(exc).__name__}: {exc}") from None
        if response.status_code != 200:
            raise Failure(f"HTTP status {response.status_code}")
        try:
            reading = read_reply(response.content, question)
        except MalformedReply as exc:
            raise Failure(f"malformed reply: {exc}") from None
        if reading is None:
            raise Failure("reply for another question")
        return reading

    async def close(self) -> None:
        await self._client.aclose()
