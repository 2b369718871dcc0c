"""The byte stream of one MQTT connection, bounded: field size and readings in flight."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from amqtt.adapters import StreamReaderAdapter

from target.errors import PacketTooLarge

__all__ = ["MAX_IN_FLIGHT", "BoundedReader"]

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

    async def read(self, n: int = -1) -> bytes:
        if not 0 <= n <= self._max_read:  # -1 would read to EOF: unbounded
            self._on_too_large()
            raise PacketTooLarge(f"read of {n} bytes over the limit of {self._max_read}")
        if not self._room.is_set():
            await self._room.wait()
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
