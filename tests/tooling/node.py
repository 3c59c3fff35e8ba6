"""Paths to the Node.js tools that `make test` installs (buf through npx, the Node example)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROTOS = ROOT / "protos"
BUF = ROOT / "node_modules" / ".bin" / "buf"


def require_buf() -> Path:
    """The buf binary from node_modules; skips (with the reason) when it is not installed."""
    if not BUF.exists():
        pytest.skip("buf is not installed: run `make test` (it runs npm install first)")
    return BUF


def require_node() -> str:
    """The `node` executable; skips when Node.js is not on PATH."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("Node.js is not on PATH")
    return node
