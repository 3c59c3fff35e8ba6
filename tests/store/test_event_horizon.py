"""A stream's horizon: it stops at a missing cursor until the grace runs out."""

from __future__ import annotations

from switchboard.server.domain.event_stream import GAP_GRACE_S, Horizon


def test_contiguous_cursors_settle() -> None:
    horizon = Horizon(settled=10)
    horizon.advance([11, 12, 13], now=0.0)
    assert horizon.settled == 13


def test_a_missing_cursor_holds_the_horizon_until_the_grace_runs_out() -> None:
    horizon = Horizon(settled=10)
    horizon.advance([11, 13, 14], now=100.0)  # 12 is still in an open transaction
    assert horizon.settled == 11
    horizon.advance([13, 14], now=100.0 + GAP_GRACE_S / 2)
    assert horizon.settled == 11
    horizon.advance([12, 13, 14], now=100.0 + GAP_GRACE_S / 2)  # it committed
    assert horizon.settled == 14
    assert horizon.missing_since == {}


def test_a_cursor_that_never_comes_is_skipped_after_the_grace() -> None:
    horizon = Horizon(settled=0)
    horizon.advance([2], now=5.0)  # 1 rolled back
    assert horizon.settled == 0
    horizon.advance([2, 3], now=5.0 + GAP_GRACE_S)
    assert horizon.settled == 3
