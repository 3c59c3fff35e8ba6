"""`python -m bench.admission`: the admission bound engages under overload, and only then."""

from __future__ import annotations

from bench.admission import trial


async def test_overload_is_refused_and_light_load_is_not() -> None:
    over = await trial(0.2, 2.0)  # imports at three times what the writer drains
    light = await trial(0.2, 2.0, arrive_s=0.2)  # a third of it

    assert over["admitted"] > 0
    assert over["refused"] > 0
    assert light["refused"] == 0
    assert light["admitted"] >= 8
