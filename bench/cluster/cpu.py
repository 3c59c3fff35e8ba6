"""CPU time spent by each part of the cluster, to say where a call's cost goes."""

from __future__ import annotations

import psutil


def _tree_seconds(pid: int, children: bool) -> float:
    """User + system CPU seconds of a process and, with `children`, its live children
    (PostgreSQL backends, the nginx worker)."""
    try:
        root = psutil.Process(pid)
        procs = [root, *(root.children(recursive=True) if children else ())]
    except psutil.NoSuchProcess:
        return 0.0
    total = 0.0
    for proc in procs:
        try:
            times = proc.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def sample(parts: dict[str, list[int]], alone: str = "driver") -> dict[str, float]:
    """CPU seconds so far of each named part (a list of root pids); the part named `alone`
    (the load driver, parent of every other part) is counted without its children."""
    return {
        name: sum(_tree_seconds(pid, children=name != alone) for pid in pids)
        for name, pids in parts.items()
    }


def spent(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """CPU seconds each part spent between two samples."""
    return {name: max(0.0, after[name] - before.get(name, 0.0)) for name in after}
