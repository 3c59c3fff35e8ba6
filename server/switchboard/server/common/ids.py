"""Identifiers: a prefix plus 26 Crockford base-32 characters, sortable by creation time."""

from __future__ import annotations

import os
import threading
import time

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
# Two characters per 10-bit chunk: 13 lookups instead of 26 divisions (ids are made on
# every create, and imports create tens of thousands a second).
_PAIRS = [a + b for a in _ALPHABET for b in _ALPHABET]
_SHIFTS = tuple(range(120, -1, -10))

# Random bits come from os.urandom in blocks: one getrandom call per id was 14 % of an
# import's server time. The pool is per thread (the event loop and the commit thread both
# make ids) and dropped in a forked child, so that two workers never share random bits.
_POOL_BYTES = 4096
_pools = threading.local()


def _drop_pools() -> None:
    global _pools
    _pools = threading.local()


os.register_at_fork(after_in_child=_drop_pools)


def _random80() -> int:
    pool: bytes = getattr(_pools, "bytes", b"")
    at: int = getattr(_pools, "at", 0)
    if at + 10 > len(pool):
        pool, at = os.urandom(_POOL_BYTES), 0
        _pools.bytes = pool
    _pools.at = at + 10
    return int.from_bytes(pool[at : at + 10], "big")


def new_id(prefix: str) -> str:
    """A ULID-shaped id: 48 bits of milliseconds then 80 random bits, after `prefix_`."""
    value = (time.time_ns() // 1_000_000) << 80 | _random80()
    return prefix + "_" + "".join([_PAIRS[(value >> shift) & 0x3FF] for shift in _SHIFTS])
