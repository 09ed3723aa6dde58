"""TCP and DNS over TLS (RFC 7766, 7858): one persistent connection, queries pipelined on it."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import ssl
import struct
from typing import TYPE_CHECKING

from monitor.probe.matching import Failure, Matcher, Timeout, exchange_on, with_id
from monitor.probe.wire import Question, Reading

if TYPE_CHECKING:
    from monitor.config import Resolver
    from monitor.probe.transport import SendSlot


def open_tcp(resolver: Resolver, rng: random.Random) -> StreamClient:
    """Return the client of a tcp resolver (or of a udp one, for what the bulk pass leaves)."""
    assert resolver.address is not None
    return StreamClient(resolver.address, resolver.port, rng)


def open_dot(resolver: Resolver, rng: random.Random) -> StreamClient:
    """Return the client of a dot resolver: TLS, its certificate checked for ``server_name``."""
    assert resolver.address is not None
    context = tls_context(resolver)
    context.set_alpn_protocols(["dot"])
    return StreamClient(resolver.address, resolver.port, rng, context, resolver.server_name)


def tls_context(resolver: Resolver) -> ssl.SSLContext:
    """Return the TLS context for a DoT or DoH resolver: its ``ca_file``, else the system's CAs."""
    return ssl.create_default_context(
        cafile=str(resolver.ca_file) if resolver.ca_file is not None else None
    )


class StreamClient:
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
        self._matcher = Matcher(rng)
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
                raise Timeout() from None
            except ssl.SSLError as exc:
                raise Failure(f"connection failed: {exc.strerror or exc}") from None
            except OSError as exc:
                # asyncio words every failed connect "Connect call failed (address)": say what
                # the errno says ("Connection refused"), which a canary's TCP health reads.
                reason = os.strerror(exc.errno) if exc.errno else exc.strerror or exc
                raise Failure(f"connection failed: {reason}") from None
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
        self, template: bytes, question: Question, timeout: float, slot: SendSlot
    ) -> Reading:
        """Ask over the connection (opened first, if need be) once ``slot`` is granted.

        The slot is taken once the connection is up: queries paced while it was being set up
        would all leave at once when it opened, more than the rate in that second.
        """
        await self._connect(timeout)
        await slot.take()
        writer = await self._connect(timeout)  # the same one, unless it closed meanwhile

        def send(qid: int) -> None:
            wire = with_id(template, qid)
            writer.write(struct.pack("!H", len(wire)) + wire)

        return await exchange_on(self._matcher, send, question, timeout)

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(Exception):
                await self._writer.wait_closed()
        if self._reader_task is not None:
            self._reader_task.cancel()
            with contextlib.suppress(BaseException):
                await self._reader_task
