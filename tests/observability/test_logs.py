"""Structured JSON log lines carry the trace id; emails and phone numbers are masked."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider

from switchboard.server.observability.logs import mask_personal_data
from tests.process import ServerProcess


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        pytest.param("sync ada.lovelace@example.com", "sync a***@example.com", id="email"),
        pytest.param("call +14155550100 now", "call ***00 now", id="e164"),
        pytest.param("call (415) 555-0199", "call ***99", id="us-format"),
        pytest.param("run r_01J at step 3", "run r_01J at step 3", id="no-personal-data"),
    ],
)
def test_masking(text: str, masked: str) -> None:
    assert mask_personal_data(text) == masked


def test_json_line_has_trace_id_and_masks(json_log: io.StringIO) -> None:
    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("rpc") as span:
        logging.getLogger("switchboard.test").warning("bounce for %s", "bob@example.com")
    line = json.loads(json_log.getvalue().splitlines()[-1])
    expected_trace = format(span.get_span_context().trace_id, "032x")
    assert (line["trace_id"], line["message"], line["level"]) == (
        expected_trace,
        "bounce for b***@example.com",
        "WARNING",
    )


def test_exception_text_is_masked_too(json_log: io.StringIO) -> None:
    try:
        raise ValueError("duplicate carol@example.com")
    except ValueError:
        logging.getLogger("switchboard.test").exception("failed")
    line = json.loads(json_log.getvalue().splitlines()[-1])
    assert ("carol@" in line["error"], "c***@example.com" in line["error"]) == (False, True)


def test_served_process_logs_json(tmp_path: Path) -> None:
    proc = ServerProcess(tmp_path / "sb.db", {"SWITCHBOARD_LOG_LEVEL": "INFO"})
    _, err = proc.terminate()
    lines = proc.stderr_lines + err.splitlines(keepends=True)
    records = [json.loads(line) for line in lines if line.startswith("{")]
    serving = [r for r in records if r["message"].startswith("serving on port")]
    assert (len(serving), all("trace_id" in r for r in records)) == (1, True)
