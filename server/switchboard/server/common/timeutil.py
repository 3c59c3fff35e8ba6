"""Time in one unit: integer microseconds since the epoch, UTC."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from google.protobuf.timestamp_pb2 import Timestamp


def now_us() -> int:
    """The current time in microseconds."""
    return time.time_ns() // 1000


def to_us(ts: Timestamp) -> int:
    """A Timestamp in microseconds (sub-microsecond precision is dropped)."""
    return int(ts.seconds) * 1_000_000 + int(ts.nanos) // 1000


def set_ts(ts: Timestamp, us: int) -> None:
    """Write microseconds into a Timestamp field."""
    ts.FromMicroseconds(us)


def to_datetime(us: int) -> datetime:
    """Microseconds as an aware UTC datetime."""
    return datetime.fromtimestamp(us / 1_000_000, tz=UTC)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def from_datetime(at: datetime) -> int:
    """A datetime in microseconds, exactly (no float); a time without an offset is UTC."""
    aware = at if at.tzinfo is not None else at.replace(tzinfo=UTC)
    return (aware - _EPOCH) // _MICROSECOND


def iso(us: int) -> str:
    """Microseconds as RFC 3339 text, or '' for zero."""
    return to_datetime(us).isoformat().replace("+00:00", "Z") if us else ""
