"""Ids are unique, sortable by time, and never repeat across forked workers."""

from __future__ import annotations

import os

from switchboard.server.common.ids import new_id


def test_ids_are_unique_and_well_formed() -> None:
    made = [new_id("c") for _ in range(20_000)]  # spans several random-bit blocks
    assert len(set(made)) == len(made)
    assert all(len(i) == 28 and i.startswith("c_") for i in made)


def test_a_forked_child_does_not_reuse_the_parents_random_bits() -> None:
    new_id("c")  # the parent now holds a block of random bytes
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its next id and leave at once
        os.write(write_end, new_id("c").encode())
        os._exit(0)
    os.close(write_end)
    _, status = os.waitpid(pid, 0)
    child = os.read(read_end, 64).decode()
    os.close(read_end)
    parent = new_id("c")
    assert status == 0
    # the last 16 characters are 80 random bits: with a shared block they would be equal
    assert child[-16:] != parent[-16:]
