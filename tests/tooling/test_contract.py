"""`buf breaking` against the released contract: it passes today and fails on a breaking edit."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.tooling.node import PROTOS, require_buf

RELEASE = PROTOS / "releases" / "v1.0.0.binpb"
CONTACTS = Path("switchboard/v1/contacts.proto")


def _breaking(protos: Path) -> subprocess.CompletedProcess[str]:
    buf = require_buf()
    return subprocess.run(
        [str(buf), "breaking", str(protos), "--against", str(RELEASE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _copy_protos(tmp_path: Path) -> Path:
    copy = tmp_path / "protos"
    shutil.copytree(PROTOS, copy, ignore=shutil.ignore_patterns("releases"))
    return copy


def _renumber_phone(text: str) -> str:
    return text.replace("string phone = 3;", "string phone = 30;", 1)


def _remove_phone(text: str) -> str:
    return re.sub(r"\n  string phone = 3;", "\n  reserved 3;", text, count=1)


def _retype_phone(text: str) -> str:
    return text.replace("string phone = 3;", "int64 phone = 3;", 1)


def test_current_contract_is_compatible_with_release(tmp_path: Path) -> None:
    result = _breaking(_copy_protos(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    "edit",
    [
        pytest.param(_renumber_phone, id="renumber-field"),
        pytest.param(_remove_phone, id="remove-field"),
        pytest.param(_retype_phone, id="change-field-type"),
    ],
)
def test_breaking_edit_fails_the_check(tmp_path: Path, edit: Callable[[str], str]) -> None:
    protos = _copy_protos(tmp_path)
    proto = protos / CONTACTS
    original = proto.read_text()
    edited = edit(original)
    assert edited != original, "the edit did not apply: the proto changed under the test"
    proto.write_text(edited)

    result = _breaking(protos)

    assert result.returncode != 0
    assert "switchboard/v1/contacts.proto" in result.stdout + result.stderr
