"""Wake-up datagrams between api and dispatch processes (here: two ends in one process)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from pathlib import Path

from switchboard.server.dispatch.nudges import Nudges, nudge_directory


async def _until(condition: Callable[[], object], timeout_s: float = 2.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not condition():  # noqa: ASYNC110 - the datagram arrives through the loop's reader
            await asyncio.sleep(0.001)


def _ends(directory: Path) -> tuple[Nudges, Nudges, list[str], list[list[str]]]:
    woken: list[str] = []
    runs: list[list[str]] = []
    api = Nudges(directory, "api", on_runs=runs.append)
    # Both ends live in this process: give the dispatch end a name of its own.
    dispatch = Nudges(directory, "dispatch", on_outbox=lambda: woken.append("outbox"))
    dispatch._path = directory / "dispatch-other.sock"
    return api, dispatch, woken, runs


async def test_commits_in_an_api_process_wake_the_dispatcher_once_per_loop_turn(
    tmp_path: Path,
) -> None:
    api, dispatch, woken, _ = _ends(tmp_path / "n")
    dispatch.open()
    api.open()
    try:
        for _ in range(50):  # one loop turn: one datagram
            api.outbox_changed()
        await _until(lambda: woken)
        await asyncio.sleep(0.05)
    finally:
        api.close()
        dispatch.close()
    assert woken == ["outbox"]


async def test_run_changes_reach_the_api_process_by_id(tmp_path: Path) -> None:
    api, dispatch, _, runs = _ends(tmp_path / "n")
    api.open()
    dispatch.open()
    try:
        for run_id in ("r1", "r2", "r1"):
            dispatch.run_changed(run_id)
        await _until(lambda: runs)
    finally:
        api.close()
        dispatch.close()
    assert runs == [["r1", "r2"]]


async def test_a_dead_processes_socket_is_removed_by_the_first_sender(tmp_path: Path) -> None:
    directory = tmp_path / "n"
    api, _, _, _ = _ends(directory)
    api.open()
    stale = directory / "dispatch-999999.sock"
    orphan = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    orphan.bind(str(stale))
    orphan.close()  # bound, then closed without unlinking: what a killed process leaves
    try:
        api.outbox_changed()
        await asyncio.sleep(0.05)
    finally:
        api.close()
    assert not stale.exists()
    assert not api.path.exists()  # close removes this process's own socket


def test_the_directory_is_short_and_the_same_for_one_store(tmp_path: Path) -> None:
    first = nudge_directory("/data/switchboard.db")
    assert first == nudge_directory("/data/switchboard.db")
    assert first != nudge_directory("/data/other.db")
    assert len(str(first / "dispatch-4194304.sock")) < 108
