"""The store contract.

Every use-case runs as one synchronous function over a transaction object (`WriteTx` or
`ReadTx`): a write, its event and its outbox rows commit together or not at all. Where it
runs (event loop or a store thread) is the store's choice. `Store.write` returns only after the
commit is durable, so an acknowledged write survives a crash.

Times are integer microseconds since the epoch (UTC); messages are stored as protobuf bytes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from switchboard.server.connectors.base import ConnectorState
from switchboard.server.rules.plan import Plan
from switchboard.server.store.audience import CampaignRow
from switchboard.server.store.event_log import EventReads, EventWrites
from switchboard.server.store.replay import RebuildWrites
from switchboard.v1 import campaigns_pb2, contacts_pb2, leads_pb2, segments_pb2

T = TypeVar("T")


class SchemaTooNew(RuntimeError):
    """The database was migrated by a newer release; this one must not write to it."""


@dataclass(frozen=True, slots=True)
class Tombstone:
    """What is left of an erased contact: no personal data, only the fact and the time."""

    contact_id: str
    deleted_us: int


@dataclass(frozen=True, slots=True)
class IdempotencyRecord:
    """The first outcome stored under an idempotency key."""

    method: str
    request_hash: str
    response: bytes
    contact_id: str = ""  # whose data `response` holds, if anyone's: erasure drops it


@dataclass(frozen=True, slots=True)
class ActivityRow:
    """One recorded activity."""

    type: str
    occurred_us: int
    value: float


@dataclass(frozen=True, slots=True)
class OutboxItem:
    """A claimed step delivery, with the run's plan it belongs to."""

    id: int
    run_id: str
    step_index: int
    attempts: int
    idempotency_key: str
    plan: Plan
    connector: str = ""
    contact_id: str = ""
    advance: bool = True  # False for a redriven step: finishing it does not queue the next
    traceparent: str = ""  # W3C trace context of the call that started the run ("" if none)


@dataclass(frozen=True, slots=True)
class ClaimFilter:
    """Which due outbox rows a claim may take.

    `budgets` caps the rows claimed per connector (its free concurrency slots, rate tokens,
    or 0 while its breaker is open); connectors not listed take `default_budget`.
    Connectors in `unordered` skip per-contact ordering; all others deliver a contact's rows
    one at a time, in the order they were queued.
    """

    budgets: dict[str, int]
    default_budget: int
    unordered: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A step that exhausted its retries or failed for good, kept for an operator."""

    id: str
    run_id: str
    step_index: int
    connector: str
    action: str
    contact_id: str
    idempotency_key: str
    reason: str  # "retries_exhausted" or "permanent_error"
    attempts: int
    last_error: str
    dead_us: int


@dataclass(frozen=True, slots=True)
class VariantCount:
    """One A/B variant's contacts exposed in a time range, and those who converted."""

    variant: str
    exposures: int
    conversions: int


@dataclass(frozen=True, slots=True)
class RunFilter:
    """ListRuns filters; empty values match everything."""

    contact_id: str = ""
    event: str = ""
    status: int = 0


class ReadTx(EventReads, Protocol):
    """Queries available inside any transaction."""

    def contact_by_id(self, contact_id: str) -> contacts_pb2.Contact | None: ...
    def contact_by_email(self, email: str) -> contacts_pb2.Contact | None: ...
    def tombstone_by_id(self, contact_id: str) -> Tombstone | None: ...
    def tombstone_by_email_hash(self, email_hash: str) -> Tombstone | None: ...
    def list_contacts(
        self, list_name: str, updated_from_us: int, cursor: tuple[int, str] | None, limit: int
    ) -> list[contacts_pb2.Contact]:
        """Contacts changed at or after `updated_from_us` (inclusive), in (updated, id) order
        after `cursor`; on `list_name` when it is set."""
        ...

    def idempotency(self, key: str) -> IdempotencyRecord | None: ...
    def lead(self, contact_id: str) -> leads_pb2.Lead | None: ...
    def recent_activities(self, contact_id: str, limit: int) -> list[ActivityRow]: ...
    def activity_count(self, contact_id: str) -> int: ...
    def run(self, run_id: str) -> campaigns_pb2.Run | None: ...
    def run_plan(self, run_id: str) -> Plan | None: ...
    def list_runs(
        self, flt: RunFilter, cursor: tuple[int, str] | None, limit: int
    ) -> list[campaigns_pb2.Run]: ...
    def pending_run(self, contact_id: str, event: str) -> campaigns_pb2.Run | None:
        """The contact's newest PENDING run of `event` (its own or a chunk run covering it),
        when no worker ever claimed its first step (its outbox row has no attempt); else
        None. Through indexes, without reading plans: a sync change coalesces with it."""
        ...

    def outbox_depth(self) -> int: ...
    def list_dead_letters(self, connector: str, after_id: str, limit: int) -> list[DeadLetter]: ...
    def waits_for(self, source: str, key: str) -> list[tuple[str, int]]: ...
    def outbox_item(self, run_id: str, step_index: int) -> OutboxItem | None: ...
    def select_dead_letters(
        self, ids: list[str] | None, connector: str, limit: int
    ) -> list[DeadLetter]: ...
    def events(self, aggregate_id: str) -> list[tuple[str, bytes]]: ...
    def state_get(self, connector: str, collection: str, key: str) -> dict[str, Any] | None: ...
    def state_scan(
        self, connector: str, collection: str, prefix: str, limit: int
    ) -> list[dict[str, Any]]: ...
    def variant_results(
        self, event: str, since_us: int, until_us: int, conversion_type: str
    ) -> list[VariantCount]:
        """Per variant of `event`'s runs started in [since_us, until_us): the contacts
        exposed, and those with a `conversion_type` activity at or after their first run."""
        ...

    # Segments (store/facts.py): `where` is a condition over `segment_facts f` in the
    # store's own dialect (rules/segment_sql.py).
    def segment(self, name: str) -> segments_pb2.Segment | None: ...
    def list_segments(self, after: str, limit: int) -> list[segments_pb2.Segment]: ...
    def facts_due(self, today: int) -> bool: ...
    def facts_row(self, contact_id: str) -> dict[str, Any] | None: ...
    def facts_log_bounds(self) -> tuple[int, int]: ...
    def facts_log_after(self, after: int, limit: int) -> list[tuple[int, str]]: ...
    def facts_chunk(self, after_id: str, limit: int) -> list[tuple[Any, ...]]: ...
    def facts_of(self, contact_ids: list[str]) -> list[tuple[Any, ...]]: ...
    def facts_attributes_chunk(self, after_id: str, limit: int) -> list[tuple[str, Any]]: ...
    def facts_attributes_of(self, contact_ids: list[str]) -> list[tuple[str, Any]]: ...
    def list_member_ids(self, name: str) -> list[str]: ...
    def lists_of(self, contact_ids: list[str]) -> list[tuple[str, str]]: ...
    def segment_count(self, where: str, params: list[Any]) -> int: ...
    def segment_members(
        self, where: str, params: list[Any], after_id: str, limit: int
    ) -> list[contacts_pb2.Contact]: ...
    def segment_member_ids(
        self, where: str, params: list[Any], after_id: str, limit: int
    ) -> list[str]: ...
    # Audience campaigns (store/audience.py).
    def campaign(self, campaign_id: str) -> CampaignRow | None: ...
    def campaigns_walking(self, limit: int) -> list[str]: ...
    def campaign_outcomes(self, campaign_id: str) -> dict[str, int]: ...


class WriteTx(ReadTx, EventWrites, RebuildWrites, Protocol):
    """Queries plus writes; everything done through one WriteTx commits atomically."""

    def put_contact(
        self,
        contact: contacts_pb2.Contact,
        lists_changed: bool = True,
        created: bool = False,
        facts_changed: bool = True,
    ) -> None:
        """Store a contact; `facts_changed=False` (no field the segment read model takes
        from the contact changed) leaves its `segment_facts` row as it is."""
        ...

    def erase_contact(
        self, contact_id: str, email: str, email_hash: str, deleted_us: int
    ) -> None: ...
    def append_event(self, type_: str, aggregate_id: str, payload: bytes, at_us: int) -> int: ...
    def put_idempotency(self, key: str, record: IdempotencyRecord, at_us: int) -> None: ...
    def put_lead(self, lead: leads_pb2.Lead) -> None: ...
    def add_activity(
        self, activity_id: str, contact_id: str, row: ActivityRow, attributes: bytes
    ) -> None: ...
    def put_run(
        self, run: campaigns_pb2.Run, plan: Plan | None = None, traceparent: str = ""
    ) -> None:
        """Insert a new run with its `plan` (and the starting call's `traceparent`), or,
        without a plan, update its status and record."""
        ...

    def add_run_contacts(self, run_id: str, contact_ids: list[str]) -> None:
        """List the contacts a new PENDING chunk run covers (found by `pending_run` while
        the run stays PENDING, and by `list_runs(contact_id=...)`: on SQLite through the
        changes' events, which name the run, see `event_log.held_events`)."""
        ...

    def enqueue_step(
        self,
        run_id: str,
        step_index: int,
        connector: str,
        idempotency_key: str,
        available_us: int,
        advance: bool = True,
    ) -> None: ...
    def claim_outbox(
        self, now_us: int, lease_until_us: int, limit: int, flt: ClaimFilter | None = None
    ) -> list[OutboxItem]: ...
    def finish_outbox(self, item_id: int) -> None: ...
    def hold_step(self, run_id: str, step_index: int, available_us: int) -> None:
        """Move a queued, never claimed step's due time (a claimed one is left alone)."""
        ...

    def retry_outbox(self, item_id: int, attempts: int, available_us: int) -> None: ...
    def add_dead_letter(self, letter: DeadLetter) -> None: ...
    def add_wait(self, run_id: str, step_index: int, source: str, key: str) -> None: ...
    def delete_wait(self, run_id: str, step_index: int) -> None: ...
    def update_plan(self, run_id: str, plan: Plan) -> None: ...
    def put_run_variant(self, run: campaigns_pb2.Run) -> None:
        """Index a new run's A/B variant (for `variant_results`)."""
        ...

    def delete_dead_letter(self, letter_id: str) -> None: ...
    def purge_idempotency(self, before_us: int, limit: int) -> int: ...
    def state_put(
        self, connector: str, collection: str, key: str, value: dict[str, Any]
    ) -> None: ...
    def state_delete(self, connector: str, collection: str, key: str) -> bool: ...
    def put_segment(self, segment: segments_pb2.Segment) -> bool: ...
    def delete_segment(self, name: str) -> bool: ...
    def roll_facts(self, today: int, limit: int) -> int: ...
    def prune_facts_log(self, below: int) -> None: ...
    def put_campaign(self, campaign: campaigns_pb2.Campaign, expression: str) -> None: ...
    def add_campaign_run(self, campaign_id: str, contact_id: str, run_id: str) -> None: ...
    def advance_campaign(
        self, campaign_id: str, cursor: str, started: int, walked: bool
    ) -> None: ...
    def server_key(self, name: str, fresh: bytes) -> bytes:
        """The key stored as `name`, storing `fresh` first if there is none yet.

        The first writer wins, so every process on the same database gets the same key.
        """
        ...


class Store(Protocol):
    """Durable state. `write` commits before it returns; `read` sees committed data only."""

    async def open(self) -> None:
        """Create or migrate the schema and start the worker threads."""
        ...

    async def close(self) -> None:
        """Finish queued writes and release connections."""
        ...

    async def write(self, fn: Callable[[WriteTx], T], *, bulk: bool = False) -> T:
        """Run `fn` in a write transaction; return its result once committed.

        `bulk=True` marks a job over many rows, which the store keeps off the event loop.
        """
        ...

    async def write_each(self, fns: Sequence[Callable[[WriteTx], T]]) -> list[T]:
        """Run each of `fns`, in order, as a bulk job; return their results once all
        committed. Each job commits on its own or with its neighbours, so that a long piece
        of bulk work can let other writes in between its parts."""
        ...

    def bulk_backlog_s(self) -> float:
        """About how long a bulk write queued now in this process would wait, in seconds
        (0 when none waits): the store's own measure of being behind, by which imports are
        refused (`domain.bulk_admission`)."""
        ...

    async def forget_old_versions(self) -> None:
        """Leave no copy of deleted or overwritten data in the store's files (after erasure)."""
        ...

    async def read(self, fn: Callable[[ReadTx], T], *, point: bool = False) -> T:
        """Run `fn` against a consistent snapshot of committed data.

        `point=True` marks a few indexed lookups (no scans): the store may then run it on
        the calling thread instead of a reader thread.
        """
        ...

    def connector_state(self, connector: str) -> ConnectorState:
        """Durable key/value state for one built-in connector."""
        ...
