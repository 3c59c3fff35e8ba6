"""The generated stubs are typed: a caller's own mypy run sees the reply types and enums."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest
from mypy import api

CALLER = textwrap.dedent(
    """
    from switchboard.client import Switchboard
    from switchboard.v1 import campaigns_pb2

    async def caller(sb: Switchboard) -> None:
        reply = await sb.contacts.upsert(email="ada@example.com")
        reveal_type(reply.created)
        reveal_type(reply.contact.lists)
        run = await sb.campaigns.trigger("newsletter.signup", email="ada@example.com")
        reveal_type(campaigns_pb2.RunStatus.Name(run.status))
        reply.no_such_field
    """
)


@pytest.mark.slow
def test_replies_are_typed_in_a_callers_mypy_run(tmp_path: Path) -> None:
    caller = tmp_path / "caller.py"
    caller.write_text(CALLER)
    config = tmp_path / "mypy.ini"  # the caller's own settings, not this project's
    config.write_text("[mypy]\n")

    out, _, status = api.run(
        [
            str(caller),
            "--strict",
            "--no-incremental",
            "--namespace-packages",
            f"--config-file={config}",
            f"--python-executable={sys.executable}",
            f"--cache-dir={tmp_path / 'cache'}",
        ]
    )

    assert status == 1, out  # the one wrong field below
    assert 'Revealed type is "bool"' in out
    assert "RepeatedScalarFieldContainer[str]" in out
    assert 'Revealed type is "str"' in out  # RunStatus.Name(run.status)
    assert '"UpsertContactResponse" has no attribute "no_such_field"' in out
