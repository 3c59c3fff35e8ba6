"""Log lines: JSON (or text) with the current trace id, and personal data masked.

Every line passes through `mask_personal_data`, whatever logged it: emails keep their first
character and domain (`a***@example.com`), phone numbers their last two digits (`***00`).
"""

from __future__ import annotations

import json
import logging
import re
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import IO, Literal

from opentelemetry import trace

_EMAIL = re.compile(r"([A-Za-z0-9._%+-])[A-Za-z0-9._%+-]*@([A-Za-z0-9.-]+\.[A-Za-z]{2,})")
# A phone: optional +, then 7 to 15 digits with optional spaces, dots, dashes or parentheses.
_PHONE = re.compile(r"(?<![\w])\+?\(?\d(?:[\s.()-]{0,2}\d){6,14}(?![\w])")


def mask_personal_data(text: str) -> str:
    """`text` with email addresses and phone numbers masked."""
    if "@" in text:  # most lines hold no email: skip the costlier regex
        text = _EMAIL.sub(r"\1***@\2", text)
    return _PHONE.sub(lambda m: "***" + re.sub(r"\D", "", m.group())[-2:], text)


#: The trace id of the call being served when no OpenTelemetry span exists (telemetry off):
#: the caller's `traceparent` trace id, or a fresh one. Set by `interceptors.call_ids`.
#: Any object whose `str()` is the id, so that it can be worked out only when a line is logged.
CALL_TRACE_ID: ContextVar[object] = ContextVar("switchboard_call_trace_id", default="")


def trace_ids() -> tuple[str, str]:
    """The current trace and span ids in hex; outside any span, the call's trace id (if any)."""
    ctx = trace.get_current_span().get_span_context()
    if not ctx.is_valid:
        return str(CALL_TRACE_ID.get()), ""
    return format(ctx.trace_id, "032x"), format(ctx.span_id, "016x")


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, trace_id, span_id, error, and
    the fields a line was logged with (`extra={"fields": {...}}`, e.g. an access line's
    method, code, duration_ms and caller), masked like the message."""

    def format(self, record: logging.LogRecord) -> str:
        trace_id, span_id = trace_ids()
        line: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": mask_personal_data(record.getMessage()),
            "trace_id": trace_id,
            "span_id": span_id,
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            for key, value in fields.items():
                if key not in line:  # never replaces the line's own keys
                    line[key] = mask_personal_data(value) if isinstance(value, str) else value
        if record.exc_info:
            line["error"] = mask_personal_data(self.formatException(record.exc_info))
        return json.dumps(line, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """Readable lines for a terminal, with the same masking and the trace id."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s [trace=%(trace_id)s]: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        record.trace_id = trace_ids()[0] or "-"
        return mask_personal_data(super().format(record))


def configure_logging(
    level: str, fmt: Literal["json", "text"] = "json", stream: IO[str] | None = None
) -> logging.Handler:
    """Route every logger through one handler with the chosen format; returns the handler."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    return handler
