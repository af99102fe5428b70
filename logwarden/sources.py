"""Where log bytes come from besides HTTP: standard input and files (optionally followed).

``follow_file`` behaves like ``tail -F``: it waits for a file that does not exist yet, reads what
is appended, and reopens the path when the file is rotated (a new inode) or truncated. Chunks are
raw bytes in arbitrary cuts; the detector carries a partial last line to the next chunk.
"""

from __future__ import annotations

import asyncio
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
