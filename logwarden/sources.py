"""Where log bytes come from besides HTTP: standard input and files (optionally followed).

``follow_file`` behaves like ``tail -F``: it waits for a file that does not exist yet, reads what
is appended, and reopens the path when the file is rotated (a new inode) or truncated. Chunks are
raw bytes in arbitrary cuts; the detector carries a partial last line to the next chunk.
``prefetch`` reads any of them ahead of its consumer, so reading overlaps detection.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import BinaryIO

CHUNK_SIZE = 1 << 20

Sleep = Callable[[float], Awaitable[None]]


async def read_stream(stream: BinaryIO, chunk_size: int = CHUNK_SIZE) -> AsyncIterator[bytes]:
    """Chunks of a blocking binary stream (stdin, a pipe, a file) until end of input.

    Reads happen in a worker thread so a slow producer never blocks the event loop.
    """
    read = getattr(stream, "read1", stream.read)
    while True:
        chunk: bytes = await asyncio.to_thread(read, chunk_size)
        if not chunk:
            return
        yield chunk


def _same_file(handle: BinaryIO, path: Path) -> bool:
    try:
        on_disk = path.stat()
    except FileNotFoundError:
        return True  # rotated away and not recreated yet: keep draining the old handle
    mine = os.fstat(handle.fileno())
    return (on_disk.st_ino, on_disk.st_dev) == (mine.st_ino, mine.st_dev)


async def follow_file(
    path: Path,
    *,
    stop: asyncio.Event,
    from_start: bool = True,
    poll_interval: float = 0.25,
    chunk_size: int = CHUNK_SIZE,
    sleep: Sleep = asyncio.sleep,
) -> AsyncIterator[bytes]:
    """Follow ``path`` until ``stop`` is set, surviving rotation and truncation.

    ``from_start=False`` skips what the file holds when it is first opened (like ``tail -n0 -F``);
    files that appear later (after a rotation) are always read from their start.
    """
    handle: BinaryIO | None = None
    first_open = True
    try:
        while not stop.is_set():
            if handle is None:
                try:
                    handle = path.open("rb")
                except FileNotFoundError:
                    await sleep(poll_interval)
                    continue
                if first_open and not from_start:
                    handle.seek(0, os.SEEK_END)
                first_open = False
            chunk = await asyncio.to_thread(handle.read, chunk_size)
            if chunk:
                yield chunk
                continue
            # Nothing new: was the file rotated to a new inode, or truncated in place?
            if not _same_file(handle, path):
                handle.close()
                handle = None
                continue
            if os.fstat(handle.fileno()).st_size < handle.tell():
                handle.seek(0)
                continue
            await sleep(poll_interval)
    finally:
        if handle is not None:
            handle.close()


async def read_file(path: Path, chunk_size: int = CHUNK_SIZE) -> AsyncIterator[bytes]:
    """The whole file once, in chunks."""
    with path.open("rb") as handle:
        async for chunk in read_stream(handle, chunk_size):
            yield chunk


async def prefetch(
    chunks: AsyncIterator[bytes], *, depth: int = 4, max_bytes: int = CHUNK_SIZE
) -> AsyncIterator[bytes]:
    """``chunks`` read ahead by a background task into a queue of at most ``depth`` chunks, so the
    next read overlaps the consumer's work on this one; chunks already waiting are handed over
    together, up to about ``max_bytes`` (a pipe yields 64 KiB per read). Nothing is reordered or
    dropped; a read error is raised to the consumer after the chunks read before it."""
    queue: asyncio.Queue[bytes | None] = asyncio.Queue(depth)
    failed: list[Exception] = []

    async def fill() -> None:
        try:
            async for chunk in chunks:
                await queue.put(chunk)
        except Exception as exc:  # handed to the consumer, in order, after what was read
            failed.append(exc)
        await queue.put(None)

    filler = asyncio.create_task(fill())
    try:
        while (chunk := await queue.get()) is not None:
            joined = bytearray(chunk)
            while len(joined) < max_bytes and not queue.empty():
                more = queue.get_nowait()
                if more is None:
                    queue.put_nowait(None)  # the end: seen on the next round
                    break
                joined += more
            yield bytes(joined)
        if failed:
            raise failed[0]
    finally:
        filler.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await filler
