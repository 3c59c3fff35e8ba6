"""A 100,000-row CSV imports with steady memory: the file is streamed, never held whole.

The import runs in a child process that reports its own peak resident set size. Its peak
for 100,000 rows is compared with its peak for 1,000 rows: holding the rows would add
well over 100 MB (a contact dict and message per row), streaming adds a few MB at most.
"""

from __future__ import annotations

import csv
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.tooling.live import LOCAL_KEY

_PEAK = re.compile(r"peak_rss_kb=(\d+)")
_WRAPPER = """
import resource, sys
from switchboard.client.cli import main
try:
    main(sys.argv[1:], prog_name="switchboard")
finally:
    print(f"peak_rss_kb={resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}", file=sys.stderr)
"""
MAX_GROWTH_KB = 20 * 1024


def _write_csv(path: Path, rows: int, prefix: str) -> Path:
    with path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["email", "first_name", "company", "opt_in", "lists", "segment"])
        for i in range(rows):
            writer.writerow([f"{prefix}{i}@example.com", f"N{i}", "Acme", "yes", "news", i % 7])
    return path


def _import(target: str, path: Path) -> tuple[str, int]:
    [key] = LOCAL_KEY
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            _WRAPPER,
            "contacts",
            "import",
            str(path),
            "--target",
            target,
            "--api-key",
            key,
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    match = _PEAK.search(done.stderr)
    assert match, done.stderr
    return done.stdout, int(match.group(1))


# What is measured is the client's memory, not speed: the server delivers the imported
# contacts to the sandbox CRM while the import runs, and on a busy machine 100,000 rows can
# take longer than the suite's default 120 s (each import has its own 300 s bound).
@pytest.mark.timeout(600)
def test_large_import_has_steady_memory(target: str, tmp_path: Path) -> None:
    small = _write_csv(tmp_path / "small.csv", 1_000, "small")
    large = _write_csv(tmp_path / "large.csv", 100_000, "large")

    _, small_peak = _import(target, small)
    summary, large_peak = _import(target, large)

    assert "100000 rows read, 100000 sent: 100000 created" in summary
    assert large_peak - small_peak < MAX_GROWTH_KB, (small_peak, large_peak)
