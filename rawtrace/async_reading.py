"""`async for event in tracer`, apart from the Tracer so that asyncio (50 ms of every start) is
imported only by those who iterate that way."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from rawtrace.events.event import Event

if TYPE_CHECKING:
    from rawtrace.tracer import Tracer


async def events_of(tracer: Tracer) -> AsyncIterator[Event]:
    """The tracer's events as they come, waiting in the running loop (add_reader plus a
    max_wait timer), never in a thread; until stop() or close()."""
    loop = asyncio.get_running_loop()
    while True:
        events = tracer.read(0)
        for event in events:
            yield event
        if events:
            continue
        if tracer.ended:
            return
        ready = asyncio.Event()
        fd = tracer.fileno()
        loop.add_reader(fd, ready.set)
        try:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(ready.wait(), tracer.max_wait)
        finally:
            loop.remove_reader(fd)
