"""Identifiers: a prefix plus 26 Crockford base-32 characters, sortable by creation time."""

from __future__ import annotations

import os
import time

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
# Two characters per 10-bit chunk: 13 lookups instead of 26 divisions (ids are made on
# every create, and imports create tens of thousands a second).
_PAIRS = [a + b for a in _ALPHABET for b in _ALPHABET]


def new_id(prefix: str) -> str:
    """A ULID-shaped id: 48 bits of milliseconds then 80 random bits, after `prefix_`."""
    value = (time.time_ns() // 1_000_000) << 80 | int.from_bytes(os.urandom(10), "big")
    return prefix + "_" + "".join(_PAIRS[(value >> shift) & 0x3FF] for shift in _SHIFTS)


_SHIFTS = tuple(range(120, -1, -10))
