"""Sandbox ESP: list subscriptions, and templated email over SMTP.

Collection `subscriptions`, keyed by contact id: {"lists": [sorted list names]}.
Collection `sent`, keyed by step idempotency key: the result of each email sent, so a step
retried after its send succeeded does not send again. Sending is the one change that cannot
share a transaction with its record (the SMTP server is not in the store): a crash between
the send and the record sends once more, with the same Message-ID (see `smtp_mail`).
List changes are each one state transaction: concurrent calls cannot drop a list.

`email.send` is offered only when the `smtp` option is set; sending lives in `smtp_mail`.
It is an action of this adapter rather than a separate `smtp` kind because subscriptions
and the welcome email belong to the same tool in a marketing stack.

Consent is not checked here: the connector serves `email_marketing`, and the dispatcher
(and InvokeConnector) send nothing to it for a contact who has not opted in to that purpose
(see `rules/consent.py`). For transactional mail, configure a second connector of this
kind with `purposes = []`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from switchboard.server.connectors import smtp_mail
from switchboard.server.connectors.base import (
    ConnectorState,
    InvokeContext,
    JsonDict,
    StateTx,
    payload_contact,
    reject_unknown_options,
    require,
    require_action,
)
from switchboard.server.errors import PermanentConnectorError

_OPTIONS = frozenset({"smtp", "templates"})
_LIST_ACTIONS = frozenset({"lists.subscribe", "lists.unsubscribe", "contacts.erase"})


class EspConnector:
    """Subscribes contacts to lists; sends templated email.

    Options:
        smtp: {host, port, sender, security = "starttls"|"tls"|"none", username, password,
            timeout_s, ca_file}; enables `email.send`.
        templates: {name: {subject, text}} with `$first_name`-style placeholders.
    """

    kind: str = "sandbox_esp"
    #: List subscriptions and marketing email: needs email_marketing consent.
    purposes: frozenset[str] = frozenset({"email_marketing"})

    def __init__(self, name: str, options: Mapping[str, Any], state: ConnectorState) -> None:
        reject_unknown_options(name, self.kind, options, _OPTIONS)
        self.name = name
        self._state = state
        self._smtp = smtp_mail.parse_smtp(name, options["smtp"]) if "smtp" in options else None
        self._templates = smtp_mail.parse_templates(name, options.get("templates", {}))
        self.actions: frozenset[str] = _LIST_ACTIONS | (
            {"email.send"} if self._smtp else frozenset()
        )

    async def invoke(self, action: str, payload: JsonDict, ctx: InvokeContext) -> JsonDict:
        """Subscribe, unsubscribe or erase the payload's contact."""
        require_action(self, action)
        contact, contact_id = payload_contact(payload)
        if action == "email.send":
            return await self._send(contact, contact_id, payload.get("params") or {}, ctx)
        if action == "contacts.erase":

            def erase(state: StateTx) -> JsonDict:
                lists = _lists(state, contact_id)
                state.delete("subscriptions", contact_id)
                return {"erased": len(lists)}

            return await self._state.transaction(erase)
        params = payload.get("params") or {}
        if not isinstance(params, dict):
            raise PermanentConnectorError("payload field 'params' must be a dict")
        list_name: str = require(params, "list")
        if action == "lists.subscribe":
            return await self._subscribe(contact_id, list_name)
        return await self._unsubscribe(contact_id, list_name)

    async def health(self) -> None:
        """Always healthy: the state lives in the store."""

    async def aclose(self) -> None:
        """Nothing to release."""

    async def _send(
        self, contact: JsonDict, contact_id: str, params: Any, ctx: InvokeContext
    ) -> JsonDict:
        if not isinstance(params, dict):
            raise PermanentConnectorError("payload field 'params' must be a dict")
        sent = await self._state.get("sent", ctx.idempotency_key)
        if sent is not None:
            return {**sent, "already_sent": True}
        assert self._smtp is not None  # email.send is only an action with smtp configured
        name: str = require(params, "template")
        template = self._templates.get(name)
        if template is None:
            raise PermanentConnectorError(f"connector {self.name!r} has no template {name!r}")
        to: str = require(contact, "email")
        fields = {k: v for k, v in contact.items() if isinstance(v, str)}
        fields.update({k: str(v) for k, v in params.items()})
        subject, text = smtp_mail.render(template, fields)
        msg = smtp_mail.build_message(self._smtp.sender, to, subject, text, ctx.idempotency_key)
        result = await smtp_mail.send(self._smtp, msg)
        await self._state.put("sent", ctx.idempotency_key, result)
        return result

    async def _subscribe(self, contact_id: str, list_name: str) -> JsonDict:
        def subscribe(state: StateTx) -> JsonDict:
            lists = _lists(state, contact_id)
            already = list_name in lists
            if not already:
                state.put("subscriptions", contact_id, {"lists": sorted([*lists, list_name])})
            return {"list": list_name, "subscribed": True, "already_subscribed": already}

        return await self._state.transaction(subscribe)

    async def _unsubscribe(self, contact_id: str, list_name: str) -> JsonDict:
        def unsubscribe(state: StateTx) -> JsonDict:
            lists = _lists(state, contact_id)
            if list_name not in lists:
                return {"list": list_name, "unsubscribed": False}
            remaining = [name for name in lists if name != list_name]
            if remaining:
                state.put("subscriptions", contact_id, {"lists": remaining})
            else:
                state.delete("subscriptions", contact_id)
            return {"list": list_name, "unsubscribed": True}

        return await self._state.transaction(unsubscribe)


def _lists(state: StateTx, contact_id: str) -> list[str]:
    record = state.get("subscriptions", contact_id)
    return list(record["lists"]) if record else []

