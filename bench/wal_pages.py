"""Pages an imported row writes to the WAL, by table and index, on a fresh or grown file.

`python -m bench.wal_pages [grow_rounds] [space] [measure_rows]` starts `switchboard
serve --workers 1` (the bench configuration, contact sync on), imports `space` contacts,
re-imports them all with a changed name `grow_rounds` times (each contact then has that
many changes, runs and events behind it, as in a long soak), and then imports
`measure_rows` changed rows in calls of 100, like the soak's ImportContacts.

While the measured rows are written, a read transaction held open keeps the WAL from being
reset, so every frame they (and their sync runs' delivery) wrote is still in it. Each
frame's page is matched to the table or index that owns it (`dbstat`). A page's cost is
not only its 4 KB of log: the checkpointer copies it into the database file again, and a
commit waits for the log's fsync, so pages per row is what grows the write tail as the
file grows (docs/performance.md, "Tenth pass").
"""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
import struct
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from bench.targets import BENCH_CONFIG, BENCH_ENV, SERVER_CORES, Target, free_port, serve_argv
from switchboard.client import ContactFields, Switchboard

_WAL_HEADER = 32
_FRAME_HEADER = 24


def wal_frames(wal: bytes) -> list[tuple[int, bool]]:
    """(page number, is a commit) of each valid frame of a WAL file's bytes, in order.

    A frame is valid while its salts equal the header's: frames left from before the log
    was last reset carry older salts (checksums are not checked: the log is read after its
    writer's COMMITs returned).
    """
    if len(wal) < _WAL_HEADER:
        return []
    page_size, _, salt1, salt2 = struct.unpack(">IIII", wal[8:24])
    out: list[tuple[int, bool]] = []
    at = _WAL_HEADER
    while at + _FRAME_HEADER + page_size <= len(wal):
        page, db_pages, s1, s2 = struct.unpack(">IIII", wal[at : at + 16])
        if (s1, s2) != (salt1, salt2):
            break
        out.append((page, db_pages != 0))
        at += _FRAME_HEADER + page_size
    return out


def _rows(start: int, count: int, space: int, name: str) -> list[ContactFields]:
    return [
        {"email": f"soak-import-{i % space:06d}@example.com", "first_name": name, "lists": ["soak"]}
        for i in range(start, start + count)
    ]


async def _import(port: int, rows: int, space: int, name: str, per_call: int) -> None:
    async with Switchboard(f"127.0.0.1:{port}", timeout=None) as sb:
        for start in range(0, rows, per_call):
            summary = await sb.contacts.import_([_rows(start, per_call, space, name)])
            if summary.failed:
                raise RuntimeError(f"import went wrong: {summary}")


_ATTEMPTS = 5


def _measured_frames(
    port: int, db: Path, wal: Path, rows: int, space: int, attempt: int
) -> list[tuple[int, bool]] | None:
    """The frames the measured rows wrote; None when the log was reset meanwhile.

    A reader that starts while every frame is already copied into the database reads none
    of the log, and then does not stop the writer from starting it over. So a one-row
    import comes first, and the reader starts at once after it, most likely before the
    checkpointer (every 0.2 s) copied that frame; a reset is seen by the log's new salts.
    """
    asyncio.run(_import(port, 1, space, f"Nudge{attempt}", per_call=1))
    reader = sqlite3.connect(db)
    try:
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM contacts").fetchone()
        log = wal.read_bytes()
        before = len(wal_frames(log))
        asyncio.run(_import(port, rows, space, f"Measured{attempt}", per_call=100))
        time.sleep(2)  # their chunk runs delivered
        after = wal.read_bytes()
        if after[16:24] != log[16:24]:
            return None
        return wal_frames(after)[before:]
    finally:
        reader.rollback()
        reader.close()


def measure(workdir: Path, grow: int, space: int, rows: int) -> dict[str, object]:
    """{file_mb, frames, commits, pages_per_row, by_owner: {table or index: pages per row}}."""
    config = workdir / "wal_pages.toml"
    config.write_text(BENCH_CONFIG)
    db = workdir / "wal_pages.db"
    wal = Path(f"{db}-wal")
    port = free_port()
    env = {"SWITCHBOARD_DATABASE__PATH": str(db), **BENCH_ENV}
    target = Target("wal_pages", serve_argv(config, port, 1), port, env, cores=SERVER_CORES)
    try:
        target.wait_listening()
        for round_ in range(grow + 1):
            asyncio.run(_import(port, space, space, f"G{round_}", per_call=1000))
        time.sleep(2)  # the last chunk runs delivered
        for attempt in range(_ATTEMPTS):
            frames = _measured_frames(port, db, wal, rows, space, attempt)
            if frames is not None:
                break
        else:
            raise RuntimeError(f"the log was reset under the reader {_ATTEMPTS} times")
        shutil.copy(db, workdir / "copy.db")
        shutil.copy(wal, workdir / "copy.db-wal")
    finally:
        target.stop()
    copy = sqlite3.connect(workdir / "copy.db")
    owner = {page: name for name, page in copy.execute("SELECT name, pageno FROM dbstat")}
    file_mb = (workdir / "copy.db").stat().st_size / 1e6
    copy.close()
    counts = Counter(owner.get(page, "(free list or overflow)") for page, _ in frames)
    return {
        "file_mb": round(file_mb),
        "frames": len(frames),
        "commits": sum(1 for _, commit in frames if commit),
        "pages_per_row": round(len(frames) / rows, 2),
        "by_owner": {name: round(n / rows, 3) for name, n in counts.most_common()},
    }


def main() -> None:
    grow = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    space = int(sys.argv[2]) if len(sys.argv) > 2 else 20_000
    rows = int(sys.argv[3]) if len(sys.argv) > 3 else 5_000
    with tempfile.TemporaryDirectory(prefix="switchboard-wal-pages-") as tmp:
        result = measure(Path(tmp), grow, space, rows)
    print(
        f"{space} contacts changed {grow + 1} times before, file {result['file_mb']} MB: "
        f"{result['frames']} pages in {result['commits']} commits for {rows} rows, "
        f"{result['pages_per_row']} pages per row"
    )
    by_owner = result["by_owner"]
    assert isinstance(by_owner, dict)
    for name, per_row in by_owner.items():
        if per_row >= 0.01:
            print(f"  {name:34} {per_row:6.3f}")


if __name__ == "__main__":
    main()
