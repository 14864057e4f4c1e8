"""Holding off Python's cyclic garbage collector for one batch of work.

A batch (a thousand personalizations of an email, a thousand provider events) allocates some
hundred thousand short-lived objects: rows, merge contexts, parsed JSON, statement parameters.
They trigger dozens of young collections and now and then a full one over the worker's whole
heap (its app, SQLAlchemy's caches): a fifth or more of the batch's CPU for nothing, since
reference counting frees nearly all of them as the batch ends. The collector resumes right
after and takes any cycle left behind.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def no_gc_pauses() -> Iterator[None]:
    """No cyclic collection inside the block (unless the host has disabled it already)."""
    if not gc.isenabled():  # nested, or disabled by the host: leave it as it is
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
