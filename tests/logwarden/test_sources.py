import asyncio
import io
import itertools
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from logwarden.sources import follow_file, prefetch, read_file, read_stream

pytestmark = pytest.mark.anyio


def scripted_sleep(actions: list[Callable[[], None]], stop: asyncio.Event) -> Callable[[float], object]:
    """A sleep that performs the next scripted action instead of waiting; stops when done."""

    async def sleep(_seconds: float) -> None:
        if actions:
            actions.pop(0)()
        else:
            stop.set()

    return sleep


async def collect(path: Path, stop: asyncio.Event, sleep: Callable[[float], object], **kw: object) -> bytes:
    out = bytearray()
    async for chunk in follow_file(path, stop=stop, sleep=sleep, poll_interval=0, chunk_size=7, **kw):  # type: ignore[arg-type]
        out += chunk
    return bytes(out)


async def test_follow_waits_for_the_file_then_survives_rotation_and_truncation(tmp_path: Path) -> None:
    path = tmp_path / "app.log"
    stop = asyncio.Event()

    def create() -> None:
        path.write_bytes(b"one\n")

    def append() -> None:
        with path.open("ab") as f:
            f.write(b"two\n")

    def rotate() -> None:
        with path.open("ab") as f:
            f.write(b"three\n")  # written just before rotation: must not be lost
        path.rename(tmp_path / "app.log.1")
        path.write_bytes(b"four\n")

    def truncate() -> None:
        path.write_bytes(b"5\n")

    sleep = scripted_sleep([create, append, rotate, lambda: None, truncate], stop)
    assert await collect(path, stop, sleep) == b"one\ntwo\nthree\nfour\n5\n"


async def test_follow_from_end_skips_existing_content(tmp_path: Path) -> None:
    path = tmp_path / "app.log"
    path.write_bytes(b"old line\n")
    stop = asyncio.Event()

    def append() -> None:
        with path.open("ab") as f:
            f.write(b"new line\n")

    sleep = scripted_sleep([append], stop)
    assert await collect(path, stop, sleep, from_start=False) == b"new line\n"


async def test_read_stream_and_file_return_everything(tmp_path: Path) -> None:
    data = b"".join(b"line %d\n" % i for i in range(1000))
    chunks = [c async for c in read_stream(io.BytesIO(data), chunk_size=333)]
    assert b"".join(chunks) == data
    assert max(len(c) for c in chunks) <= 333
    path = tmp_path / "f.log"
    path.write_bytes(data)
    assert b"".join([c async for c in read_file(path, chunk_size=4096)]) == data


async def chunks_of(parts: list[bytes], fail_after: int | None = None) -> AsyncIterator[bytes]:
    for i, part in enumerate(parts):
        if fail_after is not None and i == fail_after:
            raise OSError("disk gone")
        yield part
        await asyncio.sleep(0)


async def test_prefetch_keeps_order_and_joins_waiting_chunks_up_to_the_limit() -> None:
    parts = [bytes([65 + i]) * 3 for i in range(10)]
    seen: list[bytes] = []
    async for chunk in prefetch(chunks_of(parts), depth=8, max_bytes=7):
        seen.append(chunk)
        for _ in range(20):  # a slow consumer: the reader gets ahead meanwhile
            await asyncio.sleep(0)
    assert b"".join(seen) == b"".join(parts)
    assert len(seen) < len(parts)  # chunks that waited were handed over together...
    assert all(len(c) < 7 + 3 for c in seen)  # ...but never far past the limit


async def test_prefetch_raises_a_read_error_after_what_was_read_before_it() -> None:
    seen: list[bytes] = []

    async def consume() -> None:
        async for chunk in prefetch(chunks_of([b"a\n", b"b\n", b"c\n"], fail_after=2), depth=1):
            seen.append(chunk)

    with pytest.raises(OSError, match="disk gone"):
        await consume()
    assert b"".join(seen) == b"a\nb\n"


async def test_prefetch_stops_reading_when_the_consumer_stops() -> None:
    read: list[int] = []

    async def endless() -> AsyncIterator[bytes]:
        for i in itertools.count():
            read.append(i)
            yield b"x\n"

    stream = prefetch(endless(), depth=2, max_bytes=4)
    first = await anext(stream)
    assert first in (b"x\n", b"x\nx\n")
    await stream.aclose()
    before = len(read)
    await asyncio.sleep(0)
    assert len(read) == before <= 5  # bounded read-ahead, and nothing read after closing
