"""Dead letters: list what delivery gave up on, and queue it again (redrive)."""

from __future__ import annotations

from switchboard.server.common.timeutil import now_us, set_ts
from switchboard.server.dispatch.notify import RunNotifier
from switchboard.server.dispatch.worker import Dispatcher
from switchboard.server.errors import NotFound
from switchboard.server.rules.paging import PageTokens
from switchboard.server.rules.validation import Violations, check_id, check_page_size
from switchboard.server.runs.chunk_outcome import chunk_step_key, reopen_item
from switchboard.server.store.base import DeadLetter, Store, WriteTx
from switchboard.server.store.event_log import append_details, as_caller
from switchboard.v1 import campaigns_pb2, connectors_pb2

_REASONS = {
    "retries_exhausted": connectors_pb2.DEAD_LETTER_REASON_RETRIES_EXHAUSTED,
    "permanent_error": connectors_pb2.DEAD_LETTER_REASON_PERMANENT_ERROR,
}
_MAX_IDS = 1000
# One redrive by connector or "all" moves at most this many letters (one transaction);
# call again for a larger backlog.
_MAX_REDRIVE = 10_000


def to_proto(letter: DeadLetter) -> connectors_pb2.DeadLetter:
    """The API shape of a stored dead letter."""
    msg = connectors_pb2.DeadLetter(
        id=letter.id,
        run_id=letter.run_id,
        step_index=letter.step_index,
        connector=letter.connector,
        action=letter.action,
        contact_id=letter.contact_id,
        idempotency_key=letter.idempotency_key,
        reason=_REASONS.get(letter.reason, connectors_pb2.DEAD_LETTER_REASON_UNSPECIFIED),
        attempts=letter.attempts,
        last_error=letter.last_error,
    )
    set_ts(msg.dead_at, letter.dead_us)
    return msg


class DeadLetterService:
    """ListDeadLetters and RedriveDeadLetters."""

    def __init__(
        self, store: Store, dispatcher: Dispatcher, notifier: RunNotifier, tokens: PageTokens
    ) -> None:
        self._store = store
        self._dispatcher = dispatcher
        self._notifier = notifier
        self._tokens = tokens

    async def list(
        self, req: connectors_pb2.ListDeadLettersRequest
    ) -> connectors_pb2.ListDeadLettersResponse:
        """Dead letters oldest first, optionally for one connector, paged."""
        v = Violations()
        size = check_page_size(v, req.page_size, 50, 500)
        scope = ("ListDeadLetters", req.connector)
        cursor = self._tokens.decode(req.page_token, scope, v)
        v.raise_if_any()
        after = cursor[1] if cursor else ""
        rows = await self._store.read(
            lambda tx: tx.list_dead_letters(req.connector, after, size + 1)
        )
        resp = connectors_pb2.ListDeadLettersResponse(
            dead_letters=[to_proto(r) for r in rows[:size]]
        )
        if len(rows) > size:
            resp.next_page_token = self._tokens.encode((0, rows[size - 1].id), scope)
        return resp

    async def redrive(
        self, req: connectors_pb2.RedriveDeadLettersRequest
    ) -> connectors_pb2.RedriveDeadLettersResponse:
        """Queue the selected dead letters again; their runs continue."""
        ids, connector = _selection(req)
        redriven = await self._store.write(
            as_caller(lambda tx: _redrive(tx, ids, connector, now_us()))
        )
        for run_id in {letter.run_id for letter in redriven}:
            self._notifier.publish(run_id)
        self._dispatcher.wake()
        return connectors_pb2.RedriveDeadLettersResponse(redriven=[to_proto(r) for r in redriven])


def _selection(req: connectors_pb2.RedriveDeadLettersRequest) -> tuple[list[str] | None, str]:
    v = Violations()
    which = req.WhichOneof("selector")
    ids: list[str] | None = None
    if which is None:
        v.add("selector", "set one of ids, connector or all")
    elif which == "ids":
        ids = list(dict.fromkeys(req.ids.ids))
        if not ids:
            v.add("ids.ids", "list at least one dead letter id")
        if len(ids) > _MAX_IDS:
            v.add("ids.ids", f"at most {_MAX_IDS} ids per call")
        for i, letter_id in enumerate(ids):
            check_id(v, f"ids.ids[{i}]", letter_id, "d", required=True)
    elif which == "connector" and not req.connector:
        v.add("connector", "must name a connector")
    elif which == "all" and not req.all:
        v.add("all", "must be true to redrive every dead letter")
    v.raise_if_any()
    return ids, req.connector


def _redrive(tx: WriteTx, ids: list[str] | None, connector: str, now: int) -> list[DeadLetter]:
    letters = tx.select_dead_letters(ids, connector, _MAX_REDRIVE)
    if ids is not None:
        missing = sorted(set(ids) - {letter.id for letter in letters})
        if missing:
            raise NotFound(f"no dead letter with id(s) {', '.join(missing)}; nothing redriven")
    for letter in letters:
        _requeue(tx, letter, now)
    return letters


def _requeue(tx: WriteTx, letter: DeadLetter, now: int) -> None:
    run = tx.run(letter.run_id)
    tx.delete_dead_letter(letter.id)
    if run is None:
        return
    step = run.steps[letter.step_index]
    key = letter.idempotency_key
    if letter.contact_id and reopen_item(run, letter.step_index, letter.contact_id):
        # A chunk step's item: only that contact is sent again, under the step's own row.
        key = chunk_step_key(key, letter.contact_id)
    step.status = campaigns_pb2.StepStatus.STEP_STATUS_PENDING
    step.attempts = 0  # a fresh attempt budget
    set_ts(step.updated_at, now)
    run.status = campaigns_pb2.RunStatus.RUN_STATUS_RUNNING
    run.ClearField("finished_at")
    set_ts(run.updated_at, now)
    tx.put_run(run)
    # Same key as every earlier attempt: a tool that honours keys applies the step once.
    # advance=False: the run already went on past this step when it failed.
    tx.enqueue_step(letter.run_id, letter.step_index, letter.connector, key, now, False)
    body = {"id": letter.id, "step": letter.step_index}
    append_details(tx, "run.step_redriven", letter.run_id, now, body, letter.contact_id)
