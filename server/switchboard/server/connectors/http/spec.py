"""The `http` connector's settings, checked and compiled once at start-up.

Every template is compiled here, so a syntax error or an unknown variable stops the server
with a message naming the connector, the action and the field, instead of failing a run.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from switchboard.server.connectors.http.templates import JsonTemplate
from switchboard.server.errors import PermanentConnectorError

#: What a request template sees: the step's payload, its idempotency key, the secrets.
REQUEST_NAMES = frozenset(
    {
        "contact",
        "params",
        "attributes",
        "event",
        "run_id",
        "step",
        "lead",
        "idempotency_key",
        "secrets",
    }
)
#: What a batch request's templates see: the rendered items and the secrets.
BATCH_NAMES = frozenset({"items", "secrets"})
#: What outcome rules and result templates see: the answer.
ANSWER_NAMES = frozenset({"status", "body", "headers"})
#: What per-item outcome and result templates see: the item's entry in the answer.
ITEM_NAMES = frozenset({"result", "status"})
OUTCOMES = ("success", "permanent", "retryable")
METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE"})
_STATUS_CLASS = re.compile(r"^[1-5]xx$")
_ACTION_KEYS = frozenset(
    {"method", "url", "query", "headers", "body", "outcomes", "result", "batch"}
)
_BATCH_KEYS = frozenset(
    {
        "max_items",
        "method",
        "url",
        "headers",
        "body",
        "item",
        "results",
        "item_outcome",
        "item_result",
    }
)


@dataclass(frozen=True, slots=True)
class Rule:
    """One outcome rule: statuses it applies to, an optional condition, the outcome."""

    statuses: frozenset[int]
    classes: frozenset[int]
    when: JsonTemplate | None
    outcome: str

    def matches(self, status: int, answer: Mapping[str, Any]) -> bool:
        """Whether this rule decides an answer with `status` (and its body)."""
        if (self.statuses or self.classes) and not (
            status in self.statuses or status // 100 in self.classes
        ):
            return False
        if self.when is None:
            return True
        try:
            return bool(self.when.render(answer))
        except PermanentConnectorError:
            # A condition on a field the answer lacks (a 429 with an empty body) does not
            # match: it must not turn a throttled call into a permanent failure.
            return False


@dataclass(frozen=True, slots=True)
class BatchSpec:
    """How several steps of one action go out in one request."""

    max_items: int
    method: str
    url: JsonTemplate
    headers: JsonTemplate
    body: JsonTemplate
    item: JsonTemplate
    results: str
    item_outcome: JsonTemplate | None
    item_result: JsonTemplate | None


@dataclass(frozen=True, slots=True)
class ActionSpec:
    """One action's request, outcome rules and result mapping."""

    method: str
    url: JsonTemplate
    query: JsonTemplate | None
    headers: JsonTemplate
    body: JsonTemplate | None
    rules: tuple[Rule, ...]
    result: JsonTemplate | None
    batch: BatchSpec | None


def parse_actions(
    where: str, actions: Any, base_url: str, shared_headers: Mapping[str, Any]
) -> dict[str, ActionSpec]:
    """Compile the `actions` table.

    Raises:
        ValueError: naming the action and field at fault.
    """
    if not isinstance(actions, Mapping) or not actions:
        raise ValueError(f"{where}: option 'actions' must be a table with at least one action")
    return {
        str(action): _action(f"{where}: actions.{action!r}", spec, base_url, shared_headers)
        for action, spec in actions.items()
    }


def _action(where: str, spec: Any, base_url: str, shared_headers: Mapping[str, Any]) -> ActionSpec:
    table = _table(where, spec, _ACTION_KEYS)
    if "url" not in table:
        raise ValueError(f"{where}.url is required")
    body = table.get("body")
    batch = table.get("batch")
    return ActionSpec(
        method=_method(where, table.get("method", "POST")),
        url=JsonTemplate(f"{where}.url", _join(base_url, table["url"]), REQUEST_NAMES),
        query=JsonTemplate(
            f"{where}.query", _table(f"{where}.query", table["query"]), REQUEST_NAMES
        )
        if "query" in table
        else None,
        headers=JsonTemplate(
            f"{where}.headers",
            {**shared_headers, **_table(f"{where}.headers", table.get("headers", {}))},
            REQUEST_NAMES,
        ),
        body=JsonTemplate(f"{where}.body", body, REQUEST_NAMES) if body is not None else None,
        rules=_rules(f"{where}.outcomes", table.get("outcomes", [])),
        result=JsonTemplate(f"{where}.result", table["result"], ANSWER_NAMES, lenient=True)
        if "result" in table
        else None,
        batch=_batch(f"{where}.batch", batch, base_url, shared_headers, body)
        if batch is not None
        else None,
    )


def _batch(
    where: str, spec: Any, base_url: str, shared_headers: Mapping[str, Any], body: Any
) -> BatchSpec:
    table = _table(where, spec, _BATCH_KEYS)
    for key in ("url", "body", "results"):
        if key not in table:
            raise ValueError(f"{where}.{key} is required")
    max_items = table.get("max_items", 100)
    if isinstance(max_items, bool) or not isinstance(max_items, int) or max_items < 1:
        raise ValueError(f"{where}.max_items must be a positive whole number")
    item = table.get("item", body)
    if item is None:
        raise ValueError(f"{where}.item is required when the action has no body")
    results = table["results"]
    if not isinstance(results, str):
        raise ValueError(f'{where}.results must be a dotted path, e.g. "results"')
    return BatchSpec(
        max_items=max_items,
        method=_method(where, table.get("method", "POST")),
        url=JsonTemplate(f"{where}.url", _join(base_url, table["url"]), BATCH_NAMES),
        headers=JsonTemplate(
            f"{where}.headers",
            {**shared_headers, **_table(f"{where}.headers", table.get("headers", {}))},
            BATCH_NAMES,
        ),
        body=JsonTemplate(f"{where}.body", table["body"], BATCH_NAMES),
        item=JsonTemplate(f"{where}.item", item, REQUEST_NAMES),
        results=results.removeprefix("$").removeprefix("."),
        item_outcome=_expression(f"{where}.item_outcome", table.get("item_outcome"), ITEM_NAMES),
        item_result=JsonTemplate(
            f"{where}.item_result", table["item_result"], ITEM_NAMES, lenient=True
        )
        if "item_result" in table
        else None,
    )


def _rules(where: str, spec: Any) -> tuple[Rule, ...]:
    if not isinstance(spec, list):
        raise ValueError(f"{where} must be a list of rules")
    rules = []
    for index, entry in enumerate(spec):
        at = f"{where}[{index}]"
        table = _table(at, entry, frozenset({"status", "when", "outcome"}))
        outcome = table.get("outcome")
        if outcome not in OUTCOMES:
            raise ValueError(f"{at}.outcome must be one of {', '.join(OUTCOMES)}")
        statuses, classes = _statuses(at, table.get("status", []))
        when = _expression(f"{at}.when", table.get("when"), ANSWER_NAMES)
        rules.append(Rule(statuses, classes, when, str(outcome)))
    return tuple(rules)


def _statuses(where: str, spec: Any) -> tuple[frozenset[int], frozenset[int]]:
    entries = spec if isinstance(spec, list) else [spec]
    statuses, classes = set(), set()
    for entry in entries:
        if isinstance(entry, int) and not isinstance(entry, bool) and 100 <= entry <= 599:
            statuses.add(entry)
        elif isinstance(entry, str) and _STATUS_CLASS.match(entry):
            classes.add(int(entry[0]))
        else:
            raise ValueError(f"{where}.status: {entry!r} is not a status (e.g. 409) or class (4xx)")
    return frozenset(statuses), frozenset(classes)


def _expression(where: str, source: Any, names: frozenset[str]) -> JsonTemplate | None:
    if source is None:
        return None
    if not isinstance(source, str) or not source.strip():
        raise ValueError(f"{where} must be an expression, e.g. \"body.error == 'duplicate'\"")
    return JsonTemplate(where, "{{ " + source + " }}", names, lenient=True)


def _method(where: str, value: Any) -> str:
    method = str(value).upper()
    if method not in METHODS:
        raise ValueError(f"{where}.method must be one of {', '.join(sorted(METHODS))}")
    return method


def _join(base_url: str, url: Any) -> str:
    if not isinstance(url, str) or not url:
        raise ValueError("url must be a string")
    if url.startswith(("http://", "https://", "{{")) or not base_url:
        return url
    return base_url.rstrip("/") + "/" + url.lstrip("/")


def _table(where: str, value: Any, keys: frozenset[str] | None = None) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise ValueError(f"{where} must be a table")
    if keys is not None and (unknown := sorted(set(value) - keys)):
        raise ValueError(
            f"{where}: unknown key(s) {', '.join(unknown)}; takes {', '.join(sorted(keys))}"
        )
    return dict(value)
