"""`switchboard leads|trigger|runs|connectors`, help, exit codes and one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from switchboard.client.cli import main
from tests.cli.conftest import Invoke


def _all_commands(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = [prefix]
    ctx = click.Context(group)
    # list_commands/get_command, not `.commands`: `serve` joins through an entry point.
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        if isinstance(command, click.Group):
            found += _all_commands(command, (*prefix, name))
        else:
            found.append((*prefix, name))
    return found


@pytest.mark.parametrize(
    "path", [pytest.param(p, id=" ".join(p) or "switchboard") for p in _all_commands(main)]
)
def test_every_command_has_help(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(main, [*path, "--help"])
    assert result.exit_code == 0
    assert result.stdout.startswith("Usage: ")


def test_all_issue_commands_exist() -> None:
    commands = {" ".join(p) for p in _all_commands(main)}
    expected = {
        "serve", "contacts import", "contacts export", "leads score", "trigger", "runs watch",
        "connectors list", "dead-letters list", "dead-letters redrive", "contacts get",
        "runs list", "triggers list",
    }  # fmt: skip
    assert expected <= commands


def test_leads_score_prints_grade_and_reasons(invoke: Invoke) -> None:
    invoke("trigger", "newsletter.signup", "--contact", "kim@example.com", "--wait")

    text = invoke("leads", "score", "kim@example.com")
    data = invoke("leads", "score", "kim@example.com", "--json")

    assert text.exit_code == 0, text.output
    assert text.stdout.startswith("kim@example.com: score ")
    assert "profile.email" in text.stdout
    lead = json.loads(data.stdout)
    assert lead["contact_id"].startswith("c_")
    assert f"score {lead.get('score', 0)}," in text.stdout


def test_trigger_wait_exit_code_follows_the_run(invoke: Invoke, tmp_path: Path) -> None:
    source = tmp_path / "one.jsonl"
    source.write_text('{"email": "opt@example.com", "opt_in": true}\n')
    ok = invoke("contacts", "import", source)
    assert ok.exit_code == 0, ok.output

    succeeded = invoke("trigger", "newsletter.signup", "--contact", "opt@example.com", "--wait")
    # No consent: the marketing steps are skipped, a normal outcome.
    skipped = invoke("trigger", "newsletter.signup", "--contact", "no@example.com", "--wait")
    # No order id: the CRM refuses the purchase permanently, so the run fails.
    failed = invoke("trigger", "purchase.completed", "--contact", "no@example.com", "--wait")

    assert succeeded.exit_code == 0, succeeded.output
    assert " succeeded" in succeeded.stdout.splitlines()[0]
    assert skipped.exit_code == 0, skipped.output
    assert "esp lists.subscribe: skipped (no consent for email_marketing)" in skipped.stdout
    assert failed.exit_code == 5, failed.output
    assert "crm purchases.record: failed (permanent:" in failed.stdout


def test_runs_watch_streams_until_the_run_ends(invoke: Invoke) -> None:
    started = invoke(
        "trigger", "purchase.completed", "--contact", "buyer@example.com",
        "--attr", "order_id=o-1", "--attr", "sku=SKU-1", "--attr", "amount=19.9", "--json",
    )  # fmt: skip
    assert started.exit_code == 0, started.output
    run = json.loads(started.stdout)
    assert run["attributes"]["amount"] == 19.9  # --attr values are JSON when they parse
    run_id = run["id"]

    watched = invoke("runs", "watch", run_id, "--json")

    runs = [json.loads(line) for line in watched.stdout.splitlines()]
    assert {run["id"] for run in runs} == {run_id}
    assert runs[-1]["status"] == "RUN_STATUS_SUCCEEDED", watched.output
    assert watched.exit_code == 0


def test_connectors_list(invoke: Invoke) -> None:
    result = invoke("connectors", "list", "--json")
    names = {json.loads(line)["name"] for line in result.stdout.splitlines()}
    assert {"crm", "esp", "fake"} <= names


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        pytest.param(("leads", "score", "ghost@example.com"), 1, "Error: NOT_FOUND: ", id="server"),
        pytest.param(("trigger", "no.such", "--contact", "a@b.io"), 1, "NOT_FOUND", id="event"),
        pytest.param(("runs", "watch", "r_" + "0" * 26), 1, "Error: NOT_FOUND: ", id="watch"),
        pytest.param(
            ("connectors", "list", "--target", "127.0.0.1:9", "--timeout", "2"),
            4,
            "Error: UNAVAILABLE: ",
            id="unreachable",
        ),
        pytest.param(("contacts", "import", "nope.csv"), 2, "does not exist", id="no-file"),
        pytest.param(
            ("trigger", "x", "--attr", "novalue", "--contact", "a@b.io"), 2, "KEY=VALUE", id="attr"
        ),
        pytest.param(("leads", "score"), 2, "Missing argument", id="usage"),
    ],
)
def test_errors_are_one_line_with_a_stable_exit_code(
    invoke: Invoke, args: tuple[str, ...], code: int, message: str
) -> None:
    result = invoke(*args)
    assert result.exit_code == code, result.output
    assert isinstance(result.exception, SystemExit)  # not an unexpected exception
    assert message in result.stderr
    assert "Traceback" not in result.output
    if code != 2:  # usage errors add the usage line, as click does
        assert len(result.stderr.strip().splitlines()) == 1


def test_bad_map_is_a_usage_error(invoke: Invoke, tmp_path: Path) -> None:
    source = tmp_path / "x.csv"
    source.write_text("x\n1\n")
    result = invoke("contacts", "import", source, "--map", "x=nothing")
    assert result.exit_code == 2
    assert "unknown field 'nothing'" in result.stderr


def test_dead_letters_list_and_redrive(invoke: Invoke) -> None:
    # No order id: the CRM refuses for good and the step becomes a dead letter.
    failed = invoke("trigger", "purchase.completed", "--contact", "dl@example.com", "--wait")
    assert failed.exit_code == 5, failed.output

    listed = invoke("dead-letters", "list", "--connector", "crm", "--json")
    assert listed.exit_code == 0, listed.output
    letters = [json.loads(line) for line in listed.stdout.splitlines()]
    assert letters
    assert all(letter["connector"] == "crm" for letter in letters)
    assert any("order_id" in letter["last_error"] for letter in letters)

    usage = invoke("dead-letters", "redrive")
    assert usage.exit_code == 2
    assert "exactly one" in usage.output

    redriven = invoke("dead-letters", "redrive", letters[0]["id"])
    assert redriven.exit_code == 0, redriven.output
    assert redriven.stdout.startswith(letters[0]["id"])
    assert "redriven: 1" in redriven.stderr


def test_server_commands_join_through_entry_points() -> None:
    from switchboard.server import cli as server_cli

    ctx = click.Context(main)

    assert "serve" not in main.commands  # not built into the client's group
    assert main.get_command(ctx, "serve") is server_cli.serve
    assert main.get_command(ctx, "new-api-key") is server_cli.new_api_key
    assert main.get_command(ctx, "no-such-command") is None


def test_contacts_get_by_email_and_id(invoke: Invoke) -> None:
    invoke("trigger", "newsletter.signup", "--contact", "getme@example.com", "--wait")

    text = invoke("contacts", "get", "getme@example.com")
    data = json.loads(invoke("contacts", "get", "getme@example.com", "--json").stdout)
    by_id = invoke("contacts", "get", data["id"], "--json")

    assert text.exit_code == 0, text.output
    assert f"id: {data['id']}" in text.stdout
    assert "email: getme@example.com" in text.stdout
    assert json.loads(by_id.stdout)["email"] == "getme@example.com"
    missing = invoke("contacts", "get", "nobody-here@example.com")
    assert missing.exit_code == 1
    assert "NOT_FOUND" in missing.stderr


def test_runs_list_filters_and_limits(invoke: Invoke) -> None:
    buy = ("trigger", "purchase.completed", "--contact", "lister@example.com", "--wait")
    for order in ("o-1", "o-2"):
        invoke(*buy, "--attr", f"order_id={order}", "--attr", "sku=S", "--attr", "amount=1")
    invoke(*buy)  # no order_id: the CRM step fails for good, and so does the run

    two = invoke("runs", "list", "--contact", "lister@example.com", "--limit", "2", "--json")
    succeeded = invoke("runs", "list", "--contact", "lister@example.com", "--status", "succeeded")
    failed = invoke("runs", "list", "--contact", "lister@example.com", "--status", "failed")

    assert two.exit_code == 0, two.output
    runs = [json.loads(line) for line in two.stdout.splitlines()]
    assert len(runs) == 2
    assert {run["event"] for run in runs} == {"purchase.completed"}
    assert succeeded.stdout.count("purchase.completed succeeded") == 2
    assert failed.stdout.count("purchase.completed failed") == 1


def test_triggers_list_shows_the_steps(invoke: Invoke) -> None:
    every = invoke("triggers", "list")
    one = invoke("triggers", "list", "newsletter.signup", "--json")

    assert every.exit_code == 0, every.output
    assert "purchase.completed" in every.stdout
    assert "  0 crm contacts.upsert" in every.stdout
    [trigger] = [json.loads(line) for line in one.stdout.splitlines()]
    assert [step["connector"] for step in trigger["steps"]] == ["crm", "esp", "personalization"]


def test_a_local_target_uses_the_development_key_and_says_where(target: str, db_path: Path) -> None:
    env = {
        "SWITCHBOARD_TARGET": target,
        "SWITCHBOARD_API_KEY": None,
        "SWITCHBOARD_DATABASE__PATH": str(db_path),
    }

    found = CliRunner(env=env).invoke(main, ["connectors", "list"])
    elsewhere = CliRunner(env={**env, "SWITCHBOARD_DATABASE__PATH": str(db_path.parent / "x.db")})
    refused = elsewhere.invoke(main, ["connectors", "list"])

    assert found.exit_code == 0, found.output
    assert f"using the local development key from {db_path}.local-api-key" in found.stderr
    assert refused.exit_code == 1
    assert "UNAUTHENTICATED" in refused.stderr


@pytest.mark.parametrize(
    ("words", "expected"),
    [
        pytest.param("switchboard tri", {"trigger", "triggers"}, id="client-command"),
        pytest.param("switchboard ser", {"serve"}, id="server-command-via-entry-point"),
        pytest.param("switchboard runs list --status f", {"failed"}, id="choice"),
    ],
)
def test_shell_completion_as_documented(words: str, expected: set[str]) -> None:
    env = {
        "_SWITCHBOARD_COMPLETE": "bash_complete",
        "COMP_WORDS": words,
        "COMP_CWORD": str(len(words.split()) - 1),
    }

    result = CliRunner(env=env).invoke(main, [], prog_name="switchboard")

    offered = {line.partition(",")[2] for line in result.stdout.splitlines()}
    assert offered == expected, result.output
