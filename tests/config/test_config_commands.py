"""`switchboard config show` (secrets masked) and `switchboard config check FILE`."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from switchboard.client.cli import main
from switchboard.server.config.settings import Settings, load_settings
from switchboard.server.config.show import MASK
from tests.config.conftest import WriteToml

WEBHOOK_SECRET = "whsec_c2VjcmV0LXNpZ25pbmcta2V5LTAx"
INBOUND_SECRET = "whsec_aW5ib3VuZC1zaWduaW5nLWtleS0wMQ=="
SMTP_PASSWORD = "smtp-pa55word-xyzzy"
KEY_HASH = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
BEARER = "Bearer tok-4711-secret-header"
REDIS_PASSWORD = "redis-pa55-plugh"

SECRETS = f"""
[connectors.hook]
kind = "webhook"
[connectors.hook.options]
url = "https://hooks.example.com/in"
secret = "{WEBHOOK_SECRET}"
[connectors.hook.options.headers]
Authorization = "{BEARER}"

[connectors.esp.options.smtp]
host = "smtp.example.com"
port = 587
sender = "news@example.com"
username = "news"
password = "{SMTP_PASSWORD}"

[auth.callers.shop]
scopes = ["contacts:read"]
key_sha256 = ["{KEY_HASH}"]

[inbound.sources.forms]
secrets = ["{INBOUND_SECRET}"]

[cache]
redis_url = "redis://default:{REDIS_PASSWORD}@cache.example.com:6379/0"
"""


def run(*args: str | Path) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args])


def test_show_masks_every_secret(write_toml: WriteToml) -> None:
    result = run("config", "show", "--config", write_toml(SECRETS))
    assert result.exit_code == 0, result.output
    for secret in (WEBHOOK_SECRET, INBOUND_SECRET, SMTP_PASSWORD, KEY_HASH, BEARER, REDIS_PASSWORD):
        assert secret not in result.stdout
    shown = tomllib.loads(result.stdout)
    hook = shown["connectors"]["hook"]["options"]
    assert hook["secret"] == MASK
    assert hook["headers"]["Authorization"] == MASK
    assert hook["url"] == "https://hooks.example.com/in"  # not a secret: shown
    assert shown["connectors"]["esp"]["options"]["smtp"]["password"] == MASK
    assert shown["connectors"]["esp"]["options"]["smtp"]["username"] == "news"
    assert shown["auth"]["callers"]["shop"] == {"scopes": ["contacts:read"], "key_sha256": [MASK]}
    assert shown["inbound"]["sources"]["forms"]["secrets"] == [MASK]
    assert shown["cache"]["redis_url"] == f"redis://default:{MASK}@cache.example.com:6379/0"


def test_show_keeps_references_to_secrets(write_toml: WriteToml) -> None:
    text = SECRETS.replace(f'"{SMTP_PASSWORD}"', '"env:SMTP_PASSWORD"').replace(
        f'"{BEARER}"', '"file:/run/secrets/hook-token"'
    )
    shown = tomllib.loads(run("config", "show", "--config", write_toml(text)).stdout)
    assert shown["connectors"]["esp"]["options"]["smtp"]["password"] == "env:SMTP_PASSWORD"
    headers = shown["connectors"]["hook"]["options"]["headers"]
    assert headers["Authorization"] == "file:/run/secrets/hook-token"


def test_show_prints_what_serve_would_use(
    write_toml: WriteToml, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SWITCHBOARD_CACHE__TTL_S", "7")
    path = write_toml('[connectors.hook]\nkind = "fake"\n')
    result = run("config", "show", "--config", path)
    assert result.exit_code == 0, result.output
    # Read back as a file, the output gives the same settings (defaults and env included).
    assert tomllib.loads(result.stdout)["cache"]["ttl_s"] == 7.0
    path.write_text(result.stdout)
    monkeypatch.delenv("SWITCHBOARD_CACHE__TTL_S")
    assert load_settings(path) == load_settings(write_toml(result.stdout))
    assert load_settings(path).connectors["hook"].kind == "fake"
    assert load_settings(path).cache.ttl_s == 7.0


def test_show_without_a_file_prints_the_defaults() -> None:
    result = run("config", "show")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("# Effective settings: built-in defaults, then SWITCHBOARD_*")
    assert Settings.model_validate(tomllib.loads(result.stdout)) == Settings()


def test_show_with_an_invalid_file_lists_the_problems(write_toml: WriteToml) -> None:
    result = run("config", "show", "--config", write_toml("[cache]\nttl_s = 0\n"))
    assert result.exit_code == 2
    assert "cache.ttl_s: Input should be greater than 0" in result.stderr


def test_check_accepts_a_good_file(write_toml: WriteToml) -> None:
    path = write_toml(SECRETS)
    result = run("config", "check", path)
    assert result.exit_code == 0, result.output
    assert result.stdout == f"{path}: OK (9 connectors, 4 triggers)\n"


def test_check_lists_every_settings_problem_with_its_location(write_toml: WriteToml) -> None:
    text = """
listen = "nowhere"
[cache]
ttl_s = -1
[dispatch]
batchsize = 3
[[triggers."order.shipped".steps]]
connector = "crm"
"""
    path = write_toml(text)
    result = run("config", "check", path)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"{path}: 4 problem(s)",
        "  listen: must be host:port, e.g. localhost:50051 or [::]:50051",
        "  cache.ttl_s: Input should be greater than 0",
        "  dispatch.batchsize: Extra inputs are not permitted",
        '  triggers."order.shipped".steps[0]: a step needs a connector and an action, '
        "or a wait (not both)",
    ]


def test_check_builds_connectors_and_checks_actions(write_toml: WriteToml) -> None:
    text = """
[connectors.hook]
kind = "webhook"
options = { url = "ftp://example.com" }
[connectors.mail]
kind = "mailgun"
[[triggers."order.shipped".steps]]
connector = "crm"
action = "orders.ship"
[[triggers."order.hooked".steps]]
connector = "hook"
action = "webhook.post"
"""
    result = run("config", "check", write_toml(text))
    assert result.exit_code == 2
    lines = result.stderr.splitlines()
    assert lines[0].endswith(": 3 problem(s)")
    assert lines[1] == "  connectors.hook: connector 'hook': option 'url' must be an http(s) URL"
    assert lines[2].startswith("  connectors.mail: connector 'mail': unknown kind 'mailgun'")
    assert lines[3].startswith(
        "  triggers.\"order.shipped\": trigger 'order.shipped' step 0: connector 'crm' has no "
        "action 'orders.ship'"
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("[cache\n", "is not valid TOML", id="not-toml"),
        pytest.param("[connectors]\nnope = false\n", "connectors.nope = false removes", id="rm"),
    ],
)
def test_check_rejects_unusable_files(write_toml: WriteToml, text: str, message: str) -> None:
    result = run("config", "check", write_toml(text))
    assert result.exit_code == 2
    assert message in result.stderr


def test_check_of_a_missing_file(tmp_path: Path) -> None:
    result = run("config", "check", tmp_path / "absent.toml")
    assert result.exit_code == 2
    assert "cannot read config file" in result.stderr
    assert "No such file or directory" in result.stderr


def test_check_applies_the_environment_as_serve_would(
    write_toml: WriteToml, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_toml("[cache]\nttl_s = 5.0\n")
    assert run("config", "check", path).exit_code == 0
    monkeypatch.setenv("SWITCHBOARD_CACHE__TTL_S", "0")
    result = run("config", "check", path)
    assert result.exit_code == 2
    assert "cache.ttl_s: Input should be greater than 0" in result.stderr


def test_check_names_a_bad_step_condition(write_toml: WriteToml) -> None:
    text = """
[[triggers."order.placed".steps]]
connector = "crm"
action = "contacts.upsert"
[[triggers."order.placed".steps]]
connector = "esp"
action = "lists.subscribe"
when = 'attributes.amount > 100 && contact.plan == "pro"'
"""
    result = run("config", "check", write_toml(text))
    assert result.exit_code == 2
    lines = result.stderr.splitlines()
    assert lines[0].endswith(": 1 problem(s)")
    assert lines[1] == (
        "  triggers.\"order.placed\": trigger 'order.placed' step 1: when 'attributes.amount > "
        "100 && contact.plan == \"pro\"': unknown field 'contact.plan' at 1:28 (contact has: "
        "attributes, consents, country, email, external_ids, id, lists, opt_in)"
    )
