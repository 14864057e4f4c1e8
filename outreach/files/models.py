"""A file stored as ordered chunks in the database."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from outreach.db import Base, UTCDateTime, utcnow


class StoredFile(Base):
    """An uploaded or generated file; its bytes live in `file_chunks`."""

    __tablename__ = "stored_files"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(255))
    content_type: Mapped[str] = mapped_column(sa.String(100), default="text/csv")
    size: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class FileChunk(Base):
    """One piece of a stored file, in order."""

    __tablename__ = "file_chunks"

    file_id: Mapped[int] = mapped_column(
        sa.ForeignKey("stored_files.id", ondelete="CASCADE"), primary_key=True)
    seq: Mapped[int] = mapped_column(primary_key=True)
    data: Mapped[bytes] = mapped_column(sa.LargeBinary)
