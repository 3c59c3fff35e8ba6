"""How client errors and interrupts become one line and an exit code."""

from __future__ import annotations

import grpc
import pytest

from switchboard.client import FieldViolation, SwitchboardError
from switchboard.client.cli._common import CommandError, Exit, run


async def _raise(exc: BaseException) -> None:
    raise exc


@pytest.mark.parametrize(
    ("error", "code", "line"),
    [
        pytest.param(
            SwitchboardError(grpc.StatusCode.NOT_FOUND, "no run 'r_1'"),
            Exit.SERVER_ERROR,
            "NOT_FOUND: no run 'r_1'",
            id="server-error",
        ),
        pytest.param(
            SwitchboardError(grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded"),
            Exit.UNREACHABLE,
            "DEADLINE_EXCEEDED: Deadline Exceeded",
            id="deadline",
        ),
        pytest.param(
            SwitchboardError(
                grpc.StatusCode.INVALID_ARGUMENT,
                "invalid request: email: bad\nsecond line",
                [FieldViolation("email", "bad"), FieldViolation("phone", "too short")],
            ),
            Exit.SERVER_ERROR,
            "INVALID_ARGUMENT: invalid request: email: bad second line (phone: too short)",
            id="violations-not-repeated",
        ),
    ],
)
def test_client_errors_become_one_line(error: SwitchboardError, code: int, line: str) -> None:
    with pytest.raises(CommandError) as info:
        run(_raise(error))
    assert info.value.exit_code == code
    assert info.value.message == line


def test_interrupt_exits_130() -> None:
    with pytest.raises(CommandError) as info:
        run(_raise(KeyboardInterrupt()))
    assert info.value.exit_code == Exit.INTERRUPTED == 130
