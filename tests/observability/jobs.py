"""Job functions the observability tests enqueue (importable by real workers)."""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)


def fail_for_blast(blast_id: int, reason: str) -> None:
    """Log a line inside the job, then fail, as a broken blast job would."""
    log.info("working on blast %s", blast_id)
    raise ValueError(reason)
