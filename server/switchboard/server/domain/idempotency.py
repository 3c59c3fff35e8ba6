"""Idempotency keys: the first outcome of a write is stored with the write itself."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Generic, NamedTuple, TypeVar

from google.protobuf.message import Message

from switchboard.server.common.timeutil import now_us
from switchboard.server.errors import IdempotencyConflict
from switchboard.server.store.base import IdempotencyRecord, Store, WriteTx
from switchboard.server.store.event_log import acting_as, caller_actor

M = TypeVar("M", bound=Message)
T = TypeVar("T")


class Written(NamedTuple, Generic[M, T]):
    """The answer of an idempotent write, and what its work reported besides (None on replay)."""

    response: M
    effect: T | None


async def write_once(
    store: Store,
    method: str,
    request: Message,
    key: str,
    response_type: type[M],
    work: Callable[[WriteTx, int], tuple[M, T]],
    subject: Callable[[M], str],
) -> Written[M, T]:
    """Run `work(tx, now_us)` in one write transaction, at most once per idempotency `key`.

    `work` returns the response and an effect for the caller (e.g. which cache entries the
    write made stale); a repeated key returns the stored response with no effect, because
    nothing was written the second time. `subject` names the contact whose data the
    response holds, so erasing that contact drops the stored answer too.
    """

    actor = caller_actor()  # read here, in the call's task: `transaction` may run elsewhere

    def transaction(tx: WriteTx) -> Written[M, T]:
        with acting_as(actor):
            return attempt(tx)

    def attempt(tx: WriteTx) -> Written[M, T]:
        now = now_us()
        effect: list[T] = []

        def compute() -> M:
            response, done = work(tx, now)
            effect.append(done)
            return response

        response, _ = run_once(tx, key, method, request, response_type, compute, now, subject)
        return Written(response, effect[0] if effect else None)

    return await store.write(transaction)


def request_hash(request: Message) -> str:
    """A stable digest of the request, used to tell a retry from a different request."""
    return hashlib.sha256(request.SerializeToString(deterministic=True)).hexdigest()


def run_once(
    tx: WriteTx,
    key: str,
    method: str,
    request: Message,
    response_type: type[M],
    compute: Callable[[], M],
    now_us: int,
    subject: Callable[[M], str],
) -> tuple[M, bool]:
    """Return `(response, replayed)`: the stored response for a repeated key, else compute it.

    Runs inside the caller's write transaction so the response is stored atomically with the
    work; an error raised by `compute` stores nothing, so a retry does the work again.
    `subject` names the contact whose data the response holds: erasing that contact drops
    the record.
    """
    if not key:
        return compute(), False
    digest = request_hash(request)
    record = tx.idempotency(key)
    if record is not None:
        if record.method != method or record.request_hash != digest:
            raise IdempotencyConflict(
                f"idempotency key {key!r} was already used for a different {record.method} "
                "request; use a new key for a new request"
            )
        return response_type.FromString(record.response), True
    response = compute()
    record = IdempotencyRecord(method, digest, response.SerializeToString(), subject(response))
    tx.put_idempotency(key, record, now_us)
    return response, False
