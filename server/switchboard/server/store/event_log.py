"""Writing and reading the event log's envelope (events.version 2) and its older rows.

An event is stored as a `SealedEvent`: the values that are not about a person in the clear
(type, actor, ids, counts, amounts, statuses), and the personal values as a second
`switchboard.v1.Event` sealed with the person's data key (`data_keys.py`). Reading merges
the two again; when the person's key is gone (erased), the event is *redacted*: it keeps
its clear part only.

Rows written before the envelope (version 1) hold a JSON object of ids and field names;
they read as `details` with `schema_version = 1`.

Who caused an event is taken from `acting_as`, which use-cases wrap around their
transaction function (the transaction may run on another thread or in another call's
task, so the caller's identity is captured before and passed in; `as_caller` does both).
Work the dispatcher does later for a run (its steps' outcomes, dead letters) has no
caller: it records who started the run (`Run.started_by`, taken when the run is
created) with `via = "dispatcher"` and the run's id (`run_actor`). Unset: `system`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, MutableSequence, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from google.protobuf.struct_pb2 import Struct

from switchboard.server.auth.principal import CURRENT_PRINCIPAL
from switchboard.server.store import data_keys
from switchboard.server.store.data_keys import KEYRING, SERVER_KEY_NAME, Unreadable
from switchboard.server.store.event_signal import SIGNAL
from switchboard.server.store.sealed_pb2 import SealedEvent, SealedEventView
from switchboard.v1 import events_pb2

LEGACY_VERSION = 1  # JSON of ids and field names, before values were recorded
ENVELOPE_VERSION = 2  # SealedEvent
SYSTEM = events_pb2.Actor(kind="system")
DISPATCHER = "dispatcher"  # `Actor.via` of work done for a run outside any request
_ACTOR: ContextVar[events_pb2.Actor | None] = ContextVar("event_actor", default=None)
#: The types of a contact's change events (an import chunk's run id is set on these).
CONTACT_CHANGES = ("contact.created", "contact.updated")


@dataclass(frozen=True, slots=True)
class _Held:
    type: str
    aggregate_id: str
    contact_id: str
    payload: bytes
    at_us: int


_HELD: ContextVar[list[_Held] | None] = ContextVar("held_events", default=None)


@dataclass(frozen=True, slots=True)
class EventRow:
    """One row of the events table, as stored."""

    seq: int
    type: str
    aggregate_id: str
    contact_id: str
    at_us: int
    version: int
    payload: bytes


@dataclass(frozen=True, slots=True)
class EventFilter:
    """Which events a stream reads; empty values match everything."""

    types: tuple[str, ...] = ()
    contact_id: str = ""
    until_us: int = 0  # only events written before this time (0: no limit)


@dataclass(slots=True)
class DecodedPage:
    """Events read from rows, with how many were redacted."""

    events: list[events_pb2.Event] = field(default_factory=list)
    redacted: int = 0


class EventReads(Protocol):
    """The event queries of a read transaction (mixed into `ReadTx`)."""

    def event_rows(
        self, after_seq: int, limit: int, flt: EventFilter, through_seq: int = 0
    ) -> list[EventRow]:
        """Rows after `after_seq` (up to `through_seq` when set) matching `flt`, oldest first."""
        ...

    def contact_event_rows(
        self, contact_id: str, before_seq: int, limit: int, types: Sequence[str]
    ) -> list[EventRow]:
        """One contact's rows before `before_seq` (0: from the newest), newest first,
        including version-1 rows that name it only as their aggregate or through its runs."""
        ...

    def event_seqs(self, after_seq: int, limit: int) -> list[int]:
        """The cursors after `after_seq`, in order (to notice gaps on PostgreSQL)."""
        ...

    def event_seq_before(self, at_us: int) -> int:
        """The cursor to resume after to read the events written from `at_us` on."""
        ...

    def last_event_seq(self) -> int:
        """The newest cursor (0 for an empty log)."""
        ...

    def contact_keys(self, contact_ids: Sequence[str]) -> dict[str, tuple[bytes, bytes]]:
        """`contact_id -> (key_id, wrapped key)` of the contacts that have a data key."""
        ...

    def server_key_or_none(self, name: str) -> bytes | None:
        """The stored server key `name`, if it was made."""
        ...


class EventWrites(EventReads, Protocol):
    """The event writes of a write transaction (mixed into `WriteTx`)."""

    def append_sealed(
        self,
        type_: str,
        aggregate_id: str,
        contact_id: str,
        payload: bytes,
        at_us: int,
        run_id: str = "",
    ) -> int:
        """Append one version-2 row; return its cursor (0 while `held_events` holds it).
        `run_id`: the import chunk's sync run that carries this contact change."""
        ...

    def put_contact_key(self, contact_id: str, key_id: bytes, wrapped: bytes) -> None: ...
    def server_key(self, name: str, fresh: bytes) -> bytes: ...
    def tombstone_by_id(self, contact_id: str) -> object | None: ...


# -- who -----------------------------------------------------------------------------------
def caller_actor() -> events_pb2.Actor:
    """The current call's caller (read in the call's task, before the transaction)."""
    principal = CURRENT_PRINCIPAL.get()
    if principal is None:
        return events_pb2.Actor(kind="anonymous")
    return events_pb2.Actor(kind=principal.method, name=principal.name)


def actor_label(actor: events_pb2.Actor) -> str:
    """`kind:name` (or `kind` alone), as kept in `Run.started_by`."""
    return f"{actor.kind}:{actor.name}" if actor.name else actor.kind


def current_actor() -> events_pb2.Actor:
    """Who the events appended now are recorded as caused by."""
    return _ACTOR.get() or SYSTEM


def run_actor(started_by: str, run_id: str) -> events_pb2.Actor:
    """The actor of the dispatcher's work on run `run_id`: who started the run."""
    kind, _, name = (started_by or SYSTEM.kind).partition(":")
    return events_pb2.Actor(kind=kind, name=name, via=DISPATCHER, run_id=run_id)


_T = TypeVar("_T")
_R = TypeVar("_R")


def as_caller(work: Callable[[_T], _R]) -> Callable[[_T], _R]:
    """`work` (a transaction function) recording the current call's caller as actor.

    Call it in the call's task: it reads the caller there, before `work` runs elsewhere.
    """
    actor = caller_actor()

    def acted(tx: _T) -> _R:
        with acting_as(actor):
            return work(tx)

    return acted


@contextmanager
def acting_as(actor: events_pb2.Actor) -> Iterator[None]:
    """Events appended inside record `actor` as their cause."""
    token = _ACTOR.set(actor)
    try:
        yield
    finally:
        _ACTOR.reset(token)


# -- writing -------------------------------------------------------------------------------
def append(
    tx: EventWrites,
    type_: str,
    aggregate_id: str,
    at_us: int,
    *,
    contact_id: str = "",
    clear: events_pb2.Event | None = None,
    personal: events_pb2.Event | None = None,
    new_contact: bool = False,
    otherwise: events_pb2.Actor | None = None,
) -> int:
    """Append one event: `clear` as is, `personal` sealed with `contact_id`'s data key.

    The personal part is dropped when the contact was already erased (no new key is made
    for someone who is gone). `new_contact`: the contact was created by this transaction,
    so it has no key yet and was never erased (two lookups saved per created contact).
    `otherwise`: the actor when no caller is acting (`acting_as`), e.g. `run_actor` for
    the dispatcher's work; a caller's request that does the same work wins.
    """
    sealed = SealedEvent()
    if clear is not None:
        sealed.clear.CopyFrom(clear)
    sealed.clear.actor.CopyFrom(_ACTOR.get() or otherwise or SYSTEM)
    if personal is not None and contact_id and personal.ByteSize():
        key = _new_data_key(tx, contact_id) if new_contact else _data_key(tx, contact_id)
        if key is not None:
            key_id, cipher = key
            sealed.key_id = key_id
            sealed.nonce, sealed.ciphertext = data_keys.seal(
                cipher, _aad(key_id, type_), personal.SerializeToString()
            )
    payload = sealed.SerializeToString()
    held = _HELD.get()
    if held is not None:
        held.append(_Held(type_, aggregate_id, contact_id, payload, at_us))
        return 0
    seq = tx.append_sealed(type_, aggregate_id, contact_id, payload, at_us)
    SIGNAL.announce()
    return seq


@contextmanager
def held_events(tx: EventWrites) -> Iterator[dict[str, str]]:
    """Hold the events appended inside (sealed, not yet written), then write them in the
    order they were appended; the contact change events of the contacts in the yielded
    map (contact id -> run id, filled in by the caller) carry that run's id.

    An import chunk's sync run is chosen after its contacts' changes were applied, and an
    event is never rewritten: holding the changes' events lets each one name its chunk run,
    which is what finds a contact's chunk runs (see `WriteTx.add_run_contacts`). Nothing
    is written when the block raises (the transaction rolls back anyway).
    """
    held: list[_Held] = []
    token = _HELD.set(held)
    runs: dict[str, str] = {}
    try:
        yield runs
    finally:
        _HELD.reset(token)
    for e in held:
        run_id = runs.get(e.contact_id, "") if e.type in CONTACT_CHANGES else ""
        tx.append_sealed(e.type, e.aggregate_id, e.contact_id, e.payload, e.at_us, run_id)
    if held:
        SIGNAL.announce()


def append_details(
    tx: EventWrites,
    type_: str,
    aggregate_id: str,
    at_us: int,
    details: dict[str, Any],
    contact_id: str = "",
    otherwise: events_pb2.Actor | None = None,
) -> int:
    """Append an event whose values are a few clear fields (ids, counts, statuses)."""
    clear = events_pb2.Event()
    clear.details.update(details)
    return append(
        tx, type_, aggregate_id, at_us, contact_id=contact_id, clear=clear, otherwise=otherwise
    )


def _aad(key_id: bytes, type_: str) -> bytes:
    return key_id + b"\x00" + type_.encode()


def _data_key(tx: EventWrites, contact_id: str) -> tuple[bytes, AESGCM] | None:
    stored = tx.contact_keys([contact_id]).get(contact_id)
    if stored is not None:
        key_id, wrapped = stored
        server_key = None if KEYRING.cached(wrapped) else _server_key(tx)
        return key_id, KEYRING.cipher(server_key, key_id, wrapped)
    if tx.tombstone_by_id(contact_id) is not None:
        return None
    return _new_data_key(tx, contact_id)


def _new_data_key(tx: EventWrites, contact_id: str) -> tuple[bytes, AESGCM]:
    key_id, raw, wrapped = data_keys.new_wrapped_key(_server_key(tx))
    tx.put_contact_key(contact_id, key_id, wrapped)
    return key_id, KEYRING.remember(wrapped, raw)


def _server_key(tx: EventWrites) -> bytes:
    # Made once per database: read it first, so later calls write nothing.
    found = tx.server_key_or_none(SERVER_KEY_NAME)
    if found is not None:
        return found
    return tx.server_key(SERVER_KEY_NAME, AESGCM.generate_key(bit_length=256))


# -- reading -------------------------------------------------------------------------------
def decode_rows(
    tx: EventReads,
    rows: Sequence[EventRow],
    out: MutableSequence[events_pb2.Event] | None = None,
    *,
    keep_redacted: bool = True,
) -> DecodedPage:
    """The events of `rows`, in their order, opened with their contacts' keys.

    With `out` (e.g. a response's repeated field) they are decoded straight into it, and
    the page's `events` stays empty. Redacted events are counted; `keep_redacted=False`
    leaves them out.
    """
    ids = sorted({r.contact_id for r in rows if r.version == ENVELOPE_VERSION and r.contact_id})
    keys = tx.contact_keys(ids) if ids else {}
    opener = _Opener(tx, keys)
    page = DecodedPage()
    # Elements are added in place: a repeated field of a message, never a list.
    target: Any = events_pb2.GetContactHistoryResponse().events if out is None else out
    for row in rows:
        event = target.add()
        opener.fill(event, row)
        if event.redacted:
            page.redacted += 1
            if not keep_redacted:
                del target[-1]
    if out is None:
        page.events = list(target)
    return page


class _Opener:
    __slots__ = ("_keys", "_server_key", "_server_key_read", "_tx")

    def __init__(self, tx: EventReads, keys: dict[str, tuple[bytes, bytes]]) -> None:
        self._tx = tx
        self._keys = keys
        self._server_key: bytes | None = None
        self._server_key_read = False

    def fill(self, event: events_pb2.Event, row: EventRow) -> None:
        if row.version != ENVELOPE_VERSION:
            event.CopyFrom(legacy_event(row))
            return
        sealed = SealedEventView.FromString(row.payload)
        event.MergeFromString(sealed.clear)
        _frame(event, row, ENVELOPE_VERSION)
        if sealed.ciphertext:
            personal = self._open(row, sealed)
            if personal is None:
                event.redacted = True
            else:
                event.MergeFromString(personal)

    def _open(self, row: EventRow, sealed: SealedEventView) -> bytes | None:
        stored = self._keys.get(row.contact_id)
        if stored is None or stored[0] != sealed.key_id:
            return None  # the key was destroyed: the person was erased
        try:
            cipher = KEYRING.cipher(self._server(stored[1]), stored[0], stored[1])
            return data_keys.unseal(
                cipher, sealed.nonce, sealed.ciphertext, _aad(sealed.key_id, row.type)
            )
        except Unreadable:
            return None

    def _server(self, wrapped: bytes) -> bytes | None:
        if KEYRING.cached(wrapped):
            return None
        if not self._server_key_read:
            self._server_key = self._tx.server_key_or_none(SERVER_KEY_NAME)
            self._server_key_read = True
        return self._server_key


def _frame(event: events_pb2.Event, row: EventRow, version: int) -> None:
    event.cursor = row.seq
    event.type = row.type
    event.schema_version = version
    event.aggregate_id = row.aggregate_id
    event.contact_id = row.contact_id
    event.occurred_at.seconds, micros = divmod(row.at_us, 1_000_000)
    event.occurred_at.nanos = micros * 1000


def legacy_event(row: EventRow) -> events_pb2.Event:
    """A version-1 row (JSON of ids and field names) as an event with `details`."""
    event = events_pb2.Event()
    _frame(event, row, LEGACY_VERSION)
    try:
        body = json.loads(row.payload)
    except ValueError:
        body = None
    details: dict[str, Any] = body if isinstance(body, dict) else {"value": body}
    event.details.CopyFrom(_struct(details))
    if not event.contact_id:
        event.contact_id = legacy_contact_id(row.type, row.aggregate_id, details)
    return event


def legacy_contact_id(type_: str, aggregate_id: str, details: dict[str, object]) -> str:
    """Whom a version-1 event was about: contact and lead events name it as their
    aggregate, run starts in their body."""
    if type_.startswith(("contact.", "lead.")):
        return aggregate_id
    found = details.get("contact_id")
    return found if isinstance(found, str) else ""


def _struct(values: dict[str, Any]) -> Struct:
    out = Struct()
    out.update(values)
    return out
