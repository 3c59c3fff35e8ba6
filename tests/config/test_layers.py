"""A file (and the environment) extends the defaults: merge, removal, replacement, precedence."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from switchboard.server.config.base import FrozenModel
from switchboard.server.config.layers import LayerError, extend
from switchboard.server.config.settings import (
    NAMED_TABLES,
    Settings,
    SettingsError,
    defaults,
    load_settings,
)
from tests.config.conftest import WriteToml

DEFAULT_CONNECTORS = set(defaults()["connectors"])
DEFAULT_TRIGGERS = set(defaults()["triggers"])


def test_named_tables_are_found_from_the_models() -> None:
    assert {
        ("connectors",),
        ("triggers",),
        ("auth", "callers"),
        ("limits", "callers"),
        ("inbound", "sources"),
        ("sync", "destinations"),
    } == NAMED_TABLES


def test_a_section_merges_key_by_key(write_toml: WriteToml) -> None:
    settings = load_settings(write_toml("[cache]\nttl_s = 5.0\n"))
    assert settings.cache.ttl_s == 5.0
    assert settings.cache.max_entries == Settings().cache.max_entries


def test_a_default_connector_is_extended_at_any_depth(write_toml: WriteToml) -> None:
    text = '[connectors.personalization.options.offers]\nvip = "VIP20"\n'
    options = load_settings(write_toml(text)).connectors["personalization"].options
    assert options["offers"] == {"newsletter": "WELCOME10", "customer": "LOYALTY15", "vip": "VIP20"}
    assert options["default_offer"] == "WELCOME-DEFAULT"


def test_a_scoring_table_merges_key_by_key(write_toml: WriteToml) -> None:
    points = load_settings(write_toml("[scoring.activity_points]\nemail_open = 2.5\n"))
    expected = {**defaults()["scoring"]["activity_points"], "email_open": 2.5}
    assert points.scoring.activity_points == expected


def test_false_removes_a_default_connector(write_toml: WriteToml) -> None:
    settings = load_settings(write_toml("[connectors]\nfake = false\n"))
    assert set(settings.connectors) == DEFAULT_CONNECTORS - {"fake"}


def test_removing_a_connector_a_trigger_uses_names_the_trigger(write_toml: WriteToml) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(write_toml("[connectors]\ncrm = false\n"))
    assert "uses connector 'crm', which is not configured" in str(caught.value)


def test_removing_a_connector_and_its_triggers_works(write_toml: WriteToml) -> None:
    text = """
[connectors]
crm = false
[triggers]
"newsletter.signup" = false
"purchase.completed" = false
"contact.erased" = false
[sync.destinations]
crm = false
"""
    settings = load_settings(write_toml(text))
    assert "crm" not in settings.connectors
    assert settings.sync.destinations == {}
    assert set(settings.triggers) == {"lead.status_updated"}


def test_removing_an_entry_that_is_not_there_is_an_error(write_toml: WriteToml) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(write_toml("[connectors]\ncrn = false\n"))
    assert caught.value.problems == [
        "connectors.crn = false removes nothing (entries: analytics, automation, crm, esp, "
        "fake, personalization, recommendations, scoring)"
    ]


def test_replace_drops_the_default_entry_instead_of_merging(write_toml: WriteToml) -> None:
    merged = load_settings(write_toml("[connectors.personalization]\ntimeout_s = 1.0\n"))
    assert merged.connectors["personalization"].options["default_offer"] == "WELCOME-DEFAULT"
    assert merged.connectors["personalization"].timeout_s == 1.0
    text = '[connectors.personalization]\nreplace = true\nkind = "fake"\n'
    replaced = load_settings(write_toml(text)).connectors["personalization"]
    assert replaced.kind == "fake"
    assert replaced.options == {}


def test_replace_must_be_a_boolean(write_toml: WriteToml) -> None:
    with pytest.raises(SettingsError, match=r"connectors\.crm\.replace must be true or false"):
        load_settings(write_toml('[connectors.crm]\nreplace = "yes"\n'))


def test_a_trigger_list_of_steps_replaces_the_default_steps(write_toml: WriteToml) -> None:
    text = """
[[triggers."newsletter.signup".steps]]
connector = "crm"
action = "contacts.upsert"
"""
    trigger = load_settings(write_toml(text)).triggers["newsletter.signup"]
    assert [(s.connector, s.action) for s in trigger.steps] == [("crm", "contacts.upsert")]
    assert trigger.description == Settings().triggers["newsletter.signup"].description


def test_the_environment_wins_over_the_file(
    write_toml: WriteToml, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SWITCHBOARD_CACHE__TTL_S", "7")
    monkeypatch.setenv("SWITCHBOARD_CONNECTORS__HOOK__TIMEOUT_S", "2")
    text = """
[cache]
ttl_s = 5.0
max_entries = 10
[connectors.hook]
kind = "fake"
timeout_s = 9.0
"""
    settings = load_settings(write_toml(text))
    assert settings.cache.ttl_s == 7.0
    assert settings.cache.max_entries == 10
    assert settings.connectors["hook"].kind == "fake"
    assert settings.connectors["hook"].timeout_s == 2.0
    assert set(settings.connectors) > DEFAULT_CONNECTORS


def test_the_environment_can_remove_an_entry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SWITCHBOARD_CONNECTORS", '{"fake": false}')
    assert set(load_settings().connectors) == DEFAULT_CONNECTORS - {"fake"}


def test_flags_win_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SWITCHBOARD_LISTEN", "127.0.0.1:7000")
    assert load_settings().listen == "127.0.0.1:7000"
    assert load_settings(listen="127.0.0.1:0").listen == "127.0.0.1:0"


def test_bad_json_in_the_environment_is_a_settings_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SWITCHBOARD_CONNECTORS", "{not json")
    with pytest.raises(SettingsError, match="invalid environment variable"):
        load_settings()


def test_in_code_a_value_replaces_the_default() -> None:
    settings = Settings(connectors={"fake": {"kind": "fake"}}, triggers={})
    assert set(settings.connectors) == {"fake"}


def test_without_file_or_environment_the_settings_are_the_defaults() -> None:
    assert load_settings() == Settings()


def test_extend_leaves_its_inputs_alone() -> None:
    lower: dict[str, Any] = {"connectors": {"a": {"kind": "x", "options": {"k": 1}}}}
    upper: dict[str, Any] = {"connectors": {"a": {"options": {"j": 2}}, "b": {"kind": "y"}}}
    merged = extend(lower, upper, frozenset({("connectors",)}))
    assert merged == {
        "connectors": {"a": {"kind": "x", "options": {"k": 1, "j": 2}}, "b": {"kind": "y"}}
    }
    assert lower == {"connectors": {"a": {"kind": "x", "options": {"k": 1}}}}
    with pytest.raises(LayerError):
        extend(lower, {"connectors": {"b": False}}, frozenset({("connectors",)}))


def _models(model: type[BaseModel], seen: set[type[BaseModel]]) -> set[type[BaseModel]]:
    for field in model.model_fields.values():
        for kind in _types(field.annotation):
            if isinstance(kind, type) and issubclass(kind, BaseModel) and kind not in seen:
                seen.add(kind)
                _models(kind, seen)
    return seen


def _types(annotation: Any) -> list[Any]:
    args = getattr(annotation, "__args__", ())
    return [annotation, *(t for arg in args for t in _types(arg))]


def test_every_settings_model_derives_from_the_frozen_base() -> None:
    models = _models(Settings, {Settings})
    assert len(models) >= 15
    for model in models:
        assert issubclass(model, FrozenModel), model
    with pytest.raises(ValidationError, match="frozen"):
        Settings().cache.ttl_s = 1.0  # type: ignore[misc]


def test_a_typo_in_a_file_is_an_error(write_toml: WriteToml) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(write_toml("[dispatch]\nbatchsize = 3\n"))
    assert caught.value.problems == ["dispatch.batchsize: Extra inputs are not permitted"]
