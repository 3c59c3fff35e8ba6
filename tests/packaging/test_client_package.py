"""`pip install ./client` in a fresh virtual environment gives a working client and CLI.

The install resolves the client's real dependencies from the package index, and the test
checks that none of the server's (pydantic, uvloop, aiohttp, the server package) came along.
"""

from __future__ import annotations

import shutil
import subprocess
import venv
from pathlib import Path

import pytest

CLIENT_ROOT = Path(__file__).resolve().parents[2] / "client"
_CHECK = """
import importlib.util, sys
import switchboard.client
from switchboard.client import Switchboard, SyncSwitchboard
from switchboard.client.testing import FakeSwitchboard
from switchboard.v1 import contacts_pb2
absent = ["pydantic", "uvloop", "aiohttp", "switchboard.server", "grpc_status"]
present = [name for name in absent if importlib.util.find_spec(name) is not None]
print("present:", present)
sys.exit(1 if present else 0)
"""


def _run(*argv: str | Path, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in argv], capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_client_installs_alone_with_its_commands(tmp_path: Path) -> None:
    source = tmp_path / "client"
    shutil.copytree(CLIENT_ROOT, source, ignore=shutil.ignore_patterns("__pycache__"))
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    bin_dir = env_dir / "bin"

    installed = _run(
        bin_dir / "python", "-m", "pip", "install", "-q", "--disable-pip-version-check",
        source, timeout=540,
    )  # fmt: skip
    assert installed.returncode == 0, installed.stderr

    imports = _run(bin_dir / "python", "-c", _CHECK, timeout=60)
    assert imports.returncode == 0, imports.stdout + imports.stderr
    helped = _run(bin_dir / "switchboard", "--help", timeout=60)
    assert helped.returncode == 0, helped.stderr
    for command in ("contacts", "leads", "trigger", "runs", "triggers", "connectors"):
        assert f"  {command} " in helped.stdout, helped.stdout
    assert "serve" not in helped.stdout  # the server's command comes only with the server
