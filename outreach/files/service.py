"""Writing and streaming files kept in the database."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import BinaryIO

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from outreach.exceptions import ValidationError
from outreach.files.models import FileChunk, StoredFile

CHUNK_SIZE = 1024 * 1024


def store_stream(db: Session, stream: BinaryIO, name: str, content_type: str = "text/csv",
                 max_bytes: int | None = None) -> StoredFile:
    """Copy a binary stream into the database in 1 MB chunks; refuse it past max_bytes."""
    stored = StoredFile(name=name[:255], content_type=content_type, size=0)
    db.add(stored)
    db.flush()
    seq = 0
    while True:
        data = stream.read(CHUNK_SIZE)
        if not data:
            break
        stored.size += len(data)
        if max_bytes is not None and stored.size > max_bytes:
            raise ValidationError("File too large", {"file": f"larger than {max_bytes} bytes"})
        db.execute(sa.insert(FileChunk), [{"file_id": stored.id, "seq": seq, "data": data}])
        seq += 1
    return stored


def store_bytes(db: Session, data: bytes, name: str, content_type: str = "text/csv") -> StoredFile:
    """Store a file held in memory."""
    return store_stream(db, io.BytesIO(data), name, content_type)


def iter_chunks(engine: Engine, file_id: int) -> Iterator[bytes]:
    """Yield a stored file's chunks in order, one query per chunk (memory stays flat)."""
    seq = 0
    while True:
        with engine.connect() as conn:
            data = conn.scalar(sa.select(FileChunk.data).where(
                FileChunk.file_id == file_id, FileChunk.seq == seq))
        if data is None:
            return
        yield bytes(data)
        seq += 1


class ChunkReader(io.RawIOBase):
    """A read-only binary file over a stored file's chunks."""

    def __init__(self, engine: Engine, file_id: int) -> None:
        self._chunks = iter_chunks(engine, file_id)
        self._buffer = b""
        self.bytes_read = 0  # for progress bars

    def readable(self) -> bool:
        """Always readable."""
        return True

    def readinto(self, target: bytearray | memoryview) -> int:  # type: ignore[override]
        """Fill target from the current chunk, fetching the next one when it runs out."""
        while not self._buffer:
            try:
                self._buffer = next(self._chunks)
            except StopIteration:
                return 0
        n = min(len(target), len(self._buffer))
        target[:n] = self._buffer[:n]
        self._buffer = self._buffer[n:]
        self.bytes_read += n
        return n


def open_stored(engine: Engine, file_id: int) -> tuple[io.BufferedReader, ChunkReader]:
    """Open a stored file for buffered binary reading; the raw reader counts bytes read."""
    raw = ChunkReader(engine, file_id)
    return io.BufferedReader(raw, buffer_size=CHUNK_SIZE), raw
