"""The memo of ScoreLead inputs whose stored score holds: keys and bound."""

from __future__ import annotations

from switchboard.server.cache.steady_scores import SteadyScores


def test_the_key_is_a_short_digest_of_both_inputs() -> None:
    key = SteadyScores.digest(b"contact", b"state")
    assert len(key) == 16
    assert b"contact" not in key
    assert key == SteadyScores.digest(b"contact", b"state")
    assert key != SteadyScores.digest(b"contact", b"state2")
    assert key != SteadyScores.digest(b"contact2", b"state")
    # The same bytes split differently are different inputs.
    assert SteadyScores.digest(b"ab", b"c") != SteadyScores.digest(b"a", b"bc")


def test_the_oldest_digests_go_first_at_the_bound() -> None:
    steady = SteadyScores(max_digests=3)
    keys = [SteadyScores.digest(b"c%d" % i, b"s") for i in range(5)]
    for key in keys[:3]:
        steady.add(key)
    steady.add(keys[0])  # already held: nothing moves
    assert len(steady) == 3
    steady.add(keys[3])
    steady.add(keys[4])
    assert len(steady) == 3
    assert [steady.holds(k) for k in keys] == [False, False, True, True, True]
