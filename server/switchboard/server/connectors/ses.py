"""Amazon SES v2: templated email through `SendEmail` (POST /v2/email/outbound-emails).

A kind of its own rather than a transport of the `esp` kind: `esp` is the embedded sandbox
whose list subscriptions live in Switchboard's own database, while SES is a real tool whose
only job here is sending. Keeping them apart means a configuration that names `ses` sends
real mail and nothing else, and SES declares its own consent purposes and health check.

The call goes through aiobotocore (botocore's request model, SigV4 signing and error parsing,
on the aiohttp the server already uses), with botocore's own retries off: the dispatcher owns
retries, backoff and dead letters, so one step is one SES call.

SES has no idempotency key. A sent step is recorded in the collection `sent`, keyed
`{contact_id}/{idempotency_key}`, so a step retried after SES accepted it does not send
again (a crash between SES's answer and the record sends once more). Each message carries
the step's key as an `Idempotency-Key` header and a `switchboard_step` email tag, so the
configuration set's event destinations can tell retries apart.

Error semantics (SES API v2 reference, SendEmail "Errors"; SES developer guide, "Errors
related to the sending quotas"): TooManyRequestsException / Throttling are retryable (a
daily-quota throttle after 10 minutes, as the guide advises); SendingPausedException is
retryable (an operator can resume sending); MessageRejected, BadRequestException,
MailFromDomainNotVerifiedException, NotFoundException (e.g. the configuration set),
AccountSuspendedException and LimitExceededException are permanent; other errors follow
their HTTP status (5xx retryable); timeouts and connection errors are retryable.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Mapping
from typing import Any

from switchboard.server.config.security import resolve_secret
from switchboard.server.connectors import smtp_mail
from switchboard.server.connectors.base import (
    ConnectorState,
    InvokeContext,
    JsonDict,
    payload_contact,
    reject_unknown_options,
    require,
    require_action,
)
from switchboard.server.connectors.consent import check_marketing_opt_in
from switchboard.server.connectors.options import purposes_option, string_list
from switchboard.server.connectors.ses_errors import translate
from switchboard.server.errors import PermanentConnectorError, RetryableConnectorError

_OPTIONS = frozenset(
    {
        "region",
        "sender",
        "configuration_set",
        "access_key_id",
        "secret_access_key",
        "session_token",
        "endpoint_url",
        "templates",
        "reply_to",
        "tags",
        "timeout_s",
        "purposes",
    }
)
_CHARSET = "UTF-8"


class SesConnector:
    """Sends templated email through Amazon SES v2; erases its own records of a contact.

    Options:
        region: the AWS region of the SES account (required), e.g. "eu-west-1".
        sender: the From address, a verified identity (required).
        configuration_set: the configuration set for event publishing (optional).
        access_key_id, secret_access_key, session_token: `env:NAME` / `file:PATH`
            references; without them botocore's default credential chain is used.
        endpoint_url: another endpoint (a VPC endpoint, or an emulator in tests).
        templates: {name: {subject, text}} with `$first_name`-style placeholders.
        reply_to: Reply-To addresses.
        tags: static email tags {name: value} added to every message.
        timeout_s: connect and read timeout of one SES call (default 10).
        purposes: consent purposes served (default ["email_marketing"]).
    """

    kind: str = "ses"
    actions: frozenset[str] = frozenset({"email.send", "contacts.erase"})

    def __init__(self, name: str, options: Mapping[str, Any], state: ConnectorState) -> None:
        reject_unknown_options(name, self.kind, options, _OPTIONS)
        self.name = name
        self._state = state
        for key in ("region", "sender"):
            if not isinstance(options.get(key), str) or not options[key]:
                raise ValueError(f"connector {name!r}: option {key!r} is required")
        self._region: str = options["region"]
        self._sender: str = options["sender"]
        self._configuration_set = str(options.get("configuration_set", ""))
        self._endpoint_url = str(options.get("endpoint_url", "")) or None
        self._credentials = _credentials(name, options)
        self._templates = smtp_mail.parse_templates(name, options.get("templates", {}))
        self._reply_to = string_list(name, "reply_to", options.get("reply_to", []))
        self._tags = _static_tags(name, options.get("tags", {}))
        self._timeout_s = float(options.get("timeout_s", 10.0))
        self.purposes = purposes_option(name, options, default=("email_marketing",))
        self._stack: contextlib.AsyncExitStack | None = None
        self._client: Any = None

    async def invoke(self, action: str, payload: JsonDict, ctx: InvokeContext) -> JsonDict:
        """Send the step's templated email, or forget what was sent to the contact."""
        require_action(self, action)
        contact, contact_id = payload_contact(payload)
        if action == "contacts.erase":
            return await self._erase(contact_id)
        params = payload.get("params") or {}
        if not isinstance(params, dict):
            raise PermanentConnectorError("payload field 'params' must be a dict")
        record_key = f"{contact_id}/{ctx.idempotency_key}"
        sent = await self._state.get("sent", record_key)
        if sent is not None:
            return {**sent["result"], "already_sent": True}
        request = self._request(contact, contact_id, params, ctx)
        client = await self._sesv2()
        try:
            answer = await client.send_email(**request)
        except Exception as exc:
            raise translate(exc) from exc
        to = request_to(request)
        result: JsonDict = {"sent": True, "message_id": answer["MessageId"], "to": to}
        await self._state.put("sent", record_key, {"key": record_key, "result": result})
        return result

    def _request(
        self, contact: JsonDict, contact_id: str, params: JsonDict, ctx: InvokeContext
    ) -> JsonDict:
        name: str = require(params, "template")
        template = self._templates.get(name)
        if template is None:
            raise PermanentConnectorError(f"connector {self.name!r} has no template {name!r}")
        check_marketing_opt_in(contact, contact_id, params)
        to: str = require(contact, "email")
        fields = {k: v for k, v in contact.items() if isinstance(v, str)}
        fields.update({k: str(v) for k, v in params.items()})
        subject, text = smtp_mail.render(template, fields)
        request: JsonDict = {
            "FromEmailAddress": self._sender,
            "Destination": {"ToAddresses": [to]},
            "Content": {
                "Simple": {
                    "Subject": {"Data": subject, "Charset": _CHARSET},
                    "Body": {"Text": {"Data": text, "Charset": _CHARSET}},
                    "Headers": [{"Name": "Idempotency-Key", "Value": ctx.idempotency_key}],
                }
            },
            "EmailTags": [
                {"Name": "switchboard_step", "Value": step_tag(ctx.idempotency_key)},
                {"Name": "switchboard_template", "Value": _tag_value(name)},
                *self._tags,
            ],
        }
        if self._configuration_set:
            request["ConfigurationSetName"] = self._configuration_set
        if self._reply_to:
            request["ReplyToAddresses"] = list(self._reply_to)
        return request

    async def _erase(self, contact_id: str) -> JsonDict:
        # The records hold the address; SES itself keeps no contact unless contact lists
        # are used, which this adapter does not.
        erased = 0
        while records := await self._state.scan("sent", prefix=f"{contact_id}/", limit=500):
            for record in records:
                erased += await self._state.delete("sent", record["key"])
        return {"erased": erased}

    async def _sesv2(self) -> Any:
        if self._client is None:
            from aiobotocore.config import AioConfig  # only a configured ses connector needs it
            from aiobotocore.session import get_session

            config = AioConfig(
                connect_timeout=self._timeout_s,
                read_timeout=self._timeout_s,
                retries={"total_max_attempts": 1},  # the dispatcher retries, not botocore
            )
            stack = contextlib.AsyncExitStack()
            self._client = await stack.enter_async_context(
                get_session().create_client(
                    "sesv2",
                    region_name=self._region,
                    endpoint_url=self._endpoint_url,
                    config=config,
                    **self._credentials,
                )
            )
            self._stack = stack
        return self._client

    async def health(self) -> None:
        """Pass when the sender (or its domain) is an identity verified for sending."""
        client = await self._sesv2()
        domain = self._sender.rpartition("@")[2]
        for identity in dict.fromkeys([self._sender, domain]):
            try:
                answer = await client.get_email_identity(EmailIdentity=identity)
            except Exception as exc:
                error = translate(exc)
                if isinstance(error, PermanentConnectorError) and "NotFound" in str(error):
                    continue
                raise RetryableConnectorError(f"SES health check failed: {error}") from exc
            # VerificationStatus: the identity's own check; VerifiedForSendingStatus: also
            # the account may send from it. Either verified state allows the sender.
            if answer.get("VerifiedForSendingStatus") or answer.get("VerificationStatus") == (
                "SUCCESS"
            ):
                return
        raise RetryableConnectorError(f"SES sender {self._sender!r} is not verified for sending")

    async def aclose(self) -> None:
        """Close the SES client's connection pool."""
        if self._stack is not None:
            await self._stack.aclose()
        self._stack = None
        self._client = None


def step_tag(idempotency_key: str) -> str:
    """The `switchboard_step` tag value: tag values allow only [A-Za-z0-9_-]."""
    return hashlib.sha256(idempotency_key.encode()).hexdigest()[:32]


def request_to(request: JsonDict) -> str:
    """The one recipient of a SendEmail request."""
    return str(request["Destination"]["ToAddresses"][0])


def _tag_value(value: str) -> str:
    return "".join(c if c.isascii() and (c.isalnum() or c in "_-") else "_" for c in value)[:256]


def _credentials(name: str, options: Mapping[str, Any]) -> dict[str, str]:
    keys = {
        "access_key_id": "aws_access_key_id",
        "secret_access_key": "aws_secret_access_key",
        "session_token": "aws_session_token",
    }
    given = {arg: options[key] for key, arg in keys.items() if options.get(key)}
    if bool(given.get("aws_access_key_id")) != bool(given.get("aws_secret_access_key")):
        raise ValueError(
            f"connector {name!r}: options 'access_key_id' and 'secret_access_key' go together"
        )
    resolved = {}
    for arg, reference in given.items():
        if not isinstance(reference, str) or not reference.startswith(("env:", "file:")):
            raise ValueError(
                f"connector {name!r}: AWS credentials must be `env:NAME` or `file:PATH` references"
            )
        try:
            resolved[arg] = resolve_secret(reference).decode()
        except ValueError as exc:
            raise ValueError(f"connector {name!r}: {exc}") from exc
    return resolved


def _static_tags(name: str, value: Any) -> list[JsonDict]:
    if not isinstance(value, Mapping):
        raise ValueError(f"connector {name!r}: option 'tags' must be a table of name = value")
    tags = []
    for key, tag in value.items():
        if not isinstance(tag, str) or _tag_value(key) != key or _tag_value(tag) != tag:
            raise ValueError(
                f"connector {name!r}: tag {key!r}: names and values take only "
                "ASCII letters, digits, '_' and '-'"
            )
        tags.append({"Name": key, "Value": tag})
    return tags
