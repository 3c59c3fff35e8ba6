"""docs/configuration.md holds the configuration reference rendered from the settings model."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.tooling.node import ROOT
from tools.render_config_docs import current_schema, main, render_into, table

PAGE = ROOT / "docs" / "configuration.md"


def test_page_reference_is_up_to_date() -> None:
    text = PAGE.read_text()
    assert render_into(text, table(current_schema())) == text, "run `make docs` and commit"


def test_every_setting_has_a_row() -> None:
    from switchboard.server.config.settings import Settings

    rendered = table(current_schema())
    for name, field in Settings.model_fields.items():
        section = field.annotation
        sub_fields = getattr(section, "model_fields", None)
        keys = [f"{name}.{sub}" for sub in sub_fields] if sub_fields else [name]
        for key in keys:
            # a nested section (auth.jwt) is rendered as its own keys (auth.jwt.issuer, ...)
            assert f"| `{key}`" in rendered or f"| `{key}." in rendered, key


def test_check_fails_on_a_stale_table(tmp_path: Path) -> None:
    stale = tmp_path / "configuration.md"
    stale.write_text(PAGE.read_text().replace("Steps claimed per poll.", "Old text."))
    assert main(["--check", str(stale)]) == 1
    assert main([str(stale)]) == 0
    assert main(["--check", str(stale)]) == 0
    assert stale.read_text() == PAGE.read_text()


def test_new_setting_changes_the_table() -> None:
    schema = dict(current_schema())
    props = {**schema["properties"], "new_knob": {"type": "integer", "default": 3, "minimum": 1}}
    rendered = table({**schema, "properties": props})
    assert "| `new_knob`<br>`SWITCHBOARD_NEW_KNOB` | integer (≥ 1) | `3` |  |" in rendered


def test_missing_markers_are_an_error() -> None:
    with pytest.raises(ValueError, match="lacks the markers"):
        render_into("# no markers here\n", "table")
