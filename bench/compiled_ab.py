"""A/B of a mypyc-compiled hot path: server CPU per call, compiled against pure Python.

`python -m bench.compiled_ab [module ...]` copies `server/` to a scratch directory, compiles
the named modules there with mypyc (default: `HOT_MODULES`), and starts two one-worker
servers on the server core: one on the working tree (pure Python), one with the compiled
copy first on PYTHONPATH. Each has its own seeded database. The cases then run in
alternation, round after round, and the figure compared is the CPU time of each server
process per call (psutil), which the other load on a shared machine barely moves.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.__main__ import py_load, seed, wait_idle
from bench.targets import (
    BENCH_CONFIG,
    BENCH_ENV,
    SERVER_CORES,
    Target,
    free_port,
    pin_load,
    serve_argv,
)

ROOT = Path(__file__).resolve().parent.parent
ROUNDS = int(os.environ.get("AB_ROUNDS", "3"))
KINDS = ("get_contact", "score_lead", "upsert_contact", "trigger_campaign")
# Pure modules on the per-call path of the four cases (see docs/performance.md).
HOT_MODULES = (
    "switchboard/server/rules/contacts.py",
    "switchboard/server/rules/validation.py",
    "switchboard/server/rules/consent.py",
    "switchboard/server/rules/scoring.py",
    "switchboard/server/rules/paging.py",
    "switchboard/server/cache/memory.py",
    "switchboard/server/common/ids.py",
    "switchboard/server/common/timeutil.py",
)


def build_compiled(scratch: Path, modules: tuple[str, ...]) -> Path:
    """A copy of server/ with `modules` compiled in place; returns its root."""
    root = scratch / "server"
    shutil.copytree(ROOT / "server", root, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", scratch / "pyproject.toml")
    subprocess.run(
        [sys.executable, "-m", "mypyc", *modules],
        cwd=root,
        env={**os.environ, "MYPYPATH": f"{ROOT / 'client'}:{root}"},
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return root


def start(name: str, workdir: Path, pythonpath: str | None) -> Target:
    config = workdir / "bench.toml"
    config.write_text(BENCH_CONFIG)
    env = {**BENCH_ENV, "SWITCHBOARD_DATABASE__PATH": str(workdir / f"{name}.db")}
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    port = free_port()
    target = Target(name, serve_argv(config, port, workers=1), port, env, cores=SERVER_CORES)
    target.wait_listening()
    return target


def main() -> None:
    modules = tuple(sys.argv[1:]) or HOT_MODULES
    pin_load()
    with tempfile.TemporaryDirectory(prefix="switchboard-ab-") as tmp:
        scratch = Path(tmp)
        prebuilt = os.environ.get("AB_COMPILED_ROOT")  # a copy compiled by an earlier run
        compiled_root = Path(prebuilt) if prebuilt else build_compiled(scratch, modules)
        targets = {
            "pure": start("pure", scratch, None),
            "compiled": start("compiled", scratch, str(compiled_root)),
        }
        try:
            for target in targets.values():
                asyncio.run(seed(target.port))
            cpu: dict[tuple[str, str], list[float]] = {}
            for round_ in range(ROUNDS):
                # Alternate which variant goes first, so a drift in machine load is shared.
                order = list(targets.items()) if round_ % 2 == 0 else list(targets.items())[::-1]
                for kind in KINDS:
                    for name, target in order:
                        result = py_load(
                            "bench.load_grpc", f"127.0.0.1:{target.port}", kind, 64, target
                        )
                        cpu.setdefault((kind, name), []).append(result["server_cpu_us_per_call"])
                        wait_idle(targets)
                        print(
                            f"round {round_ + 1} {kind} {name}: "
                            f"{result['server_cpu_us_per_call']:.0f} us/call",
                            file=sys.stderr,
                            flush=True,
                        )
        finally:
            for target in targets.values():
                target.stop()
    print(f"{'case':18} {'pure us':>9} {'compiled us':>12} {'change':>8}  rounds")
    for kind in KINDS:
        pure = statistics.median(cpu[(kind, "pure")])
        comp = statistics.median(cpu[(kind, "compiled")])
        rounds = " ".join(
            f"{p:.0f}/{c:.0f}"
            for p, c in zip(cpu[(kind, "pure")], cpu[(kind, "compiled")], strict=True)
        )
        print(f"{kind:18} {pure:9.0f} {comp:12.0f} {100 * (comp - pure) / pure:+7.1f}%  {rounds}")


if __name__ == "__main__":
    main()
