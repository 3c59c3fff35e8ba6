"""Sending templated email over SMTP, for the esp adapter's `email.send`.

Uses the standard library's `smtplib` on a worker thread: the ESP sends one short message per
step, so a blocking client off the event loop is simpler than another dependency, and its
own socket timeout (the connector's timeout) bounds the thread after the dispatcher gives up.

Every message carries a Message-ID derived from the step's idempotency key (plus an
`Idempotency-Key` header), so a retried step is recognisable downstream as the same message.
SMTP replies are translated here: 4xx and dropped connections are retryable, 5xx permanent.
"""

from __future__ import annotations

import asyncio
import hashlib
import smtplib
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from email.message import EmailMessage
from string import Template
from typing import Any

from switchboard.server.connectors.base import JsonDict
from switchboard.server.errors import (
    ConnectorError,
    PermanentConnectorError,
    RetryableConnectorError,
)

_SMTP_KEYS = frozenset(
    {"host", "port", "sender", "security", "username", "password", "timeout_s", "ca_file"}
)
_SECURITY = ("none", "starttls", "tls")


@dataclass(frozen=True, slots=True)
class SmtpSettings:
    """Where and how to send: `security` is "none", "starttls" or "tls" (implicit)."""

    host: str
    port: int
    sender: str
    security: str = "starttls"
    username: str = ""
    password: str = ""
    timeout_s: float = 10.0
    ca_file: str = ""


@dataclass(frozen=True, slots=True)
class EmailTemplate:
    """Subject and plain-text body with `$field` placeholders (contact fields, params)."""

    subject: str
    text: str


def parse_smtp(name: str, value: Any) -> SmtpSettings:
    """Validate the `smtp` option table."""
    if not isinstance(value, Mapping):
        raise ValueError(f"connector {name!r}: option 'smtp' must be a table")
    if unknown := sorted(set(value) - _SMTP_KEYS):
        raise ValueError(f"connector {name!r}: smtp option(s) {', '.join(unknown)} unknown")
    for key in ("host", "port", "sender"):
        if not value.get(key):
            raise ValueError(f"connector {name!r}: option 'smtp.{key}' is required")
    if value.get("security", "starttls") not in _SECURITY:
        raise ValueError(f"connector {name!r}: 'smtp.security' must be one of {_SECURITY}")
    try:
        return SmtpSettings(
            host=str(value["host"]),
            port=int(value["port"]),
            sender=str(value["sender"]),
            security=str(value.get("security", "starttls")),
            username=str(value.get("username", "")),
            password=str(value.get("password", "")),
            timeout_s=float(value.get("timeout_s", 10.0)),
            ca_file=str(value.get("ca_file", "")),
        )
    except (TypeError, ValueError) as exc:
        raise ValueError(f"connector {name!r}: invalid smtp option: {exc}") from exc


def parse_templates(name: str, value: Any) -> dict[str, EmailTemplate]:
    """Validate the `templates` option table: name → {subject, text}."""
    if not isinstance(value, Mapping):
        raise ValueError(f"connector {name!r}: option 'templates' must be a table")
    templates = {}
    for key, spec in value.items():
        if not isinstance(spec, Mapping) or set(spec) != {"subject", "text"}:
            raise ValueError(f"connector {name!r}: template {key!r} needs exactly subject, text")
        templates[key] = EmailTemplate(str(spec["subject"]), str(spec["text"]))
    return templates


def render(template: EmailTemplate, fields: Mapping[str, Any]) -> tuple[str, str]:
    """Fill the template; a placeholder with no value fails permanently, naming it."""
    try:
        subject = Template(template.subject).substitute(fields)
        text = Template(template.text).substitute(fields)
    except (KeyError, ValueError) as exc:
        raise PermanentConnectorError(f"template placeholder {exc} has no value") from exc
    return subject, text


def build_message(
    sender: str, to: str, subject: str, text: str, idempotency_key: str
) -> EmailMessage:
    """The message, with a Message-ID stable across retries of the same step."""
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    digest = hashlib.sha256(idempotency_key.encode()).hexdigest()[:32]
    domain = sender.rpartition("@")[2] or "switchboard.invalid"
    msg["Message-ID"] = f"<{digest}@{domain}>"
    msg["Idempotency-Key"] = idempotency_key
    msg.set_content(text)
    return msg


async def send(settings: SmtpSettings, msg: EmailMessage) -> JsonDict:
    """Send on a worker thread; errors come back as connector errors."""
    return await asyncio.to_thread(_send_blocking, settings, msg)


def _send_blocking(s: SmtpSettings, msg: EmailMessage) -> JsonDict:
    context = ssl.create_default_context(cafile=s.ca_file or None)
    try:
        if s.security == "tls":
            client: smtplib.SMTP = smtplib.SMTP_SSL(
                s.host, s.port, timeout=s.timeout_s, context=context
            )
        else:
            client = smtplib.SMTP(s.host, s.port, timeout=s.timeout_s)
        with client:
            if s.security == "starttls":
                client.starttls(context=context)
            if s.username:
                client.login(s.username, s.password)
            refused = client.send_message(msg)
    except Exception as exc:
        raise _translate(exc) from exc
    if refused:
        raise PermanentConnectorError(f"recipients refused: {sorted(refused)}")
    return {"sent": True, "message_id": msg["Message-ID"], "to": msg["To"]}


def _translate(exc: Exception) -> ConnectorError:
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        return PermanentConnectorError(f"SMTP authentication failed ({exc.smtp_code})")
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in exc.recipients.values()]
        if all(400 <= code < 500 for code in codes):
            return RetryableConnectorError(f"recipients deferred: {codes}")
        return PermanentConnectorError(f"recipients refused: {codes}")
    if isinstance(exc, smtplib.SMTPResponseException):
        kind = RetryableConnectorError if 400 <= exc.smtp_code < 500 else PermanentConnectorError
        return kind(f"SMTP server answered {exc.smtp_code}")
    if isinstance(exc, ssl.SSLCertVerificationError):
        return PermanentConnectorError("SMTP TLS verification failed")
    if isinstance(exc, smtplib.SMTPNotSupportedError):
        return PermanentConnectorError(f"SMTP server does not support this: {exc}")
    return RetryableConnectorError(f"SMTP unreachable: {type(exc).__name__}: {exc}")
