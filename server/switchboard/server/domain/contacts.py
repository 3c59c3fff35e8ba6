"""Contact use-cases: upsert, get, list, import, erase."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass

from switchboard.server.cache.read_cache import ReadCache, lead_key
from switchboard.server.common.ids import new_id
from switchboard.server.common.timeutil import iso, now_us, set_ts, to_us
from switchboard.server.config.flow import TriggerSettings
from switchboard.server.config.sync import SyncSettings
from switchboard.server.dispatch.worker import Dispatcher
from switchboard.server.domain.bulk_admission import admit_bulk
from switchboard.server.domain.idempotency import run_once, write_once
from switchboard.server.errors import (
    Aborted,
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    SwitchboardError,
    Violation,
    status_name,
)
from switchboard.server.observability.telemetry import current_traceparent
from switchboard.server.rules import contacts as rules
from switchboard.server.rules.paging import PageTokens
from switchboard.server.rules.segment_facts import CONTACT_FACT_FIELDS
from switchboard.server.rules.validation import (
    MAX_LIST_NAME,
    Violations,
    check_idempotency_key,
    check_length,
    check_page_size,
    normalize_email,
    require_lookup,
)
from switchboard.server.runs.backfill import skip_pending_backfill
from switchboard.server.runs.sync import (
    SyncFanout,
    erasure_trigger,
    skip_pending_changes,
    start_erasure,
)
from switchboard.server.store import event_values
from switchboard.server.store.base import ReadTx, Store, WriteTx
from switchboard.server.store.event_log import (
    acting_as,
    append,
    append_details,
    caller_actor,
    held_events,
)
from switchboard.v1 import common_pb2, contacts_pb2, events_pb2

Mode = contacts_pb2.UpsertMode
ERASED_EVENT = "contact.erased"
MAX_PAGE = 1000
MAX_IMPORT_ERRORS = 1000
MAX_IMPORT_BATCH = 1000
_IMPORT_CHUNK = 500
# An import chunk is written in at most _IMPORT_PARTS parts of at least _IMPORT_TX_ROWS rows,
# each a job of its own for the writer: a call's write waits for one part (~5 ms for 25 rows),
# not the chunk (~25 ms per 100 rows). At most 4: each part that joins the chunk's sync run
# re-encodes its plan: 25-row parts of a 500-row chunk cost an import 43 % more CPU (498 µs
# a contact against 348 in `bench.sync_import 10000 3`; 339 with 4 parts).
_IMPORT_TX_ROWS = 25
_IMPORT_PARTS = 4
# How long the chunk's sync runs are held back from the workers while its later parts may
# still join them; the last part lets them go at once, a failed call after this long.
_IMPORT_HOLD_US = 5_000_000


@dataclass(frozen=True, slots=True)
class UpsertOutcome:
    """Result of applying one upsert inside a transaction."""

    contact: contacts_pb2.Contact
    created: bool
    previous_email: str
    changed: bool = True  # False: the stored contact already held this data (nothing written)
    fields: tuple[str, ...] = ()  # the caller-settable fields this write changed


def find_contact(tx: ReadTx, contact_id: str, email: str) -> contacts_pb2.Contact | None:
    """A live contact by id, else by email."""
    if contact_id:
        return tx.contact_by_id(contact_id)
    return tx.contact_by_email(email) if email else None


def _erased(tx: ReadTx, email: str) -> None:
    stone = tx.tombstone_by_email_hash(rules.email_hash(email)) if email else None
    if stone is not None:
        raise FailedPrecondition(
            f"the contact with this email was erased on {iso(stone.deleted_us)}; "
            "it is not recreated by a sync. Recreate it only with fresh consent, under a new email."
        )


def apply_upsert(
    tx: WriteTx,
    incoming: contacts_pb2.Contact,
    now: int,
    mask: list[str] | None = None,
    expected_version: int = 0,
    mode: int = Mode.UPSERT_MODE_UPSERT,
) -> UpsertOutcome:
    """Create or update one normalized contact, with its event, in the caller's transaction."""
    current = find_contact(tx, incoming.id, incoming.email)
    if current is None:
        return _create(tx, incoming, now, incoming.id, expected_version, mode, mask or [])
    if mode == Mode.UPSERT_MODE_CREATE_ONLY:
        raise AlreadyExists(
            f"a contact with email {current.email!r} already exists (id {current.id})"
        )
    if expected_version and expected_version != current.version:
        raise Aborted(
            f"contact {current.id} is at version {current.version}, not {expected_version}; "
            "re-read it and retry"
        )
    if not mask and _only_names(incoming, current):
        # A trigger for a known contact, by email or id alone: merging nothing changes
        # nothing, so the copy and the comparison are skipped.
        return UpsertOutcome(current, False, current.email, changed=False)
    merged = rules.merge(current, incoming, mask or [], now)
    if not merged.email:
        raise InvalidArgument([Violation("contact.email", "cannot be cleared")])
    if merged.email != current.email:
        owner = tx.contact_by_email(merged.email)
        if owner is not None:
            raise AlreadyExists(f"email {merged.email!r} belongs to contact {owner.id}")
        _erased(tx, merged.email)
    fields = rules.changed_fields(current, merged)
    # `same_data` (two copies and a comparison) only decides when nothing but consent
    # records differ: a re-sent consent with a new time alone changes nothing.
    if not fields or (_CONSENT_FIELDS.issuperset(fields) and rules.same_data(current, merged)):
        return UpsertOutcome(current, False, current.email, changed=False)
    merged.version = current.version + 1
    set_ts(merged.updated_at, now)
    tx.put_contact(
        merged,
        lists_changed="lists" in fields,
        facts_changed=not CONTACT_FACT_FIELDS.isdisjoint(fields),
    )
    _event(tx, "contact.updated", merged, fields, now)
    return UpsertOutcome(merged, False, current.email, fields=tuple(fields))


_LOOKUP_FIELDS = frozenset({"id", "email"})
_CONSENT_FIELDS = frozenset({"consent", "consents"})


def _only_names(incoming: contacts_pb2.Contact, current: contacts_pb2.Contact) -> bool:
    """Whether `incoming` sets nothing but the id or email that found `current`."""
    # ListFields walks only the set fields, in C.
    if not all(fd.name in _LOOKUP_FIELDS for fd, _ in incoming.ListFields()):
        return False
    return incoming.email in ("", current.email)


def _create(
    tx: WriteTx,
    incoming: contacts_pb2.Contact,
    now: int,
    wanted_id: str,
    expected_version: int,
    mode: int,
    mask: list[str],
) -> UpsertOutcome:
    if wanted_id:
        if tx.tombstone_by_id(wanted_id):
            raise NotFound(f"contact {wanted_id} was erased")
        raise NotFound(f"no contact with id {wanted_id}")
    if mode == Mode.UPSERT_MODE_UPDATE_ONLY:
        raise NotFound(f"no contact with email {incoming.email!r}")
    if not incoming.email:
        raise InvalidArgument([Violation("contact.email", "is required to create a contact")])
    if expected_version:
        raise Aborted(
            f"no contact with email {incoming.email!r} exists at version {expected_version}"
        )
    _erased(tx, incoming.email)
    contact = (
        rules.merge(contacts_pb2.Contact(), incoming, mask, now) if mask else _copy(incoming, now)
    )
    contact.id = new_id("c")
    contact.version = 1
    set_ts(contact.created_at, now)
    set_ts(contact.updated_at, now)
    tx.put_contact(contact, lists_changed=bool(contact.lists), created=True)
    fields = rules.changed_fields(None, contact)
    _event(tx, "contact.created", contact, fields, now)
    return UpsertOutcome(contact, True, "", fields=tuple(fields))


def _copy(incoming: contacts_pb2.Contact, now: int) -> contacts_pb2.Contact:
    """What merging a normalized contact into an empty one gives, in one C-level copy."""
    contact = contacts_pb2.Contact()
    contact.CopyFrom(incoming)
    rules.stamp_consents(contact, now)
    return contact


def _event(tx: WriteTx, kind: str, c: contacts_pb2.Contact, fields: list[str], now: int) -> None:
    # The values are sealed with the contact's own key: erasure destroys the key instead
    # of rewriting the append-only log.
    clear, personal = event_values.contact_changed(c, fields)
    created = kind == "contact.created"
    append(
        tx, kind, c.id, now, contact_id=c.id, clear=clear, personal=personal, new_contact=created
    )


async def read_through(store: Store, cache: ReadCache, which: str, key: str) -> bytes:
    """A live contact's bytes by `which` (`id` or normalized `email`): from the cache, else
    from the store, then cached. NOT_FOUND when there is none."""
    cached = await cache.get_wire(which, key)
    if cached is not None:
        return cached
    contact = await store.read(
        lambda tx: tx.contact_by_id(key) if which == "id" else tx.contact_by_email(key),
        point=True,
    )
    if contact is None:
        raise NotFound(f"no contact with {which} {key!r}")
    await cache.put(contact)
    return contact.SerializeToString()


class ContactService:
    """Contact use-cases over the store and the read cache."""

    def __init__(
        self,
        store: Store,
        cache: ReadCache,
        triggers: Mapping[str, TriggerSettings],
        dispatcher: Dispatcher,
        tokens: PageTokens,
        *,
        sync: SyncSettings | None = None,
        batched: Collection[tuple[str, str]] = frozenset(),
        import_backlog_s: float = 0.0,
    ) -> None:
        self._store = store
        self._import_backlog_s = import_backlog_s
        self._cache = cache
        self._triggers = triggers
        self._dispatcher = dispatcher
        self._tokens = tokens
        self._sync = SyncFanout(sync or SyncSettings(destinations={}), batched)
        # The erasure flow: the `contact.erased` trigger's steps plus the sync destinations'.
        self._erasure = erasure_trigger(triggers.get(ERASED_EVENT), self._sync.settings)

    def _sync_change(
        self, tx: WriteTx, out: UpsertOutcome, now: int, traceparent: str
    ) -> str | None:
        """The sync run of an accepted write that changed something (None: none started)."""
        if not out.changed:
            return None
        return self._sync.change(
            tx,
            out.contact,
            list(out.fields),
            now,
            created=out.created,
            traceparent=traceparent,
        )

    def _upsert_in(
        self, tx: WriteTx, item: PreparedUpsert, now: int, traceparent: str, started: list[str]
    ) -> tuple[contacts_pb2.UpsertContactResponse, str | None]:
        """One validated upsert in the caller's transaction: the answer, and the previous
        email when something was written (its cache entries are stale), else None."""
        req = item.request
        out = apply_upsert(tx, item.contact, now, item.mask, req.expected_version, req.mode)
        if (event := self._sync_change(tx, out, now, traceparent)) is not None:
            started.append(event)
        resp = contacts_pb2.UpsertContactResponse(contact=out.contact, created=out.created)
        return resp, out.previous_email if out.changed else None

    async def upsert(
        self, req: contacts_pb2.UpsertContactRequest
    ) -> contacts_pb2.UpsertContactResponse:
        """Validate, then create or update one contact."""
        item = prepare_upsert(req)
        traceparent = current_traceparent()
        started: list[str] = []

        def work(tx: WriteTx, now: int) -> tuple[contacts_pb2.UpsertContactResponse, str | None]:
            started.clear()  # a transaction that is run again starts afresh
            return self._upsert_in(tx, item, now, traceparent, started)

        resp, previous = await write_once(
            self._store,
            "UpsertContact",
            req,
            req.idempotency_key,
            contacts_pb2.UpsertContactResponse,
            work,
            lambda r: r.contact.id,
        )
        if previous is not None:  # else nothing was written: unchanged, or a replayed key
            await self._cache.invalidate(resp.contact.id, resp.contact.email, previous)
        for event in started:
            self._dispatcher.started(event)
        return resp

    async def upsert_batch(
        self, items: Sequence[PreparedUpsert]
    ) -> list[contacts_pb2.UpsertContactResponse | SwitchboardError]:
        """Validated upserts in one write transaction, each answered as `upsert` would.

        Each item keeps its own idempotency key (stored under the UpsertContact method, so
        a key replays the same answer whichever way it came), events and sync run; a
        failing item fails alone. Like an import chunk, an item's checks all run before
        its first write, so a failed item has written nothing.
        """
        traceparent = current_traceparent()
        started: list[str] = []
        actor = caller_actor()

        def work(
            tx: WriteTx,
        ) -> tuple[list[contacts_pb2.UpsertContactResponse | SwitchboardError], list[str]]:
            with acting_as(actor):
                return apply(tx)

        def apply(
            tx: WriteTx,
        ) -> tuple[list[contacts_pb2.UpsertContactResponse | SwitchboardError], list[str]]:
            now = now_us()
            started.clear()  # a transaction that is run again starts afresh
            answers: list[contacts_pb2.UpsertContactResponse | SwitchboardError] = []
            stale: list[str] = []
            for item in items:
                written: list[str | None] = []

                def compute(
                    item: PreparedUpsert = item, written: list[str | None] = written
                ) -> contacts_pb2.UpsertContactResponse:
                    resp, previous = self._upsert_in(tx, item, now, traceparent, started)
                    written.append(previous)
                    return resp

                try:
                    resp, _ = run_once(
                        tx,
                        item.request.idempotency_key,
                        "UpsertContact",
                        item.request,
                        contacts_pb2.UpsertContactResponse,
                        compute,
                        now,
                        lambda r: r.contact.id,
                    )
                except SwitchboardError as exc:
                    answers.append(exc)
                    continue
                answers.append(resp)
                if written and written[0] is not None:  # else unchanged, or a replayed key
                    stale.extend((resp.contact.id, resp.contact.email, written[0]))
            return answers, stale

        answers, stale = await self._store.write(work)
        if stale:
            await self._cache.invalidate(*stale)
        for event in started:
            self._dispatcher.started(event)
        return answers

    async def get(self, req: contacts_pb2.GetContactRequest) -> contacts_pb2.Contact:
        """One live contact by id or email, through the cache."""
        return contacts_pb2.Contact.FromString(await self.get_wire(req))

    async def get_wire(self, req: contacts_pb2.GetContactRequest) -> bytes:
        """The same contact as protobuf bytes: a cache hit is returned without decoding."""
        which = req.WhichOneof("lookup")
        if which is None:
            raise InvalidArgument([Violation("lookup", "set either id or email")])
        key = req.id if which == "id" else normalize_email(req.email)
        return await read_through(self._store, self._cache, which, key)

    async def list_page(
        self, req: contacts_pb2.ListContactsRequest
    ) -> contacts_pb2.ListContactsResponse:
        """A page of contacts in (updated_at, id) order."""
        v = Violations()
        size = check_page_size(v, req.page_size, 100, MAX_PAGE)
        check_length(v, "list", req.list, MAX_LIST_NAME)
        # The store lists from a time, inclusive (a backfill's `since` is "at or after");
        # "strictly after" a time starts at its next microsecond, the store's resolution.
        after_us = to_us(req.updated_after) + 1 if req.HasField("updated_after") else 0
        scope = ("ListContacts", req.list, after_us)
        cursor = self._tokens.decode(req.page_token, scope, v)
        v.raise_if_any()
        rows = await self._store.read(
            lambda tx: tx.list_contacts(req.list, after_us, cursor, size + 1)
        )
        resp = contacts_pb2.ListContactsResponse(contacts=rows[:size])
        if len(rows) > size:
            last = rows[size - 1]
            resp.next_page_token = self._tokens.encode((to_us(last.updated_at), last.id), scope)
        return resp

    async def import_stream(
        self,
        batches: AsyncIterator[contacts_pb2.ImportContactsRequest],
        time_left: Callable[[], float | None] = lambda: None,
    ) -> contacts_pb2.ImportContactsResponse:
        """Upsert every row of every batch; bad rows are counted and reported, never fatal.

        Refused whole (ResourceExhausted) before its first write while the store's bulk
        writes are far behind (`bulk_admission`); `time_left` reads the seconds to the
        call's deadline (None: no deadline).
        """
        # Chunks are validated and written one after the other: overlapping them (validate
        # chunk k+1 while the writer applies chunk k) measured 30 % slower, both halves
        # being Python code that contends for the GIL.
        summary = contacts_pb2.ImportContactsResponse()
        index = 0
        async for batch in batches:
            if not index:  # nothing written yet: the import may still be refused whole
                admit_bulk(self._store, self._import_backlog_s, "this import", time_left())
            rows = list(batch.contacts)
            if len(rows) > MAX_IMPORT_BATCH:
                # A bad row never stops an import, but an oversized batch is abuse.
                raise InvalidArgument(
                    [Violation("contacts", f"at most {MAX_IMPORT_BATCH} contacts per message")]
                )
            for start in range(0, len(rows), _IMPORT_CHUNK):
                chunk = rows[start : start + _IMPORT_CHUNK]
                await self._write_chunk(_validate_chunk(chunk, index, summary), summary)
                index += len(chunk)
        return summary

    async def _write_chunk(
        self,
        valid: list[tuple[int, contacts_pb2.Contact]],
        summary: contacts_pb2.ImportContactsResponse,
    ) -> None:
        if not valid:
            return
        traceparent = current_traceparent()
        actor = caller_actor()
        # The chunk's sync runs, by destination set: later parts join them (see change_chunk).
        open_runs: dict[str, str] = {}
        size = max(_IMPORT_TX_ROWS, -(-len(valid) // _IMPORT_PARTS))
        starts = range(0, len(valid), size)
        last = starts[-1]  # 0 when the chunk is one part: nothing to hold or release
        # With several parts, all but the last hold the chunk's runs; the last lets them go.
        parts = [
            _ImportPart(
                self, valid[s : s + size], actor, traceparent, open_runs, s < last, s == last > 0
            )
            for s in starts
        ]
        written = await self._store.write_each(parts)
        stale: list[str] = []
        results = [row for rows in written for row in rows]
        for index, email, result in results:
            if isinstance(result, SwitchboardError):
                _row_error(summary, index, email, result)
            elif result.created:
                summary.created += 1
            elif result.changed:
                summary.updated += 1
                stale.extend((result.contact.id, result.contact.email, result.previous_email))
            else:
                summary.unchanged += 1
        await self._cache.invalidate(*stale)
        for part in parts:
            for event in part.started:
                self._dispatcher.started(event)

    def _apply_part(
        self,
        tx: WriteTx,
        rows: list[tuple[int, contacts_pb2.Contact]],
        traceparent: str,
        open_runs: dict[str, str],
        started: list[str],
        hold: bool,
        release: bool,
    ) -> list[tuple[int, str, UpsertOutcome | SwitchboardError]]:
        now = now_us()
        if not self._sync.chunks:
            return self._apply_rows(tx, rows, now, traceparent, started)
        # Each change's event names the chunk run that carries it, chosen after the changes.
        with held_events(tx) as chunk_of:
            out = self._apply_rows(tx, rows, now, traceparent, None)
            changes = [
                (r.contact, list(r.fields), r.created)
                for _, _, r in out
                if isinstance(r, UpsertOutcome) and r.changed
            ]
            hold_us = now + _IMPORT_HOLD_US if hold else 0
            started.extend(
                self._sync.change_chunk(
                    tx, changes, now, traceparent, open_runs, hold_us, joined=chunk_of
                )
            )
            if release:
                self._sync.release_chunk_runs(tx, open_runs, now)
        return out

    def _apply_rows(
        self,
        tx: WriteTx,
        rows: list[tuple[int, contacts_pb2.Contact]],
        now: int,
        traceparent: str,
        started: list[str] | None,
    ) -> list[tuple[int, str, UpsertOutcome | SwitchboardError]]:
        """Upsert each row; with `started`, start each change's own sync run too."""
        out: list[tuple[int, str, UpsertOutcome | SwitchboardError]] = []
        for index, contact in rows:
            try:
                result = apply_upsert(tx, contact, now)
            except SwitchboardError as exc:
                out.append((index, contact.email, exc))
                continue
            if started is not None and (event := self._sync_change(tx, result, now, traceparent)):
                started.append(event)
            out.append((index, contact.email, result))
        return out

    async def delete(
        self, req: contacts_pb2.DeleteContactRequest
    ) -> contacts_pb2.DeleteContactResponse:
        """Erase personal data and keep a tombstone; erasing twice answers the same."""
        v = Violations()
        which = require_lookup(v, req)
        check_idempotency_key(v, req.idempotency_key)
        v.raise_if_any()
        email = normalize_email(req.email)
        erased_email: list[str] = []  # when erasing by id, the email key must be dropped too
        started: list[str] = []  # the erasure run, if one is configured
        traceparent = current_traceparent()
        actor = caller_actor()

        def work(tx: WriteTx) -> contacts_pb2.DeleteContactResponse:
            with acting_as(actor):
                return erase(tx)

        def erase(tx: WriteTx) -> contacts_pb2.DeleteContactResponse:
            now = now_us()
            contact = tx.contact_by_id(req.id) if which == "id" else tx.contact_by_email(email)
            if contact is None:
                stone = (
                    tx.tombstone_by_id(req.id)
                    if which == "id"
                    else tx.tombstone_by_email_hash(rules.email_hash(email))
                )
                if stone is None:
                    raise NotFound(f"no contact with {which} {req.id or email!r}")
                resp = contacts_pb2.DeleteContactResponse(id=stone.contact_id)
                set_ts(resp.deleted_at, stone.deleted_us)
                return resp
            erased_email.append(contact.email)
            # Changes not yet sent are not sent: the erasure run below tells the tools.
            skip_pending_changes(tx, contact.id, now)
            skip_pending_backfill(tx, contact.id, now)
            tx.erase_contact(contact.id, contact.email, rules.email_hash(contact.email), now)
            append_details(tx, "contact.erased", contact.id, now, {"id": contact.id}, contact.id)
            trigger = self._erasure
            if trigger is not None:
                start_erasure(tx, trigger, contact.id, contact.email, now, traceparent)
                started.append(ERASED_EVENT)
            resp = contacts_pb2.DeleteContactResponse(id=contact.id)
            set_ts(resp.deleted_at, now)
            return resp

        resp = await self._store.write(work)
        await self._cache.invalidate(resp.id, email, *erased_email, lead_key(resp.id))
        if erased_email:
            # The erased rows are zeroed in the file; earlier versions of their pages may
            # still sit in the write-ahead log until it is truncated.
            await self._store.forget_old_versions()
        for event in started:
            self._dispatcher.started(event)
        return resp


class _ImportPart:
    """One transaction's share of an import chunk: a bulk job for the store's writer."""

    def __init__(
        self,
        service: ContactService,
        rows: list[tuple[int, contacts_pb2.Contact]],
        actor: events_pb2.Actor,
        traceparent: str,
        open_runs: dict[str, str],
        hold: bool,
        release: bool,
    ) -> None:
        self._service = service
        self._rows = rows
        self._actor = actor
        self._traceparent = traceparent
        self._open_runs = open_runs
        self._hold = hold  # later parts follow: hold the runs this one starts
        self._release = release  # the last of several parts: let the chunk's runs go
        self.started: list[str] = []  # the runs' events, for the dispatcher once committed

    def __call__(self, tx: WriteTx) -> list[tuple[int, str, UpsertOutcome | SwitchboardError]]:
        self.started.clear()  # a transaction tried again starts over
        with acting_as(self._actor):
            return self._service._apply_part(
                tx,
                self._rows,
                self._traceparent,
                self._open_runs,
                self.started,
                self._hold,
                self._release,
            )


@dataclass(frozen=True, slots=True)
class PreparedUpsert:
    """An UpsertContact request that passed validation, with its normalized contact."""

    request: contacts_pb2.UpsertContactRequest
    contact: contacts_pb2.Contact
    mask: list[str]


def prepare_upsert(req: contacts_pb2.UpsertContactRequest) -> PreparedUpsert:
    """Validate and normalize one UpsertContact request (INVALID_ARGUMENT when it is bad)."""
    v = Violations()
    incoming = rules.normalize_contact(req.contact, v, "contact.")
    mask = list(req.update_mask.paths)
    rules.check_mask(mask, v)
    check_idempotency_key(v, req.idempotency_key)
    if not incoming.id and not incoming.email:
        v.add("contact", "set contact.id to update, or contact.email to create or update")
    v.raise_if_any()
    return PreparedUpsert(req, incoming, mask)


def _validate_chunk(
    chunk: list[contacts_pb2.Contact], first: int, summary: contacts_pb2.ImportContactsResponse
) -> list[tuple[int, contacts_pb2.Contact]]:
    """Normalized rows with their stream index; invalid rows go straight to the summary."""
    summary.received += len(chunk)
    valid: list[tuple[int, contacts_pb2.Contact]] = []
    for offset, row in enumerate(chunk):
        v = Violations()
        contact = rules.normalize_contact(row, v, "")
        if not contact.id and not contact.email:
            v.add("email", "is required")
        if v.items:
            _row_error(summary, first + offset, row.email, InvalidArgument(v.items))
        else:
            valid.append((first + offset, contact))
    return valid


def _row_error(
    summary: contacts_pb2.ImportContactsResponse, index: int, key: str, exc: SwitchboardError
) -> None:
    summary.failed += 1
    if len(summary.errors) >= MAX_IMPORT_ERRORS:
        summary.errors_truncated = True
        return
    err = common_pb2.ItemError(index=index, code=status_name(exc), message=exc.message, key=key)
    for violation in getattr(exc, "violations", []):
        err.field_violations.add(field=violation.field, description=violation.description)
    summary.errors.append(err)
