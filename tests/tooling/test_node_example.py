"""examples/node/client.js against a live server: upsert, score, trigger and watch a run."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from switchboard.server.auth.local_key import local_key_path
from tests.tooling.live import CLIENT_HEADERS, live_server
from tests.tooling.node import ROOT, require_node

EXAMPLE = ROOT / "examples" / "node"


def _run_example(
    port: int, *args: str, key_file: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run client.js; with `key_file`, the key comes from that file as with `make run`
    (SWITCHBOARD_API_KEY unset), else from SWITCHBOARD_API_KEY."""
    node = require_node()
    if not (EXAMPLE / "node_modules" / "@grpc" / "grpc-js").exists():
        pytest.skip("examples/node is not installed: run `make test` (it runs npm ci there)")
    env = {**os.environ, "SWITCHBOARD_TARGET": f"127.0.0.1:{port}"}
    env.pop("SWITCHBOARD_API_KEY", None)
    if key_file is not None:
        env["SWITCHBOARD_API_KEY_FILE"] = str(key_file)
        return _node(node, env, args)
    for header in CLIENT_HEADERS:  # an API key, once the server requires one
        name, _, value = header.partition(":")
        if name.strip().lower() == "authorization":
            env["SWITCHBOARD_API_KEY"] = value.strip().removeprefix("Bearer ").strip()
    return _node(node, env, args)


def _node(
    node: str, env: dict[str, str], args: tuple[str, ...]
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [node, "client.js", *args],
        cwd=EXAMPLE,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_node_client_runs_the_whole_flow(tmp_path: Path) -> None:
    with live_server(tmp_path / "switchboard.db") as port:
        first = _run_example(port, "node@example.com")
        again = _run_example(port, "node@example.com")

    assert first.returncode == 0, first.stdout + first.stderr
    lines = first.stdout.splitlines()
    assert re.fullmatch(r"contact c_\w{26} created \(version 1\)", lines[0])
    assert re.fullmatch(r"lead score \d+ grade LEAD_GRADE_[A-D]", lines[1])
    run_id = re.fullmatch(r"run (r_\w{26}) started", lines[2])
    assert run_id
    watched = [line for line in lines[3:] if line.startswith(f"run {run_id.group(1)} ")]
    assert watched, "WatchRun printed nothing"
    assert watched[-1].startswith(f"run {run_id.group(1)} RUN_STATUS_SUCCEEDED [crm:SUCCEEDED")
    assert again.returncode == 0, again.stderr
    assert " updated (version " in again.stdout.splitlines()[0]  # found by email, not new


def test_node_client_reports_a_bad_request_in_one_line(tmp_path: Path) -> None:
    with live_server(tmp_path / "switchboard.db") as port:
        result = _run_example(port, "not-an-email")

    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.startswith("error: INVALID_ARGUMENT: ")
    assert "contact.email" in result.stderr


def test_the_readme_steps_work_with_the_key_make_run_wrote(tmp_path: Path) -> None:
    db = tmp_path / "switchboard.db"
    with live_server(db) as port:
        result = _run_example(port, "readme@example.com", key_file=local_key_path(str(db)))

    assert result.returncode == 0, result.stdout + result.stderr
    assert f"using the development key in {local_key_path(str(db))}" in result.stderr
    assert " RUN_STATUS_SUCCEEDED [" in result.stdout.splitlines()[-1]


def test_without_a_key_the_error_names_the_variable(tmp_path: Path) -> None:
    with live_server(tmp_path / "switchboard.db") as port:
        result = _run_example(port, "nokey@example.com", key_file=tmp_path / "missing-key")

    assert result.returncode == 1
    assert result.stderr.startswith("error: UNAUTHENTICATED: missing credentials")
    assert "SWITCHBOARD_API_KEY" in result.stderr
