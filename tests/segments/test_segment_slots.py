"""The snapshot's id-to-slot index: binary search over the in-order ids, a dict for the rest."""

from __future__ import annotations

import random

from switchboard.server.domain.segment_slots import SlotIndex


def test_slots_follow_appends_in_and_out_of_order() -> None:
    rng = random.Random(5)
    index = SlotIndex()
    ordered = sorted(f"c{rng.randrange(10**9):09d}" for _ in range(3000))
    ordered = list(dict.fromkeys(ordered))
    index.append(ordered[:2000])
    assert index.all_ordered()
    # Later ids: some in order, some below what is held, one longer than any before, unicode.
    late = [*ordered[2000:2500], "a-early", "c" + "9" * 40, "zé東", *ordered[2500:]]
    index.append(late)
    assert not index.all_ordered()
    every = ordered[:2000] + late
    for slot, cid in enumerate(every):
        assert index.slot(cid) == slot
        assert index.id_at(slot) == cid
    probe = [*rng.sample(every, 300), "missing", "c" + "9" * 41, "c00"]
    held, slots = index.slots(probe)
    assert held == [c for c in probe if c in set(every)]
    assert [index.id_at(s) for s in slots.tolist()] == held
    assert "missing" not in index
    assert len(index) == len(every)


def test_first_after_is_the_cursor_position() -> None:
    index = SlotIndex()
    index.append(["c1", "c3", "c5"])
    assert [index.first_after(a) for a in ("", "c1", "c2", "c5", "c9")] == [0, 1, 1, 3, 3]
    index.trim(0)
    assert index.nbytes() == 3 * 2
