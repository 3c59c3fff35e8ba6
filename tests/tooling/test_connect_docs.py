"""Every curl command in docs/connect.md's `sh curl` blocks, run against `serve --local`."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.tooling.live import CONNECT_PORT, LOCAL_KEY, live_server
from tests.tooling.node import ROOT

PAGE = ROOT / "docs" / "connect.md"
DOC_BASE = "http://localhost:50052"
_BLOCK = re.compile(r"^```sh curl\n(.*?)^```", re.DOTALL | re.MULTILINE)

Check = Callable[[dict[str, Any]], bool]
# (method called, HTTP status, what the answer holds), in page order.
EXPECTED: list[tuple[str, int, Check]] = [
    ("ContactSync/UpsertContact", 200, lambda b: b["contact"]["email"] == "ada@example.com"),
    ("ContactSync/GetContact", 200, lambda b: b["contact"]["firstName"] == "Ada"),
    ("LeadScoring/ScoreLead", 200, lambda b: b["lead"]["grade"].startswith("LEAD_GRADE_")),
    ("CampaignTriggers/TriggerCampaign", 200, lambda b: b["run"]["id"].startswith("r_")),
    ("Connectors/ListConnectors", 200, lambda b: len(b["connectors"]) > 1),
    (
        "ContactSync/UpsertContact",
        400,
        lambda b: (
            b["code"] == "invalid_argument" and b["details"][0]["type"] == "google.rpc.BadRequest"
        ),
    ),
    ("ContactSync/GetContact", 401, lambda b: b["code"] == "unauthenticated"),
]


def page_commands(text: str) -> list[list[str]]:
    """The curl commands of every `sh curl` block, as argument lists."""
    commands = []
    for block in _BLOCK.findall(text):
        joined = block.replace("\\\n", " ")
        commands += [shlex.split(line) for line in joined.splitlines() if line.strip()]
    return commands


def test_every_example_has_an_expectation() -> None:
    commands = page_commands(PAGE.read_text())
    assert [c[-1].removeprefix(DOC_BASE + "/switchboard.v1.") for c in commands] == [
        e[0] for e in EXPECTED
    ]


def test_the_curl_examples_work_against_a_local_server(tmp_path: Path) -> None:
    curl = shutil.which("curl")
    if curl is None:
        pytest.skip("curl is not on PATH")
    answers = []
    with live_server(tmp_path / "switchboard.db"):
        base = f"http://127.0.0.1:{CONNECT_PORT[0]}"
        for argv in page_commands(PAGE.read_text()):
            argv = [a.replace("$KEY", LOCAL_KEY[0]).replace(DOC_BASE, base) for a in argv]
            assert argv[0] == "curl"
            done = subprocess.run(
                [curl, "-w", "\n%{http_code}", *argv[1:]],
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            )
            assert done.returncode == 0, done.stderr
            body, _, status = done.stdout.rpartition("\n")
            answers.append((int(status), json.loads(body)))
    for (method, status, check), (got_status, got) in zip(EXPECTED, answers, strict=True):
        assert got_status == status, (method, got)
        assert check(got), (method, got)
