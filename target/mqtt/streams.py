"""The byte streams of one MQTT connection, bounded: field size, readings in flight, and how
long a client may leave our packets unread."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from amqtt.adapters import StreamReaderAdapter, StreamWriterAdapter
from amqtt.errors import NoDataError

from target.errors import PacketTooLarge

__all__ = ["MAX_IN_FLIGHT", "BoundedReader", "BoundedWriter"]

# Publishes of one connection being handled at once (each a task amqtt starts per packet). At
# the limit the connection is not read until one finishes, so a flood fills the client's TCP
# window instead of our memory; paho's own default window is 20.
MAX_IN_FLIGHT = 64


class BoundedReader(StreamReaderAdapter):
    """amqtt reads each packet field and payload with one ``read(n)``: ``n`` over ``max_read``
    closes the connection before anything is buffered, and no read starts while
    :data:`MAX_IN_FLIGHT` publishes are held."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        max_read: int,
        on_too_large: Callable[[], None],
    ) -> None:
        super().__init__(reader)
        self._max_read = max_read
        self._on_too_large = on_too_large
        self._in_flight = 0
        self._room = asyncio.Event()
        self._room.set()
        self._shut = False

    def shut(self) -> None:
        """Read nothing more: amqtt's reader loop then ends as at EOF.

        Stopping a session cancels amqtt's reader task, but Python 3.11's ``asyncio.wait_for``
        (which wraps each of its reads) drops a cancellation that arrives as the read completes,
        so with packets already buffered the loop read on and the connection stayed open until
        the client closed it."""
        self._shut = True
        self._room.set()

    async def read(self, n: int = -1) -> bytes:
        if self._shut:
            raise NoDataError("the session is stopping")
        if not 0 <= n <= self._max_read:  # -1 would read to EOF: unbounded
            self._on_too_large()
            raise PacketTooLarge(f"read of {n} bytes over the limit of {self._max_read}")
        if not self._room.is_set():
            await self._room.wait()
            if self._shut:
                raise NoDataError("the session is stopping")
        data: bytes = await super().read(n)
        return data

    def hold(self) -> None:
        self._in_flight += 1
        if self._in_flight >= MAX_IN_FLIGHT:
            self._room.clear()

    def release(self) -> None:
        self._in_flight -= 1
        if self._in_flight < MAX_IN_FLIGHT:
            self._room.set()


class BoundedWriter(StreamWriterAdapter):
    """A client that leaves our packets unread for ``deadline_s`` is cut off (the transport
    aborted): amqtt awaits ``drain`` after every packet and ``close`` drains first, so one client
    that never reads would hold its session, its slot and every message routed to it forever."""

    def __init__(
        self, writer: asyncio.StreamWriter, deadline_s: float, on_stalled: Callable[[], None]
    ) -> None:
        super().__init__(writer)
        self._stream = writer
        self.deadline_s = deadline_s
        self._on_stalled = on_stalled
        self._cut = False

    def _cut_off(self, *, stalled: bool = True) -> None:
        if stalled and not self._cut:
            self._on_stalled()
        self._cut = self.is_closed = True
        self._stream.transport.abort()

    async def drain(self) -> None:
        if not self._stream.transport.get_write_buffer_size():
            # All handed to the kernel, so the writer cannot be paused: no timer needed. (With
            # bytes still buffered it may be, even below the high-water mark, until the client
            # reads down to the low one.)
            await super().drain()
            return
        try:
            await asyncio.wait_for(super().drain(), self.deadline_s)
        except TimeoutError:
            self._cut_off()
            raise ConnectionResetError("the client does not read") from None

    async def close(self) -> None:
        try:
            await asyncio.wait_for(super().close(), self.deadline_s)
        except TimeoutError:
            self._cut_off()
        except OSError:  # reset by the client meanwhile: nothing left to wait for
            self._cut_off(stalled=False)
